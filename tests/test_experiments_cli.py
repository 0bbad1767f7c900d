"""``chaos-model experiment`` and ``replay --save-as`` usage errors: exit 2 with one line, no
traceback, before any stack is started; experiments as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos_model.cli import EXIT_USAGE, main
from chaos_model.experiments import BUILT_IN, BadExperiment, Experiment, find, from_failure, save

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
