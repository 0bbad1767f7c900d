"""Liveness invariants: checked at teardown, after heal-all and a quiescence wait.

A violation here means the system did not get where it must eventually get: a message lost or
stuck, a dashboard that missed events, a stack that does not recover by itself.
"""

from __future__ import annotations

from collections import Counter

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.message_ids import id_order


class Quiesces(Invariant):
    """After every fault is healed the system becomes idle (no pending work the adapter counts,
    such as an unsent outbox; a durable queue consumer with nothing pending or unacknowledged;
    no task running; LLM idle; Telegram done) within the quiescence deadline."""

    name = "quiesces_after_heal"
    kind = "liveness"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.quiesced is None:
            return Unknown("quiescence was not awaited")
        if ctx.quiesced:
            return None
        detail = ", ".join(f"{kind} {count}" for kind, count in sorted(ctx.pending.items()))
        return f"work still pending at the quiescence deadline ({detail or 'unknown'})"


class AcceptedUpdatesComplete(Invariant):
    """Every update Telegram considers delivered is stored exactly once and reaches a terminal
    stage of the target's stage graph (``extracted`` or ``failed``); which one it must be is
    ``outcome_as_predicted``'s to judge, and that a ``failed`` one carries a reason
    ``stage_rules_hold``'s."""

    name = "accepted_updates_complete"
    kind = "liveness"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return Unknown("no database snapshot after heal")
        by_update = Counter(row.update_id for row in ctx.snapshot.messages)
        rows = {row.update_id: row for row in ctx.snapshot.messages}
        problems: list[str] = []
        for update_id in sorted(ctx.model.accepted):
            count = by_update.get(update_id, 0)
            if count == 0:
                problems.append(f"update {update_id} accepted but never stored as a message")
                continue
            if count > 1:
                problems.append(f"update {update_id} stored {count} times")
            row = rows[update_id]
            if row.stage in ctx.model.graph.terminal:
                continue
            reason = f" ({row.failure_reason})" if row.failure_reason else ""
            problems.append(f"update {update_id} (message {row.id}) stuck at {row.stage}{reason}")
        return "; ".join(problems[:10]) if problems else None


class UnfinishedDeliveriesRetrying(Invariant):
    """Every update whose delivery Telegram has not finished is still being retried."""

    name = "unfinished_deliveries_retrying"
    kind = "liveness"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        unfinished = set(ctx.model.sent) - ctx.model.accepted
        abandoned = sorted(unfinished - ctx.model.retrying)
        return f"deliveries abandoned: {abandoned}" if abandoned else None


class FeedsSawEveryStage(Invariant):
    """A dashboard WebSocket client that resumed from its last event id has seen every stage
    event of every message (the feed loses nothing across reconnects)."""

    name = "feeds_saw_every_stage"
    kind = "liveness"
    needs = frozenset({"feed", "events"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return Unknown("no database snapshot after heal")
        stored = {(e.message_id, e.stage) for e in ctx.snapshot.events}
        problems: list[str] = []
        for feed in ctx.feeds:
            first = feed.events[0].event_id if feed.events else None
            expected = {
                (e.message_id, e.stage)
                for e in ctx.snapshot.events
                if first is not None and e.event_id >= first
            }
            if first is None:
                expected = stored if feed.resumed else set()
            seen = {(e.message_id, e.stage) for e in feed.events}
            missing = sorted(expected - seen, key=lambda event: (id_order(event[0]), event[1]))
            if missing:
                problems.append(f"feed {feed.name} missed {len(missing)} events: {missing[:5]}")
        return "; ".join(problems) if problems else None


class RecoversByItself(Invariant):
    """After heal, a fresh update completes end to end within the recovery bound."""

    name = "recovers_by_itself"
    kind = "liveness"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.recovery_seconds is None or ctx.recovery_seconds > ctx.recovery_bound:
            return f"a fresh update did not complete within {ctx.recovery_bound:.0f}s after heal"
        return None


LIVENESS: tuple[Invariant, ...] = (
    Quiesces(),
    AcceptedUpdatesComplete(),
    UnfinishedDeliveriesRetrying(),
    FeedsSawEveryStage(),
    RecoversByItself(),
)
