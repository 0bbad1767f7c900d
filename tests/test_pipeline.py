"""The pipeline end to end on real processes: the happy path, then one fault at a time.

Every test starts from an empty, healthy stack (``pipeline`` fixture) and checks effects in
PostgreSQL, in the API's read models, in the LLM stub's call counters and on the event feed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from helpers import (
    STAGE_ORDER,
    Api,
    EventFeed,
    Timer,
    assert_processed_once,
    db_fetch,
    make_update,
    stack_bugs,
)

from chaos_model._wait import wait_until
from chaos_model.llm_stub import expected_knowledge
from chaos_model.stack import LocalStack
from pipeline_app.settings import Settings

MAX_ATTEMPTS = Settings().max_attempts  # the stack runs with the default
TASK_FAILED = "Exception found while executing function"  # taskiq's log line for a raising task


def test_fifty_updates_over_five_chats_each_processed_once_and_seen_on_the_feed(
    pipeline: LocalStack, api: Api
) -> None:
    updates = [make_update(chat_id=100 + n % 5) for n in range(50)]

    with EventFeed(pipeline, last_event_id=0) as feed:
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(api.post_update, updates))
        assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
        assert all(r.json() == {"ok": True, "stored": True} for r in responses)

        by_update = api.wait_stage([u["update_id"] for u in updates], "extracted")
        message_ids = {m["id"] for m in by_update.values()}
        assert len(message_ids) == 50
        wait_until(
            lambda: (
                {(e["message_id"], e["stage"]) for e in feed.events()}
                >= {(mid, stage) for mid in message_ids for stage in STAGE_ORDER}
            ),
            timeout=10,
            what="the WebSocket feed to deliver every stage of every message",
            on_timeout=lambda: f"feed error: {feed.error!r}, {len(feed.events())} events",
        )
        events = feed.events()

    # Exactly one score and one extraction per message, as stored.
    assert_processed_once(pipeline, api, updates)
    per_chat: dict[int, int] = defaultdict(int)
    for update in updates:
        message = by_update[update["update_id"]]
        assert message["chat_id"] == update["message"]["chat"]["id"]
        per_chat[message["chat_id"]] += 1
        detail = api.message(message["id"])
        assert detail["attempts"] == {"save": 1, "score": 1, "extract": 1}, detail
        assert detail["knowledge_items"] == len(expected_knowledge(update["message"]["text"]))
        assert detail["failure_reason"] is None
    assert sorted(per_chat.values()) == [10] * 5

    # The LLM was asked exactly twice per message: one score, one extraction.
    stats = api.llm_stats()
    assert stats["calls"] == {f"message-{mid}": 2 for mid in message_ids}
    assert stats["total"] == 100

    # The feed: event ids strictly increasing, each stage of each message once, in stage order.
    event_ids = [e["event_id"] for e in events]
    assert event_ids == sorted(set(event_ids)), "the feed repeated or reordered events"
    stages: dict[int, list[str]] = defaultdict(list)
    for event in events:
        stages[event["message_id"]].append(event["stage"])
    assert set(stages) == message_ids, "the feed carried events of unknown messages"
    for mid, seen in stages.items():
        ranks = [STAGE_ORDER[stage] for stage in seen]
        assert ranks == sorted(ranks), (mid, seen)
        assert seen == ["received", "scored", "extracted"], (mid, seen)

    # A client resuming from an event id gets exactly the events after it, in the same order.
    cursor = event_ids[len(event_ids) // 2]
    with EventFeed(pipeline, last_event_id=cursor) as resumed:
        wanted = [e for e in events if e["event_id"] > cursor]
        wait_until(
            lambda: len(resumed.events()) >= len(wanted),
            timeout=10,
            what=f"the feed to replay the {len(wanted)} events after event {cursor}",
        )
        assert resumed.events() == wanted


@pytest.mark.slow
def test_paused_nats_webhook_still_answers_fast_and_accepted_updates_complete(
    pipeline: LocalStack, api: Api
) -> None:
    updates = [make_update(chat_id=7) for _ in range(10)]
    answers: list[tuple[int, float]] = []

    def post(update: dict[str, Any]) -> None:
        with Timer() as timer:
            response = api.post_update(update, timeout=3.0)
        answers.append((response.status_code, timer.seconds))
        assert response.headers["content-type"].startswith("application/json")

    pipeline.services["nats"].pause()
    try:
        for update in updates[:5]:
            post(update)
        # Hold the pause until the API's NATS client has noticed it (missed pings), so the
        # second half is sent while the clients are reconnecting and the relays cannot publish.
        wait_until(
            lambda: api.ready().json()["checks"]["nats"] != "ok",
            timeout=10,
            what="the API to notice that NATS stopped answering",
        )
        for update in updates[5:]:
            post(update)
    finally:
        pipeline.services["nats"].resume()

    for status, seconds in answers:
        assert seconds < 2.0, answers
        assert 200 <= status < 300 or status == 503, answers
    accepted = [u for u, (status, _) in zip(updates, answers, strict=True) if status < 300]
    assert accepted, "no update was accepted while NATS was paused (the webhook needs no NATS)"

    api.wait_stage([u["update_id"] for u in accepted], "extracted")
    by_update = assert_processed_once(pipeline, api, accepted)
    rejected = {u["update_id"] for u in updates} - set(by_update)
    assert not db_fetch(
        pipeline,
        "SELECT update_id FROM telegram_updates WHERE update_id = ANY($1::bigint[])",
        list(rejected),
    )
    for message in by_update.values():
        assert api.llm_calls(message["id"]) == 2


@pytest.mark.slow
def test_worker_killed_during_scoring_processes_the_message_exactly_once(
    pipeline: LocalStack, api: Api
) -> None:
    worker = pipeline.services["worker"]
    api.llm_fault("slow", delay=1.0)
    update = make_update(chat_id=3)
    api.send([update])
    wait_until(
        lambda: api.llm_stats()["in_flight"] >= 1,
        timeout=10,
        what="score_message_task to be inside its LLM call",
    )
    [message] = api.messages()
    assert message["stage"] == "received"
    old_pid = worker.process.pid
    worker.kill()
    assert not worker.is_running()
    api.llm_clear_fault()
    worker.start()
    worker.wait_ready()
    assert worker.process.pid != old_pid

    api.wait_stage([update["update_id"]], "extracted")
    by_update = assert_processed_once(pipeline, api, [update])
    detail = api.message(by_update[update["update_id"]]["id"])
    # The killed execution counts as an attempt; the redelivered one did the work.
    assert detail["attempts"] == {"save": 1, "score": 2, "extract": 1}, detail
    assert detail["knowledge_items"] == len(expected_knowledge(update["message"]["text"]))
    # Two score calls (the interrupted one and the redelivered one) and one extraction.
    assert api.llm_calls(detail["id"]) == 3


def test_postgres_restart_webhook_503_while_down_then_same_api_process_recovers(
    pipeline: LocalStack, api: Api
) -> None:
    postgres = pipeline.services["postgres"]
    api_service = pipeline.services["api"]
    api_pid = api_service.process.pid

    postgres.kill()
    refused = [make_update(chat_id=4) for _ in range(3)]
    for update in refused:
        with Timer() as timer:
            response = api.post_update(update, timeout=3.0)
        assert response.status_code == 503, response.text
        assert timer.seconds < 2.0, timer.seconds
        assert response.json()["ok"] is False

    postgres.start()
    postgres.wait_ready()
    back = time.monotonic()
    assert api_service.process.pid == api_pid
    assert api_service.is_running()

    update = make_update(chat_id=4)
    answers: list[int] = []

    def accepted() -> bool:
        response = api.post_update(update, timeout=3.0)
        answers.append(response.status_code)
        return response.is_success

    wait_until(accepted, timeout=5, what="the webhook to answer 2xx after PostgreSQL came back")
    assert time.monotonic() - back < 5.0
    assert set(answers) <= {200, 503}, answers
    assert api_service.process.pid == api_pid, "the API process was restarted"

    api.wait_stage([update["update_id"]], "extracted")
    assert_processed_once(pipeline, api, [update])
    stored = db_fetch(pipeline, "SELECT update_id FROM telegram_updates")
    assert [row["update_id"] for row in stored] == [update["update_id"]]


@pytest.mark.slow
def test_llm_rate_limited_for_five_seconds_everything_completes_with_bounded_calls(
    pipeline: LocalStack, api: Api
) -> None:
    api.llm_fault("rate_limit", seconds=5, retry_after=1)
    updates = [make_update(chat_id=5) for _ in range(5)]
    api.send(updates)

    by_update = api.wait_stage([u["update_id"] for u in updates], "extracted", timeout=45)
    assert_processed_once(pipeline, api, updates)
    stats = api.llm_stats()
    assert stats["total"] > 2 * len(updates), "the rate limit was never hit"
    for message in by_update.values():
        calls = stats["calls"][f"message-{message['id']}"]
        assert 2 <= calls <= 2 * MAX_ATTEMPTS, (message["id"], calls)
        detail = api.message(message["id"])
        assert detail["failure_reason"] is None
        assert all(1 <= n <= MAX_ATTEMPTS for n in detail["attempts"].values()), detail


def test_worker_down_api_relay_publishes_and_the_stream_keeps_the_task(
    pipeline: LocalStack, api: Api
) -> None:
    """With the worker dead, only the API's outbox relay can publish: the save task must reach
    JetStream (outbox row marked sent) and wait there until a worker comes back."""
    worker = pipeline.services["worker"]
    worker.kill()
    update = make_update(chat_id=11)
    api.send([update])
    wait_until(
        lambda: (
            db_fetch(pipeline, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"]
            == 0
        ),
        timeout=5,
        what="the API's relay to publish the save task while the worker is down",
        on_timeout=api.log_tails,
    )
    assert api.messages() == [], "a message appeared with no worker running"
    assert api.ready().status_code == 200
    worker.start()
    worker.wait_ready()
    api.wait_stage([update["update_id"]], "extracted")
    assert_processed_once(pipeline, api, [update])


@pytest.mark.slow
def test_postgres_killed_while_a_task_holds_an_llm_call_the_task_is_redelivered(
    pipeline: LocalStack, api: Api
) -> None:
    """The score task can commit neither its effect nor a retry: it must stay unacknowledged,
    come back after the ack wait and finish once PostgreSQL is back."""
    postgres = pipeline.services["postgres"]
    worker_log = pipeline.services["worker"].process.log_path
    failures_before = worker_log.read_text().count(TASK_FAILED)
    api.llm_fault("slow", delay=1.0)
    update = make_update(chat_id=12)
    api.send([update])
    wait_until(
        lambda: api.llm_stats()["in_flight"] >= 1,
        timeout=10,
        what="score_message_task to be inside its LLM call",
    )
    postgres.kill()
    wait_until(
        lambda: worker_log.read_text().count(TASK_FAILED) > failures_before,
        timeout=10,
        what="the score task to fail for want of PostgreSQL",
    )
    api.llm_clear_fault()
    postgres.start()
    postgres.wait_ready()

    api.wait_stage([update["update_id"]], "extracted")
    by_update = assert_processed_once(pipeline, api, [update])
    detail = api.message(by_update[update["update_id"]]["id"])
    assert detail["attempts"] == {"save": 1, "score": 2, "extract": 1}, detail
    assert api.llm_calls(detail["id"]) == 3


@pytest.mark.slow
def test_permanently_failing_llm_dead_letters_the_message_after_max_attempts() -> None:
    """On a stack of its own with max_attempts=3: the message ends ``failed`` with a reason after
    exactly three LLM calls, and nothing is left to redeliver."""
    with LocalStack(bugs=stack_bugs(), extra_env={"PIPELINE_MAX_ATTEMPTS": "3"}) as own:
        api = Api(own)
        try:
            api.llm_fault("error")
            update = make_update(chat_id=13)
            api.send([update])
            [message] = api.wait_stage([update["update_id"]], "failed").values()
            detail = api.message(message["id"])
            assert detail["attempts"] == {"save": 1, "score": 3}, detail
            assert detail["failure_reason"].startswith("score: gave up after 3 attempts")
            assert "LLM answered 500" in detail["failure_reason"]
            assert detail["knowledge_items"] == 0
            assert api.llm_calls(message["id"]) == 3
            events = db_fetch(
                own,
                "SELECT stage FROM events WHERE message_id = $1 ORDER BY event_id",
                message["id"],
            )
            assert [e["stage"] for e in events] == ["received", "failed"]
            wait_until(
                lambda: _consumer_idle(own),
                timeout=10,
                what="every task to be acknowledged (nothing pending or awaiting an ack)",
            )
            assert api.llm_calls(message["id"]) == 3
        finally:
            api.close()


def _consumer_idle(stack: LocalStack) -> bool:
    info = httpx.get(f"{stack.endpoints.nats_monitor_url}/jsz?consumers=true", timeout=2).json()
    for stream in info["account_details"][0]["stream_detail"]:
        for consumer in stream.get("consumer_detail", []):
            if consumer["num_ack_pending"] or consumer["num_pending"]:
                return False
    return True
