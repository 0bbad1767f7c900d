"""The LLM stub's records, read as the calls each message's stages made.

The stub records every call it gets, keyed by message (the adapter's ``[llm] key``), with the
answer rule that answered it (or would have, had a fault not answered instead), its status, its
fault and the answer it sent. Its answers are a pure function of the request, so whatever it
sent is what the target had to store; what it did not send, the target cannot have had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos_model.adapter import OracleSpec
from chaos_model.message_ids import MessageId

#: an answer sent this soon after its request reached the client: no client gives up sooner
PROMPT_SECONDS = 0.5


@dataclass(frozen=True)
class Call:
    """One LLM call made for a message's stage, on the history's clock."""

    message_id: MessageId
    stage: str
    requested_at: float
    answered_at: float | None
    status: int | None
    fault: str | None
    answer: Any
    retry_after: float | None
    #: it came before a Retry-After the stub gave this message had run out
    early: bool
    prompt: str

    @property
    def answered(self) -> bool:
        """The stub sent a whole, well-formed answer (perhaps late)."""
        return self.status == 200 and self.answer is not None

    @property
    def answered_promptly(self) -> bool:
        """An answer the client certainly received: whole, with no fault, and quick."""
        if not self.answered or self.fault is not None or self.answered_at is None:
            return False
        return self.answered_at - self.requested_at <= PROMPT_SECONDS

    @property
    def failed(self) -> bool:
        """No usable answer can have reached the client: an error status, a broken body, or a
        call held until its fault was healed."""
        if self.status is None:
            return False  # never answered (yet): in flight when the records were read
        return not self.answered

    def describe(self) -> str:
        at = f"at {self.requested_at:.2f}s"
        if self.status is None:
            return f"{at}: no answer"
        fault = f" (llm fault {self.fault})" if self.fault else ""
        if self.answered:
            took = (
                f" after {self.answered_at - self.requested_at:.2f}s"
                if self.answered_at is not None
                else ""
            )
            return f"{at}: answered{took}{fault}"
        retry = f", Retry-After {self.retry_after:g}s" if self.retry_after is not None else ""
        return f"{at}: HTTP {self.status}{fault}{retry}"


def calls_from_records(
    records: Iterable[Mapping[str, Any]], oracle: OracleSpec, wall_offset: float
) -> tuple[Call, ...]:
    """The calls of ``records`` that belong to a message and one of its LLM stages, in the order
    they arrived; ``wall_offset`` is the wall-clock time of the history's zero."""
    calls = []
    for record in records:
        message_id = oracle.message_of(str(record.get("key", "")))
        stage = oracle.stage_of(str(record.get("rule") or ""))
        if message_id is None or stage is None:
            continue
        answered_at = record.get("answered_at")
        calls.append(
            Call(
                message_id=message_id,
                stage=stage,
                requested_at=float(record["requested_at"]) - wall_offset,
                answered_at=None if answered_at is None else float(answered_at) - wall_offset,
                status=record.get("status"),
                fault=record.get("fault"),
                answer=record.get("answer"),
                retry_after=record.get("retry_after"),
                early=bool(record.get("before_retry_after")),
                prompt=str(record.get("prompt") or ""),
            )
        )
    return tuple(sorted(calls, key=lambda call: call.requested_at))


def by_message(calls: Iterable[Call]) -> dict[MessageId, dict[str, list[Call]]]:
    """message id -> stage -> its calls in order."""
    grouped: dict[MessageId, dict[str, list[Call]]] = {}
    for call in calls:
        grouped.setdefault(call.message_id, {}).setdefault(call.stage, []).append(call)
    return grouped
