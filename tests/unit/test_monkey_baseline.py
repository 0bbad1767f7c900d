"""The chaos-monkey baseline's pure parts (bench/monkey.py, bench/compare.py): its menu of faults,
its seeded schedule (same seed, same schedule), its round's timeline, and the comparison table."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos_model.adapter import load_adapter

# The benchmarks are scripts, not a package: import them as bench/detect.py imports _common.
sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from compare import MODEL_FAULTS, BugRow, assess, markdown, rows, text_table
from monkey import (
    MonkeyConfig,
    MonkeyResult,
    PlannedFault,
    fault_menu,
    plan_faults,
    timeline,
)

REFERENCE = load_adapter(Path(__file__).parents[2] / "chaos-target.toml")
SERVICES = ("postgres", "nats", "llm", "api", "worker")
MENU = fault_menu(REFERENCE, SERVICES, REFERENCE.links())


def test_the_menu_holds_what_the_adapter_allows_on_each_service_and_link() -> None:
    assert sorted(MENU) == ["kill", "network", "partition", "pause", "stop"]
    assert [c.key for c in MENU["kill"]] == ["postgres", "nats", "api", "worker"]
    assert [c.key for c in MENU["pause"]] == ["postgres", "nats", "worker"]
    assert {c.key for c in MENU["partition"]} == {f"link:{name}" for name in REFERENCE.links()}
    assert len(MENU["network"]) > len(MENU["partition"])  # each link with each toxic


def test_the_menu_leaves_out_what_the_stack_cannot_do() -> None:
    menu = fault_menu(REFERENCE, ("worker",), (), unsupported=("stop",))
    assert sorted(menu) == ["kill", "pause"]
    assert [c.key for c in menu["kill"]] == ["worker"]


def _schedule(seed: int, rounds: int = 3) -> list[tuple[PlannedFault, ...]]:
    rng = random.Random(seed)
    return [plan_faults(rng, MENU, MonkeyConfig()) for _ in range(rounds)]


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert _schedule(7) == _schedule(7)
    assert _schedule(7) != _schedule(8)


def test_a_schedule_keeps_to_the_rate_the_round_and_the_limits() -> None:
    config = MonkeyConfig()
    for faults in _schedule(3, rounds=20):
        assert len(faults) >= 2, "a fault every 1 to 5 s: a 20 s round has several"
        for fault in faults:
            assert 0 < fault.at < config.round_seconds
            low, high = config.fault_seconds
            assert low <= fault.seconds <= high
            held = [f for f in faults if f.at <= fault.at < f.at + f.seconds]
            assert len(held) <= config.max_concurrent_faults
            assert len({f.candidate.key for f in held}) == len(held), "one fault per target"
    kinds = {f.candidate.fault.kind for faults in _schedule(3, rounds=20) for f in faults}
    assert kinds == {"kill", "network", "partition", "pause", "stop"}


def test_a_menu_with_nothing_to_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="no fault"):
        plan_faults(random.Random(1), {}, MonkeyConfig())


def test_a_round_delivers_steadily_and_heals_each_fault_after_applying_it() -> None:
    config = MonkeyConfig(round_seconds=10, updates_per_second=4, safety_every=1)
    faults = plan_faults(random.Random(5), MENU, config)
    events = timeline(faults, config)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert sum(e.action == "deliver" for e in events) == 40
    assert sum(e.action == "check" for e in events) == 10
    for fault in faults:
        applied = next(i for i, e in enumerate(events) if e.action == "apply" and e.fault == fault)
        healed = next(i for i, e in enumerate(events) if e.action == "heal" and e.fault == fault)
        assert applied < healed


def test_a_config_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="fault_interval"):
        MonkeyConfig(fault_interval=(3.0, 1.0))
    with pytest.raises(ValueError, match="round_seconds"):
        MonkeyConfig(round_seconds=0)


# ---------------------------------------------------------------------- the comparison table
def _model(found: bool, seconds: float = 0.0, length: int = 2) -> dict[str, Any]:
    return {
        "found": found,
        "seconds_to_first_violation": seconds if found else None,
        "shrunk_length": length if found else None,
        "invariants": ["accepted_updates_complete"] if found else [],
        "error": None,
    }


def _monkey(seed: int, found: bool, seconds: float = 0.0, log: int = 90) -> dict[str, Any]:
    result = MonkeyResult(seed=seed, budget=60, found=found)
    if found:
        result.seconds_to_first_violation, result.log_length = seconds, log
        result.invariants = ["accepted_updates_complete"]
    return result.to_json()


def _run(bug: str, seed: int, model: dict[str, Any], monkey: dict[str, Any]) -> dict[str, Any]:
    return {"bug": bug, "seed": seed, "chaos_model": model, "monkey": monkey}


RUNS: list[dict[str, Any]] = [
    _run("core_nats", 1, _model(True, 1.0), _monkey(1, True, 21)),
    _run("core_nats", 2, _model(True, 3.0), _monkey(2, True, 45)),
    _run("core_nats", 3, _model(True, 2.0), _monkey(3, False)),
    _run("ack_failures", 1, _model(True, 6.0), _monkey(1, False)),
    _run("ack_failures", 2, _model(False), _monkey(2, False)),
    _run("ack_failures", 3, _model(True, 8.0), _monkey(3, False)),
]


def test_each_bug_gets_each_tools_detections_medians_and_lengths() -> None:
    core_nats, ack_failures = rows(RUNS)
    assert core_nats == BugRow(
        bug="core_nats",
        seeds=3,
        model_found=3,
        model_median=2.0,
        program_length=2,
        monkey_found=2,
        monkey_median=33.0,
        log_length=90,
        monkey_missed=(3,),
        model_missed=(),
    )
    assert core_nats.ratio == pytest.approx(16.5)
    assert ack_failures.monkey_found == 0 and ack_failures.ratio is None
    assert ack_failures.model_missed == (2,)


def test_the_table_lists_the_ratio_and_the_monkeys_misses() -> None:
    text = text_table(rows(RUNS))
    assert "16.5x" in text
    assert "the monkey's misses: core_nats (seeds 3), ack_failures (every seed)" in text


def test_the_ratio_target_holds_only_on_the_bugs_both_find() -> None:
    correct = _monkey(1, False)
    (ratio, clean) = assess(rows(RUNS), correct)
    assert ratio[1] and ratio[2] == "core_nats 16.5x"
    assert clean[1]
    slow = [{**run, "monkey": _monkey(run["seed"], True, 4.0)} for run in RUNS[:2]]
    (ratio, _) = assess(rows(slow), correct)
    assert not ratio[1] and ratio[2] == "core_nats 2.0x"


def test_the_markdown_has_one_row_per_bug_and_the_misses() -> None:
    text = markdown({"runs": RUNS, "correct": {**_monkey(1, False), "rounds": 3, "faults": 18}})
    assert "| `core_nats` | 3/3 | 2.0 | 2 | 2/3 | 33.0 | 90 | 16.5x |" in text
    assert "| `ack_failures` | 2/3 | 7.0 | 2 | 0/3 | - | - | - |" in text
    assert "The monkey's misses: core_nats (seeds 3), ack_failures (every seed)." in text
    assert "3 rounds, 18 faults, no violation" in text


def test_chaos_model_runs_without_the_hand_placed_failpoints() -> None:
    assert "failpoint" not in MODEL_FAULTS
    assert {"kill", "pause", "partition", "network", "point"} <= set(MODEL_FAULTS)
