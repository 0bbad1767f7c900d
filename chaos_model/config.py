"""Run configuration shared by the CLI, the pytest plugin and replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ALL_FAULT_KINDS = (
    "pause",
    "kill",
    "stop",
    "terminate_connections",
    "refuse_connections",
    "llm",
    "failpoint",
    "point",
    "partition",
    "network",
)


@dataclass
class ChaosConfig:
    examples: int = 50
    steps: int = 20
    seed: int | None = None
    max_time: float | None = None
    faults: tuple[str, ...] = ALL_FAULT_KINDS
    max_concurrent_faults: int = 2
    #: failpoints the model may arm (default: every one the target's adapter declares)
    failpoints: tuple[str, ...] | None = None
    failpoint_actions: tuple[str, ...] = ("crash", "hang")
    chats: int = 3
    #: None: the adapter's own ([limits] quiescence_timeout, recovery_bound)
    quiescence_timeout: float | None = None
    recovery_bound: float | None = None
    replays: int = 3
    failures_dir: Path = field(default_factory=lambda: Path("chaos-failures"))
    database: bool = True
    progress: bool = True
    shrink: bool = True
    #: seconds for shrinking on the real stack after Hypothesis's own shrinking
    shrink_budget: float = 120.0
    #: each example draws a few fault kinds to use (swarm testing)
    swarm: bool = True
    #: before the search, try every single fault once with one update in flight
    sweep: bool = True
    #: a fault still applied after this long is healed by the owner's watchdog (attached runs)
    max_fault_seconds: float = 60.0
    #: invariants not checked in this run, on top of the adapter's ``skip`` list (a known bug
    #: being fixed need not hide the next one)
    skip_invariants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(ALL_FAULT_KINDS))
        if unknown:
            raise ValueError(
                f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(ALL_FAULT_KINDS)}"
            )
        if self.examples < 1 or self.steps < 1:
            raise ValueError("examples and steps must be at least 1")
        if not set(self.failpoint_actions) <= {"crash", "hang", "error"}:
            raise ValueError("failpoint actions are crash, hang and error")
        if self.failpoints is not None and not self.failpoints:
            raise ValueError("no failpoint given")
        if self.max_fault_seconds <= 0:
            raise ValueError("the max fault duration must be positive")
        if self.max_concurrent_faults < 1:
            raise ValueError("max concurrent faults must be at least 1")
