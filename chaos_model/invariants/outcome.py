"""The expected outcome: each message ends where the reference model says it must."""

from __future__ import annotations

import math

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.observe import MessageRow
from chaos_model.oracle import Call, by_message, fault_spans, other_than_llm, predict


class OutcomeAsPredicted(Invariant):
    """Every message at a terminal stage is at the one the reference model predicts from the
    history: ``extracted`` only if the LLM stub answered a call of each of its LLM stages; and
    when every fault the message met before it ended was the LLM's own (so each attempt of a
    stage was one call, and the stub's records say what each got), ``extracted`` exactly when
    each stage had a prompt answer within its attempt budget, ``failed`` exactly when a stage's
    whole budget of calls failed. Where another fault may have spent an attempt without a call
    or lost an answer after it was sent, or an answer came late, the prediction is unknown."""

    name = "outcome_as_predicted"
    kind = "liveness"
    needs = frozenset({"oracle"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return Unknown("no database snapshot after heal")
        calls = ctx.calls()
        oracle = ctx.model.oracle
        if calls is None or oracle is None:
            return Unknown("the LLM stub's records could not be read")
        model = ctx.model
        stages = model.graph.llm_stages(oracle.calls)
        spans = fault_spans(ctx.history)
        counted = {(stage, key): count for stage, key, count in ctx.snapshot.attempts}
        per_message = by_message(calls)
        problems: list[str] = []
        unknown: list[str] = []
        for row in ctx.snapshot.messages:
            if row.stage not in model.graph.terminal:
                continue  # not finished: accepted_updates_complete's to judge
            own = per_message.get(row.id, {})
            unanswered = _unanswered(row, own, stages)
            if unanswered is not None:
                problems.append(unanswered)
                continue
            ended = model.terminal_seen_at.get(row.id, math.inf)
            prediction = predict(
                own,
                stages,
                model.max_attempts,
                extra_calls=oracle.extra_calls,
                attempts={
                    stage: counted[(name, row.id)]
                    for stage, name in oracle.attempts.items()
                    if (name, row.id) in counted
                },
                other_faults=other_than_llm(spans, before=ended),
            )
            who = f"message {row.id} (update {row.update_id})"
            if prediction.expected is None:
                unknown.append(f"{who}: {prediction.why}")
            elif prediction.expected != row.stage:
                reason = f" ({row.failure_reason})" if row.failure_reason else ""
                problems.append(
                    f"{who} is {row.stage}{reason}; predicted {prediction.expected}:"
                    f" {prediction.why}"
                )
        if problems:
            return "; ".join(problems[:5])
        return Unknown("; ".join(unknown[:5])) if unknown else None


def _unanswered(row: MessageRow, own: dict[str, list[Call]], stages: tuple[str, ...]) -> str | None:
    """A message at ``extracted`` needs an answer for each LLM stage: the target cannot have
    made up what the LLM never said."""
    if row.stage != "extracted":
        return None
    for stage in stages:
        made = own.get(stage, [])
        if not any(call.answered for call in made):
            got = "; ".join(call.describe() for call in made[:4]) or "no call at all"
            return (
                f"message {row.id} (update {row.update_id}) is extracted, but the LLM never"
                f" answered its {stage} stage ({got})"
            )
    return None
