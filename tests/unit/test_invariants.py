"""Every invariant of the stored shape judged on synthetic observations: one context it must
accept, one it must reject, and the unknown verdicts (missing snapshot, crashed checker). The
oracle's invariants have theirs in test_oracle_invariants.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from chaos_model.invariants import (
    ALL,
    LIVENESS,
    ORACLE,
    SAFETY,
    CheckContext,
    Invariant,
    ModelState,
    Unknown,
    Verdict,
)
from chaos_model.invariants.liveness import (
    AcceptedUpdatesComplete,
    FeedsSawEveryStage,
    Quiesces,
    RecoversByItself,
    UnfinishedDeliveriesRetrying,
)
from chaos_model.invariants.safety import (
    AttemptsWithinBound,
    NoKnowledgeWithoutScore,
    NothingStoredForRejected,
    OneMessagePerUpdate,
    OneScoreAndExtractionPerMessage,
    StagesNeverGoBackwards,
)
from chaos_model.observe import STAGES, EventRow, FeedObservation, MessageRow, Snapshot, is_forward

# ---------------------------------------------------------------------------- builders


def msg(
    id: int,
    update_id: int,
    stage: str = "extracted",
    score: float | None = 0.5,
    failure_reason: str | None = None,
) -> MessageRow:
    return MessageRow(id, update_id, stage, score, failure_reason)


def ev(event_id: int, message_id: int, stage: str) -> EventRow:
    return EventRow(event_id, message_id, stage)


def full_events(message_id: int, first_event_id: int) -> tuple[EventRow, ...]:
    """received -> scored -> extracted for one message."""
    return tuple(
        ev(first_event_id + i, message_id, stage)
        for i, stage in enumerate(("received", "scored", "extracted"))
    )


def healthy_snapshot() -> Snapshot:
    """Two updates (101, 102) stored once each, scored, extracted, with knowledge."""
    return Snapshot(
        messages=(msg(1, 101), msg(2, 102)),
        knowledge=((1, 0), (1, 1), (2, 0)),
        attempts=(("score", 1, 1), ("extract", 1, 2), ("score", 2, 1)),
        update_ids=frozenset({101, 102}),
        events=full_events(1, 1) + full_events(2, 4),
    )


def healthy_model() -> ModelState:
    return ModelState(
        sent={101: 0, 102: 1},
        accepted={101, 102},
        rejected={900},
        seen_stage={1: "scored", 2: "received"},
        max_attempts=3,
    )


def ctx(
    snapshot: Snapshot | None = None,
    model: ModelState | None = None,
    feeds: list[FeedObservation] | None = None,
    quiesced: bool | None = True,
    recovery_seconds: float | None = 1.5,
    recovery_bound: float = 15.0,
    pending: dict[str, int] | None = None,
) -> CheckContext:
    return CheckContext(
        model=model if model is not None else healthy_model(),
        snapshot=snapshot if snapshot is not None else healthy_snapshot(),
        feeds=feeds if feeds is not None else [],
        quiesced=quiesced,
        pending=pending or {},
        recovery_seconds=recovery_seconds,
        recovery_bound=recovery_bound,
    )


def healthy() -> CheckContext:
    snapshot = healthy_snapshot()
    feeds = [
        FeedObservation("a", list(snapshot.events), resumed=True, connected=True),
        # joined late: it only owes the events from its first one on
        FeedObservation("b", list(snapshot.events[3:]), resumed=False, connected=True),
    ]
    return ctx(snapshot=snapshot, feeds=feeds)


def replace_snapshot(**changes: Any) -> Snapshot:
    return dataclasses.replace(healthy_snapshot(), **changes)


# ---------------------------------------------------------------------------- cases

Case = tuple[str, Callable[[], CheckContext]]

VALID: dict[str, list[Case]] = {
    OneMessagePerUpdate.name: [("healthy", healthy), ("empty", lambda: ctx(Snapshot()))],
    OneScoreAndExtractionPerMessage.name: [
        ("healthy", healthy),
        # received twice is not a scoring or extraction repeat
        (
            "received twice",
            lambda: ctx(replace_snapshot(events=(ev(1, 1, "received"), ev(2, 1, "received")))),
        ),
    ],
    NoKnowledgeWithoutScore.name: [
        ("healthy", healthy),
        (
            "score 0.0 counts as scored",
            lambda: ctx(replace_snapshot(messages=(msg(1, 101, score=0.0),), knowledge=((1, 0),))),
        ),
    ],
    NothingStoredForRejected.name: [("healthy", healthy)],
    StagesNeverGoBackwards.name: [
        ("healthy", healthy),
        (
            "failed from received",
            lambda: ctx(
                replace_snapshot(
                    messages=(msg(1, 101, "failed", None, "llm down"),),
                    events=(ev(1, 1, "received"), ev(2, 1, "failed")),
                ),
                model=ModelState(seen_stage={1: "received"}),
            ),
        ),
    ],
    AttemptsWithinBound.name: [
        ("healthy", healthy),
        (
            "exactly at the bound",
            lambda: ctx(replace_snapshot(attempts=(("score", 1, 3),))),
        ),
    ],
    Quiesces.name: [("healthy", healthy)],
    AcceptedUpdatesComplete.name: [
        ("healthy", healthy),
        (
            # which terminal stage it must be is outcome_as_predicted's to judge
            "failed",
            lambda: ctx(
                replace_snapshot(
                    messages=(msg(1, 101), msg(2, 102, "failed", 0.1, "llm kept failing"))
                ),
                model=ModelState(accepted={101, 102}),
            ),
        ),
    ],
    UnfinishedDeliveriesRetrying.name: [
        ("healthy", healthy),
        (
            "unfinished but retrying",
            lambda: ctx(model=ModelState(sent={1: 0, 2: 0}, accepted={1}, retrying={2})),
        ),
    ],
    FeedsSawEveryStage.name: [
        ("healthy", healthy),
        (
            "never connected, not resumed",
            lambda: ctx(feeds=[FeedObservation("idle", [], resumed=False)]),
        ),
    ],
    RecoversByItself.name: [("healthy", healthy)],
}

INVALID: dict[str, list[Case]] = {
    OneMessagePerUpdate.name: [
        ("update stored twice", lambda: ctx(replace_snapshot(messages=(msg(1, 101), msg(2, 101)))))
    ],
    OneScoreAndExtractionPerMessage.name: [
        (
            "scored twice",
            lambda: ctx(
                replace_snapshot(
                    events=(ev(1, 1, "received"), ev(2, 1, "scored"), ev(3, 1, "scored"))
                )
            ),
        ),
        (
            "extracted twice",
            lambda: ctx(replace_snapshot(events=(ev(1, 2, "extracted"), ev(2, 2, "extracted")))),
        ),
        ("knowledge item twice", lambda: ctx(replace_snapshot(knowledge=((1, 0), (1, 0))))),
    ],
    NoKnowledgeWithoutScore.name: [
        (
            "knowledge for an unscored message",
            lambda: ctx(
                replace_snapshot(messages=(msg(1, 101, "received", None),), knowledge=((1, 0),))
            ),
        ),
        (
            "knowledge for an unknown message",
            lambda: ctx(replace_snapshot(knowledge=((1, 0), (77, 0)))),
        ),
    ],
    NothingStoredForRejected.name: [
        (
            "rejected update in the inbox",
            lambda: ctx(replace_snapshot(update_ids=frozenset({101, 102, 900}))),
        ),
        (
            "rejected update stored as a message",
            lambda: ctx(replace_snapshot(messages=(msg(1, 101), msg(2, 102), msg(3, 900)))),
        ),
    ],
    StagesNeverGoBackwards.name: [
        (
            "database went back across steps",
            lambda: ctx(
                replace_snapshot(messages=(msg(1, 101, "received", None), msg(2, 102)), events=()),
                model=ModelState(seen_stage={1: "scored"}),
            ),
        ),
        (
            "event log went back",
            lambda: ctx(
                replace_snapshot(
                    events=(ev(1, 1, "received"), ev(2, 1, "scored"), ev(3, 1, "received"))
                )
            ),
        ),
        (
            "feed saw a stage go back",
            lambda: ctx(feeds=[FeedObservation("a", [ev(2, 1, "scored"), ev(1, 1, "received")])]),
        ),
        (
            "left a terminal stage",
            lambda: ctx(
                replace_snapshot(messages=(msg(1, 101, "failed", None, "x"),), events=()),
                model=ModelState(seen_stage={1: "extracted"}),
            ),
        ),
    ],
    AttemptsWithinBound.name: [
        ("one over the bound", lambda: ctx(replace_snapshot(attempts=(("score", 1, 4),))))
    ],
    Quiesces.name: [("not quiesced", lambda: ctx(quiesced=False))],
    AcceptedUpdatesComplete.name: [
        (
            "accepted but never stored",
            lambda: ctx(model=ModelState(accepted={101, 102, 103})),
        ),
        (
            "accepted and stored twice",
            lambda: ctx(replace_snapshot(messages=(msg(1, 101), msg(2, 101), msg(3, 102)))),
        ),
        (
            "stuck at scored",
            lambda: ctx(replace_snapshot(messages=(msg(1, 101), msg(2, 102, "scored")))),
        ),
        (
            "stuck at received",
            lambda: ctx(replace_snapshot(messages=(msg(1, 101, "received", None), msg(2, 102)))),
        ),
    ],
    UnfinishedDeliveriesRetrying.name: [
        (
            "abandoned delivery",
            lambda: ctx(model=ModelState(sent={1: 0, 2: 0}, accepted={1}, retrying=set())),
        )
    ],
    FeedsSawEveryStage.name: [
        (
            "feed missed an event after its first",
            lambda: ctx(
                feeds=[
                    FeedObservation("a", [e for e in healthy_snapshot().events if e.event_id != 5])
                ]
            ),
        ),
        (
            "resumed feed saw nothing",
            lambda: ctx(feeds=[FeedObservation("a", [], resumed=True, connected=True)]),
        ),
    ],
    RecoversByItself.name: [("never recovered", lambda: ctx(recovery_seconds=None))],
}

NAMES = [invariant.name for invariant in ALL if invariant not in ORACLE]
BY_NAME = {invariant.name: invariant for invariant in ALL}


def _cases(table: dict[str, list[Case]]) -> list[object]:
    return [
        pytest.param(BY_NAME[name], build, id=f"{name}-{label}")
        for name, cases in table.items()
        for label, build in cases
    ]


def test_every_invariant_has_valid_and_invalid_cases() -> None:
    assert set(VALID) == set(NAMES)
    assert set(INVALID) == set(NAMES)
    assert all(VALID[name] and INVALID[name] for name in NAMES)


@pytest.mark.parametrize(("invariant", "build"), _cases(VALID))
def test_valid(invariant: Invariant, build: Callable[[], CheckContext]) -> None:
    result = invariant.check(build())
    assert result.verdict is Verdict.VALID, str(result)
    assert result.invariant == invariant.name
    assert result.kind == invariant.kind
    assert result.detail == ""


@pytest.mark.parametrize(("invariant", "build"), _cases(INVALID))
def test_invalid(invariant: Invariant, build: Callable[[], CheckContext]) -> None:
    result = invariant.check(build())
    assert result.verdict is Verdict.INVALID, str(result)
    assert result.detail, "a violation must say what is wrong"
    assert invariant.name in str(result) and "invalid" in str(result)


# ---------------------------------------------------------------------------- details


def test_invalid_details_name_the_culprits() -> None:
    result = OneMessagePerUpdate().check(
        ctx(replace_snapshot(messages=(msg(1, 7), msg(2, 7), msg(3, 5), msg(4, 5))))
    )
    assert result.detail == "update_ids stored more than once: [5, 7]"
    result = AttemptsWithinBound().check(ctx(replace_snapshot(attempts=(("score", 9, 4),))))
    assert result.detail == "over 3 attempts: ['score 9: 4']"
    result = UnfinishedDeliveriesRetrying().check(
        ctx(model=ModelState(sent={3: 0, 1: 0, 2: 0}, accepted={2}))
    )
    assert result.detail == "deliveries abandoned: [1, 3]"


def test_rejected_ids_that_were_never_stored_are_fine() -> None:
    model = healthy_model()
    model.rejected = {900, 901, 902}
    assert NothingStoredForRejected().check(ctx(model=model)).verdict is Verdict.VALID


# ---------------------------------------------------------------------------- unknown

NEEDS_SNAPSHOT = [
    OneMessagePerUpdate,
    OneScoreAndExtractionPerMessage,
    NoKnowledgeWithoutScore,
    NothingStoredForRejected,
    StagesNeverGoBackwards,
    AttemptsWithinBound,
    AcceptedUpdatesComplete,
    FeedsSawEveryStage,
]


def test_every_safety_invariant_of_the_shape_needs_a_snapshot() -> None:
    assert {type(inv) for inv in SAFETY if inv not in ORACLE} <= set(NEEDS_SNAPSHOT)


@pytest.mark.parametrize("cls", NEEDS_SNAPSHOT, ids=lambda cls: cls.name)
def test_missing_snapshot_is_unknown(cls: type[Invariant]) -> None:
    context = CheckContext(model=healthy_model(), snapshot=None, quiesced=True)
    result = cls().check(context)
    assert result.verdict is Verdict.UNKNOWN
    assert "snapshot" in result.detail


def test_quiescence_not_awaited_is_unknown() -> None:
    result = Quiesces().check(ctx(quiesced=None))
    assert result.verdict is Verdict.UNKNOWN
    assert result.detail == "quiescence was not awaited"


class _Crashing(Invariant):
    """Always crashes."""

    name = "crashing"
    kind = "safety"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        raise RuntimeError("boom")


class _SaysUnknown(Invariant):
    """Cannot tell."""

    name = "says_unknown"
    kind = "liveness"

    def violation(self, ctx: CheckContext) -> str | Unknown | None:
        return Unknown("cannot tell")


def test_crashing_checker_is_unknown_not_a_pass() -> None:
    result = _Crashing().check(ctx())
    assert result.verdict is Verdict.UNKNOWN
    assert "checker crashed" in result.detail and "boom" in result.detail


def test_base_invariant_without_violation_is_unknown() -> None:
    class Bare(Invariant):
        """Has no violation()."""

        name = "bare"
        kind = "safety"

    assert Bare().check(ctx()).verdict is Verdict.UNKNOWN


def test_unknown_from_violation_keeps_its_reason() -> None:
    result = _SaysUnknown().check(ctx())
    assert result.verdict is Verdict.UNKNOWN
    assert result.detail == "cannot tell"


def test_unknown_stage_in_data_crashes_into_unknown() -> None:
    """A stage the model does not know makes ``is_forward`` raise: unknown, never a pass."""
    context = ctx(replace_snapshot(events=(ev(1, 1, "received"), ev(2, 1, "teleported"))))
    result = StagesNeverGoBackwards().check(context)
    assert result.verdict is Verdict.UNKNOWN
    assert "checker crashed" in result.detail


def test_malformed_context_crashes_into_unknown() -> None:
    context = ctx(feeds=[None])  # type: ignore[list-item]
    for invariant in (StagesNeverGoBackwards(), FeedsSawEveryStage()):
        assert invariant.check(context).verdict is Verdict.UNKNOWN


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("invariant", ALL, ids=[invariant.name for invariant in ALL])
def test_statement_is_non_empty(invariant: Invariant) -> None:
    statement = invariant.statement()
    assert statement.strip()
    assert statement == statement.strip()


def test_names_are_unique_and_non_empty() -> None:
    names = [invariant.name for invariant in ALL]
    assert all(names)
    assert len(names) == len(set(names))


def test_kinds_are_safety_or_liveness() -> None:
    assert {inv.kind for inv in ALL} <= {"safety", "liveness"}
    assert all(inv.kind == "safety" for inv in SAFETY)
    assert all(inv.kind == "liveness" for inv in LIVENESS)
    assert ALL == SAFETY + LIVENESS


def test_result_str() -> None:
    result = Quiesces().check(ctx(quiesced=False, pending={"outbox_unsent": 2}))
    assert str(result) == (
        "[liveness] quiesces_after_heal invalid: work still pending at the quiescence deadline"
        " (outbox_unsent 2)"
    )
    assert str(Quiesces().check(ctx())) == "[liveness] quiesces_after_heal valid"


# ---------------------------------------------------------------------------- is_forward

ALLOWED = [
    ("received", "received"),
    ("scored", "scored"),
    ("extracted", "extracted"),
    ("failed", "failed"),
    ("received", "scored"),
    ("scored", "extracted"),
    ("received", "extracted"),  # a snapshot between steps may skip a stage
    ("received", "failed"),
    ("scored", "failed"),
]
FORBIDDEN = [
    ("scored", "received"),
    ("extracted", "received"),
    ("extracted", "scored"),
    ("extracted", "failed"),
    ("failed", "received"),
    ("failed", "scored"),
    ("failed", "extracted"),
]


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_is_forward_allowed(before: str, after: str) -> None:
    assert is_forward(before, after)


@pytest.mark.parametrize(("before", "after"), FORBIDDEN)
def test_is_forward_forbidden(before: str, after: str) -> None:
    assert not is_forward(before, after)


def test_is_forward_covers_every_pair() -> None:
    pairs = {(a, b) for a in STAGES for b in STAGES}
    assert set(ALLOWED) | set(FORBIDDEN) == pairs
    assert not set(ALLOWED) & set(FORBIDDEN)


def test_recovery_slower_than_the_bound_is_invalid() -> None:
    result = RecoversByItself().check(ctx(recovery_seconds=20.0, recovery_bound=15.0))
    assert result.verdict is Verdict.INVALID
