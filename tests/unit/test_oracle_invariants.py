"""The oracle's invariants judged on synthetic histories: for each, histories where it must say
valid, histories where it must say invalid, and histories that allow both outcomes, where it
must say unknown (never invalid)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from chaos_model.adapter import OracleSpec
from chaos_model.history import History, Op
from chaos_model.invariants import ORACLE, CheckContext, Invariant, ModelState, Verdict
from chaos_model.invariants.content import ContentAsSentAndAnswered
from chaos_model.invariants.cost import LLMCostWithinBounds
from chaos_model.invariants.latency import WebhookAnswersInTime
from chaos_model.invariants.outcome import OutcomeAsPredicted
from chaos_model.invariants.stages import StageRulesHold
from chaos_model.llm import expected_knowledge, expected_score
from chaos_model.observe import EventRow, MessageRow, Snapshot
from chaos_model.oracle import fault_spans, predict, webhook_attempts

ORACLE_SPEC = OracleSpec(
    message_key="message-{id}",
    calls={"scored": "reference-score", "extracted": "reference-extract"},
    attempts={"scored": "score", "extracted": "extract"},
)
TEXT = "the quick brown fox"
RULE = {"scored": "reference-score", "extracted": "reference-extract"}

# ---------------------------------------------------------------------------- builders


def call(
    stage: str,
    at: float,
    *,
    message: int = 1,
    status: int | None = 200,
    fault: str | None = None,
    took: float = 0.01,
    prompt: str = TEXT,
    early: bool = False,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """A record as the LLM stub keeps it (wall-clock times: the history starts at 1000)."""
    answered = status == 200 and fault not in ("malformed", "cut", "refusal")
    answer: Any = None
    if answered:
        answer = (
            {"score": expected_score(prompt)}
            if stage == "scored"
            else {"items": expected_knowledge(prompt)}
        )
    return {
        "key": f"message-{message}",
        "rule": RULE[stage],
        "requested_at": 1000.0 + at,
        "answered_at": None if status is None else 1000.0 + at + took,
        "status": status,
        "fault": fault,
        "answer": answer,
        "retry_after": retry_after,
        "before_retry_after": early,
        "prompt": prompt,
    }


def good(at: float = 0.1, message: int = 1, prompt: str = TEXT) -> list[dict[str, Any]]:
    """A score and an extraction, each answered at once."""
    return [
        call("scored", at, message=message, prompt=prompt),
        call("extracted", at + 0.05, message=message, prompt=prompt),
    ]


def failing(stage: str, count: int, start: float = 0.1, **kwargs: Any) -> list[dict[str, Any]]:
    return [call(stage, start + 0.3 * n, status=500, fault="error", **kwargs) for n in range(count)]


def row(
    stage: str = "extracted", score: float | None = None, reason: str | None = None
) -> MessageRow:
    if score is None and stage in ("scored", "extracted"):
        score = expected_score(TEXT)
    return MessageRow(1, 101, stage, score, reason)


def events(*stages: str, message: int = 1) -> tuple[EventRow, ...]:
    return tuple(EventRow(n + 1, message, stage) for n, stage in enumerate(stages))


def snapshot(
    message: MessageRow | None = None,
    *,
    log: tuple[str, ...] | None = None,
    items: list[str] | None = None,
    text: str = TEXT,
    attempts: tuple[tuple[str, int, int], ...] = (),
    unobserved: frozenset[str] = frozenset(),
) -> Snapshot:
    message = message or row()
    if log is None:
        log = {
            "received": ("received",),
            "scored": ("received", "scored"),
            "extracted": ("received", "scored", "extracted"),
            "failed": ("received", "failed"),
        }[message.stage]
    if items is None:
        items = expected_knowledge(TEXT) if message.stage == "extracted" else []
    return Snapshot(
        messages=(message,),
        events=events(*log),
        texts=((message.id, text),),
        items=tuple((message.id, item) for item in items),
        attempts=attempts,
        unobserved=unobserved,
    )


def history(*ops: tuple[str, str, str, Any, float, str | None]) -> History:
    """Ops as (process, type, f, value, time, error), in order."""
    made = History()
    made.ops = [
        Op(index, process, kind, f, value, at, error)  # type: ignore[arg-type]
        for index, (process, kind, f, value, at, error) in enumerate(ops)
    ]
    return made


def fault(value: dict[str, Any], start: float, end: float | None = None) -> list[Any]:
    ops: list[Any] = [
        ("nemesis", "invoke", "fault", value, start, None),
        ("nemesis", "ok", "fault", value, start + 0.01, None),
    ]
    if end is not None:
        ops += [
            ("nemesis", "invoke", "heal", value, end, None),
            ("nemesis", "ok", "heal", value, end + 0.01, None),
        ]
    return ops


def attempt(
    update: int, start: float, end: float, kind: str = "ok", error: str | None = None
) -> list[Any]:
    process = "telegram-chat-7"
    return [
        (process, "invoke", "deliver", {"update_id": update}, start, None),
        (process, kind, "deliver", {"update_id": update}, end, error),
    ]


LLM_ERROR = {"kind": "llm", "mode": "error", "seconds": 3.0}
KILL_WORKER = {"kind": "kill", "service": "worker"}
PAUSE_POSTGRES = {"kind": "pause", "service": "postgres"}
PAUSE_WORKER = {"kind": "pause", "service": "worker"}
TELEGRAM_PARTITION = {"kind": "partition", "link": "telegram->api"}


def ctx(
    snap: Snapshot | None = None,
    records: list[dict[str, Any]] | None = None,
    ops: list[Any] | None = None,
    *,
    terminal_seen_at: dict[int, float] | None = None,
    seen_stage: dict[int, str] | None = None,
    oracle: OracleSpec | None = ORACLE_SPEC,
    sent: str = TEXT,
) -> CheckContext:
    model = ModelState(
        sent={101: 0},
        accepted={101},
        max_attempts=10,
        texts={101: sent},
        terminal_seen_at=terminal_seen_at or {},
        seen_stage=seen_stage or {},
        wall_offset=1000.0,
        oracle=oracle,
        webhook_deadline=2.5,
        webhook_service="api",
    )
    return CheckContext(
        model=model,
        snapshot=snap if snap is not None else snapshot(),
        history=history(*(ops or [])),
        llm_records=records if records is not None else good(),
    )


# ---------------------------------------------------------------------------- cases

Case = tuple[str, Callable[[], CheckContext]]

VALID: dict[str, list[Case]] = {
    StageRulesHold.name: [
        ("extracted after received and scored", ctx),
        (
            "failed at the save stage, with a reason",
            lambda: ctx(snapshot(row("failed", None, "save: gave up"), log=("failed",))),
        ),
        (
            "a target without events or reasons cannot be judged on them",
            lambda: ctx(
                snapshot(row("failed"), log=(), unobserved=frozenset({"events", "failure_reason"}))
            ),
        ),
    ],
    ContentAsSentAndAnswered.name: [
        ("text, score and items as sent and answered", ctx),
        (
            "a NUL is stored as U+FFFD",
            lambda: ctx(
                snapshot(
                    text="a\ufffdb", items=[], message=row("scored", expected_score("a\ufffdb"))
                ),
                [call("scored", 0.1, prompt="a\ufffdb")],
                sent="a\x00b",
            ),
        ),
        (
            "asked twice (a crash after the answer), answered the same",
            lambda: ctx(records=[call("scored", 0.1), *good(0.5)]),
        ),
        (
            "a rounded score within the adapter's tolerance",
            lambda: ctx(
                snapshot(row(score=round(expected_score(TEXT), 2))),
                oracle=dataclasses.replace(ORACLE_SPEC, score_tolerance=0.005),
            ),
        ),
    ],
    LLMCostWithinBounds.name: [
        ("two calls", ctx),
        ("the whole budget", lambda: ctx(records=failing("scored", 9) + good(3.0))),
        (
            "a call a moment after the message ended (a duplicate that checked just before)",
            lambda: ctx(records=[*good(), call("extracted", 1.2)], terminal_seen_at={1: 0.2}),
        ),
    ],
    WebhookAnswersInTime.name: [
        (
            "answers in time",
            lambda: ctx(ops=attempt(101, 0.1, 0.2) + attempt(101, 0.3, 2.3, "fail", "HTTP 503")),
        ),
        (
            "a refused connection is quick",
            lambda: ctx(ops=attempt(101, 0.1, 0.1, "fail", "ConnectError")),
        ),
    ],
    OutcomeAsPredicted.name: [
        ("extracted, every stage answered", ctx),
        (
            "failed after the whole budget failed",
            lambda: ctx(
                snapshot(
                    row("failed", None, "score: gave up after 10 attempts"),
                    attempts=(("score", 1, 10),),
                ),
                failing("scored", 10),
                fault(LLM_ERROR, 0.05),
            ),
        ),
        (
            "extracted after a few failures within the budget",
            lambda: ctx(records=failing("scored", 4) + good(1.5), ops=fault(LLM_ERROR, 0.05, 1.4)),
        ),
        ("not finished: not judged here", lambda: ctx(snapshot(row("received", None)), records=[])),
    ],
}

INVALID: dict[str, list[Case]] = {
    StageRulesHold.name: [
        (
            "extracted with no scored event before it",
            lambda: ctx(snapshot(log=("received", "extracted"))),
        ),
        (
            "scored event without a received one",
            lambda: ctx(snapshot(row("scored"), log=("scored",))),
        ),
        (
            "extracted with no score",
            lambda: ctx(snapshot(MessageRow(1, 101, "extracted", None, None))),
        ),
        ("failed without a reason", lambda: ctx(snapshot(row("failed")))),
        ("stage without its own event", lambda: ctx(snapshot(row("scored"), log=("received",)))),
        (
            "left a terminal stage",
            lambda: ctx(
                snapshot(row("failed", None, "x"), log=("received", "failed")),
                seen_stage={1: "extracted"},
            ),
        ),
    ],
    ContentAsSentAndAnswered.name: [
        ("text changed on the way", lambda: ctx(sent=TEXT + " ")),
        ("score not the answer", lambda: ctx(snapshot(row(score=round(expected_score(TEXT), 2))))),
        ("fewer items", lambda: ctx(snapshot(items=expected_knowledge(TEXT)[1:] or []))),
        ("more items", lambda: ctx(snapshot(items=[*expected_knowledge(TEXT), "fact 9: extra"]))),
        ("a score nobody answered", lambda: ctx(records=[])),
        ("the LLM was asked about another text", lambda: ctx(records=good(prompt="another text"))),
    ],
    LLMCostWithinBounds.name: [
        ("over the budget", lambda: ctx(records=failing("scored", 11) + good(4.0))),
        (
            "before the Retry-After ran out, with only LLM faults",
            lambda: ctx(
                records=[
                    call("scored", 0.1, status=429, retry_after=1.0),
                    call("scored", 0.3, early=True),
                    call("extracted", 0.4),
                ],
                ops=fault({"kind": "llm", "mode": "rate_limit", "seconds": 1.0}, 0.05, 0.2),
            ),
        ),
        (
            "a call long after the message ended",
            lambda: ctx(
                records=[*good(), call("extracted", 4.5)],
                terminal_seen_at={1: 0.3},
                ops=fault(KILL_WORKER, 0.2, 0.9),
            ),
        ),
    ],
    WebhookAnswersInTime.name: [
        (
            "over the deadline while the database was down",
            lambda: ctx(ops=fault(PAUSE_POSTGRES, 0.0) + attempt(101, 0.1, 2.9)),
        ),
        (
            "Telegram gave up waiting",
            lambda: ctx(ops=attempt(101, 0.1, 3.1, "info", "ReadTimeout")),
        ),
    ],
    OutcomeAsPredicted.name: [
        (
            "failed with attempts left, every fault the LLM's",
            lambda: ctx(
                snapshot(
                    row("failed", None, "score: LLM answered 500"), attempts=(("score", 1, 1),)
                ),
                failing("scored", 1),
                fault(LLM_ERROR, 0.05, 3.0),
            ),
        ),
        (
            "failed though every stage was answered",
            lambda: ctx(snapshot(row("failed", expected_score(TEXT), "extract: ?"))),
        ),
        (
            "extracted without an answer to its extraction",
            lambda: ctx(records=[call("scored", 0.1), *failing("extracted", 2, 0.2)]),
        ),
        (
            "extracted though the whole budget failed",
            lambda: ctx(
                records=failing("scored", 10) + good(3.5)[:1] + good(3.6)[1:],
                oracle=dataclasses.replace(ORACLE_SPEC, extra_calls=1),
            ),
        ),
    ],
}

UNKNOWN: dict[str, list[Case]] = {
    StageRulesHold.name: [("no snapshot", lambda: CheckContext(ModelState(), None))],
    ContentAsSentAndAnswered.name: [
        ("records unreadable", lambda: _without_records()),
    ],
    LLMCostWithinBounds.name: [
        (
            "an early call after a crash (a doubled task never saw the Retry-After)",
            lambda: ctx(
                records=[
                    call("scored", 0.1, status=429, retry_after=1.0),
                    call("scored", 0.3, early=True),
                    call("extracted", 0.4),
                ],
                ops=fault(KILL_WORKER, 0.0, 0.05),
            ),
        ),
        (
            "a late call while the worker was paused",
            lambda: ctx(
                records=[*good(), call("extracted", 4.5)],
                terminal_seen_at={1: 0.3},
                ops=fault(PAUSE_WORKER, 0.1, 4.4),
            ),
        ),
    ],
    WebhookAnswersInTime.name: [
        (
            "late while Telegram's own link was cut",
            lambda: ctx(
                ops=fault(TELEGRAM_PARTITION, 0.0, 2.0)
                + attempt(101, 0.1, 3.1, "info", "ReadTimeout")
            ),
        ),
        (
            "late during a hang",
            lambda: ctx(
                ops=fault({"kind": "failpoint", "name": "api.x", "action": "hang"}, 0.0)
                + attempt(101, 0.1, 3.1, "info", "ReadTimeout")
            ),
        ),
        (
            "late during a fault of a kind the model does not know",
            lambda: ctx(ops=fault({"kind": "brownout", "site": "x"}, 0.0) + attempt(101, 0.1, 2.9)),
        ),
    ],
    OutcomeAsPredicted.name: [
        (
            "failed early, but a crash may have spent attempts",
            lambda: ctx(
                snapshot(row("failed", None, "score: gave up")),
                failing("scored", 3),
                fault(KILL_WORKER, 0.0, 0.5),
            ),
        ),
        (
            "failed early, and the target counted attempts that made no call",
            lambda: ctx(
                snapshot(row("failed", None, "score: gave up"), attempts=(("score", 1, 10),)),
                failing("scored", 3),
            ),
        ),
        (
            "an answer came late (the client may have given up on it)",
            lambda: ctx(
                snapshot(row("failed", None, "score: gave up")),
                [call("scored", 0.1, fault="slow", took=0.8)],
            ),
        ),
        (
            "more calls than attempts",
            lambda: ctx(snapshot(row("failed", None, "score: gave up")), failing("scored", 12)),
        ),
    ],
}


def _without_records() -> CheckContext:
    context = ctx()
    context.llm_records = None
    return context


NAMES = [invariant.name for invariant in ORACLE]
BY_NAME = {invariant.name: invariant for invariant in ORACLE}


def _cases(table: dict[str, list[Case]]) -> list[object]:
    return [
        pytest.param(BY_NAME[name], build, id=f"{name}-{label}")
        for name, cases in table.items()
        for label, build in cases
    ]


def test_every_oracle_invariant_has_valid_invalid_and_unknown_cases() -> None:
    for table in (VALID, INVALID, UNKNOWN):
        assert set(table) == set(NAMES)
        assert all(table[name] for name in NAMES)


@pytest.mark.parametrize(("invariant", "build"), _cases(VALID))
def test_valid(invariant: Invariant, build: Callable[[], CheckContext]) -> None:
    result = invariant.check(build())
    assert result.verdict is Verdict.VALID, str(result)


@pytest.mark.parametrize(("invariant", "build"), _cases(INVALID))
def test_invalid(invariant: Invariant, build: Callable[[], CheckContext]) -> None:
    result = invariant.check(build())
    assert result.verdict is Verdict.INVALID, str(result)
    assert "message 1" in result.detail or "update 101" in result.detail, result.detail


@pytest.mark.parametrize(("invariant", "build"), _cases(UNKNOWN))
def test_unknown(invariant: Invariant, build: Callable[[], CheckContext]) -> None:
    result = invariant.check(build())
    assert result.verdict is Verdict.UNKNOWN, str(result)
    assert result.detail, "an unknown verdict says why"


# ---------------------------------------------------------------------------- explanations


def test_a_violated_prediction_names_the_message_the_prediction_its_reason_and_the_store() -> None:
    context = ctx(
        snapshot(row("failed", None, "score: LLM answered 500"), attempts=(("score", 1, 1),)),
        failing("scored", 1),
        fault(LLM_ERROR, 0.05, 3.0),
    )
    detail = OutcomeAsPredicted().check(context).detail
    assert detail.startswith("message 1 (update 101) is failed (score: LLM answered 500);")
    assert "predicted extracted" in detail
    assert "HTTP 500 (llm fault error)" in detail
    assert "9 of its 10 attempts were left, and every fault was the LLM's" in detail


def test_a_late_answer_names_the_faults_it_met() -> None:
    detail = (
        WebhookAnswersInTime()
        .check(ctx(ops=fault(PAUSE_POSTGRES, 0.0) + attempt(101, 0.1, 2.9)))
        .detail
    )
    assert "update 101 at 0.10s took 2.80s (HTTP 2xx)" in detail
    assert "while pause(service=postgres) from 0.00s never healed" in detail


def test_without_an_oracle_section_the_invariants_that_need_it_do_not_apply() -> None:
    needing = {invariant.name for invariant in ORACLE if "oracle" in invariant.needs}
    assert needing == {
        "content_as_sent_and_answered",
        "llm_cost_within_bounds",
        "outcome_as_predicted",
    }


# ---------------------------------------------------------------------------- the model's parts


def test_fault_spans_run_from_application_to_heal_and_heal_all_ends_the_rest() -> None:
    made = history(
        *fault(KILL_WORKER, 1.0, 2.0),
        *fault(PAUSE_POSTGRES, 1.5),
        ("nemesis", "invoke", "heal-all", None, 3.0, None),
        ("nemesis", "ok", "heal-all", ["postgres"], 3.5, None),
        *fault(LLM_ERROR, 4.0),
    )
    spans = fault_spans(made)
    assert [(span.kind, span.start, span.end) for span in spans] == [
        ("kill", 1.0, 2.01),
        ("pause", 1.5, 3.5),
        ("llm", 4.0, float("inf")),
    ]
    assert [span.holds_work_back() for span in spans] == [False, True, False]


def test_webhook_attempts_pair_each_post_with_its_end() -> None:
    made = history(*attempt(5, 0.5, 0.6), *attempt(5, 0.7, 3.7, "info", "ReadTimeout"))
    first, second = webhook_attempts(made)
    assert (first.update_id, first.timed_out, second.timed_out) == (5, False, True)
    assert first.seconds == pytest.approx(0.1) and second.seconds == pytest.approx(3.0)


def test_the_prediction_for_a_stage_that_never_answered_in_time() -> None:
    context = ctx(records=failing("scored", 10))
    calls = context.calls()
    assert calls is not None
    prediction = predict({"scored": list(calls)}, ("scored", "extracted"), 10)
    assert prediction.expected == "failed"
    assert "its budget of 10 attempts all failed" in prediction.why


def test_a_point_fault_holds_work_back_only_when_it_hangs() -> None:
    crash = {"kind": "point", "service": "api", "point": "p", "when": "after", "action": "crash"}
    hang = {**crash, "action": "hang"}
    ops = fault(crash, 0.0, 1.0) + fault(hang, 4.0, 6.0)
    assert [span.holds_work_back() for span in fault_spans(history(*ops))] == [False, True]
    late = attempt(101, 0.1, 2.9) + attempt(101, 4.1, 7.1, "info", "ReadTimeout")
    result = WebhookAnswersInTime().check(ctx(ops=ops + late))
    assert result.verdict is Verdict.INVALID
    assert "update 101 at 0.10s took 2.80s" in result.detail and "at 4.10s" not in result.detail
