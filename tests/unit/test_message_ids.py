"""Message ids of any type the target's SQL returns (an integer, a UUID, text) go through the
observation path and every invariant, the oracle's too, without a crash or a false alarm."""

from __future__ import annotations

import tomllib
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chaos_model.adapter import OracleSpec, TargetSpec, parse_adapter
from chaos_model.invariants import ALL, CheckContext, ModelState, Verdict
from chaos_model.invariants.content import ContentAsSentAndAnswered
from chaos_model.invariants.safety import NoKnowledgeWithoutScore, OneMessagePerUpdate
from chaos_model.llm import expected_knowledge, expected_score
from chaos_model.message_ids import MessageId, id_order, message_id
from chaos_model.observe import EventRow, FeedObservation, Snapshot
from chaos_model.target import snapshot_of

ID = uuid.UUID("6f1c2a4e-9b7d-4c1e-8a2f-3d5e7f9a1b2c")
OTHER = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
TEXT = "the quick brown fox"
ADAPTER = """
[target]
name = "uuids"

[webhook]
service = "web"
path = "/hook"
secret = "s"

[services.web]
command = ["{python}", "-m", "web"]

[observe]
messages = "SELECT id, update_id, status, score, error FROM msgs"
knowledge = "SELECT msg_id, item FROM items"
attempts = "SELECT stage, msg_id, n FROM attempts"
inbox = "SELECT update_id FROM inbox"
events = "SELECT id, msg_id, stage FROM events"
texts = "SELECT id, body FROM msgs"
items = "SELECT msg_id, item FROM items"

[oracle]
message_key = "message-{id}"
calls = { scored = "reference-score", extracted = "reference-extract" }
attempts = { scored = "score", extracted = "extract" }
"""


@pytest.fixture(scope="module")
def spec() -> TargetSpec:
    return parse_adapter(tomllib.loads(ADAPTER), Path("/src/chaos-target.toml"))


def rows(*ids: Any, score: float | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """What the adapter's queries return for messages ``ids`` (updates 101, 102, ...), each
    scored and extracted as the LLM stub answered."""
    found: dict[str, list[tuple[Any, ...]]] = {name: [] for name in ("messages", "knowledge")}
    score = expected_score(TEXT) if score is None else score
    items = expected_knowledge(TEXT)
    for n, id_ in enumerate(ids):
        found["messages"].append((id_, 101 + n, "extracted", score, None))
        found["knowledge"] += [(id_, item) for item in items]
        found.setdefault("attempts", []).extend([("score", id_, 1), ("extract", id_, 1)])
        found.setdefault("inbox", []).append((101 + n,))
        stages = ("received", "scored", "extracted")
        found.setdefault("events", []).extend(
            (3 * n + k + 1, id_, stage) for k, stage in enumerate(stages)
        )
        found.setdefault("texts", []).append((id_, TEXT))
    found["items"] = found["knowledge"]
    return found


def records(*keys: str) -> list[dict[str, Any]]:
    """The LLM stub's records of a score and an extraction answered at once, per key."""
    made = []
    for n, key in enumerate(keys):
        for stage, rule, answer in (
            ("scored", "reference-score", {"score": expected_score(TEXT)}),
            ("extracted", "reference-extract", {"items": expected_knowledge(TEXT)}),
        ):
            at = 1000.1 + n + (0.05 if stage == "extracted" else 0.0)
            made.append(
                {
                    "key": key,
                    "rule": rule,
                    "requested_at": at,
                    "answered_at": at + 0.01,
                    "status": 200,
                    "fault": None,
                    "answer": answer,
                    "prompt": TEXT,
                }
            )
    return made


def context(spec: TargetSpec, snapshot: Snapshot, llm: list[dict[str, Any]]) -> CheckContext:
    updates = {row.update_id for row in snapshot.messages}
    model = ModelState(
        sent={update: 0 for update in updates},  # type: ignore[misc]
        accepted=set(updates),  # type: ignore[arg-type]
        texts={update: TEXT for update in updates},
        max_attempts=10,
        wall_offset=1000.0,
        oracle=spec.oracle,
        webhook_deadline=2.5,
        webhook_service="web",
    )
    model.saw(snapshot, at=0.5)
    # the dashboard feed sends the ids as JSON text
    feed = [EventRow(e.event_id, message_id(str(e.message_id)), e.stage) for e in snapshot.events]
    return CheckContext(
        model=model,
        snapshot=snapshot,
        feeds=[FeedObservation("a", feed, resumed=True, connected=True)],
        quiesced=True,
        recovery_seconds=1.0,
        llm_records=llm,
    )


def verdicts(ctx: CheckContext) -> dict[str, tuple[Verdict, str]]:
    results = [invariant.check(ctx) for invariant in ALL]
    return {result.invariant: (result.verdict, result.detail) for result in results}


@pytest.mark.parametrize(
    ("ids", "keys"),
    [
        ((ID, OTHER), (f"message-{ID}", f"message-{OTHER}")),
        # the service may write the UUID in capitals in its key
        ((ID,), (f"message-{str(ID).upper()}",)),
        (("msg-a", "msg-b"), ("message-msg-a", "message-msg-b")),
        # a text column holding numbers, and a numeric one: the same ids as integers
        (("7", Decimal(8)), ("message-7", "message-8")),
    ],
)
def test_a_healthy_run_with_ids_of_any_type_breaks_no_invariant(
    spec: TargetSpec, ids: tuple[Any, ...], keys: tuple[str, ...]
) -> None:
    snapshot = snapshot_of(spec, {}, rows(*ids))
    assert {type(row.id) for row in snapshot.messages} <= {int, str}
    found = verdicts(context(spec, snapshot, records(*keys)))
    assert {name: v for name, v in found.items() if v[0] is not Verdict.VALID} == {}


def test_a_uuid_message_without_a_score_but_with_knowledge_is_named(spec: TargetSpec) -> None:
    read = rows(ID, OTHER)
    read["messages"] = [(id_, n, "received", None, None) for id_, n, *_ in read["messages"]]
    read["events"] = [event for event in read["events"] if event[2] == "received"]
    result = NoKnowledgeWithoutScore().check(context(spec, snapshot_of(spec, {}, read), records()))
    assert result.verdict is Verdict.INVALID
    assert str(OTHER) in result.detail and str(ID) in result.detail


def test_what_the_llm_did_not_answer_is_still_found_for_a_uuid_message(spec: TargetSpec) -> None:
    read = rows(ID)
    read["items"] = read["items"][:-1]
    ctx = context(spec, snapshot_of(spec, {}, read), records(f"message-{ID}"))
    result = ContentAsSentAndAnswered().check(ctx)
    assert result.verdict is Verdict.INVALID, result
    assert f"message {ID}" in result.detail


def test_ids_of_mixed_kinds_are_sorted_not_compared(spec: TargetSpec) -> None:
    read = rows("abc", 42)
    read["messages"] = [(id_, 101, *rest) for id_, _, *rest in read["messages"]]
    result = OneMessagePerUpdate().check(context(spec, snapshot_of(spec, {}, read), records()))
    assert result.verdict is Verdict.INVALID and "[101]" in result.detail
    orphans = rows("abc", 42, score=0.5)
    orphans["messages"] = [(i, u, s, None, None) for i, u, s, *_ in orphans["messages"]]
    result = NoKnowledgeWithoutScore().check(
        context(spec, snapshot_of(spec, {}, orphans), records())
    )
    assert result.verdict is Verdict.INVALID
    assert result.detail == "knowledge for unscored messages [42, 'abc']"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        ("5", 5),
        ("-5", -5),
        ("05", "05"),
        (Decimal("5"), 5),
        (5.0, 5),
        (Decimal("5.5"), "5.5"),
        (ID, str(ID)),
        (str(ID).upper(), str(ID)),
        ("msg-a", "msg-a"),
        (True, "True"),
    ],
)
def test_message_id_gives_one_form_for_the_same_id(value: object, expected: object) -> None:
    assert message_id(value) == expected
    assert type(message_id(value)) is type(expected)


def test_the_oracle_reads_a_key_of_any_id() -> None:
    oracle = OracleSpec(message_key="toy-{id}", calls={})
    assert oracle.message_of(f"toy-{ID}") == str(ID)
    assert oracle.message_of("toy-42") == 42
    assert oracle.message_of("toy-msg-a") == "msg-a"
    assert oracle.message_of("other-42") is None
    assert oracle.message_of("toy-") is None


def test_id_order_puts_integers_first_then_text() -> None:
    ids: list[MessageId] = ["b", 10, "a", 9]
    assert sorted(ids, key=id_order) == [9, 10, "a", "b"]
