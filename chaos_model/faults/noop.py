from __future__ import annotations

from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class NoFault(Fault):
    """Does nothing: the baseline every fault schedule can shrink to."""

    kind = "noop"
    instant = True

    def apply(self, stack: Stack) -> None:
        return None

    def heal(self, stack: Stack) -> None:
        return None
