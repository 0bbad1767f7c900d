"""Shrinking on the real stack, after Hypothesis's own shrinking.

Hypothesis shrinks by re-running candidates once; on a real stack a timing race can make a
candidate pass or fail by chance, so its result is only as reproducible as the race. Here every
candidate is re-run (at most ``runs`` times) and kept only when it fails in a majority of runs:

1. drop the steps that cannot matter to the failing invariants (dashboard reads, forged and
   malformed requests, feed operations) all at once;
2. replace each timed kill or pause of a service that has fault points by the point fault at
   the call it interrupted (a crash after the service's last call before the kill, a hang at
   it): a race becomes a step that happens the same way every time;
3. delete steps: halves first, then smaller and smaller chunks, down to single steps (ddmin);
4. move each fault step as early as it will go past operations (a fault armed before the work it
   hits turns a race into a deterministic step), and delete again if that helped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from chaos_model.config import ChaosConfig
from chaos_model.errors import ChaosModelError, StackError, StackTimeout
from chaos_model.replay import ReplayOutcome, replay
from chaos_model.stack import Stack

Steps = list[dict[str, Any]]

FAULT_RULES = frozenset(
    {
        "pause",
        "kill",
        "stop",
        "terminate_connections",
        "llm_fault",
        "break_llm",
        "failpoint",
        "point",
        "partition",
        "network",
        "latency_ramp",
        "refuse_connections",
    }
)
NEMESIS_RULES = FAULT_RULES | {"heal_one", "heal_all", "choose_faults"}
#: operations each invariant but these never looks at: noise unless one of them failed
NOISE = {
    "read_back": (),
    "forged": ("forged_update_rejected",),
    "malformed": ("malformed_body_rejected",),
    "open_feed": ("feeds_saw_every_stage",),
    "drop_feed": ("feeds_saw_every_stage",),
}
#: a timed fault of a service -> the point fault at the call it interrupted
TIMED = {"kill": "crash", "stop": "crash", "pause": "hang"}


class ShrinkStopped(ChaosModelError):
    """The stack stopped answering while shrinking: ``steps`` is the smallest failing program
    found before it did."""

    def __init__(self, steps: Steps, reason: StackTimeout) -> None:
        super().__init__(f"shrinking stopped early ({reason})")
        self.steps = steps


def minimise(
    steps: Steps,
    stack: Stack,
    runs: int = 3,
    budget: float = 120.0,
    invariants: Collection[str] = (),
) -> Steps:
    """The smallest program found within ``budget`` seconds (the input if nothing smaller);
    ``invariants`` are the ones the input violates (what the noise is judged against).

    Raises ShrinkStopped, carrying the smallest program so far, when a reset of the stack
    overruns: the next candidates would only wait on the same blocked reset."""
    deadline = time.monotonic() + budget
    phases: list[Callable[[Steps], Steps]] = [
        lambda current: _drop_noise(current, stack, runs, set(invariants)),
        lambda current: _points_for_timed_faults(current, stack, runs, deadline),
        lambda current: _delete_chunks(current, stack, runs, deadline),
        lambda current: _move_faults_earlier(current, stack, runs, deadline),
    ]
    best = list(steps)
    for phase in phases:
        try:
            best = phase(best)
        except StackTimeout as stopped:
            raise ShrinkStopped(best, stopped) from None
    return best


def _move_faults_earlier(steps: Steps, stack: Stack, runs: int, deadline: float) -> Steps:
    moved = steps
    for index in range(len(moved)):
        if time.monotonic() > deadline:
            return moved
        moved = _move_fault_earlier(moved, index, stack, runs)
    return moved if moved == steps else _delete_chunks(moved, stack, runs, deadline)


def _drop_noise(steps: Steps, stack: Stack, runs: int, invariants: set[str]) -> Steps:
    noise = {rule for rule, needed_by in NOISE.items() if not invariants & set(needed_by)}
    candidate: Steps | None = steps
    for index in reversed(range(len(steps))):
        if candidate is not None and steps[index]["rule"] in noise:
            candidate = without(candidate, index)
    if candidate is None or candidate == steps or not candidate:
        return steps
    return candidate if fails_mostly(candidate, stack, runs) else steps


def _points_for_timed_faults(steps: Steps, stack: Stack, runs: int, deadline: float) -> Steps:
    """Each kill, stop or pause of a service with fault points, replaced by the point fault at
    the last call that service made before the fault (taken from one failing replay)."""
    if time.monotonic() >= deadline or not any(step["rule"] in TIMED for step in steps):
        return steps
    outcome = _replay_once(steps, stack)
    if not outcome.failed or not outcome.calls:
        return steps
    timed = [(at, fault) for at, fault in outcome.faults if fault.get("kind") in TIMED]
    current = steps
    fault_number = 0
    for index, step in enumerate(steps):
        if step["rule"] not in TIMED:
            continue
        if fault_number >= len(timed):
            break
        at, fault = timed[fault_number]
        fault_number += 1
        service = str(fault.get("service", ""))
        last = [call for call in outcome.calls if call[1] == service and call[0] <= at]
        if not last:
            continue
        point = max(last)[2]
        action = TIMED[step["rule"]]
        args = {"service": service, "point": point, "when": "after", "action": action}
        candidate = [*current[:index], {"rule": "point", "args": {**args, "occurrence": 1}}]
        candidate += current[index + 1 :]
        if fails_mostly(candidate, stack, runs):
            current = candidate
    return current


def _delete_chunks(steps: Steps, stack: Stack, runs: int, deadline: float) -> Steps:
    """ddmin: try deleting halves, then quarters, ... down to single steps."""
    current = steps
    chunks = 2
    while len(current) > 1 and time.monotonic() < deadline:
        size = max(1, len(current) // chunks)
        for start in range(0, len(current), size):
            if time.monotonic() >= deadline:
                return current
            candidate = _without_range(current, start, start + size)
            if candidate and fails_mostly(candidate, stack, runs):
                current = candidate
                chunks = max(chunks - 1, 2)
                break
        else:
            if size == 1:
                return current
            chunks = min(len(current), chunks * 2)
    return current


def _move_fault_earlier(steps: Steps, index: int, stack: Stack, runs: int) -> Steps:
    if steps[index]["rule"] not in FAULT_RULES:
        return steps
    target = index
    while target > 0 and steps[target - 1]["rule"] not in NEMESIS_RULES:
        target -= 1
    if target == index:
        return steps
    # Only fault steps move, so deliveries keep their order and redelivery indexes stay valid.
    candidate = [*steps[:target], steps[index], *steps[target:index], *steps[index + 1 :]]
    return candidate if fails_mostly(candidate, stack, runs) else steps


def _without_range(steps: Steps, start: int, stop: int) -> Steps | None:
    current: Steps | None = steps
    for index in reversed(range(start, min(stop, len(steps)))):
        if current is None:
            return None
        current = without(current, index)
    return current


def without(steps: Steps, index: int) -> Steps | None:
    """``steps`` minus step ``index``, with redelivery references renumbered; None if a
    redelivery would lose the update it refers to."""
    removed = steps[index]
    delivery = sum(1 for step in steps[:index] if step["rule"] == "deliver")
    result: Steps = []
    for position, step in enumerate(steps):
        if position == index:
            continue
        if step["rule"] == "redeliver" and removed["rule"] == "deliver" and position > index:
            referenced = step["args"]["update"]
            if referenced == delivery:
                return None
            if referenced > delivery:
                step = {"rule": "redeliver", "args": {"update": referenced - 1}}
        result.append(step)
    return result


def fails_mostly(steps: Steps, stack: Stack, runs: int) -> bool:
    """Replay up to ``runs`` times; True once failures are a majority of ``runs``."""
    needed = runs // 2 + 1
    failures = passes = 0
    while failures < needed and passes <= runs - needed:
        if _replay_once(steps, stack).failed:
            failures += 1
        else:
            passes += 1
    return failures >= needed


def _replay_once(steps: Steps, stack: Stack) -> ReplayOutcome:
    try:
        return replay(steps, stack, ChaosConfig(progress=False))
    except StackTimeout:
        raise  # a blocked reset stays blocked: healing does not release another's locks
    except StackError:
        stack.heal()
        return ReplayOutcome(False, "the stack failed")
