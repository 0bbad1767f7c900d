"""A stack that stops answering while a finding is shrunk or replayed: the finding is kept as
far as it got, and the summary says why it stopped (no traceback, no lost shrink)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from chaos_model import runner
from chaos_model.config import ChaosConfig
from chaos_model.errors import StackTimeout
from chaos_model.minimise import ShrinkStopped
from chaos_model.recorder import FailureRecord, RunRecorder, RunReport
from chaos_model.replay import ReplayOutcome
from chaos_model.report import print_report

BLOCKED = StackTimeout("resetting the database", 5, "the adapter's reset SQL `TRUNCATE t`")
PROGRAM = [
    {"rule": "deliver", "args": {"chat": 0, "text": "x"}},
    {"rule": "kill", "args": {"service": "worker"}},
    {"rule": "read_back", "args": {}},
]


def finding() -> tuple[RunReport, FailureRecord]:
    failure = FailureRecord(
        steps=list(PROGRAM), violations=["lost"], invariants=["i"], kinds=["liveness"]
    )
    report = RunReport(
        examples=1,
        steps=3,
        steps_per_second=1.0,
        faults=1,
        faults_by_kind={},
        elapsed=1.0,
        reset_p50=0.0,
        violations=1,
        failure=failure,
        first_failure_seconds=0.5,
    )
    return report, failure


def test_a_shrink_stopped_by_the_stack_keeps_its_progress_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def minimise(steps: Any, *args: Any, **kwargs: Any) -> Any:
        raise ShrinkStopped(steps[:2], BLOCKED)

    def replay(*args: Any, **kwargs: Any) -> ReplayOutcome:
        raise BLOCKED

    monkeypatch.setattr(runner, "minimise", minimise)
    monkeypatch.setattr(runner, "replay", replay)
    report, failure = finding()
    runner._shrink_and_replay(report, failure, object(), ChaosConfig(replays=3), RunRecorder())  # type: ignore[arg-type]
    assert failure.steps == PROGRAM[:2]
    assert report.program is not None and "kill" in report.program
    assert report.replays == 0
    assert report.notes == [
        f"shrinking stopped early ({BLOCKED})",
        f"reproduction stopped after 0 replays ({BLOCKED})",
    ]
    out = io.StringIO()
    print_report(report, out)
    assert "minimal program (2 steps)" in out.getvalue()
    assert "shrinking stopped early (resetting the database did not finish" in out.getvalue()


def test_replays_count_what_reproduced(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = iter([True, False, True])
    monkeypatch.setattr(runner, "minimise", lambda steps, *a, **k: steps)
    monkeypatch.setattr(runner, "replay", lambda *a, **k: ReplayOutcome(next(outcomes), "x"))
    report, failure = finding()
    runner._shrink_and_replay(report, failure, object(), ChaosConfig(replays=3), RunRecorder())  # type: ignore[arg-type]
    assert (report.reproduced, report.replays, report.notes) == (2, 3, [])
