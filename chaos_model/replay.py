"""Replaying a saved chaos program outside Hypothesis, on a fresh (reset) stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis.stateful import INITIALIZE_RULE_MARKER, RULE_MARKER

from chaos_model.config import ChaosConfig
from chaos_model.errors import ChaosModelError
from chaos_model.guard import ensure_injectable
from chaos_model.machine import (
    TARGET_RULES,
    ChaosMachine,
    LivenessViolation,
    SafetyViolation,
    bind,
)
from chaos_model.points import PointCatalogue
from chaos_model.recorder import RunRecorder
from chaos_model.stack import Stack

#: the steps a program may have: the machine's rules, the target's, and ``point`` (a point fault
#: as the program names it: a point_fault rule records the point it drew)
RULES = (
    frozenset(
        name
        for name, value in vars(ChaosMachine).items()
        if hasattr(value, RULE_MARKER) or hasattr(value, INITIALIZE_RULE_MARKER)
    )
    | frozenset(TARGET_RULES)
    | {"point"}
) - {"point_fault"}


class BadProgram(ChaosModelError):
    """A replay file that is not a chaos-model program."""


@dataclass(frozen=True)
class ReplayOutcome:
    failed: bool
    message: str
    #: the faults the example applied: (``time.monotonic()`` when applied, the fault's JSON)
    faults: tuple[tuple[float, dict[str, Any]], ...] = ()
    #: the calls its services made at fault points: (``time.monotonic()``, service, point)
    calls: tuple[tuple[float, str, str], ...] = ()


def saved_target(path: Path) -> Path | None:
    """The adapter file a saved program failed on, if it recorded one; a recorded one that is
    gone is an error (replaying on another target would mean nothing)."""
    if path.is_dir():
        path = path / "steps.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    target = data.get("target") if isinstance(data, dict) else None
    if not isinstance(target, str) or not target:
        return None
    if not Path(target).exists():
        raise BadProgram(f"{path}: it failed on {target}, which is gone; pass --target FILE")
    return Path(target)


def load_steps(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "steps.json"
    try:
        data = json.loads(path.read_text())
        steps = data["steps"] if isinstance(data, dict) else data
    except FileNotFoundError as error:
        raise BadProgram(f"{path}: no such file") from error
    except OSError as error:
        raise BadProgram(f"{path}: cannot read it ({error.strerror})") from error
    except (ValueError, KeyError, TypeError) as error:
        raise BadProgram(f"{path}: not a chaos-model program (steps.json)") from error
    if not isinstance(steps, list) or not all(
        isinstance(step, dict) and isinstance(step.get("rule"), str) for step in steps
    ):
        raise BadProgram(f"{path}: expected a list of {{'rule': ..., 'args': ...}} steps")
    return steps


def replay(
    steps: list[dict[str, Any]],
    stack: Stack,
    config: ChaosConfig | None = None,
    *,
    recorder: RunRecorder | None = None,
    catalogue: PointCatalogue | None = None,
) -> ReplayOutcome:
    """Run ``steps`` once on ``stack``; say whether an invariant failed.

    Like every example, it starts from a reset stack, and a failing run restarts the
    application processes afterwards (see ``ChaosMachine.teardown``). With ``recorder`` the
    replay counts as an example of that run (and a failure is saved with the run's).
    """
    ensure_injectable(stack)
    config = config or ChaosConfig(progress=False)
    recorder = recorder or RunRecorder(progress=False, failures_dir=config.failures_dir)
    machine_class = bind(stack, config, recorder, catalogue)
    machine = machine_class()
    failed, message = False, "every invariant held"
    try:
        try:
            for step in steps:
                _run_step(machine, step)
                machine.safety()
        finally:
            machine.teardown()
    except (SafetyViolation, LivenessViolation) as violation:
        failed, message = True, str(violation)
    started = machine.history.started
    faults = tuple(
        (started + op.time, op.value)
        for op in machine.history.of("fault", "invoke")
        if isinstance(op.value, dict)
    )
    return ReplayOutcome(failed, message, faults, tuple(machine.coverage.calls))


def _run_step(machine: ChaosMachine, step: dict[str, Any]) -> None:
    name = step["rule"]
    args = dict(step.get("args", {}))
    method = getattr(machine, name, None)
    if name not in RULES or method is None:
        raise BadProgram(f"unknown step {name!r}; known steps: {', '.join(sorted(RULES))}")
    rule = getattr(getattr(type(machine), name), RULE_MARKER, None)
    if rule is None and name in TARGET_RULES:
        raise BadProgram(
            f"step {name!r} does not apply to target {machine.spec.name}: its adapter gives it"
            " nothing to draw from (no such service, link, failpoint or dashboard)"
        )
    _check_target_args(machine, name, args)
    preconditions = rule.preconditions if rule is not None else ()
    if not all(precondition(machine) for precondition in preconditions):
        return  # not applicable here (a shrunk program removed what it needed): skip it
    if name == "redeliver":
        args["update"] = machine.delivered[args["update"]]
    result = method(**args)
    del result


def _check_target_args(machine: ChaosMachine, name: str, args: dict[str, Any]) -> None:
    """A step naming a service, link or failpoint its target does not have is not replayable."""
    spec, stack = machine.spec, machine.stack
    if name in ("pause", "kill", "stop"):
        key, allowed = "service", set(spec.services_with(name)) & set(stack.services)
    elif name in ("partition", "network", "latency_ramp"):
        key, allowed = "link", set(getattr(stack, "links", None) or spec.links())
    elif name == "failpoint":
        key, allowed = "name", set(spec.failpoints)
    else:
        return
    if args.get(key) not in allowed:
        raise BadProgram(
            f"step {name}({key}={args.get(key)!r}) does not apply to target {spec.name};"
            f" its {key}s: {', '.join(sorted(allowed)) or 'none'}"
        )


def assert_replay_passes(path: Path, stack: Stack) -> None:
    """For a saved failure's ``test_replay.py``: fail the test if the program still fails."""
    outcome = replay(load_steps(path), stack)
    assert not outcome.failed, outcome.message
