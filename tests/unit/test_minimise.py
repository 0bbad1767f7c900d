"""Shrinking on the real stack, with the stack replaced by a rule saying which programs fail:
noise goes first, a timed kill becomes the point fault at the call it interrupted, then ddmin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chaos_model import minimise as module
from chaos_model.errors import StackTimeout
from chaos_model.minimise import ShrinkStopped, minimise
from chaos_model.replay import ReplayOutcome

Steps = list[dict[str, Any]]


def step(rule: str, **args: Any) -> dict[str, Any]:
    return {"rule": rule, "args": args}


def stack_where(
    fails: Callable[[Steps], bool],
    monkeypatch: pytest.MonkeyPatch,
    faults: tuple[tuple[float, dict[str, Any]], ...] = (),
    calls: tuple[tuple[float, str, str], ...] = (),
) -> list[Steps]:
    """Replace the replay by ``fails``; return the list of programs replayed."""
    replayed: list[Steps] = []

    def replay(steps: Steps, stack: Any, config: Any = None, **kwargs: Any) -> ReplayOutcome:
        replayed.append(steps)
        failed = fails(steps)
        return ReplayOutcome(failed, "x", faults if failed else (), calls if failed else ())

    monkeypatch.setattr(module, "replay", replay)
    return replayed


def rules(steps: Steps) -> list[str]:
    return [s["rule"] for s in steps]


def test_noise_goes_first_and_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    program = [
        step("open_feed", name="a"),
        step("deliver", chat=0, text="x"),
        step("read_back"),
        step("forged", text="y"),
        step("kill", service="postgres"),
        step("drop_feed", name="a"),
    ]
    replayed = stack_where(lambda p: "kill" in rules(p), monkeypatch)
    shrunk = minimise(program, object(), runs=1, budget=60)
    assert rules(shrunk) == ["kill"]
    assert rules(replayed[0]) == ["deliver", "kill"], "the first candidate drops all the noise"


def test_feed_steps_stay_when_the_feed_invariant_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    program = [step("open_feed", name="a"), step("read_back"), step("drop_feed", name="a")]
    feeds = {"open_feed", "drop_feed"}
    stack_where(lambda p: feeds <= set(rules(p)), monkeypatch)
    shrunk = minimise(program, object(), runs=1, budget=60, invariants=["feeds_saw_every_stage"])
    assert rules(shrunk) == ["open_feed", "drop_feed"]


def test_a_timed_kill_becomes_the_crash_at_the_call_it_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = [step("deliver", chat=0, text="x"), step("kill", service="worker")]
    calls = ((1.0, "worker", "w: a"), (2.0, "api", "a: b"), (2.5, "worker", "w: b"))
    faults = ((3.0, {"kind": "kill", "service": "worker"}),)

    def fails(p: Steps) -> bool:
        crash = [s for s in p if s["rule"] == "point"]
        return "kill" in rules(p) or (bool(crash) and crash[0]["args"]["point"] == "w: b")

    stack_where(fails, monkeypatch, faults, calls)
    shrunk = minimise(program, object(), runs=3, budget=60)
    assert shrunk[-1] == step(
        "point", service="worker", point="w: b", when="after", action="crash", occurrence=1
    )


def test_a_kill_that_does_not_reproduce_as_a_point_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    program = [step("deliver", chat=0, text="x"), step("kill", service="worker")]
    calls = ((1.0, "worker", "w: a"),)
    faults = ((3.0, {"kind": "kill", "service": "worker"}),)
    stack_where(lambda p: "kill" in rules(p), monkeypatch, faults, calls)
    assert rules(minimise(program, object(), runs=3, budget=60)) == ["kill"]


def test_a_candidate_is_kept_only_when_it_fails_in_most_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = iter([True, False, False] * 10)
    program = [step("deliver", chat=0, text="x"), step("kill", service="nats")]
    stack_where(lambda p: len(p) == 2 or next(outcomes), monkeypatch)
    # nothing is deleted (each shorter candidate failed 1 run in 3); the fault moves first
    assert minimise(program, object(), runs=3, budget=60) == [program[1], program[0]]


def test_a_blocked_reset_ends_shrinking_with_the_smallest_program_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = [
        step("read_back"),
        step("deliver", chat=0, text="x"),
        step("kill", service="postgres"),
        step("deliver", chat=0, text="y"),
    ]
    replayed: list[Steps] = []

    def replay(steps: Steps, stack: Any, config: Any = None, **kwargs: Any) -> ReplayOutcome:
        replayed.append(steps)
        if len(replayed) > 1:
            raise StackTimeout("resetting the database", 5, "the adapter's reset SQL")
        return ReplayOutcome(True, "x")

    monkeypatch.setattr(module, "replay", replay)
    with pytest.raises(ShrinkStopped) as stopped:
        minimise(program, object(), runs=1, budget=60)
    assert stopped.value.steps == program[1:], "the noise dropped before the reset blocked"
    assert "resetting the database did not finish within 5s" in str(stopped.value)
    assert len(replayed) == 2, "no candidate is tried after the reset blocked"
