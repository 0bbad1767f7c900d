"""Safety invariants: checked after every step. A violation here means data is wrong now."""

from __future__ import annotations

import itertools
from collections import Counter

from chaos_model.invariants._base import CheckContext, Invariant, Unknown
from chaos_model.message_ids import MessageId, id_order
from chaos_model.observe import STAGES, is_forward


def _snapshot_or_unknown(ctx: CheckContext) -> Unknown | None:
    return Unknown("no database snapshot at this step") if ctx.snapshot is None else None


class OneMessagePerUpdate(Invariant):
    """No two messages are stored for one Telegram update_id."""

    name = "one_message_per_update"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        counts = Counter(row.update_id for row in ctx.snapshot.messages)
        doubled = sorted((update_id for update_id, n in counts.items() if n > 1), key=id_order)
        return f"update_ids stored more than once: {doubled}" if doubled else None


class OneScoreAndExtractionPerMessage(Invariant):
    """Each message is scored at most once and has at most one set of knowledge: at most one
    ``scored`` and one ``extracted`` event, and no knowledge item number twice."""

    name = "one_score_and_extraction_per_message"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        events = Counter((e.message_id, e.stage) for e in ctx.snapshot.events)
        repeated = sorted(
            f"message {mid} {stage} x{n}"
            for (mid, stage), n in events.items()
            if n > 1 and stage in ("scored", "extracted")
        )
        items = Counter(ctx.snapshot.knowledge)
        repeated += sorted(
            f"message {mid} item {no} x{n}" for (mid, no), n in items.items() if n > 1
        )
        return "; ".join(repeated) if repeated else None


class NoKnowledgeWithoutScore(Invariant):
    """Knowledge exists only for messages that have a score."""

    name = "no_knowledge_without_score"
    kind = "safety"
    needs = frozenset({"knowledge"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        scored = {row.id for row in ctx.snapshot.messages if row.score is not None}
        orphans = sorted({mid for mid, _ in ctx.snapshot.knowledge} - scored, key=id_order)
        return f"knowledge for unscored messages {orphans}" if orphans else None


class NothingStoredForRejected(Invariant):
    """Nothing is stored for a forged (wrong secret) or malformed update."""

    name = "nothing_stored_for_rejected"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        stored = set(ctx.snapshot.update_ids) | {row.update_id for row in ctx.snapshot.messages}
        leaked = sorted(stored & ctx.model.rejected)
        return f"rejected update_ids were stored: {leaked}" if leaked else None


class StagesNeverGoBackwards(Invariant):
    """A message's stage only moves forward (received -> scored -> extracted, or to failed from
    any unfinished stage): in the database across steps, in its event log, and in what every
    dashboard WebSocket client saw."""

    name = "stages_never_go_backwards"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        problems: list[str] = []
        for row in ctx.snapshot.messages:
            before = ctx.model.seen_stage.get(row.id)
            if before is not None and not is_forward(before, row.stage):
                problems.append(f"message {row.id} went {before} -> {row.stage}")
        sequences: list[tuple[str, dict[MessageId, list[str]]]] = [("events table", {})]
        for event in ctx.snapshot.events:
            sequences[0][1].setdefault(event.message_id, []).append(event.stage)
        for feed in ctx.feeds:
            per_message: dict[MessageId, list[str]] = {}
            for event in feed.events:
                per_message.setdefault(event.message_id, []).append(event.stage)
            sequences.append((f"feed {feed.name}", per_message))
        for where, per_message in sequences:
            for mid, stages in per_message.items():
                for before, after in itertools.pairwise(stages):
                    if not is_forward(before, after):
                        problems.append(f"{where}: message {mid} went {before} -> {after}")
        return "; ".join(problems[:10]) if problems else None


class AttemptsWithinBound(Invariant):
    """No stage runs more than the configured maximum number of attempts for one subject."""

    name = "attempts_within_bound"
    kind = "safety"
    needs = frozenset({"attempts"})

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        if ctx.snapshot is None:
            return _snapshot_or_unknown(ctx)
        over = sorted(
            f"{stage} {key}: {count}"
            for stage, key, count in ctx.snapshot.attempts
            if count > ctx.model.max_attempts
        )
        return f"over {ctx.model.max_attempts} attempts: {over}" if over else None


SAFETY: tuple[Invariant, ...] = (
    OneMessagePerUpdate(),
    OneScoreAndExtractionPerMessage(),
    NoKnowledgeWithoutScore(),
    NothingStoredForRejected(),
    StagesNeverGoBackwards(),
    AttemptsWithinBound(),
)

assert all(stage in STAGES for stage in ("received", "scored", "extracted", "failed"))
