"""Latency: the webhook answers Telegram in time, whatever the fault."""

from __future__ import annotations

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.oracle import FaultSpan, fault_spans, webhook_attempts

#: fault kinds the model knows; a fault of another kind may hold the webhook back
KNOWN_KINDS = frozenset(
    {
        "pause",
        "kill",
        "stop",
        "partition",
        "network",
        "latency_ramp",
        "refuse_connections",
        "terminate_connections",
        "llm",
        "failpoint",
        "point",
    }
)


def holds_webhook_back(span: FaultSpan, service: str) -> bool:
    """The fault can delay the answer by itself, whatever the webhook does: it is on
    Telegram's own link, it pauses or stops the webhook's process, or it hangs a process."""
    fault = span.fault
    if str(fault.get("link", "")).startswith("telegram->"):
        return True
    if span.kind in ("pause", "stop") and fault.get("service") == service:
        return True
    return fault.get("action") == "hang" or span.kind not in KNOWN_KINDS


class WebhookAnswersInTime(Invariant):
    """Every webhook answer reaches Telegram within the deadline Telegram tolerates (the
    adapter's ``[webhook] deadline``; Telegram's own read timeout when it gives none), whatever
    else is failing: a delivery attempt answered later than that, or one Telegram stopped
    waiting for, is a violation (Telegram counts it as a timeout and delivers again, while the
    stuck handler holds its connection and its request). An attempt is not judged when a fault
    could hold its answer back by itself: a fault on Telegram's link to the webhook, a pause or
    stop of the webhook's service, or a hang."""

    name = "webhook_answers_in_time"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        deadline = ctx.model.webhook_deadline
        spans = fault_spans(ctx.history)
        late: list[str] = []
        excused: list[str] = []
        for attempt in webhook_attempts(ctx.history):
            if not attempt.timed_out and attempt.seconds <= deadline:
                continue
            holding = [
                span
                for span in spans
                if span.overlaps(attempt.start, attempt.end)
                and holds_webhook_back(span, ctx.model.webhook_service)
            ]
            if holding:
                excused.append(f"{attempt.describe()}, during {holding[0].describe()}")
                continue
            during = [s.describe() for s in spans if s.overlaps(attempt.start, attempt.end)]
            late.append(attempt.describe() + (f" while {', '.join(during[:2])}" if during else ""))
        if late:
            return f"answers later than the {deadline:g}s deadline: " + "; ".join(late[:5])
        return Unknown("; ".join(excused[:5])) if excused else None
