"""Telegram's delivery attempts, read from the history: when each began and how it ended.

The Telegram simulator records one operation per POST of an update to the webhook (process
``telegram-chat-<id>``, ``deliver``): an ``ok`` for a 2xx, a ``fail`` for another status or a
refused connection, an ``info`` when no answer came (a read timeout, a dropped connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos_model.history import History

#: how an attempt ended when Telegram stopped waiting for the answer
TIMEOUTS = frozenset({"ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"})


@dataclass(frozen=True)
class WebhookAttempt:
    chat: str
    update_id: int | None
    start: float
    end: float
    outcome: str
    error: str | None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def timed_out(self) -> bool:
        return self.error in TIMEOUTS

    def describe(self) -> str:
        how = self.error or "HTTP 2xx"
        return f"update {self.update_id} at {self.start:.2f}s took {self.seconds:.2f}s ({how})"


def webhook_attempts(history: History) -> list[WebhookAttempt]:
    """Every finished delivery attempt, in the order they began."""
    begun: dict[str, tuple[float, int | None]] = {}
    attempts = []
    for op in list(history.ops):
        if op.f != "deliver" or not op.process.startswith("telegram-"):
            continue
        value = op.value if isinstance(op.value, dict) else {}
        if op.type == "invoke":
            begun[op.process] = (op.time, value.get("update_id"))
            continue
        started = begun.pop(op.process, None)
        if started is not None:
            attempts.append(
                WebhookAttempt(op.process, started[1], started[0], op.time, op.type, op.error)
            )
    return sorted(attempts, key=lambda attempt: attempt.start)
