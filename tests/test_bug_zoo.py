"""The bug zoo's last four entries, each driven through its known-minimal scenario by hand.

Every test runs twice: on a stack of its own with the bug switched on (``[bug]``), where it
asserts the symptom the bug produces, and on a correct stack (``[correct]``, one shared by the
module and reset before each test), where the same scenario must not show it. No state machine
here: httpx posts, the stack's service controls and failpoints, PostgreSQL and the NATS monitor.
What each bug is and why it matters: ``docs/bugs.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from helpers import Api, assert_processed_once, db_fetch, make_update

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.llm_stub import expected_knowledge
from chaos_model.stack import LocalStack

pytestmark = pytest.mark.slow

CORRECT = ""
#: how long a buggy stack is watched to show that something does not happen (it never would:
#: each test also checks that nothing is left that could make it happen later)
OBSERVATION_WINDOW = 3.0
#: how long no_pool_recovery's webhook must keep failing after PostgreSQL is back
STILL_503_FOR = 5.0


@pytest.fixture(scope="module")
def correct_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def zoo(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """``request.param`` names the bug: a fresh stack with it on; ``CORRECT``: the shared stack."""
    name: str = request.param
    if name == CORRECT:
        correct: LocalStack = request.getfixturevalue("correct_stack")
        correct.reset()
        yield correct
        correct.heal()
        return
    with LocalStack(bugs=(name,)) as own:
        yield own


def _variants(bug: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("zoo", [bug, CORRECT], ids=["bug", "correct"], indirect=True)


@pytest.fixture
def api(zoo: LocalStack) -> Iterator[Api]:
    client = Api(zoo)
    yield client
    client.close()


def _happens_within(condition: Callable[[], Any], seconds: float, what: str) -> bool:
    """Whether ``condition`` holds within ``seconds`` (a bounded observation, not a sleep)."""
    try:
        wait_until(condition, timeout=seconds, what=what)
    except WaitTimeout:
        return False
    return True


def _stored_update_ids(stack: LocalStack) -> list[int]:
    return [row["update_id"] for row in db_fetch(stack, "SELECT update_id FROM telegram_updates")]


def _message_update_ids(stack: LocalStack) -> list[int]:
    return [row["update_id"] for row in db_fetch(stack, "SELECT update_id FROM messages")]


def _jsz(stack: LocalStack) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.endpoints.nats_monitor_url}/jsz?streams=true&consumers=true", timeout=2
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _stream_messages(stack: LocalStack) -> int:
    details = _jsz(stack)["account_details"]
    return sum(stream["state"]["messages"] for acc in details for stream in acc["stream_detail"])


def _consumer_idle(stack: LocalStack) -> bool:
    """Every task published so far was delivered and acknowledged."""
    for account in _jsz(stack)["account_details"]:
        for stream in account["stream_detail"]:
            for consumer in stream.get("consumer_detail", []):
                if consumer["num_ack_pending"] or consumer["num_pending"]:
                    return False
    return True


# ---------------------------------------------------------------- publish_outside_txn
@_variants("publish_outside_txn")
def test_publish_outside_txn_api_crash_after_commit_loses_the_update(
    zoo: LocalStack, api: Api
) -> None:
    """failpoint(api.webhook.after_commit_before_response, crash); deliver; (Telegram retries).

    Bug: the update is committed but its save task was to be published after the commit; the
    redelivery is deduplicated, so nothing ever publishes it: stored, never a message.
    Correct: the outbox row committed with the update; the relay publishes it."""
    buggy = bool(zoo.bugs)
    update = make_update(chat_id=21)
    uid = update["update_id"]
    zoo.failpoints.arm("api.webhook.after_commit_before_response", "crash")
    with pytest.raises(httpx.TransportError):
        api.post_update(update)
    wait_until(
        lambda: not zoo.services["api"].is_running(),
        timeout=5,
        what="the API to crash at api.webhook.after_commit_before_response",
    )
    zoo.heal()  # the API restarts; Telegram, having no answer, delivers the update again
    response = api.post_update(update)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] is False  # the first attempt had committed it

    if not buggy:
        api.wait_stage([uid], "extracted")
        assert_processed_once(zoo, api, [update])
        return
    became_message = _happens_within(
        lambda: uid in _message_update_ids(zoo), OBSERVATION_WINDOW, "a message for the update"
    )
    assert not became_message, "publish_outside_txn did not lose the update"
    # Lost for good: stored, but no outbox row and no task in the stream could ever process it.
    assert _stored_update_ids(zoo) == [uid]
    assert db_fetch(zoo, "SELECT count(*) AS n FROM outbox")[0]["n"] == 0
    assert _stream_messages(zoo) == 0
    assert api.messages() == []


# ---------------------------------------------------------------- respond_before_commit
@_variants("respond_before_commit")
def test_respond_before_commit_answers_200_then_loses_the_update(zoo: LocalStack, api: Api) -> None:
    """1. failpoint(api.webhook.after_response_before_commit, crash); deliver.
    2. kill(postgres); deliver; (heal).

    Bug: both deliveries are answered 200 (so Telegram never retries) and neither is stored.
    Correct: the failpoint is not on the path (the answer follows the commit), and while
    PostgreSQL is down the webhook answers 503 until the update is committed."""
    buggy = bool(zoo.bugs)
    api_service = zoo.services["api"]
    api_log = api_service.process.log_path

    # 1. The API dies right after answering.
    crashed = make_update(chat_id=22)
    zoo.failpoints.arm("api.webhook.after_response_before_commit", "crash")
    response = api.post_update(crashed)
    assert response.status_code == 200, response.text
    wait_until(
        lambda: not api_service.is_running() or crashed["update_id"] in _stored_update_ids(zoo),
        timeout=5,
        what="the API to crash after answering, or the update to be stored",
    )
    assert api_service.is_running() is not buggy
    zoo.heal()

    # 2. PostgreSQL is down when the update arrives.
    during_outage = make_update(chat_id=23)
    postgres = zoo.services["postgres"]
    postgres.kill()
    response = api.post_update(during_outage, timeout=3.0)
    assert response.status_code == (200 if buggy else 503), response.text
    if buggy:
        wait_until(
            lambda: "answered 200 but not stored" in api_log.read_text(),
            timeout=5,
            what="the background store to give up",
        )
    postgres.start()
    postgres.wait_ready()
    if not buggy:  # Telegram retries until a 2xx
        wait_until(
            lambda: api.post_update(during_outage, timeout=3.0).is_success,
            timeout=5,
            what="the webhook to accept the update once PostgreSQL is back",
        )

    updates = [crashed, during_outage]
    ids = [u["update_id"] for u in updates]
    if not buggy:
        api.wait_stage(ids, "extracted")
        assert_processed_once(zoo, api, updates)
        assert zoo.failpoints.hits() == {}
        return
    assert zoo.failpoints.hits() == {"api.webhook.after_response_before_commit": 1}
    stored = _happens_within(
        lambda: set(ids) & set(_stored_update_ids(zoo)), OBSERVATION_WINDOW, "either update stored"
    )
    assert not stored, "respond_before_commit stored an update after all"
    assert api.messages() == []
    assert db_fetch(zoo, "SELECT count(*) AS n FROM outbox")[0]["n"] == 0


# ---------------------------------------------------------------- non_idempotent_extract
@_variants("non_idempotent_extract")
def test_non_idempotent_extract_redelivery_duplicates_knowledge(zoo: LocalStack, api: Api) -> None:
    """failpoint(worker.extract.after_commit_before_ack, crash); deliver; (heal: JetStream
    redelivers the unacknowledged extract task to the restarted worker after the ack wait).

    Bug: the redelivered task inserts the knowledge items and the ``extracted`` event again.
    Correct: it finds the processed marker and only acknowledges."""
    buggy = bool(zoo.bugs)
    worker = zoo.services["worker"]
    update = make_update(chat_id=24)
    zoo.failpoints.arm("worker.extract.after_commit_before_ack", "crash")
    api.send([update])
    wait_until(
        lambda: not worker.is_running() and zoo.failpoints.hits(),
        timeout=15,
        what="the worker to crash after committing the knowledge",
        on_timeout=api.log_tails,
    )
    [message] = api.wait_stage([update["update_id"]], "extracted").values()
    items = len(expected_knowledge(update["message"]["text"]))
    assert len(api.knowledge(message["id"])) == items  # committed once before the crash
    zoo.heal()
    wait_until(
        lambda: _consumer_idle(zoo),
        timeout=15,
        what="the extract task to be redelivered and acknowledged",
        on_timeout=api.log_tails,
    )

    knowledge = api.knowledge(message["id"])
    events = db_fetch(
        zoo, "SELECT stage FROM events WHERE message_id = $1 ORDER BY event_id", message["id"]
    )
    if not buggy:
        assert_processed_once(zoo, api, [update])
        assert len(knowledge) == items
        return
    assert len(knowledge) == 2 * items, knowledge
    assert sorted(k["item_no"] for k in knowledge) == sorted(2 * list(range(items)))
    assert [e["stage"] for e in events] == ["received", "scored", "extracted", "extracted"]


# ---------------------------------------------------------------- no_pool_recovery
@_variants("no_pool_recovery")
def test_no_pool_recovery_webhook_503_after_postgres_restart(zoo: LocalStack, api: Api) -> None:
    """deliver; kill(postgres); (heal).

    Bug: the webhook's one held connection died with PostgreSQL and is never replaced: 503 for
    as long as we look while PostgreSQL is back and /health/ready says ready.
    Correct: the pool replaces the dead connection; the update is accepted at once."""
    buggy = bool(zoo.bugs)
    api_service = zoo.services["api"]
    api_pid = api_service.process.pid
    before = make_update(chat_id=25)
    api.send([before])  # the webhook's connection is in use before the restart

    postgres = zoo.services["postgres"]
    postgres.kill()
    postgres.start()
    postgres.wait_ready()
    assert api.ready().status_code == 200  # PostgreSQL is back and the API reports ready

    after = make_update(chat_id=25)
    answers: list[int] = []

    def accepted() -> bool:
        response = api.post_update(after, timeout=3.0)
        answers.append(response.status_code)
        return response.is_success

    began = time.monotonic()
    recovered = _happens_within(
        accepted,
        STILL_503_FOR,
        "the webhook to accept an update after PostgreSQL came back",
    )
    assert api_service.process.pid == api_pid, "the API process was restarted"
    if not buggy:
        assert recovered, answers
        api.wait_stage([before["update_id"], after["update_id"]], "extracted")
        assert_processed_once(zoo, api, [before, after])
        return
    assert not recovered, f"no_pool_recovery recovered: {answers}"
    assert time.monotonic() - began >= STILL_503_FOR
    assert len(answers) > 1 and set(answers) == {503}, answers
    assert api.ready().status_code == 200  # the health check does not notice
    assert after["update_id"] not in _stored_update_ids(zoo)
