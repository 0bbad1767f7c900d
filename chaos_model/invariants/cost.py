"""Cost: how often the pipeline calls the LLM, and when."""

from __future__ import annotations

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.message_ids import id_order
from chaos_model.oracle import by_message, fault_spans, other_than_llm

#: a duplicate of a task that passed its "already done?" check just before the message's final
#: commit calls the LLM a moment after it: that moment is shorter than this
LATE_CALL_GRACE = 2.0


class LLMCostWithinBounds(Invariant):
    """The LLM is called no more than the budget allows: no stage of a message makes more LLM
    calls than its attempt budget (``[limits] max_attempts``) plus the extra calls the adapter
    allows; no call comes before a Retry-After the LLM gave that message has run out (the stub
    flags such calls); and no call is made for a message more than a moment after it was seen at
    a terminal stage. An early call is not judged when a fault other than the LLM's came before
    it (a crash or a cut link can double a task, and the copy never saw the Retry-After), nor a
    late one when a fault that can hold a task back (a pause, a slow link, a hang) overlapped
    the time since the message ended."""

    name = "llm_cost_within_bounds"
    kind = "safety"
    needs = frozenset({"oracle"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        calls = ctx.calls()
        oracle = ctx.model.oracle
        if calls is None or oracle is None:
            return Unknown("the LLM stub's records could not be read")
        spans = fault_spans(ctx.history)
        budget = ctx.model.max_attempts + oracle.extra_calls
        problems: list[str] = []
        excused: list[str] = []
        for message_id, stages in sorted(by_message(calls).items(), key=lambda m: id_order(m[0])):
            for stage, made in stages.items():
                if len(made) > budget:
                    problems.append(
                        f"message {message_id}'s {stage} stage made {len(made)} LLM calls; its"
                        f" budget is {ctx.model.max_attempts} attempts"
                        + (f" and {oracle.extra_calls} extra calls" if oracle.extra_calls else "")
                    )
        for call in calls:
            if not call.early:
                continue
            what = f"message {call.message_id}'s {call.stage} call {call.describe()}"
            others = other_than_llm(spans, before=call.requested_at)
            if others:
                excused.append(f"{what} came early, after {others[0].describe()}")
            else:
                problems.append(f"{what} came before the Retry-After it was given ran out")
        for call in calls:
            ended = ctx.model.terminal_seen_at.get(call.message_id)
            if ended is None or call.requested_at <= ended + LATE_CALL_GRACE:
                continue
            stage = ctx.model.seen_stage.get(call.message_id, "terminal")
            what = (
                f"message {call.message_id} was seen {stage} at {ended:.2f}s, yet its"
                f" {call.stage} stage called the LLM {call.describe()}"
            )
            holding = [
                s for s in spans if s.holds_work_back() and s.overlaps(ended, call.requested_at)
            ]
            if holding:
                excused.append(f"{what}, during {holding[0].describe()}")
            else:
                problems.append(what)
        if problems:
            return "; ".join(problems[:10])
        return Unknown("; ".join(excused[:5])) if excused else None
