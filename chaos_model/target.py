"""The driver of a target: how the model talks to the system under test and observes it.

:class:`Target` is the protocol; :class:`SqlTarget` implements it from an adapter's data
(webhook URL and secret, one SQL query per observation, stage mapping, busy checks), and a
target that needs more names its own class in the adapter (``[target] driver``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import httpx
import nats
import websockets
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop
from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import TargetSpec
from chaos_model.errors import AdapterError, StackTimeout
from chaos_model.history import History
from chaos_model.message_ids import MessageId, message_id
from chaos_model.observe import EventRow, FeedObservation, MessageRow, Snapshot
from chaos_model.stack import Stack
from chaos_model.telegram import SimulatorConfig, TelegramSimulator


@dataclass(frozen=True)
class DirectResult:
    status: int | None
    error: str | None = None


async def _quiet(error: Exception) -> None:
    """nats-py prints every connection error; the model observes NATS going away on purpose."""


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
                        EventRow(item["event_id"], message_id(item["message_id"]), item["stage"])
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


class Target(Protocol):
    """What the model needs of a system under test, whatever it is."""

    spec: TargetSpec
    telegram: TelegramSimulator

    def close(self) -> None: ...
    def deliver(self, update: dict[str, Any]) -> None: ...
    def send_direct(
        self, body: bytes, secret: str | None, process: str, f: str
    ) -> DirectResult: ...
    def read_back(self) -> DirectResult: ...
    def feed_open(self, name: str) -> None: ...
    def feed_drop(self, name: str) -> None: ...
    def feeds(self) -> list[FeedObservation]: ...
    def snapshot(self, timeout: float = 1.0) -> Snapshot: ...
    def llm_records(self) -> list[dict[str, Any]]: ...
    def quiescent(self) -> bool: ...
    def pending_work(self) -> dict[str, Any]: ...
    def wait_feeds_caught_up(self, seconds: float) -> None: ...


#: (chat id, message id) -> the update id of the Telegram update that carried the message
CorrelationKeys = dict[tuple[MessageId, MessageId], int]
#: the adapter's ``[observe]`` queries a snapshot reads, besides ``pending``
OBSERVATIONS = ("messages", "knowledge", "attempts", "inbox", "events", "texts", "items")


def message_row(spec: TargetSpec, keys: CorrelationKeys, row: Any) -> MessageRow:
    """A row of the adapter's messages query (id, the correlation key, stage, score, reason),
    with the update id found by (chat id, message id) in ``keys`` when the target stores none
    and the stage in the model's words."""
    values = list(row)
    if spec.observe.correlate == "chat_message":
        chat, telegram_message = message_id(values[1]), message_id(values[2])
        update_id = keys.get((chat, telegram_message), telegram_message)
        values = [values[0], update_id, *values[3:]]
    values += [None] * (5 - len(values))
    stage = spec.to_model_stage(values[2])
    return MessageRow(message_id(values[0]), message_id(values[1]), stage, values[3], values[4])


def snapshot_of(
    spec: TargetSpec,
    keys: CorrelationKeys,
    rows: Mapping[str, Sequence[Any]],
    pending: Iterable[tuple[str, Any]] = (),
) -> Snapshot:
    """The snapshot the rows of the adapter's queries show (by name, see
    :data:`OBSERVATIONS`): ids of any type (an integer, a UUID, text) as
    :func:`~chaos_model.message_ids.message_id` gives them, stages in the model's words."""
    stage = spec.to_model_stage
    messages = rows.get("messages", ())
    observe = spec.observe
    queries = {"events": observe.events, "texts": observe.texts, "items": observe.items}
    unobserved = {name for name, sql in queries.items() if not sql}
    if messages:
        unobserved |= unobserved_columns(spec, messages[0])
    return Snapshot(
        messages=tuple(message_row(spec, keys, row) for row in messages),
        knowledge=tuple(
            (message_id(row[0]), row[1] if len(row) > 1 else None)
            for row in rows.get("knowledge", ())
        ),
        attempts=tuple((row[0], message_id(row[1]), row[2]) for row in rows.get("attempts", ())),
        update_ids=frozenset(message_id(row[0]) for row in rows.get("inbox", ())),
        events=tuple(
            EventRow(row[0], message_id(row[1]), stage(row[2])) for row in rows.get("events", ())
        ),
        texts=tuple((message_id(row[0]), row[1]) for row in rows.get("texts", ())),
        items=tuple((message_id(row[0]), row[1]) for row in rows.get("items", ())),
        unobserved=frozenset(unobserved),
        pending=tuple((name, int(count or 0)) for name, count in pending),
    )


def unobserved_columns(spec: TargetSpec, row: Any) -> frozenset[str]:
    """The optional columns (score, failure reason) a row of the messages query lacks."""
    given = len(row) - (1 if spec.observe.correlate == "chat_message" else 0)
    return frozenset(name for at, name in ((3, "score"), (4, "failure_reason")) if given <= at)


def update_keys(updates: Iterable[dict[str, Any]]) -> CorrelationKeys:
    """(chat id, message id) -> update id of Telegram updates."""
    keys: CorrelationKeys = {}
    for update in updates:
        message = update.get("message") or {}
        with contextlib.suppress(KeyError, TypeError):
            keys[(message["chat"]["id"], message["message_id"])] = update["update_id"]
    return keys


def _websocket_url(http_url: str) -> str:
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    return "ws://" + http_url.removeprefix("http://")


def driver_class(spec: TargetSpec) -> Any:
    """The driver class the adapter names (``[target] driver``), or :class:`SqlTarget`."""
    if not spec.driver:
        return SqlTarget
    module_name, _, class_name = spec.driver.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise AdapterError(
            f"{spec.source}: target.driver: cannot load {spec.driver!r}: {error}"
        ) from None


def make_target(stack: Stack, history: History) -> Target:
    """The driver the stack's adapter names, or the SQL/HTTP one."""
    target: Target = driver_class(stack.target)(stack, history)
    return target


class SqlTarget:
    """Drives a running stack through its webhook and observes it with the adapter's SQL."""

    def __init__(self, stack: Stack, history: History, simulator: SimulatorConfig | None = None):
        self.stack = stack
        self.spec: TargetSpec = stack.target
        self.history = history
        self._loop = ControlLoop()
        endpoints = stack.endpoints
        # Telegram and the dashboard reach the API through their own links (faultable); the
        # model's own observations (snapshots, quiescence) go direct.
        telegram_api = endpoints.telegram_api_url or endpoints.api_url
        self._dashboard_api = endpoints.dashboard_api_url or endpoints.api_url
        self._webhook_url = f"{telegram_api}{self.spec.webhook.path}"
        dashboard = self.spec.dashboard
        self._read_url = f"{self._dashboard_api}{dashboard.read_path}" if dashboard else ""
        self._feed_url = (
            _websocket_url(self._dashboard_api) + dashboard.feed_path
            if dashboard is not None and dashboard.feed_path
            else ""
        )
        self.telegram = TelegramSimulator(
            self._loop.loop,
            self._webhook_url,
            endpoints.webhook_secret,
            history,
            simulator,
            secret_header=self.spec.webhook.secret_header,
        )
        #: (chat id, message id) -> update id, for targets that do not store the update id
        self._keys: CorrelationKeys = {}
        self._fingerprint: tuple[str, float] = ("", 0.0)
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
        self._remember(update)
        self.telegram.submit(update)

    def _remember(self, update: dict[str, Any]) -> None:
        self._keys.update(update_keys([update]))

    def send_direct(self, body: bytes, secret: str | None, process: str, f: str) -> DirectResult:
        """One POST outside the simulator (an attacker or a broken client), recorded in history."""
        op = self.history.invoke(process, f, {"bytes": len(body)})
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[self.spec.webhook.secret_header] = secret
        with contextlib.suppress(ValueError):
            update = json.loads(body)
            if isinstance(update, dict):
                self._remember(update)
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
        if not self._read_url:
            return DirectResult(None, "the target has no dashboard read")
        op = self.history.invoke("dashboard", "read")
        try:
            response = self._http.get(self._read_url)
        except httpx.HTTPError as error:
            self.history.complete(op, "info", error=type(error).__name__)
            return DirectResult(None, type(error).__name__)
        self.history.complete(op, "ok" if response.is_success else "fail")
        return DirectResult(response.status_code)

    def feed_open(self, name: str) -> None:
        if not self._feed_url:
            return

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
        try:
            return self._loop.run(self._snapshot(), timeout=timeout)
        except TimeoutError:
            awaited = "the adapter's [observe] queries"
            raise StackTimeout("reading the database", timeout, awaited) from None

    async def _connection(self) -> asyncpg.Connection:
        if self._pg is None or self._pg.is_closed():
            self._pg = await asyncpg.connect(self.stack.endpoints.database_url, timeout=1)
        return self._pg

    async def _snapshot(self) -> Snapshot:
        conn = await self._connection()
        observe = self.spec.observe

        async def rows(sql: str) -> list[Any]:
            return list(await conn.fetch(sql)) if sql else []

        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                read = {query: await rows(getattr(observe, query)) for query in OBSERVATIONS}
                pending = [
                    (name, await conn.fetchval(sql)) for name, sql in observe.pending.items()
                ]
        except BaseException:
            self._pg.terminate() if self._pg is not None else None
            self._pg = None
            raise
        return snapshot_of(self.spec, self._keys, read, pending)

    def llm_records(self) -> list[dict[str, Any]]:
        """What the LLM stub was asked and answered since the last reset, call by call."""
        response = self._http.get(f"{self.stack.endpoints.llm_url}/control/records", timeout=2.0)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()["records"]
        return records

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
        for name, url in self.stack.endpoints.busy_urls.items():
            check = self.spec.services[name].busy
            if check is None:
                continue
            busy = self._http.get(url, timeout=1.0).json()[check.field]
            if busy:
                pending[f"{name}_busy"] = busy
        pending.update(self._loop.run(self._pipeline_pending(), timeout=3))
        if self.spec.queue.kind == "core":
            pending.update(self._core_nats_pending())
        if not pending and self.spec.limits.stable_for > 0:
            pending.update(self._database_settling())
        return pending

    def _database_settling(self) -> dict[str, Any]:
        """For a target with no durable queue to inspect: idle once the database has not
        changed for ``stable_for`` seconds."""
        fingerprint = hashlib.sha256(repr(self.snapshot(timeout=2.0)).encode()).hexdigest()
        now = time.monotonic()
        if fingerprint != self._fingerprint[0]:
            self._fingerprint = (fingerprint, now)
        unchanged = now - self._fingerprint[1]
        if unchanged < self.spec.limits.stable_for:
            return {"database_changed_seconds_ago": round(unchanged, 2)}
        return {}

    async def _pipeline_pending(self) -> dict[str, int]:
        conn = await self._connection()
        pending: dict[str, int] = {}
        for name, sql in self.spec.observe.pending.items():
            count = await conn.fetchval(sql)
            if count:
                pending[name] = count
        queue = self.spec.queue
        if queue.kind != "jetstream":
            return pending
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
            info = await self._nats.jetstream().consumer_info(queue.stream, queue.durable)
        except nats.js.errors.NotFoundError:
            return pending  # no durable consumer (tasks over core NATS): nothing can be pending
        if info.num_pending:
            pending["jetstream_pending"] = info.num_pending
        if info.num_ack_pending:
            pending["jetstream_unacknowledged"] = info.num_ack_pending
        return pending

    def _core_nats_pending(self) -> dict[str, int]:
        """Core NATS keeps nothing, but a message on its way to a slow subscriber waits in the
        server's buffer for that connection: the monitoring endpoint counts those bytes."""
        monitor = self.stack.endpoints.nats_monitor_url
        if not monitor:
            return {}
        connections = self._http.get(f"{monitor}/connz", timeout=1.0).json()["connections"]
        buffered = sum(int(conn.get("pending_bytes", 0)) for conn in connections or [])
        return {"nats_pending_bytes": buffered} if buffered else {}

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
