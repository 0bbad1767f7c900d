"""What the fake was asked and what it answered: one record per call, newest last, until
``POST /control/reset``."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

LIMIT = 100_000


@dataclass
class Record:
    #: the method as the Bot API names it (``sendMessage``), or as called when it has none
    method: str
    #: the bot's id: the number before the token's colon (the secret part is not kept)
    bot_id: int
    http_method: str
    params: dict[str, Any] = field(default_factory=dict)
    requested_at: float = 0.0
    answered_at: float | None = None
    status: int | None = None
    fault: str | None = None
    #: the ``result`` sent, or the ``description`` of an error
    result: Any = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Records:
    def __init__(self, limit: int = LIMIT) -> None:
        self._items: deque[Record] = deque(maxlen=limit)

    def begin(self, record: Record) -> Record:
        self._items.append(record)
        return record

    def query(self, method: str | None = None) -> list[dict[str, Any]]:
        wanted = method.lower() if method else None
        return [r.to_json() for r in self._items if wanted in (None, r.method.lower())]

    def clear(self) -> None:
        self._items.clear()
