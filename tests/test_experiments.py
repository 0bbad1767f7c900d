"""Named experiments on real stacks: every built-in one behaves as expected on the correct
pipeline, and a failure saved from the bug zoo becomes an experiment that fails on the buggy
pipeline (and passes on the correct one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos_model.cli import main
from chaos_model.config import ChaosConfig
from chaos_model.experiments import Experiment, catalogue, find, render_text, run_experiment
from chaos_model.lease import StackOwner
from chaos_model.replay import replay
from chaos_model.stack import LocalStack

pytestmark = pytest.mark.slow

#: the reference pipeline's built-in experiments, as its adapter's catalogue gives them
BUILT_IN = catalogue()

#: the bug zoo's known-minimal program for no_update_dedup (docs/bugs.md)
NO_UPDATE_DEDUP_PROGRAM = [
    {"rule": "choose_faults", "args": {"kinds": ["kill"]}},
    {"rule": "deliver", "args": {"chat": 0, "text": "x"}},
    {"rule": "redeliver", "args": {"update": 0}},
]


@pytest.mark.parametrize("experiment", BUILT_IN, ids=lambda experiment: experiment.name)
def test_built_in_experiment_behaves_as_expected(
    experiment: Experiment, stack: LocalStack, tmp_path: Path
) -> None:
    result = run_experiment(experiment, stack, failures_dir=tmp_path)
    assert result.as_expected, result.actual()
    assert not result.skipped, f"steps not applicable: {result.skipped}"
    assert result.stages, "no final snapshot of the messages"
    assert set(result.stages) == {"extracted"}, result.stages
    if any(step["rule"] in ("kill", "stop", "partition", "network") for step in experiment.steps):
        assert result.faults and all(f["outcome"] == "applied" for f in result.faults)


def test_an_experiment_measures_latency_pending_work_and_recovery(
    stack: LocalStack, tmp_path: Path
) -> None:
    experiment = find("nats-broker-crash-during-message-processing")
    result = run_experiment(experiment, stack, failures_dir=tmp_path)
    assert result.as_expected, result.actual()
    measured = result.measured
    assert measured is not None
    assert measured.latency is not None and 0 < measured.latency.p50 <= measured.latency.max
    assert measured.answers["2xx"] >= 4, measured.answers
    outbox = [sample.pending.get("outbox_unsent", 0) for sample in measured.queue_depth]
    assert max(outbox) >= 2, f"the outbox filled while NATS was down: {measured.queue_depth}"
    assert measured.queue_depth[-1].pending == {}, "quiescent at the end"
    assert measured.healed_at is not None and measured.quiescent_at is not None
    assert measured.recovery_seconds is not None and measured.recovery_seconds >= 0
    text = render_text(experiment, result)
    assert "from the final heal to quiescence" in text.split("\nmeasured\n", 1)[1]


@pytest.fixture(scope="module")
def dedup_stack_state(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalStack, Path]]:
    """A stack with no_update_dedup on, owned here, that the command line attaches to."""
    state = tmp_path_factory.mktemp("owner") / "stack.json"
    with LocalStack(bugs=("no_update_dedup",)) as buggy, StackOwner(buggy, state_file=state):
        yield buggy, state


def test_saved_bug_zoo_failure_becomes_a_failing_experiment(
    stack: LocalStack,
    dedup_stack_state: tuple[LocalStack, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    buggy, state = dedup_stack_state
    config = ChaosConfig(progress=False, failures_dir=tmp_path / "chaos-failures")
    assert replay(NO_UPDATE_DEDUP_PROGRAM, buggy, config).failed
    [failure] = sorted((tmp_path / "chaos-failures").glob("*-one_message_per_update/*"))

    experiments = tmp_path / "saved"
    argv = ["replay", str(failure), "--save-as", "dedup-regression", "--attach", str(state)]
    assert main([*argv, "--experiments-dir", str(experiments)]) == 1
    saved = json.loads((experiments / "dedup-regression.json").read_text())
    assert saved["origin"] == str(failure / "steps.json")
    assert any("one_message_per_update" in line for line in saved["found"])
    capsys.readouterr()

    assert main(["experiment", "list", "--experiments-dir", str(experiments)]) == 0
    assert "dedup-regression  [saved from" in capsys.readouterr().out

    results = tmp_path / "results"
    run = ["experiment", "run", "dedup-regression", "--attach", str(state)]
    exit_code = main([*run, "--experiments-dir", str(experiments), "--results-dir", str(results)])
    assert exit_code == 1, capsys.readouterr().out
    written = json.loads((results / "dedup-regression.json").read_text())["result"]
    assert not written["as_expected"]
    assert any("one_message_per_update" in line for line in written["violations"])
    text = (results / "dedup-regression.txt").read_text()
    assert "DIFFERS from the expected behaviour" in text

    on_correct = run_experiment(find("dedup-regression", experiments), stack, failures_dir=tmp_path)
    assert on_correct.as_expected, on_correct.actual()
