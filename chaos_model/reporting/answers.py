"""The webhook's answers in a history: each request with when it was sent and answered, and the
class of its answer (2xx, 4xx, 5xx, timeout, no connection)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: answer classes of the webhook, in legend order
ANSWERS = ("2xx", "4xx", "5xx", "timeout", "no connection")
#: the classes where no HTTP status came back
ERRORS = ("timeout", "no connection")

_WEBHOOK_FUNCTIONS = frozenset(
    {"deliver", "forged", "not_json", "not_object", "missing_fields", "wrong_types", "oversized"}
)


@dataclass(frozen=True)
class WebhookAnswer:
    sent: float
    time: float
    answer: str
    detail: str
    sender: str
    update_id: int | None

    @property
    def seconds(self) -> float:
        return self.time - self.sent


def classify_answer(op: dict[str, Any]) -> str:
    """A completed webhook call as 2xx, 4xx, 5xx, timeout or no connection."""
    if op["type"] == "ok":
        return "2xx"
    error = str(op.get("error") or "")
    status = re.search(r"\b([1-5])\d\d\b", error)
    if status is not None:
        return f"{status.group(1)}xx"
    if op["type"] == "info" or ("Timeout" in error and "Connect" not in error):
        return "timeout"
    return "no connection"


def webhook_answers(ops: list[dict[str, Any]]) -> list[WebhookAnswer]:
    """Every completed webhook request of ``ops``, by the time it was answered."""
    invoked: dict[str, dict[str, Any]] = {}
    answers: list[WebhookAnswer] = []
    for op in ops:
        if op["f"] not in _WEBHOOK_FUNCTIONS:
            continue
        if op["type"] == "invoke":
            invoked[op["process"]] = op
            continue
        start = invoked.pop(op["process"], op)
        value = op["value"] if isinstance(op["value"], dict) else {}
        update_id = value.get("update_id")
        answer = classify_answer(op)
        what = f"update {update_id}" if update_id is not None else f"{op['f']} request"
        detail = f"{what}: {op.get('error') or answer} after {op['time'] - start['time']:.2f}s"
        answers.append(
            WebhookAnswer(
                start["time"],
                op["time"],
                answer,
                detail,
                op["process"],
                update_id if isinstance(update_id, int) else None,
            )
        )
    return sorted(answers, key=lambda answer: answer.time)
