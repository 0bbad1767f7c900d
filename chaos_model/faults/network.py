from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos_model.faults._base import Fault, register
from chaos_model.faults._proxy import proxy_of
from chaos_model.proxy import toxic_from_dict
from chaos_model.stack import Stack


@register
@dataclass(frozen=True)
class NetworkToxic(Fault):
    """Put one Toxiproxy-style toxic on a link: latency (with jitter), bandwidth, timeout (hold
    the data, never answer), reset_peer, slow_close, slicer or limit_data, on the upstream
    (client to server) or downstream stream, with a toxicity (probability per connection).
    It affects open connections as well as new ones. Heal removes the toxic.

    ``toxic`` is the toxic's JSON form: ``{"type", "stream", "toxicity", "attributes"}``.
    """

    kind = "network"
    link: str
    toxic: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        toxic_from_dict({**self.toxic, "name": "check"})  # raises on an invalid toxic

    @property
    def toxic_name(self) -> str:
        return f"chaos-{self.toxic['type']}-{self.toxic.get('stream', 'downstream')}"

    def apply(self, stack: Stack) -> None:
        proxy = proxy_of(stack, self.kind, self.link)
        proxy.add_toxic(self.link, {**self.toxic, "name": self.toxic_name})

    def heal(self, stack: Stack) -> None:
        proxy_of(stack, self.kind, self.link).remove_toxic(self.link, self.toxic_name)
