"""Helpers shared by the foundation tests: build and post Telegram updates, wait for stages,
read the pipeline's state through its API and straight from PostgreSQL, drive the LLM stub.

Everything talks to real processes; every wait goes through :func:`chaos_model._wait.wait_until`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import httpx
import websockets

from chaos_model._wait import wait_until
from chaos_model.llm_stub import expected_knowledge, expected_score
from chaos_model.stack import LocalStack
from chaos_model.telegram import message_update

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/api/v1/telegram/webhook"
STAGE_ORDER = {"received": 0, "scored": 1, "extracted": 2}
EXTRACTED_TIMEOUT = 30.0

_update_ids = itertools.count(1_000)


def stack_bugs() -> tuple[str, ...]:
    """Bug-zoo entries to switch on in every stack the suite starts (``FOUNDATION_STACK_BUGS``)."""
    return tuple(b for b in os.environ.get("FOUNDATION_STACK_BUGS", "").split(",") if b)


def next_update_id() -> int:
    """A fresh update_id (unique for the whole session, so tests never collide)."""
    return next(_update_ids)


def make_update(
    update_id: int | None = None,
    *,
    chat_id: int = 1,
    text: str | None = None,
    message_id: int | None = None,
) -> dict[str, Any]:
    """A valid Telegram ``Update`` carrying a text ``message``."""
    uid = next_update_id() if update_id is None else update_id
    body = f"update {uid} in chat {chat_id}: the quick brown fox" if text is None else text
    return message_update(uid, chat_id, body, message_id=uid if message_id is None else message_id)


def webhook_headers(stack: LocalStack, secret: str | None = None) -> dict[str, str]:
    return {SECRET_HEADER: stack.endpoints.webhook_secret if secret is None else secret}


class Api:
    """A small synchronous client of the pipeline's HTTP API and of the LLM stub's control API."""

    def __init__(self, stack: LocalStack, timeout: float = 3.0) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    @property
    def url(self) -> str:
        return self.stack.endpoints.api_url

    # ---------------------------------------------------------------- webhook
    def post_update(
        self, update: Mapping[str, Any], *, timeout: float | None = None
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return self.http.post(
            self.url + WEBHOOK_PATH,
            json=dict(update),
            headers=webhook_headers(self.stack),
            **kwargs,
        )

    def post_raw(self, body: bytes, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        all_headers = {"content-type": "application/json", **webhook_headers(self.stack)}
        all_headers.update(headers or {})
        return self.http.post(self.url + WEBHOOK_PATH, content=body, headers=all_headers)

    def send(self, updates: Iterable[Mapping[str, Any]]) -> list[int]:
        """Post every update, asserting a 2xx answer; return their update ids."""
        ids = []
        for update in updates:
            response = self.post_update(update)
            assert response.is_success, (response.status_code, response.text)
            ids.append(int(update["update_id"]))
        return ids

    # ---------------------------------------------------------------- read models
    def messages(self) -> list[dict[str, Any]]:
        """Every message, following the ``after_id`` pagination."""
        result: list[dict[str, Any]] = []
        after = 0
        while True:
            response = self.http.get(
                self.url + "/api/v1/messages", params={"after_id": after, "limit": 1000}
            )
            response.raise_for_status()
            page = response.json()["messages"]
            result.extend(page)
            if len(page) < 1000:
                return result
            after = page[-1]["id"]

    def message(self, message_id: int) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/v1/messages/{message_id}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def knowledge(self, message_id: int) -> list[dict[str, Any]]:
        response = self.http.get(
            self.url + "/api/v1/knowledge", params={"message_id": message_id, "limit": 1000}
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["knowledge"]
        return items

    def ready(self) -> httpx.Response:
        return self.http.get(self.url + "/health/ready")

    def wait_stage(
        self,
        update_ids: Iterable[int],
        stage: str = "extracted",
        timeout: float = EXTRACTED_TIMEOUT,
    ) -> dict[int, dict[str, Any]]:
        """Wait until the message of every update is at ``stage``; return them by update id."""
        wanted = set(update_ids)
        last: dict[int, str] = {}

        def done() -> dict[int, dict[str, Any]] | None:
            by_update = {m["update_id"]: m for m in self.messages() if m["update_id"] in wanted}
            last.clear()
            last.update({uid: m["stage"] for uid, m in by_update.items()})
            if len(by_update) == len(wanted) and all(
                m["stage"] == stage for m in by_update.values()
            ):
                return by_update
            return None

        def describe() -> str:
            stages = Counter(last.get(uid, "missing") for uid in wanted)
            return f"stages now: {dict(stages)}\n{self.log_tails()}"

        return wait_until(
            done,
            timeout=timeout,
            what=f"{len(wanted)} update(s) to reach {stage}",
            on_timeout=describe,
        )

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for name in ("api", "worker"):
            tail = self.stack.services[name].process.log_tail(lines)
            parts.append(f"--- {name} log ---\n{tail}")
        return "\n".join(parts)

    # ---------------------------------------------------------------- LLM stub
    def llm_stats(self) -> dict[str, Any]:
        response = self.http.get(self.stack.endpoints.llm_url + "/control/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def llm_calls(self, message_id: int) -> int:
        calls: int = self.llm_stats()["calls"].get(f"message-{message_id}", 0)
        return calls

    def llm_fault(self, mode: str, **spec: Any) -> None:
        response = self.http.post(
            self.stack.endpoints.llm_url + "/control/fault", json={"mode": mode, **spec}
        )
        response.raise_for_status()

    def llm_clear_fault(self) -> None:
        self.http.delete(self.stack.endpoints.llm_url + "/control/fault").raise_for_status()


# -------------------------------------------------------------------- PostgreSQL
def db_fetch(stack: LocalStack, query: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on the stack's PostgreSQL through a fresh asyncpg connection."""

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(stack.endpoints.database_url, timeout=3)
        try:
            rows = await conn.fetch(query, *args, timeout=3)
            return [dict(row) for row in rows]
        finally:
            await conn.close()

    return asyncio.run(run())


def db_count(stack: LocalStack, table: str) -> int:
    count: int = db_fetch(stack, f"SELECT count(*) AS n FROM {table}")[0]["n"]
    return count


STORE_TABLES = ("telegram_updates", "messages", "outbox", "events", "knowledge")


def stored_rows(stack: LocalStack) -> dict[str, int]:
    """Row counts of every table an accepted update would write to."""
    return {table: db_count(stack, table) for table in STORE_TABLES}


def assert_nothing_stored(stack: LocalStack, api: Api) -> None:
    assert api.messages() == []
    assert stored_rows(stack) == dict.fromkeys(STORE_TABLES, 0)


# -------------------------------------------------------------------- exactly-once checks
def assert_processed_once(
    stack: LocalStack, api: Api, updates: Iterable[Mapping[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Every update became exactly one extracted message, scored once, its knowledge stored once.

    Checks the database directly: one message per update, the score the stub gives its text, the
    knowledge items the stub extracts from it (each once), exactly one ``received``, ``scored``
    and ``extracted`` event, and a processed marker for each stage. Returns messages by update id.
    """
    updates = list(updates)
    ids = [int(update["update_id"]) for update in updates]
    rows = db_fetch(
        stack, "SELECT * FROM messages WHERE update_id = ANY($1::bigint[]) ORDER BY id", ids
    )
    per_update = Counter(row["update_id"] for row in rows)
    assert per_update == Counter(ids), f"messages per update: {dict(per_update)}"
    by_update = {row["update_id"]: row for row in rows}
    message_ids = [row["id"] for row in rows]

    knowledge: dict[int, list[tuple[int, str]]] = {mid: [] for mid in message_ids}
    for row in db_fetch(
        stack,
        "SELECT message_id, item_no, content FROM knowledge WHERE message_id = ANY($1::bigint[])"
        " ORDER BY message_id, item_no",
        message_ids,
    ):
        knowledge[row["message_id"]].append((row["item_no"], row["content"]))
    events: dict[int, Counter[str]] = {mid: Counter() for mid in message_ids}
    for row in db_fetch(
        stack,
        "SELECT message_id, stage FROM events WHERE message_id = ANY($1::bigint[])",
        message_ids,
    ):
        events[row["message_id"]][row["stage"]] += 1
    markers = Counter(
        (row["stage"], row["key"]) for row in db_fetch(stack, "SELECT stage, key FROM processed")
    )

    for update in updates:
        uid = int(update["update_id"])
        row = by_update[uid]
        text = update["message"].get("text") or ""
        mid = row["id"]
        assert row["stage"] == "extracted", (uid, row["stage"], row["failure_reason"])
        assert row["text"] == text
        assert row["score"] == expected_score(text), (uid, row["score"])
        want = list(enumerate(expected_knowledge(text)))
        assert knowledge[mid] == want, (uid, knowledge[mid], want)
        assert events[mid] == Counter(received=1, scored=1, extracted=1), (uid, events[mid])
        assert markers[("save", uid)] == 1
        assert markers[("score", mid)] == 1
        assert markers[("extract", mid)] == 1
    return by_update


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._began = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._began


class EventFeed:
    """A WebSocket client of ``/ws/events`` running in a background thread.

    ``with EventFeed(stack, last_event_id=0) as feed:`` connects (and waits until connected);
    ``feed.events()`` is a snapshot of every event received so far, in arrival order.
    """

    def __init__(self, stack: LocalStack, last_event_id: int | None = 0) -> None:
        url = stack.endpoints.api_url.replace("http://", "ws://", 1) + "/ws/events"
        self.url = url if last_event_id is None else f"{url}?last_event_id={last_event_id}"
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ws-events", daemon=True)

    def __enter__(self) -> EventFeed:
        self._thread.start()
        wait_until(
            lambda: self._connected.is_set() or self._error is not None,
            timeout=10,
            what=f"a WebSocket connection to {self.url}",
        )
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    @property
    def error(self) -> BaseException | None:
        return self._error

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._consume())
        except BaseException as error:  # noqa: BLE001 - reported to the test through .error
            self._error = error
        finally:
            self._loop.close()

    async def _consume(self) -> None:
        self._stop = asyncio.Event()
        async with websockets.connect(self.url, open_timeout=5) as socket:
            self._connected.set()
            stopping = asyncio.ensure_future(self._stop.wait())
            try:
                while True:
                    receiving = asyncio.ensure_future(socket.recv())
                    done, _ = await asyncio.wait(
                        {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if receiving not in done:
                        receiving.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await receiving
                        return
                    event = json.loads(receiving.result())
                    with self._lock:
                        self._events.append(event)
            finally:
                stopping.cancel()
