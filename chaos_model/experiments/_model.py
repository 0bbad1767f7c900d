"""A named chaos experiment: a fixed program of machine steps plus what it is meant to show.

An experiment is data, like a saved failure's ``steps.json``: its steps are the state machine's
own rules (``deliver``, ``kill``, ``failpoint`` ...) with their arguments, and it may add
``await`` steps, which wait (with a deadline) for something to be observed before the next step,
so that a fault is held until it has visibly hit. Everything else is prose in the format of a
chaos engineering runbook: hypothesis, blast radius, what to observe, expected behaviour,
rollback and remediation.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from chaos_model.errors import ChaosModelError

if TYPE_CHECKING:
    from chaos_model.adapter import TargetSpec

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,78}[a-z0-9]")
AWAIT = "await"
#: what an ``await`` step can wait for (see ``chaos_model.experiments._observe``)
CONDITIONS = {
    "webhook": "a Telegram delivery attempt ended with this outcome (2xx, 5xx, timeout, refused)",
    "stage": "at least ``count`` messages are at this stage",
    "failpoint_hit": "the failpoint ``name`` was reached",
    "pending": (
        "the target's count of pending work ``name`` (``[observe] pending.NAME`` in its adapter)"
        " is at least ``count``"
    ),
}
#: the argument each condition needs besides ``count`` and ``timeout``
REQUIRED = {"webhook": "outcome", "stage": "stage", "failpoint_hit": "name", "pending": "name"}
DEFAULT_ROLLBACK = (
    "Nothing by hand: after the last step every fault is healed (processes resumed or "
    "restarted, failpoints disarmed, LLM faults and network toxics cleared) and the system "
    "is given until it quiesces. By hand: `chaos-model stack up` owners heal through their "
    "watchdog; a local stack heals everything on stop."
)


class BadExperiment(ChaosModelError):
    """An experiment file or name that chaos-model cannot use."""


@dataclass(frozen=True)
class Experiment:
    name: str
    hypothesis: str
    blast_radius: str
    steps: tuple[dict[str, Any], ...]
    observe: tuple[str, ...]
    expected: str
    rollback: str = DEFAULT_ROLLBACK
    remediation: str = ""
    #: where it came from: "built-in", or the failure folder it was saved from
    origin: str = "built-in"
    #: the violations of the failure it was saved from, if any
    found: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise BadExperiment(
                f"bad experiment name {self.name!r}: use 3-80 lowercase letters, digits and"
                " dashes, e.g. nats-crash-during-scoring"
            )
        for step in self.steps:
            check_step(step, self.name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        data["observe"] = list(self.observe)
        data["found"] = list(self.found)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> Experiment:
        if not isinstance(data, dict):
            raise BadExperiment(f"{where}: not an experiment (expected a JSON object)")
        missing = sorted({"name", "hypothesis", "steps"} - set(data))
        if missing:
            raise BadExperiment(f"{where}: not an experiment (missing {', '.join(missing)})")
        steps = data["steps"]
        if not isinstance(steps, list | tuple):
            raise BadExperiment(f"{where}: 'steps' must be a list of steps")
        try:
            return cls(
                name=str(data["name"]),
                hypothesis=str(data["hypothesis"]),
                blast_radius=str(data.get("blast_radius", "")),
                steps=tuple(steps),
                observe=tuple(str(item) for item in data.get("observe", ())),
                expected=str(data.get("expected", "Every invariant holds.")),
                rollback=str(data.get("rollback", DEFAULT_ROLLBACK)),
                remediation=str(data.get("remediation", "")),
                origin=str(data.get("origin", where)),
                found=tuple(str(item) for item in data.get("found", ())),
            )
        except BadExperiment as error:
            raise BadExperiment(f"{where}: {error}") from error

    @property
    def machine_steps(self) -> list[dict[str, Any]]:
        """The steps without the experiment's own ``await`` steps: a replayable program."""
        return [step for step in self.steps if step["rule"] != AWAIT]


def step(rule: str, **args: Any) -> dict[str, Any]:
    return {"rule": rule, "args": args}


def wait_for(condition: str, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
    """An ``await`` step: wait until ``condition`` is observed, at most ``timeout`` seconds."""
    return step(AWAIT, condition=condition, timeout=timeout, **args)


def check_step(item: Any, name: str) -> None:
    from chaos_model.replay import RULES

    if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
        raise BadExperiment(f"experiment {name}: each step is {{'rule': ..., 'args': {{...}}}}")
    if not isinstance(item.get("args", {}), dict):
        raise BadExperiment(f"experiment {name}: the args of step {item['rule']} must be an object")
    rule = item["rule"]
    if rule == AWAIT:
        args = item.get("args", {})
        condition = args.get("condition")
        if condition not in CONDITIONS:
            raise BadExperiment(
                f"experiment {name}: unknown await condition {condition!r};"
                f" known: {', '.join(sorted(CONDITIONS))}"
            )
        if not isinstance(args.get(REQUIRED[condition]), str):
            raise BadExperiment(
                f"experiment {name}: await {condition} needs {REQUIRED[condition]}='...'"
            )
        return
    if rule not in RULES:
        raise BadExperiment(
            f"experiment {name}: unknown step {rule!r}; known: {', '.join(sorted(RULES))}, {AWAIT}"
        )


def check_target(experiment: Experiment, target: TargetSpec) -> None:
    """Refuse ``experiment`` if it awaits what ``target`` cannot show: a count of pending work
    or a failpoint its adapter does not name."""
    for item in experiment.steps:
        if item["rule"] != AWAIT:
            continue
        args = item.get("args", {})
        if args["condition"] == "pending" and args["name"] not in target.observe.pending:
            known = ", ".join(sorted(target.observe.pending)) or "none"
            raise BadExperiment(
                f"experiment {experiment.name}: awaits pending {args['name']!r}, but target"
                f" {target.name} counts no such work (its adapter's [observe] pending: {known})"
            )
        if args["condition"] == "failpoint_hit" and args["name"] not in target.failpoints:
            raise BadExperiment(
                f"experiment {experiment.name}: awaits failpoint {args['name']!r}, which target"
                f" {target.name} does not have (see [failpoints] names in its adapter)"
            )


def describe_step(item: dict[str, Any]) -> str:
    """One step as it reads in a program: ``kill(service='nats')``."""
    args = ", ".join(f"{key}={value!r}" for key, value in item.get("args", {}).items())
    return f"{item['rule']}({args})"
