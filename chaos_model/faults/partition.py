from __future__ import annotations

from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.faults._proxy import proxy_of
from chaos_model.stack import Stack

DOWN = {
    "name": "partition",
    "type": "down",
    "stream": "downstream",
    "toxicity": 1.0,
    "attributes": {},
}


@register
@dataclass(frozen=True)
class Partition(Fault):
    """Cut a link in both directions: new connections are refused and every open connection on
    it is aborted at once, pooled ones included, as a real network partition would. Heal lets
    connections through again (clients must reconnect by themselves)."""

    kind = "partition"
    link: str

    def apply(self, stack: Stack) -> None:
        proxy_of(stack, self.kind, self.link).add_toxic(self.link, DOWN)

    def heal(self, stack: Stack) -> None:
        proxy_of(stack, self.kind, self.link).remove_toxic(self.link, "partition")
