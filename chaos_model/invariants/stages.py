"""Stage rules: every stored stage has what the target's stage graph says must come before it."""

from __future__ import annotations

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.message_ids import MessageId


class StageRulesHold(Invariant):
    """Every stored message obeys the target's stage graph (the adapter's ``[stage_graph]``):
    a message stored at a stage holds what the stages it requires store (a score from
    ``scored`` on); when the target keeps an event log, that log has an event for the
    message's stage and, before it, one for each stage it requires (``scored`` before
    ``extracted``); a ``failed`` message carries a failure reason; and a message once seen at a
    terminal stage is never seen at another. A rule about a column or a log the target does not
    expose is not judged."""

    name = "stage_rules_hold"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return Unknown("no database snapshot at this step")
        snapshot, graph = ctx.snapshot, ctx.model.graph
        hidden = snapshot.unobserved
        logs: dict[MessageId, list[str]] = {}
        for event in snapshot.events:
            logs.setdefault(event.message_id, []).append(event.stage)
        problems: list[str] = []
        for row in snapshot.messages:
            required = graph.predecessors(row.stage)
            who = f"message {row.id} (update {row.update_id})"
            if row.stage == "failed" and not row.failure_reason and "failure_reason" not in hidden:
                problems.append(f"{who} is failed without a reason")
            needs_score = row.stage == "scored" or "scored" in required
            if needs_score and row.score is None and "score" not in hidden:
                problems.append(f"{who} is {row.stage} with no score stored")
            if "events" not in hidden:
                log = logs.get(row.id, [])
                shown = " -> ".join(log) or "empty"
                if row.stage not in log:
                    problems.append(
                        f"{who} is {row.stage}, but its event log ({shown}) has no {row.stage}"
                    )
                else:
                    before = log[: log.index(row.stage)]
                    missing = [stage for stage in required if stage not in before]
                    if missing:
                        problems.append(
                            f"{who}: its {row.stage} event has no {' or '.join(missing)} event"
                            f" before it (event log: {shown})"
                        )
            seen = ctx.model.seen_stage.get(row.id)
            if seen in graph.terminal and row.stage != seen:
                problems.append(f"{who} was {seen}, a terminal stage, and is now {row.stage}")
        return "; ".join(problems[:10]) if problems else None
