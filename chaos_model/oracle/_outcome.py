"""What a message must have become: the reference model's prediction of its terminal stage.

A stage gives up on a message only after its attempt budget is spent, and each attempt of an LLM
stage makes one call. So when every fault the message met was the LLM's own (the stub's records
say what each call got), the calls decide: a stage that had a prompt answer within its budget
went on, one whose first ``budget`` calls all failed gave up, and one that made fewer calls than
its budget, none answered, still had attempts left. Any other fault (a crash, a paused database,
a cut link) can spend an attempt without a call, or lose an answer after it was sent: then the
history allows both outcomes, and the prediction is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chaos_model.oracle._calls import Call
from chaos_model.oracle._faults import FaultSpan

#: calls of a stage shown in an explanation
SHOWN = 4


@dataclass(frozen=True)
class Prediction:
    """The terminal stage a message must have reached (None: the history allows both), and
    why."""

    expected: str | None
    why: str


def predict(
    calls: Mapping[str, Sequence[Call]],
    stages: Sequence[str],
    budget: int,
    *,
    extra_calls: int = 0,
    attempts: Mapping[str, int] | None = None,
    other_faults: Sequence[FaultSpan] = (),
) -> Prediction:
    """The outcome of one message from its calls per LLM stage (``stages`` in order), the
    attempt budget of a stage, the attempts the target counted (when it counts them) and the
    faults other than the LLM's it met."""
    if other_faults:
        shown = ", ".join(span.describe() for span in other_faults[:3])
        return Prediction(None, f"faults other than the LLM's may have spent attempts: {shown}")
    told: list[str] = []
    for stage in stages:
        made = list(calls.get(stage, ()))
        story = _story(stage, made)
        if len(made) > budget + extra_calls:
            return Prediction(
                None, f"{story}: more calls than attempts allowed, so a call is not an attempt"
            )
        counted = (attempts or {}).get(stage)
        if counted is not None and counted != len(made):
            return Prediction(
                None, f"{story}, but the target counted {counted} attempts: some made no call"
            )
        first = made[:budget]
        if any(call.answered_promptly for call in first):
            told.append(story)
            continue
        if not all(call.failed for call in first):
            return Prediction(None, f"{story}: an answer came late, or not yet")
        if len(made) >= budget:
            return Prediction("failed", f"{story}: its budget of {budget} attempts all failed")
        return Prediction(
            "extracted",
            f"{story}: {budget - len(made)} of its {budget} attempts were left, and every fault"
            " was the LLM's",
        )
    return Prediction("extracted", "every stage got an answer in time: " + "; ".join(told))


def _story(stage: str, made: Sequence[Call]) -> str:
    if not made:
        return f"the {stage} stage made no LLM call"
    listed = "; ".join(call.describe() for call in made[:SHOWN])
    more = f"; and {len(made) - SHOWN} more" if len(made) > SHOWN else ""
    return f"the {stage} stage made {len(made)} LLM call(s) ({listed}{more})"
