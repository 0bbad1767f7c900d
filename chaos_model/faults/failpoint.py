from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chaos_model.failpoints import FailpointFile
from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


class HasFailpoints(Protocol):
    @property
    def failpoints(self) -> FailpointFile: ...


@register
@dataclass(frozen=True)
class ArmFailpoint(Fault):
    """Arm a named failpoint so the next process reaching it crashes, hangs or raises there.

    Heal disarms every failpoint and releases hung processes; a crashed process is restarted by
    the stack's heal.
    """

    kind = "failpoint"
    name: str
    action: str = "crash"
    count: int = 1

    def apply(self, stack: Stack) -> None:
        if self.action not in ("crash", "hang", "error"):
            raise ValueError(f"failpoint action must be crash, hang or error, not {self.action!r}")
        _failpoints(stack).arm(self.name, self.action, self.count)  # type: ignore[arg-type]

    def heal(self, stack: Stack) -> None:
        _failpoints(stack).disarm_all()


def _failpoints(stack: Stack) -> FailpointFile:
    failpoints: FailpointFile | None = getattr(stack, "failpoints", None)
    if failpoints is None:
        from chaos_model.errors import UnsupportedFault

        raise UnsupportedFault("failpoint", stack.backend, "it exposes no failpoint file")
    return failpoints
