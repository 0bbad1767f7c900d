"""What the stub was asked and what it answered, per message key, for the oracle.

A call that arrives before a Retry-After given to the same key has run out is flagged
(``before_retry_after``): a client that ignores the header. Records are kept in memory, the
newest :data:`LIMIT`, until ``POST /control/reset``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

LIMIT = 100_000
#: a retry this much early still counts as on time: clocks and event loops wake a little early
SLACK = 0.01


@dataclass
class Record:
    key: str
    provider: str
    endpoint: str
    model: str
    requested_at: float
    #: the answer rule that answered, or would have had a fault not answered instead
    #: (``embedding`` for an embedding; empty when no rule could answer the request)
    rule: str = ""
    tool: str | None = None
    stream: bool = False
    answered_at: float | None = None
    status: int | None = None
    fault: str | None = None
    #: what the client parses: the structured object, the tool's arguments or the text
    answer: Any = None
    #: the Retry-After this answer gave, in seconds
    retry_after: float | None = None
    before_retry_after: bool = False
    #: why the stub could not answer (a bad request, a schema it cannot satisfy)
    error: str = ""
    #: what the call asked: its system prompt and its first user message
    system: str = ""
    prompt: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Records:
    def __init__(self, limit: int = LIMIT) -> None:
        self._items: deque[Record] = deque(maxlen=limit)
        self._not_before: dict[str, float] = {}

    def begin(self, record: Record) -> Record:
        """Keep ``record`` (filled in as the call goes on) and flag it if it is early."""
        not_before = self._not_before.get(record.key)
        record.before_retry_after = not_before is not None and record.requested_at < not_before
        self._items.append(record)
        return record

    def retry_after(self, record: Record, seconds: float, now: float) -> None:
        record.retry_after = seconds
        self._not_before[record.key] = now + seconds - SLACK

    def query(self, key: str | None = None) -> list[dict[str, Any]]:
        return [r.to_json() for r in self._items if key is None or r.key == key]

    def clear(self) -> None:
        self._items.clear()
        self._not_before.clear()
