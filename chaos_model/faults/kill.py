from __future__ import annotations

from dataclasses import dataclass

from chaos_model.errors import ServiceNotReady
from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack

READY_GRACE_SECONDS = 3.0


@register
@dataclass(frozen=True)
class KillService(Fault):
    """SIGKILL a service's whole process tree (a crash); heal by starting it again.

    PostgreSQL restarts with crash recovery; nats-server keeps its JetStream store directory.
    Heal waits a moment for readiness, but a service whose dependencies are still faulted (an API
    while PostgreSQL is down) only has to be running: it becomes ready when they heal.
    """

    kind = "kill"
    service: str

    def apply(self, stack: Stack) -> None:
        stack.services[self.service].kill()

    def heal(self, stack: Stack) -> None:
        start_if_down(stack, self.service)


def start_if_down(stack: Stack, name: str) -> None:
    """Start ``name`` again if it is not running, and give it a moment to be ready: a service
    whose dependencies are still faulted only has to be running. A process that exits at once
    is started once more, as a supervisor would; a second exit is an error."""
    service = stack.services[name]
    for attempt in (1, 2):
        if not service.is_running():
            service.start()
        try:
            service.wait_ready(timeout=READY_GRACE_SECONDS)
            return
        except ServiceNotReady:
            if service.is_running():
                return
            if attempt == 2:
                raise
