"""What the machine and the run's bookkeeping know of each other: two small protocols.

The machine calls an :class:`ExampleObserver` at each moment of an example (the recorder of a run
is one); the observer reads the example back through an :class:`ExampleView`. Neither imports the
other, so the machine sits below the bookkeeping that reports on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chaos_model.adapter import TargetSpec
from chaos_model.history import History
from chaos_model.invariants import Result
from chaos_model.observe import PendingSample
from chaos_model.points import ExampleCoverage
from chaos_model.stack import Stack


class ExampleView(Protocol):
    """One example as the machine ran it."""

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The program's steps, ``{"rule": name, "args": {...}}``."""

    @property
    def history(self) -> History: ...

    @property
    def spec(self) -> TargetSpec: ...

    @property
    def stack(self) -> Stack: ...

    @property
    def bodies(self) -> Mapping[int, dict[str, Any]]:
        """Every update the example delivered, by update id."""

    @property
    def coverage(self) -> ExampleCoverage:
        """The fault points it reached and faulted."""

    @property
    def queue_depth(self) -> Sequence[PendingSample]:
        """Its pending work over time (a sample where the counts changed)."""

    @property
    def teardown_at(self) -> float | None:
        """Seconds from its start to its teardown (the final heal and the waits)."""

    @property
    def quiescent_at(self) -> float | None:
        """Seconds from its start to the first quiescence after the final heal."""


class ExampleObserver(Protocol):
    """The hooks the machine calls, in the order it calls them."""

    def before_example(self) -> None:
        """Before the stack is reset; may raise to end the run (a spent budget)."""

    def example_started(self, reset_seconds: float) -> None: ...

    def step(self) -> None: ...

    def fault_applied(self, kind: str) -> None: ...

    def quiesced(self, seconds: float) -> None: ...

    def violation(self, failed: Sequence[Result]) -> None: ...

    def error(self, error: BaseException) -> None:
        """A step raised something other than a violation."""

    def example_finished(self, example: ExampleView) -> None: ...
