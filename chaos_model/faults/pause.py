from __future__ import annotations

from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class PauseService(Fault):
    """SIGSTOP a service's whole process tree; heal with SIGCONT.

    A paused server keeps its TCP connections open: clients see silence, not errors, and only
    their own timeouts notice.
    """

    kind = "pause"
    service: str

    def apply(self, stack: Stack) -> None:
        stack.services[self.service].pause()

    def heal(self, stack: Stack) -> None:
        stack.services[self.service].resume()
