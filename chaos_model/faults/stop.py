from __future__ import annotations

from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.faults.kill import KillService
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class StopService(Fault):
    """Stop a service cleanly (SIGTERM; PostgreSQL gets a fast shutdown, which disconnects every
    client and checkpoints); heal by starting it again."""

    kind = "stop"
    service: str

    def apply(self, stack: Stack) -> None:
        stop = getattr(stack.services[self.service], "stop", None)
        if stop is None:
            from chaos_model.errors import UnsupportedFault

            raise UnsupportedFault(self.kind, stack.backend, "its services cannot be stopped")
        stop()

    def heal(self, stack: Stack) -> None:
        KillService(self.service).heal(stack)
