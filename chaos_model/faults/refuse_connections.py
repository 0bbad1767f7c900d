from __future__ import annotations

from dataclasses import dataclass

from chaos_model.errors import UnsupportedFault
from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class RefuseConnections(Fault):
    """PostgreSQL refuses new connections for a while; open ones keep working (a database at
    its connection limit, or locked by an administrator). Heal lets connections in again."""

    kind = "refuse_connections"

    def apply(self, stack: Stack) -> None:
        self._switch(stack, True)

    def heal(self, stack: Stack) -> None:
        self._switch(stack, False)

    def _switch(self, stack: Stack, refuse: bool) -> None:
        switch = getattr(stack, "refuse_new_db_connections", None)
        if switch is None:
            raise UnsupportedFault(self.kind, stack.backend, "it cannot configure PostgreSQL")
        switch(refuse)
