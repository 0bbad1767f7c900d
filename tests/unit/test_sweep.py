"""The opening sweep's programs: one per single fault, limited to what the run allows."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chaos_model import sweep
from chaos_model.adapter import load_adapter
from chaos_model.config import ChaosConfig
from chaos_model.points import Point, PointCatalogue, Reached
from chaos_model.replay import RULES, ReplayOutcome
from chaos_model.sweep import sweep_programs

REFERENCE = load_adapter(Path(__file__).parents[2] / "chaos-target.toml")
FAILPOINTS = REFERENCE.failpoints

OPERATIONS = ("deliver", "redeliver", "open_feed", "drop_feed")


def _faults(program: list[dict[str, object]]) -> list[str]:
    return [step["rule"] for step in program if step["rule"] not in OPERATIONS]  # type: ignore[misc]


def test_every_single_fault_once_each_followed_by_a_delivery() -> None:
    programs = list(sweep_programs(ChaosConfig(), REFERENCE))
    assert programs[0] == [
        {"rule": "deliver", "args": {"chat": 0, "text": "sweep"}},
        {"rule": "redeliver", "args": {"update": 0}},
    ]
    assert programs[1] == [
        {"rule": "open_feed", "args": {"name": "dashboard-a"}},
        {"rule": "drop_feed", "args": {"name": "dashboard-a"}},
    ]
    crashes = [p[0]["args"] for p in programs if p[0]["rule"] == "failpoint"]
    assert crashes == [{"name": name, "action": "crash"} for name in FAILPOINTS]
    kills = [p[0]["args"]["service"] for p in programs if p[0]["rule"] == "kill"]
    assert kills == ["postgres", "nats", "api", "worker"]
    llm = [p[0] for p in programs if p[0]["rule"] in ("llm_fault", "break_llm")]
    assert llm == [
        {"rule": "llm_fault", "args": {"mode": "error", "seconds": 3.0}},
        {"rule": "break_llm", "args": {"mode": "error"}},
    ]
    assert programs[-len(FAILPOINTS) - 1][0]["rule"] == "break_llm"
    for program in programs[2:]:
        assert len(_faults(program)) == 1
        assert program[-1]["rule"] == "deliver"
    assert {step["rule"] for program in programs for step in program} <= RULES


def test_only_the_configured_faults_and_failpoints() -> None:
    config = ChaosConfig(faults=("failpoint",), failpoints=(FAILPOINTS[2],))
    programs = list(sweep_programs(config, REFERENCE))
    assert [_faults(p) for p in programs] == [[], [], ["failpoint"]]
    assert programs[2][0]["args"]["name"] == FAILPOINTS[2]


def test_no_crash_points_when_crashes_are_not_allowed() -> None:
    config = ChaosConfig(faults=("failpoint", "pause"), failpoint_actions=("hang",))
    assert [_faults(p) for p in sweep_programs(config, REFERENCE)] == [[], []]


def test_a_target_without_a_feed_or_failpoints_gets_no_such_programs() -> None:
    plain = dataclasses.replace(REFERENCE, dashboard=None, failpoints=())
    rules = {step["rule"] for program in sweep_programs(ChaosConfig(), plain) for step in program}
    assert "open_feed" not in rules
    assert "failpoint" not in rules
    assert "kill" in rules


def test_the_point_programs_follow_the_probe_from_what_it_taught_the_catalogue() -> None:
    catalogue = PointCatalogue()
    config = ChaosConfig(faults=("point",))
    programs = sweep_programs(config, REFERENCE, catalogue=catalogue)
    assert next(programs)[1]["rule"] == "redeliver"
    assert next(programs)[0]["rule"] == "open_feed"
    assert next(programs) == [{"rule": "deliver", "args": {"chat": 0, "text": "sweep"}}]
    commit = Point("worker", "w: asyncpg.execute COMMIT", "asyncpg.execute", "COMMIT")
    read = Point("api", "r: asyncpg.fetch SELECT x", "asyncpg.fetch", "SELECT x")
    ack = Point("worker", "a: nats.ack", "nats.ack")
    reached = Reached()
    for at, point in ((1.0, read), (2.0, commit), (3.0, ack)):
        reached.add(point.service, point.key, at)
    catalogue.learn([read, commit, ack], reached)  # what the probe's example reached
    rest = list(programs)
    faulted = [(p[0]["args"]["point"], p[0]["args"]["when"], p[0]["args"]["action"]) for p in rest]
    # every crash first; the webhook's service first, then the points reached last first
    assert faulted == [
        (ack.key, "after", "crash"),
        (commit.key, "after", "crash"),
        (ack.key, "after", "raise"),
        (commit.key, "after", "raise"),
        (read.key, "before", "raise"),
        (ack.key, "before", "raise"),
        (commit.key, "before", "raise"),
    ]
    assert all(p[-1]["rule"] == "deliver" and p[0]["rule"] in RULES for p in rest)


def test_a_fault_that_opens_new_points_is_followed_by_a_crash_at_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clean path is what the first program reaches; a later program whose one fault
    reaches points beyond it (a retry path) is followed by crashes there, once every
    first-order program has run."""
    clean = Point("worker", "t > work: asyncpg.execute COMMIT", "asyncpg.execute", "COMMIT")
    retry_write = Point("worker", "t > _retry: asyncpg.execute COMMIT", "asyncpg.execute", "COMMIT")
    retry_read = Point("worker", "t > _retry: asyncpg.fetch SELECT a", "asyncpg.fetch", "SELECT a")
    catalogue = PointCatalogue()
    ran: list[list[dict[str, Any]]] = []

    def replay(program: list[dict[str, Any]], *args: Any, **kwargs: Any) -> ReplayOutcome:
        ran.append(program)
        learned = [clean]
        if any(step["rule"] == "llm_fault" for step in program):
            learned += [retry_write, retry_read]
        catalogue.learn(learned)
        return ReplayOutcome(False, "held")

    monkeypatch.setattr(sweep, "replay", replay)
    stack = SimpleNamespace(target=REFERENCE, services={"worker": None}, points=object())
    config = ChaosConfig(faults=("llm", "point"))
    assert not sweep.run_sweep(stack, config, None, catalogue)  # type: ignore[arg-type]
    follow_up = [len(p) == 3 and p[1]["rule"] == "point" for p in ran]
    first_order = ran[: follow_up.index(True)]
    follow_ups = ran[len(first_order) :]
    assert all(follow_up[len(first_order) :]), "the follow-ups come last"
    assert [p[0]["rule"] for p in first_order][-1] != "break_llm", "the points ran before them"
    followed = [(p[1]["args"]["point"], p[1]["args"]["when"]) for p in follow_ups]
    assert followed == [
        (retry_write.key, "before"),
        (retry_write.key, "after"),
        (retry_read.key, "before"),
    ]
    assert all(p[0]["rule"] == "llm_fault" and p[-1]["rule"] == "deliver" for p in follow_ups)
    assert not any(len([s for s in p if s["rule"] == "point"]) > 1 for p in ran)
