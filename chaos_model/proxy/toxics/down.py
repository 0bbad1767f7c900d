"""``down`` toxic: the link-level partition."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import Toxic


@dataclass(frozen=True, kw_only=True)
class Down(Toxic):
    """Take the whole link down (Toxiproxy's ``enabled: false``), as data.

    While present, the link's listening socket is closed, so new connections get
    ECONNREFUSED, and every open connection of the link is aborted (both sockets
    closed at once, unsent bytes dropped): a partition that cuts pooled connections.
    Removing it re-opens the listener on the same port. ``stream`` is ignored and
    ``toxicity`` must be 1 (the state is per link, not per connection). Name defaults
    to ``"down"``.
    """

    kind = "down"
    link_level = True

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", "down")
        super().__post_init__()

    def _validate(self) -> None:
        if self.toxicity != 1.0:
            raise ValueError("down is a link-level toxic: toxicity must be 1")
