"""The chaos model end to end on real stacks: it finds a known bug, shrinks it, and the shrunk
program passes on the correct pipeline; a short run on the correct pipeline finds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos_model.config import ChaosConfig
from chaos_model.replay import load_steps, replay
from chaos_model.runner import RunReport, run
from chaos_model.stack import LocalStack

pytestmark = pytest.mark.slow

FOCUSED_FAILPOINTS = (
    "worker.score.after_llm_before_commit",
    "worker.extract.after_llm_before_commit",
)


@pytest.fixture(scope="module")
def buggy_stack() -> Iterator[LocalStack]:
    with LocalStack(bugs=("ack_before_work",)) as stack:
        yield stack


@pytest.fixture(scope="module")
def ack_before_work_report(
    buggy_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> RunReport:
    config = ChaosConfig(
        examples=150,
        steps=5,
        seed=20261128,
        max_time=240,
        faults=("failpoint",),
        failpoints=FOCUSED_FAILPOINTS,
        failpoint_actions=("crash",),
        max_concurrent_faults=1,
        # this test is about the search and its shrinking, not the opening sweep
        sweep=False,
        database=False,
        progress=False,
        failures_dir=tmp_path_factory.mktemp("failures"),
    )
    return run(buggy_stack, config, log_dirs=buggy_stack.log_paths())


def test_finds_and_shrinks_ack_before_work(ack_before_work_report: RunReport) -> None:
    report = ack_before_work_report
    assert report.failure is not None, "the run found no violation with ack_before_work on"
    assert "accepted_updates_complete" in report.failure.invariants, report.hypothesis_error
    assert len(report.failure.steps) <= 4, report.program
    assert report.reproduced >= 2, f"reproduced {report.reproduced}/3:\n{report.program}"
    assert report.failure.directory is not None
    saved = report.failure.directory
    for name in ("steps.json", "history.json", "program.py", "test_replay.py"):
        assert (saved / name).is_file(), name
    assert (saved / "logs" / "worker.log").is_file()
    assert load_steps(saved) == report.failure.steps


def test_shrunk_program_passes_on_the_correct_pipeline(
    ack_before_work_report: RunReport, stack: LocalStack
) -> None:
    assert ack_before_work_report.failure is not None
    outcome = replay(ack_before_work_report.failure.steps, stack)
    assert not outcome.failed, outcome.message


def test_short_run_on_the_correct_pipeline_finds_nothing(stack: LocalStack, tmp_path: Path) -> None:
    config = ChaosConfig(
        examples=8,
        steps=10,
        seed=7,
        max_time=120,
        database=False,
        progress=False,
        failures_dir=tmp_path,
    )
    report = run(stack, config, log_dirs=stack.log_paths())
    assert report.failure is None, report.hypothesis_error or report.failure
    assert report.examples >= 1
    assert report.steps > 0
