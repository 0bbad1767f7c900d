from __future__ import annotations

from dataclasses import dataclass

from chaos_model.errors import UnsupportedFault
from chaos_model.faults._base import Fault, register
from chaos_model.faults.kill import start_if_down
from chaos_model.points import Arm, PointControl
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class PointFault(Fault):
    """At the ``occurrence``-th call of a point of ``service`` after it is applied (``point`` is
    the point's key: its call chain, library operation and detail), ``before`` or ``after`` the
    call: crash the process (SIGKILL, nothing flushed), hang it until healed, or raise the
    library's own exception there. Tied to an event, not to wall time, so a program replays the
    same way. Heal disarms it and releases a hung call; a crashed process is restarted by the
    stack's heal (from its warm standby)."""

    kind = "point"
    service: str
    point: str
    when: str = "after"
    action: str = "crash"
    occurrence: int = 1
    match: str = ""

    @property
    def arm(self) -> Arm:
        return Arm(
            service=self.service,
            point=self.point,
            when=self.when,  # type: ignore[arg-type]
            occurrence=self.occurrence,
            action=self.action,  # type: ignore[arg-type]
            match=self.match,
        )

    def apply(self, stack: Stack) -> None:
        _points(stack).arm(self.arm)

    def heal(self, stack: Stack) -> None:
        _points(stack).disarm(self.arm.id)
        if self.service in stack.services:
            start_if_down(stack, self.service)  # as a supervisor restarts a crashed process

    def fired(self, stack: Stack) -> bool:
        return self.arm.id in _points(stack).fired()

    def describe(self) -> str:
        """``crash(service='worker', after='...: asyncpg.execute COMMIT', occurrence=1)``."""
        extra = f", match={self.match!r}" if self.match else ""
        return (
            f"{self.action}(service={self.service!r}, {self.when}={self.point!r},"
            f" occurrence={self.occurrence}{extra})"
        )


def _points(stack: Stack) -> PointControl:
    points: PointControl | None = getattr(stack, "points", None)
    if points is None:
        raise UnsupportedFault("point", stack.backend, "no service of it has fault points")
    return points
