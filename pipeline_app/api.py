"""The FastAPI service: Telegram webhook, dashboard read models, stage-event WebSocket, health.

Run: ``python -m pipeline_app.api`` (host and port from ``PIPELINE_API_HOST``/``_PORT``).

The webhook answers 2xx only after the update and its outbox row are committed, so an update
Telegram considers delivered is never lost; while PostgreSQL is unavailable it answers 503 within
``PIPELINE_WEBHOOK_DEADLINE`` seconds so that Telegram retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from pipeline_app import failpoints
from pipeline_app.bugs import bug
from pipeline_app.db import TRANSIENT_DB_ERRORS, create_pool, enqueue
from pipeline_app.llm import CircuitOpen, LLMClient, LLMUnavailable
from pipeline_app.notify import Notifications, wait_for
from pipeline_app.relay import OutboxRelay
from pipeline_app.settings import Settings, get_settings
from pipeline_app.stages import SAVE
from pipeline_app.telegram import Update

log = logging.getLogger("pipeline_app.api")

SECRET_HEADER = "x-telegram-bot-api-secret-token"
NATS_RETRY_DELAY = 0.2
WS_POLL_SECONDS = 0.5
WS_BATCH = 500


class BodyTooLarge(Exception):
    pass


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    notifications: Notifications
    background: list[asyncio.Task[Any]]
    #: where the webhook gets its connection: the pool (a HeldConnection under no_pool_recovery)
    webhook_db: Any
    #: BUG ZOO inline_spam_check: the webhook's own LLM client
    spam_llm: LLMClient | None = None


class HeldConnection:
    """BUG ZOO no_pool_recovery: a hand-rolled "pool" of one connection, opened once and reused
    forever. Nothing checks whether it is still alive, so once a PostgreSQL restart (or an
    administrator's ``pg_terminate_backend``) kills it, every webhook call fails until the API
    process restarts. /health/ready still checks through the real pool and stays green."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> asyncpg.Connection:
        if self._conn is None:  # never replaced once opened, even when closed
            self._conn = await asyncpg.connect(
                self._settings.database_url,
                timeout=self._settings.db_connect_timeout,
                command_timeout=self._settings.db_command_timeout,
            )
        return self._conn

    @asynccontextmanager
    async def acquire(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg.Pool.acquire's signature
    ) -> AsyncIterator[asyncpg.Connection]:
        async with self._lock:
            yield await self.open()


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)


def _unavailable(error: BaseException) -> JSONResponse:
    return _error(503, f"database unavailable ({type(error).__name__})", **{"Retry-After": "1"})


async def _connect_broker_forever() -> None:
    from pipeline_app.tasks import broker

    while True:
        try:
            await broker.startup()
            return
        except Exception as error:  # noqa: BLE001 - NATS may be down at start: keep trying
            log.warning("NATS not reachable yet (%s)", error)
            with contextlib.suppress(Exception):
                await broker.client.close()
            await asyncio.sleep(NATS_RETRY_DELAY)


def _broker_connected() -> bool:
    from pipeline_app.tasks import broker

    return bool(broker.client.is_connected)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from pipeline_app.tasks import broker

    settings = get_settings()
    failpoints.configure(settings.failpoints_file)
    pool = await create_pool(settings, min_size=0, max_size=10)
    notifications = Notifications(settings, ("outbox", "events"))
    notifications.start()
    background = [asyncio.create_task(_connect_broker_forever(), name="nats-connect")]
    if settings.relay_enabled:
        relay = OutboxRelay(pool, broker, settings, notifications)
        background.append(asyncio.create_task(relay.run(), name="outbox-relay"))
    webhook_db: Any = pool
    if bug("no_pool_recovery"):  # BUG ZOO no_pool_recovery: one connection for the webhook
        webhook_db = HeldConnection(settings)
        with contextlib.suppress(*TRANSIENT_DB_ERRORS):
            await webhook_db.open()  # opened at start-up when PostgreSQL is up, else on first use
    spam_llm = LLMClient(settings) if bug("inline_spam_check") else None  # BUG ZOO
    app.state.services = Services(settings, pool, notifications, background, webhook_db, spam_llm)
    try:
        yield
    finally:
        if spam_llm is not None:
            await spam_llm.close()
        for task in background:
            task.cancel()
        await notifications.stop()
        with contextlib.suppress(Exception):
            await broker.shutdown()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 2)


app = FastAPI(title="pipeline_app", lifespan=lifespan)


def services(request: Request | WebSocket) -> Services:
    result: Services = request.app.state.services
    return result


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    """``NaN``/``Infinity`` are not JSON (RFC 8259) and PostgreSQL's jsonb refuses them."""
    raise ValueError(f"{name} is not a JSON value")


async def _store_update(svc: Services, update: Update, payload: str) -> bool:
    """Commit the update and its outbox row; return False if it was already stored."""
    assert update.message is not None
    if bug("webhook_two_transactions"):
        return await _store_update_in_two(svc, update, payload)
    async with (
        svc.webhook_db.acquire(timeout=svc.settings.db_acquire_timeout) as conn,
        conn.transaction(),
    ):
        inserted = await conn.fetchval(
            "INSERT INTO telegram_updates (update_id, chat_id, payload) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
            update.update_id,
            update.message.chat.id,
            payload,
        )
        if inserted is None and not bug("no_update_dedup"):
            return False
        if bug("publish_outside_txn"):
            return True  # BUG ZOO publish_outside_txn: no outbox row, see _publish_save
        await enqueue(conn, SAVE.task_name, SAVE.args(update.update_id))
        return True


async def _store_update_in_two(svc: Services, update: Update, payload: str) -> bool:
    """BUG ZOO webhook_two_transactions: the update commits alone, its outbox row in a second
    transaction. A crash between the two leaves a stored update with nothing to process it; the
    webhook never answered, so Telegram delivers again, the update_id dedup says "already have
    it", and the webhook answers 200 for an update that is lost."""
    assert update.message is not None
    async with svc.webhook_db.acquire(timeout=svc.settings.db_acquire_timeout) as conn:
        async with conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO telegram_updates (update_id, chat_id, payload)"
                " VALUES ($1, $2, $3::jsonb)"
                " ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
                update.update_id,
                update.message.chat.id,
                payload,
            )
        if inserted is None:
            return False
        async with conn.transaction():
            await enqueue(conn, SAVE.task_name, SAVE.args(update.update_id))
    return True


async def _publish_save(update_id: int) -> None:
    """BUG ZOO publish_outside_txn: the dual write. The update is already committed; the save task
    goes straight to NATS. A crash before this line, or a failed publish (only logged: the
    update is stored, so the webhook answers 200 anyway), leaves an update nothing will process;
    Telegram's redelivery hits the update_id dedup and is not published again."""
    from pipeline_app.tasks import broker

    try:
        task = broker.find_task(SAVE.task_name)
        assert task is not None
        await task.kiq(**json.loads(SAVE.args(update_id)))
    except Exception as error:  # noqa: BLE001 - the bug: log and answer 200 regardless
        log.error(
            "update %s stored but not published: %s: %s", update_id, type(error).__name__, error
        )


async def _spam_check(llm: LLMClient, update: Update) -> None:
    """BUG ZOO inline_spam_check: before storing an update, the webhook asks the LLM whether it
    is spam, and retries until the LLM answers ("we must not store spam"). While the LLM fails,
    Telegram's request waits; the check belongs in the worker, after the update is stored."""
    assert update.message is not None
    text = update.message.text or ""
    while True:
        try:
            await llm.complete_json("spam check", 0, text, user=f"update-{update.update_id}")
            return
        except (LLMUnavailable, CircuitOpen):
            await asyncio.sleep(0.1)


async def _store_after_response(svc: Services, update: Update, payload: str) -> None:
    """BUG ZOO respond_before_commit: runs after the 200 was sent. A crash here, or PostgreSQL
    being unavailable, loses an update Telegram considers delivered."""
    await failpoints.failpoint("api.webhook.after_response_before_commit")
    try:
        await asyncio.wait_for(_store_update(svc, update, payload), svc.settings.webhook_deadline)
    except Exception as error:  # noqa: BLE001 - the bug: nobody is left to tell
        log.error(
            "update %s answered 200 but not stored: %s: %s",
            update.update_id,
            type(error).__name__,
            error,
        )


@app.post("/api/v1/telegram/webhook")
async def telegram_webhook(request: Request) -> Response:
    svc = services(request)
    secret = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(secret.encode(), svc.settings.webhook_secret.encode()):
        return _error(401, "missing or wrong X-Telegram-Bot-Api-Secret-Token")
    try:
        body = await _read_body(request, svc.settings.max_body_bytes)
    except BodyTooLarge:
        return _error(413, f"body larger than {svc.settings.max_body_bytes} bytes")
    try:
        raw = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not valid JSON")
    except RecursionError:
        return _error(400, "body is nested too deeply")
    try:
        update = Update.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _error(422, f"not a Telegram Update: {where}: {first['msg']}")
    if update.message is None:
        return JSONResponse({"ok": True, "stored": False})
    try:
        payload = json.dumps(_without_nul(raw))
    except RecursionError:
        return _error(400, "body is nested too deeply")
    if svc.spam_llm is not None:  # BUG ZOO inline_spam_check: ask the LLM before storing
        await _spam_check(svc.spam_llm, update)
    if bug("respond_before_commit"):  # BUG ZOO respond_before_commit: answer first, store later
        background = BackgroundTask(_store_after_response, svc, update, payload)
        return JSONResponse({"ok": True, "stored": True}, background=background)
    attempts = 2  # a pooled connection may have died with a PostgreSQL restart: retry once
    if bug("no_pool_recovery"):
        attempts = 1  # BUG ZOO no_pool_recovery: no retry either
    for attempt in range(attempts):
        try:
            stored = await asyncio.wait_for(
                _store_update(svc, update, payload), svc.settings.webhook_deadline / attempts
            )
            break
        except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError) as error:
            if attempt == attempts - 1:
                return _unavailable(error)
        except TRANSIENT_DB_ERRORS as error:
            return _unavailable(error)
        except asyncpg.DataError as error:
            # PostgreSQL cannot store it (a NUL character, a lone surrogate): the update is
            # malformed, and a retry from Telegram would fail the same way.
            return _error(422, f"update cannot be stored: {type(error).__name__}")
    await failpoints.failpoint("api.webhook.after_commit_before_response")
    if stored and bug("publish_outside_txn"):
        await _publish_save(update.update_id)  # BUG ZOO publish_outside_txn: publish after commit
    return JSONResponse({"ok": True, "stored": stored})


def _without_nul(value: Any) -> Any:
    """``value`` with NUL characters replaced by U+FFFD in every string.

    PostgreSQL's text and jsonb cannot hold NUL. Rejecting such an update would make Telegram
    redeliver it for a day and hold back every later update of the same chat behind it.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def _message_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "update_id": row["update_id"],
        "chat_id": row["chat_id"],
        "text": row["text"],
        "stage": row["stage"],
        "score": row["score"],
        "failure_reason": row["failure_reason"],
    }


async def _fetch(svc: Services, query: str, *args: Any) -> list[asyncpg.Record]:
    async with svc.pool.acquire(timeout=svc.settings.db_acquire_timeout) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows


@app.get("/api/v1/messages")
async def list_messages(
    request: Request, chat_id: int | None = None, after_id: int = 0, limit: int = 100
) -> Response:
    svc = services(request)
    try:
        rows = await _fetch(
            svc,
            "SELECT * FROM messages WHERE id > $1 AND ($2::bigint IS NULL OR chat_id = $2)"
            " ORDER BY id LIMIT $3",
            after_id,
            chat_id,
            max(1, min(limit, 1000)),
        )
    except TRANSIENT_DB_ERRORS as error:
        return _unavailable(error)
    return JSONResponse({"messages": [_message_json(row) for row in rows]})


@app.get("/api/v1/messages/{message_id}")
async def get_message(request: Request, message_id: int) -> Response:
    svc = services(request)
    try:
        rows = await _fetch(svc, "SELECT * FROM messages WHERE id = $1", message_id)
        if not rows:
            return _error(404, f"no message {message_id}")
        message = rows[0]
        attempts = await _fetch(
            svc,
            "SELECT stage, count, last_error FROM attempts"
            " WHERE (stage = 'save' AND key = $1) OR (stage <> 'save' AND key = $2)",
            message["update_id"],
            message_id,
        )
        knowledge = await _fetch(
            svc, "SELECT count(*) AS n FROM knowledge WHERE message_id = $1", message_id
        )
    except TRANSIENT_DB_ERRORS as error:
        return _unavailable(error)
    body = _message_json(message)
    body["attempts"] = {row["stage"]: row["count"] for row in attempts}
    body["last_errors"] = {row["stage"]: row["last_error"] for row in attempts if row["last_error"]}
    body["knowledge_items"] = knowledge[0]["n"]
    return JSONResponse(body)


@app.get("/api/v1/knowledge")
async def list_knowledge(
    request: Request, message_id: int | None = None, after_id: int = 0, limit: int = 100
) -> Response:
    svc = services(request)
    try:
        rows = await _fetch(
            svc,
            "SELECT id, message_id, item_no, content FROM knowledge"
            " WHERE id > $1 AND ($2::bigint IS NULL OR message_id = $2) ORDER BY id LIMIT $3",
            after_id,
            message_id,
            max(1, min(limit, 1000)),
        )
    except TRANSIENT_DB_ERRORS as error:
        return _unavailable(error)
    return JSONResponse({"knowledge": [dict(row) for row in rows]})


@app.get("/health/live")
async def live() -> Response:
    return JSONResponse({"status": "live"})


@app.get("/health/ready")
async def ready(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        async with svc.pool.acquire(timeout=0.5) as conn:
            await conn.fetchval("SELECT 1", timeout=0.5)
        checks["postgres"] = "ok"
    except Exception as error:  # noqa: BLE001 - report any failure as not ready
        checks["postgres"] = f"unavailable: {type(error).__name__}"
    checks["nats"] = "ok" if _broker_connected() else "unavailable"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@app.websocket("/ws/events")
async def events_feed(websocket: WebSocket) -> None:
    """Stage events ``{event_id, message_id, stage, at}`` in event-id order.

    ``?last_event_id=N`` replays every event after N from PostgreSQL, then streams live ones;
    without it the feed starts with events committed after the connection opened.
    """
    svc = services(websocket)
    await websocket.accept()
    wake = svc.notifications.subscribe("events")
    cursor_param = websocket.query_params.get("last_event_id")
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        if cursor_param is None or not cursor_param.isdigit() or bug("ws_no_resume"):
            cursor = await _latest_event_id(svc)
        else:
            cursor = int(cursor_param)
        while not receiver.done():
            try:
                rows = await _fetch(
                    svc,
                    "SELECT event_id, message_id, stage, at FROM events"
                    " WHERE event_id > $1 ORDER BY event_id LIMIT $2",
                    cursor,
                    WS_BATCH,
                )
            except TRANSIENT_DB_ERRORS:
                rows = []
            for row in rows:
                await websocket.send_json(
                    {
                        "event_id": row["event_id"],
                        "message_id": row["message_id"],
                        "stage": row["stage"],
                        "at": row["at"].isoformat(),
                    }
                )
                cursor = row["event_id"]
            if len(rows) < WS_BATCH:
                await wait_for(wake, WS_POLL_SECONDS)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        svc.notifications.unsubscribe("events", wake)
        receiver.cancel()


async def _latest_event_id(svc: Services) -> int:
    while True:
        try:
            rows = await _fetch(svc, "SELECT coalesce(max(event_id), 0) AS n FROM events")
            latest: int = rows[0]["n"]
            return latest
        except TRANSIENT_DB_ERRORS:
            await asyncio.sleep(WS_POLL_SECONDS)


async def _drain_client(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            await websocket.receive_text()


def main() -> None:
    import uvicorn

    from pipeline_app.logs import setup_logging

    setup_logging("api")
    settings = get_settings()
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        ws_ping_interval=5,
        ws_ping_timeout=5,
    )


if __name__ == "__main__":
    main()
