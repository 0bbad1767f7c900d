from __future__ import annotations

from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class KillService(Fault):
    """SIGKILL a service's whole process tree (a crash); heal by starting it and waiting ready.

    PostgreSQL restarts with crash recovery; nats-server keeps its JetStream store directory.
    """

    kind = "kill"
    service: str

    def apply(self, stack: Stack) -> None:
        stack.services[self.service].kill()

    def heal(self, stack: Stack) -> None:
        service = stack.services[self.service]
        if not service.is_running():
            service.start()
        service.wait_ready()
