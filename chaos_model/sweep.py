"""The opening sweep: every single fault once, with one update in flight, before the search.

Random search meets a particular gap between two I/O calls only by chance; yet "what if this
process dies exactly here while a message is in flight" is the first question to ask of each
one. So a run starts by asking it, deterministically: one short program per fault, each
followed by one delivery. First the faults of the outside world (Telegram delivering an update
twice, a dashboard's WebSocket dropping), a kill of each service and a few seconds of LLM
errors; then a probe (one delivery) that shows every fault point one update reaches, and each
point faulted in every mode that matters for it, the calls that change the world outside the
process first; hand-placed failpoints, if the target has any; the LLM broken for good last.
A failure found here is already minimal and reproducible; only when the sweep finds nothing
does the search begin.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from typing import Any

from chaos_model.adapter import TargetSpec
from chaos_model.config import ChaosConfig
from chaos_model.points import Point, PointCatalogue
from chaos_model.recorder import BudgetSpent, RunRecorder
from chaos_model.replay import replay
from chaos_model.stack import Stack

Steps = list[dict[str, Any]]

DELIVER: dict[str, Any] = {"rule": "deliver", "args": {"chat": 0, "text": "sweep"}}
OPERATIONS = frozenset({"deliver", "redeliver", "open_feed", "drop_feed", "read_back"})


#: the modes of the point sweep, in the order it runs them (each over every point it applies to)
MODES = (("after", "crash"), ("after", "raise"), ("before", "raise"))


def point_modes(point: Point) -> list[tuple[str, str]]:
    """The (when, action) pairs worth a program at ``point``.

    A crash matters only right after a call whose effect outlives it (a commit, a publish, an
    acknowledgement, a call to another service): after any other call it leaves the world as
    the previous such call did. An error before the call tries the code's error handling; an
    error after a call whose effect outlived it is the ambiguous outcome (committed, yet
    reported failed)."""
    return [mode for mode in MODES if point.durable or mode == ("before", "raise")]


def point_program(point: Point, when: str, action: str) -> Steps:
    args = {"service": point.service, "point": point.key, "when": when, "action": action}
    return [{"rule": "point", "args": {**args, "occurrence": 1}}, DELIVER]


def sweep_programs(
    config: ChaosConfig,
    target: TargetSpec,
    services: Collection[str] | None = None,
    unsupported: Collection[str] = (),
    catalogue: PointCatalogue | None = None,
) -> Iterator[Steps]:
    """The programs of the sweep, limited to the configured faults and to what the target has.

    With a ``catalogue`` (the stack has fault points), the probe comes after the kills: the
    point programs that follow it are made from what the catalogue learned by then, so run each
    program before asking for the next."""
    yield [DELIVER, {"rule": "redeliver", "args": {"update": 0}}]
    if target.has_feed:
        yield [
            {"rule": "open_feed", "args": {"name": "dashboard-a"}},
            {"rule": "drop_feed", "args": {"name": "dashboard-a"}},
        ]
    faults = set(config.faults) - set(unsupported)
    # Kills first: four programs that each stop a whole service, where a crash in the worker
    # costs a JetStream redelivery (the ack wait) before the work resumes.
    if "kill" in faults:
        for service in target.services_with("kill"):
            if services is not None and service not in services:
                continue  # a service the stack cannot control
            yield [{"rule": "kill", "args": {"service": service}}, DELIVER]
    if "llm" in faults:
        yield [{"rule": "llm_fault", "args": {"mode": "error", "seconds": 3.0}}, DELIVER]
    # The LLM broken for good before the points: a correct pipeline needs its whole retry budget
    # (about 15 s) to give up, and a bug that retries forever shows only here.
    if "llm" in faults:
        yield [{"rule": "break_llm", "args": {"mode": "error"}}, DELIVER]
    if catalogue is not None and "point" in faults:
        yield [DELIVER]  # the probe: its example teaches the catalogue every point
        points = catalogue.for_sweep(first=target.webhook.service)
        for mode in MODES:  # every crash first: a crash in a gap is the likeliest loss
            for point in points:
                if mode in point_modes(point):
                    yield point_program(point, *mode)
    if "failpoint" in faults and "crash" in config.failpoint_actions:
        for name in config.failpoints or target.failpoints:
            yield [{"rule": "failpoint", "args": {"name": name, "action": "crash"}}, DELIVER]


def second_order(program: Steps, point: Point) -> list[Steps]:
    """Programs that run ``program``'s fault again and crash at ``point``, a point that fault
    led the service to (an error path, a reconnect): before the call, and after it when its
    effect outlives a crash. The crash goes right before the program's last step."""
    modes = [("before", "crash")] + ([("after", "crash")] if point.durable else [])
    programs = []
    for when, action in modes:
        crash = point_program(point, when, action)[0]
        programs.append([*program[:-1], crash, program[-1]])
    return programs


def run_sweep(
    stack: Stack,
    config: ChaosConfig,
    recorder: RunRecorder,
    catalogue: PointCatalogue,
    on_program: Callable[[Steps, bool, float], None] | None = None,
) -> bool:
    """Run each program of the sweep once, as an example of the run; True once one fails.

    The failure is recorded (and saved) by ``recorder`` like any other example's; the probe
    teaches ``catalogue`` the points one delivery reaches. A program whose fault leads a
    service to points no program reached before (an error path, a retry) is followed, once the
    first-order programs are done, by programs that crash at each of them with the same fault
    applied: two faults, one opening a path and one breaking it, before the search.
    ``on_program(program, failed, seconds)`` is told of each program run.
    """
    unsupported = set(getattr(stack, "unsupported_faults", ()))
    has_points = getattr(stack, "points", None) is not None
    if not has_points:
        unsupported.add("point")
    programs = sweep_programs(config, stack.target, set(stack.services), unsupported, catalogue)
    # the follow-ups wait until every first-order program has run: a single crash in a gap is
    # the likelier loss, and a follow-up of a slow fault (the LLM broken for good) costs the
    # pipeline's whole retry budget
    pending: deque[Steps] = deque()
    known: set[tuple[str, str]] | None = None
    while True:
        program = next(programs, None)
        if program is None:
            program = pending.popleft() if pending else None
        if program is None:
            return False
        began = time.monotonic()
        try:
            outcome = replay(program, stack, config, recorder=recorder, catalogue=catalogue)
        except BudgetSpent:
            return False
        if on_program is not None:
            on_program(program, outcome.failed, time.monotonic() - began)
        if outcome.failed:
            return True
        if not has_points or "point" in unsupported:
            continue
        reached = {(point.service, point.key): point for point in catalogue}
        if known is not None and _opens_paths(program):
            for identity in sorted(set(reached) - known):
                pending.extend(second_order(program, reached[identity]))
        known = set(reached)  # the first program is the clean path: nothing is new after it


def _opens_paths(program: Steps) -> bool:
    """A program with one fault of its own (second-order programs are not followed up)."""
    faults = [step for step in program if step["rule"] not in OPERATIONS]
    return len(faults) == 1
