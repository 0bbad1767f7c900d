"""The target: everything specific to the reference pipeline, behind one object.

URLs, payload shapes, SQL and stage names live here and nowhere else in the model, so another
system can be plugged in by writing another target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import nats
import websockets
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop
from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.history import History
from chaos_model.observe import EventRow, FeedObservation, MessageRow, Snapshot
from chaos_model.stack import Stack
from chaos_model.telegram import SECRET_HEADER, SimulatorConfig, TelegramSimulator

STREAM = "pipeline"
DURABLE = "pipeline-worker"
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class DirectResult:
    status: int | None
    error: str | None = None


async def _quiet(error: Exception) -> None:
    """nats-py prints every connection error; the model observes NATS going away on purpose."""


def telegram_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000 + update_id,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": f"user{chat_id}"},
            "text": text,
        },
    }


class _Feed:
    """A dashboard WebSocket client that records every event and can resume after a drop."""

    def __init__(self, name: str, url: str) -> None:
        self.observation = FeedObservation(name)
        self._url = url
        self._task: asyncio.Task[None] | None = None

    @property
    def last_event_id(self) -> int:
        events = self.observation.events
        return events[-1].event_id if events else 0

    def open(self, *, resume: bool) -> None:
        self.observation.resumed = self.observation.resumed or resume
        cursor = self.last_event_id if resume else 0
        self._task = asyncio.get_running_loop().create_task(self._read(cursor))

    async def _read(self, cursor: int) -> None:
        try:
            async with websockets.connect(
                f"{self._url}?last_event_id={cursor}", open_timeout=2, close_timeout=0.5
            ) as socket:
                self.observation.connected = True
                async for raw in socket:
                    item = json.loads(raw)
                    self.observation.events.append(
                        EventRow(item["event_id"], item["message_id"], item["stage"])
                    )
        except (OSError, websockets.WebSocketException, TimeoutError):
            pass
        finally:
            self.observation.connected = False

    async def drop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()


class PipelineTarget:
    """Drives the reference pipeline of a running stack and observes it."""

    stages = ("received", "scored", "extracted", "failed")
    max_attempts = MAX_ATTEMPTS

    def __init__(self, stack: Stack, history: History, simulator: SimulatorConfig | None = None):
        self.stack = stack
        self.history = history
        self._loop = ControlLoop()
        endpoints = stack.endpoints
        # Telegram and the dashboard reach the API through their own links (faultable); the
        # model's own observations (snapshots, quiescence) go direct.
        telegram_api = endpoints.telegram_api_url or endpoints.api_url
        self._dashboard_api = endpoints.dashboard_api_url or endpoints.api_url
        self._webhook_url = f"{telegram_api}/api/v1/telegram/webhook"
        self._feed_url = self._dashboard_api.replace("http://", "ws://") + "/ws/events"
        self.telegram = TelegramSimulator(
            self._loop.loop, self._webhook_url, endpoints.webhook_secret, history, simulator
        )
        self._http = httpx.Client(timeout=httpx.Timeout(3.0, connect=1.0))
        self._feeds: dict[str, _Feed] = {}
        self._pg: asyncpg.Connection | None = None
        self._nats: NatsClient | None = None

    def close(self) -> None:
        async def shutdown() -> None:
            for feed in self._feeds.values():
                await feed.drop()
            await self.telegram.aclose()
            if self._pg is not None:
                self._pg.terminate()
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()

        with contextlib.suppress(Exception):
            self._loop.run(shutdown(), timeout=5)
        self._loop.close()
        self._http.close()

    # ------------------------------------------------------------------ operations
    def deliver(self, update: dict[str, Any]) -> None:
        self.telegram.submit(update)

    def send_direct(self, body: bytes, secret: str | None, process: str, f: str) -> DirectResult:
        """One POST outside the simulator (an attacker or a broken client), recorded in history."""
        op = self.history.invoke(process, f, {"bytes": len(body)})
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        try:
            response = self._http.post(self._webhook_url, content=body, headers=headers)
        except httpx.HTTPError as error:
            self.history.complete(op, "info", error=type(error).__name__)
            return DirectResult(None, type(error).__name__)
        if response.is_success:
            self.history.complete(op, "ok")
        else:
            self.history.complete(op, "fail", error=str(response.status_code))
        return DirectResult(response.status_code)

    def read_back(self) -> DirectResult:
        op = self.history.invoke("dashboard", "read")
        try:
            response = self._http.get(f"{self._dashboard_api}/api/v1/messages")
        except httpx.HTTPError as error:
            self.history.complete(op, "info", error=type(error).__name__)
            return DirectResult(None, type(error).__name__)
        self.history.complete(op, "ok" if response.is_success else "fail")
        return DirectResult(response.status_code)

    def feed_open(self, name: str) -> None:
        async def open_feed() -> None:
            feed = self._feeds.get(name)
            if feed is None:
                feed = self._feeds[name] = _Feed(name, self._feed_url)
                feed.open(resume=False)
            elif not feed.alive:
                feed.open(resume=True)

        self._loop.run(open_feed(), timeout=5)

    def feed_drop(self, name: str) -> None:
        feed = self._feeds.get(name)
        if feed is not None:
            self._loop.run(feed.drop(), timeout=5)

    def feeds(self) -> list[FeedObservation]:
        return [feed.observation for feed in self._feeds.values()]

    def feed_names(self) -> list[str]:
        return list(self._feeds)

    def feed_alive(self, name: str) -> bool:
        feed = self._feeds.get(name)
        return feed is not None and feed.alive

    # ------------------------------------------------------------------ observation
    def snapshot(self, timeout: float = 1.0) -> Snapshot:
        return self._loop.run(self._snapshot(), timeout=timeout)

    async def _connection(self) -> asyncpg.Connection:
        if self._pg is None or self._pg.is_closed():
            self._pg = await asyncpg.connect(self.stack.endpoints.database_url, timeout=1)
        return self._pg

    async def _snapshot(self) -> Snapshot:
        conn = await self._connection()
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                messages = await conn.fetch(
                    "SELECT id, update_id, stage, score, failure_reason FROM messages"
                )
                knowledge = await conn.fetch("SELECT message_id, item_no FROM knowledge")
                attempts = await conn.fetch("SELECT stage, key, count FROM attempts")
                updates = await conn.fetch("SELECT update_id FROM telegram_updates")
                events = await conn.fetch(
                    "SELECT event_id, message_id, stage FROM events ORDER BY event_id"
                )
        except BaseException:
            self._pg.terminate() if self._pg is not None else None
            self._pg = None
            raise
        return Snapshot(
            messages=tuple(MessageRow(*row) for row in messages),
            knowledge=tuple((row[0], row[1]) for row in knowledge),
            attempts=tuple((row[0], row[1], row[2]) for row in attempts),
            update_ids=frozenset(row[0] for row in updates),
            events=tuple(EventRow(*row) for row in events),
        )

    def quiescent(self) -> bool:
        """Nothing left to do: outbox sent, consumer drained and acked, no task running, LLM
        idle, Telegram done."""
        return not self.pending_work()

    def pending_work(self) -> dict[str, Any]:
        """What is still to be done, by kind (empty when the pipeline is quiescent)."""
        pending: dict[str, Any] = {}
        unfinished = len(self.telegram.unfinished())
        if unfinished:
            pending["telegram_deliveries"] = unfinished
        stats = self._http.get(f"{self.stack.endpoints.llm_url}/control/stats").json()
        if stats["in_flight"]:
            pending["llm_calls_in_flight"] = stats["in_flight"]
        status_url = self.stack.endpoints.worker_status_url
        if status_url:
            running = self._http.get(status_url, timeout=1.0).json()["running"]
            if running:
                pending["tasks_running"] = running
        pending.update(self._loop.run(self._pipeline_pending(), timeout=3))
        return pending

    async def _pipeline_pending(self) -> dict[str, int]:
        conn = await self._connection()
        pending: dict[str, int] = {}
        unsent = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        if unsent:
            pending["outbox_unsent"] = unsent
        if self._nats is None or not self._nats.is_connected:
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()
            self._nats = await nats.connect(
                self.stack.endpoints.nats_url,
                connect_timeout=1,
                allow_reconnect=False,
                error_cb=_quiet,
            )
        try:
            info = await self._nats.jetstream().consumer_info(STREAM, DURABLE)
        except nats.js.errors.NotFoundError:
            return pending  # no durable consumer (tasks over core NATS): nothing can be pending
        if info.num_pending:
            pending["jetstream_pending"] = info.num_pending
        if info.num_ack_pending:
            pending["jetstream_unacknowledged"] = info.num_ack_pending
        return pending

    def wait_feeds_caught_up(self, seconds: float) -> None:
        """Reconnect dropped feeds (resuming) and wait until each has seen every stored event.

        Gives up quietly after ``seconds``: whether a feed missed events is the liveness
        invariant's verdict, not an error here.
        """
        for name in self.feed_names():
            if not self.feed_alive(name):
                self.feed_open(name)

        def caught_up() -> bool:
            latest = max((e.event_id for e in self.snapshot().events), default=0)
            return all(
                (obs.events[-1].event_id if obs.events else 0) >= latest for obs in self.feeds()
            )

        with contextlib.suppress(WaitTimeout):
            wait_until(caught_up, timeout=seconds, what="the dashboard feeds to catch up")
