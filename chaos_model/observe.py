"""What the model observes of the system: database snapshots and dashboard feeds.

These are plain data, so invariants can be tested on synthetic observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos_model.message_ids import MessageId

STAGES = ("received", "scored", "extracted", "failed")
TERMINAL = frozenset({"extracted", "failed"})
_NEXT: dict[str, frozenset[str]] = {
    "received": frozenset({"scored", "failed"}),
    "scored": frozenset({"extracted", "failed"}),
    "extracted": frozenset(),
    "failed": frozenset(),
}


def is_forward(before: str, after: str) -> bool:
    """True if a message may move from stage ``before`` to ``after`` (staying counts)."""
    if before == after:
        return True
    if before in TERMINAL:
        return False
    if after == "failed":
        return True
    return STAGES.index(after) > STAGES.index(before) and after in STAGES[:3]


@dataclass(frozen=True)
class MessageRow:
    #: ids and keys as :func:`chaos_model.message_ids.message_id` gives them
    id: MessageId
    update_id: MessageId
    stage: str
    score: float | None
    failure_reason: str | None


@dataclass(frozen=True)
class EventRow:
    event_id: int
    message_id: MessageId
    stage: str


@dataclass(frozen=True)
class Snapshot:
    """The stored state of the pipeline at one moment."""

    messages: tuple[MessageRow, ...] = ()
    knowledge: tuple[tuple[MessageId, Any], ...] = ()  # (message_id, item number or text)
    attempts: tuple[tuple[str, MessageId, int], ...] = ()  # (stage, key, count)
    update_ids: frozenset[MessageId] = frozenset()  # the webhook's inbox
    events: tuple[EventRow, ...] = ()
    texts: tuple[tuple[MessageId, str], ...] = ()  # (message_id, the text stored)
    items: tuple[tuple[MessageId, str], ...] = ()  # (message_id, a knowledge item's text)
    #: what the adapter does not let the model see, so a rule about it cannot be judged: the
    #: messages query's optional columns ("score", "failure_reason") and whole observations
    #: ("events", "texts", "items")
    unobserved: frozenset[str] = frozenset()
    #: the adapter's counts of pending work (``[observe] pending.NAME``) read with the rest
    pending: tuple[tuple[str, int], ...] = ()


@dataclass
class FeedObservation:
    """What one dashboard WebSocket client saw, and whether it resumed after a drop."""

    name: str
    events: list[EventRow] = field(default_factory=list)
    resumed: bool = False
    connected: bool = False


@dataclass(frozen=True)
class PendingSample:
    """How much work was waiting at one moment (seconds since the example began), by kind."""

    time: float
    pending: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.pending.values())


def pending_depth(pending: Mapping[str, Any]) -> dict[str, int]:
    """The counts among a target's pending work: items waiting or running, by kind. A value
    that counts no work (how long ago the database last changed) is left out."""
    return {
        name: int(value)
        for name, value in pending.items()
        if isinstance(value, int) and int(value) > 0
    }
