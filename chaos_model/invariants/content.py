"""Content: what is stored is what Telegram sent and what the LLM answered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from chaos_model.adapter import OracleSpec
from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.message_ids import MessageId
from chaos_model.oracle import Call, by_message

#: a stored float may differ from the answer's by this much without any rounding
FLOAT_SLACK = 1e-9


def as_stored(text: str) -> str:
    """The text a webhook stores for ``text``: PostgreSQL's text cannot hold NUL characters, so
    they are stored as U+FFFD (the documented replacement)."""
    return text.replace("\x00", "\ufffd")


def _field(answer: Any, name: str) -> Any:
    return answer.get(name) if isinstance(answer, dict) else None


class ContentAsSentAndAnswered(Invariant):
    """What is stored is what was sent and what the LLM answered: a message's stored text is the
    text of its Telegram update (NUL characters stored as U+FFFD); every LLM call made for it
    asked about that text; its stored score is the score the LLM stub answered its scoring call
    (within the adapter's ``score_tolerance``); and its stored knowledge items are exactly the
    items the stub answered its extraction call, no more and no fewer. The stub's answers are a
    pure function of the request, so a call made twice (a crash between the answer and the
    commit) was answered the same both times."""

    name = "content_as_sent_and_answered"
    kind = "safety"
    needs = frozenset({"oracle"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return Unknown("no database snapshot at this step")
        calls = ctx.calls()
        oracle = ctx.model.oracle
        if calls is None or oracle is None:
            return Unknown("the LLM stub's records could not be read")
        snapshot = ctx.snapshot
        hidden = snapshot.unobserved
        texts = {} if "texts" in hidden else dict(snapshot.texts)
        items: dict[MessageId, Counter[str]] | None = None
        if "items" not in hidden:
            items = {}
            for message_id, item in snapshot.items:
                items.setdefault(message_id, Counter())[str(item)] += 1
        per_message = by_message(calls)
        problems: list[str] = []
        for row in snapshot.messages:
            own = per_message.get(row.id, {})
            who = f"message {row.id} (update {row.update_id})"
            stored = texts.get(row.id)
            if stored is not None:
                problems += _text_problems(who, stored, ctx.model.texts.get(row.update_id), own)
            if row.score is not None and "scored" in oracle.calls and "score" not in hidden:
                problems += _score_problems(who, float(row.score), own.get("scored", []), oracle)
            if items is not None and "extracted" in oracle.calls:
                kept = items.get(row.id, Counter())
                if kept or row.stage == "extracted":
                    problems += _item_problems(who, kept, own.get("extracted", []), oracle)
        return "; ".join(problems[:10]) if problems else None


def _text_problems(
    who: str, stored: str, sent: str | None, own: dict[str, list[Call]]
) -> list[str]:
    problems = []
    if sent is not None and stored != as_stored(sent):
        problems.append(f"{who} stored the text {stored[:60]!r}; Telegram sent {sent[:60]!r}")
    for stage, made in own.items():
        wrong = next((call for call in made if stored not in call.prompt), None)
        if wrong is not None:
            problems.append(
                f"{who}: its {stage} call asked about {wrong.prompt[:60]!r}, not its text"
            )
    return problems


def _score_problems(who: str, score: float, made: Sequence[Call], oracle: OracleSpec) -> list[str]:
    answered = [_field(call.answer, oracle.score_field) for call in made if call.answered]
    scores = [float(value) for value in answered if isinstance(value, int | float)]
    if not scores:
        return [f"{who} has the score {score!r}, but no scoring call of it was answered"]
    if any(abs(score - answer) <= oracle.score_tolerance + FLOAT_SLACK for answer in scores):
        return []
    return [f"{who} stored the score {score!r}; the LLM answered {scores[0]!r}"]


def _item_problems(
    who: str, kept: Counter[str], made: Sequence[Call], oracle: OracleSpec
) -> list[str]:
    answered = [_field(call.answer, oracle.items_field) for call in made if call.answered]
    lists = [Counter(map(str, value)) for value in answered if isinstance(value, list)]
    if not lists:
        # an extracted message with no answer at all is outcome_as_predicted's finding
        return [f"{who} has knowledge, but no extraction call of it was answered"] if kept else []
    if kept in lists:
        return []
    return [
        f"{who} stored the items {sorted(kept.elements())}; the LLM answered"
        f" {sorted(lists[0].elements())}"
    ]
