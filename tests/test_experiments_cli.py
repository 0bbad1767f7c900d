"""``chaos-model experiment`` and ``replay --save-as`` usage errors: exit 2 with one line, no
traceback, before any stack is started; experiments as data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from chaos_model.adapter import load_adapter
from chaos_model.cli import EXIT_USAGE, main
from chaos_model.errors import AdapterError
from chaos_model.experiments import (
    BadExperiment,
    Experiment,
    catalogue,
    check_target,
    find,
    from_failure,
    save,
    step,
    wait_for,
)
from pipeline_app import chaos_experiments

ROOT = Path(__file__).parents[1]
REFERENCE = load_adapter(ROOT / "chaos-target.toml")
BUILT_IN = catalogue(REFERENCE)
TOY_FILE = ROOT / "tests" / "toy_target" / "chaos-target.toml"

BRIEF_EXPERIMENTS = {
    "nats-broker-crash-during-message-processing",
    "postgres-connection-loss-and-pool-recovery",
    "worker-crash-during-llm-call",
    "telegram-webhook-timeout-and-redelivery",
    "llm-rate-limit-storm",
    "websocket-disconnect-and-resume",
    "network-partition-api-nats",
}


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("chaos-model: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_the_brief_experiments_and_a_cascading_one_are_built_in() -> None:
    names = {experiment.name for experiment in BUILT_IN}
    assert names >= BRIEF_EXPERIMENTS
    assert any(name.startswith("cascading-") for name in names)
    for experiment in BUILT_IN:
        assert experiment.hypothesis and experiment.blast_radius and experiment.expected
        assert experiment.observe and experiment.rollback and experiment.remediation


def test_experiments_round_trip_as_json() -> None:
    for experiment in BUILT_IN:
        data = json.loads(json.dumps(experiment.to_json()))
        assert Experiment.from_json(data, "test") == experiment


def test_list_names_every_built_in_experiment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiment", "list", "--experiments-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for experiment in BUILT_IN:
        assert f"{experiment.name}\n" in out


def test_unknown_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(
        ["experiment", "run", "no-such-thing", "--experiments-dir", str(tmp_path)], capsys
    )
    assert "no experiment named 'no-such-thing'" in err


def test_name_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert "name one experiment, or pass --all" in _usage_error(["experiment", "run"], capsys)
    _usage_error(["experiment", "run", "llm-rate-limit-storm", "--all"], capsys)


def test_bad_saved_experiment_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    err = _usage_error(["experiment", "list", "--experiments-dir", str(tmp_path)], capsys)
    assert "broken.json: not JSON" in err
    (tmp_path / "broken.json").write_text(json.dumps({"name": "broken", "hypothesis": "h"}))
    assert "missing steps" in _usage_error(
        ["experiment", "run", "broken", "--experiments-dir", str(tmp_path)], capsys
    )
    steps = [{"rule": "explode", "args": {}}]
    (tmp_path / "broken.json").write_text(
        json.dumps({"name": "broken", "hypothesis": "h", "steps": steps})
    )
    assert "unknown step 'explode'" in _usage_error(
        ["experiment", "run", "broken", "--experiments-dir", str(tmp_path)], capsys
    )


def test_save_as_refuses_bad_names_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "steps.json"
    program.write_text(json.dumps({"steps": [{"rule": "read_back", "args": {}}]}))
    saved = ["--experiments-dir", str(tmp_path / "saved")]
    assert "bad experiment name" in _usage_error(
        ["replay", str(program), "--save-as", "Bad Name", *saved], capsys
    )
    assert "is a built-in experiment" in _usage_error(
        ["replay", str(program), "--save-as", "llm-rate-limit-storm", *saved], capsys
    )
    assert "no such file" in _usage_error(
        ["replay", str(tmp_path / "missing.json"), "--save-as", "fine-name", *saved], capsys
    )
    assert not (tmp_path / "saved").exists()


def test_saving_twice_needs_another_name(tmp_path: Path) -> None:
    program = tmp_path / "steps.json"
    program.write_text(json.dumps({"steps": [{"rule": "read_back", "args": {}}]}))
    experiment = from_failure("read-back-once", program, [{"rule": "read_back", "args": {}}])
    path = save(experiment, tmp_path)
    assert find("read-back-once", tmp_path) == Experiment.from_json(
        json.loads(path.read_text()), str(path)
    )
    with pytest.raises(BadExperiment, match="exists"):
        save(experiment, tmp_path)


def test_markdown_into_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "chaos-experiments.md"
    argv = ["experiment", "run", "--all", "--markdown", str(target)]
    assert "--markdown: no folder" in _usage_error(argv, capsys)


def test_the_built_in_experiments_are_the_catalogue_the_adapter_names() -> None:
    assert REFERENCE.experiments == "pipeline_app.chaos_experiments:BUILT_IN"
    assert [e.name for e in BUILT_IN] == [e["name"] for e in chaos_experiments.BUILT_IN]
    assert all(e.origin == "built-in" for e in BUILT_IN)
    assert catalogue(load_adapter(TOY_FILE)) == ()
    for experiment in BUILT_IN:
        check_target(experiment, REFERENCE)


def test_a_target_without_a_catalogue_lists_only_its_saved_experiments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "failure" / "steps.json"
    program.parent.mkdir()
    program.write_text(json.dumps({"steps": [{"rule": "read_back", "args": {}}]}))
    saved = tmp_path / "saved"
    save(from_failure("read-back-once", program, [{"rule": "read_back", "args": {}}]), saved)
    argv = ["experiment", "list", "--target", str(TOY_FILE), "--experiments-dir", str(saved)]
    assert main(argv) == 0
    names = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert names == [f"read-back-once  [saved from {program}]"]
    run = ["experiment", "run", BUILT_IN[0].name, "--target", str(TOY_FILE)]
    err = _usage_error([*run, "--experiments-dir", str(saved)], capsys)
    assert "no experiment named" in err and "known: read-back-once" in err


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("no_such_module_here:BUILT_IN", "cannot import 'no_such_module_here'"),
        ("pipeline_app.chaos_experiments:NOPE", "has no 'NOPE'"),
        ("pipeline_app.chaos_experiments:STALL_RESPONSES", "not a sequence of Experiment"),
        ("json:__all__", "holds a str, not only Experiment"),
    ],
)
def test_a_bad_catalogue_is_one_line_naming_the_key(
    reference: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AdapterError, match=problem):
        catalogue(dataclasses.replace(REFERENCE, experiments=reference))
    adapter = tmp_path / "chaos-target.toml"
    adapter.write_text(TOY_FILE.read_text() + f'\n[experiments]\ncatalogue = "{reference}"\n')
    for argv in (["experiment", "list"], ["experiment", "run", "--all"]):
        err = _usage_error([*argv, "--target", str(adapter)], capsys)
        assert f"{adapter}: experiments.catalogue: " in err and problem in err


def test_an_await_on_pending_work_names_a_count_of_the_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(BadExperiment, match="await pending needs name="):
        Experiment("no-name", "h", "b", (wait_for("pending", count=2),), (), "e")
    backlog = Experiment(
        "outbox-backlog",
        "h",
        "b",
        (step("deliver", chat=0, text="x"), wait_for("pending", name="outbox_unsent")),
        (),
        "e",
    )
    check_target(backlog, REFERENCE)
    toy = load_adapter(TOY_FILE)
    with pytest.raises(BadExperiment, match="target toy counts no such work"):
        check_target(backlog, toy)
    save(backlog, tmp_path)
    argv = ["experiment", "run", "outbox-backlog", "--experiments-dir", str(tmp_path)]
    err = _usage_error([*argv, "--target", str(TOY_FILE)], capsys)
    assert "awaits pending 'outbox_unsent', but target toy counts no such work" in err
