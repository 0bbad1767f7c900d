"""The toy target's API: a Telegram webhook that stores a message and announces it on core NATS.

Run: ``TOY_DB=postgresql://... TOY_NATS=nats://... TOY_SECRET=... TOY_PORT=8090
python -m tests.toy_target.api``. Ready when ``GET /healthz`` answers 200 (the database answers).

Planted weakness: there is no outbox. The publish after the commit is fire-and-forget on core
NATS, so a message published while no worker is subscribed (or while NATS is down) is lost and
its row stays ``new`` forever, although the webhook answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator

import asyncpg
import nats
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client

log = logging.getLogger("toy.api")
INT64 = range(-(2**63), 2**63)
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: seconds the webhook gives the database before answering 503: Telegram waits no longer
WEBHOOK_DEADLINE = 2.0


async def _quiet(error: Exception) -> None:
    log.debug("nats: %s", error)


async def connect_nats() -> Client:
    """Connect to ``TOY_NATS``, waiting for it to come up, and reconnect forever afterwards."""
    return await nats.connect(
        os.environ["TOY_NATS"],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=1,
        error_cb=_quiet,
    )


def parse_update(raw: bytes) -> tuple[int, int, str] | None:
    """``(chat id, message id, text)`` from a Telegram Update, or None when it is malformed."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    message = body.get("message") if isinstance(body, dict) else None
    chat = message.get("chat") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(chat, dict):
        return None
    chat_id, message_id, text = chat.get("id"), message.get("message_id"), message.get("text", "")
    if type(chat_id) is not int or type(message_id) is not int:  # a bool is not an int here
        return None
    if chat_id not in INT64 or message_id not in INT64 or not isinstance(text, str):
        return None
    try:
        text.encode()  # a lone surrogate (or a NUL, below) cannot be stored in PostgreSQL
    except UnicodeEncodeError:
        return None
    if "\x00" in text:
        return None
    return chat_id, message_id, text


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # a slow start (caches to warm, a big migration): TOY_STARTUP_DELAY seconds before ready
    await asyncio.sleep(float(os.environ.get("TOY_STARTUP_DELAY", "0")))
    app.state.pool = await asyncpg.create_pool(
        os.environ["TOY_DB"], min_size=0, max_size=10, timeout=2, command_timeout=5
    )
    app.state.nats = None
    app.state.secret = os.environ["TOY_SECRET"].encode()

    async def connect() -> None:  # NATS may be down: the API is ready without it
        app.state.nats = await connect_nats()

    connecting = asyncio.create_task(connect())
    try:
        yield
    finally:
        connecting.cancel()
        if app.state.nats is not None:
            with contextlib.suppress(*DB_ERRORS, nats.errors.Error):
                await asyncio.wait_for(app.state.nats.close(), 2)
        with contextlib.suppress(*DB_ERRORS):
            await asyncio.wait_for(app.state.pool.close(), 5)


app = FastAPI(lifespan=lifespan)


async def _store(pool: asyncpg.Pool, chat_id: int, message_id: int, text: str) -> int | None:
    """Insert the message; None when Telegram sent it before (a check, not a unique key)."""
    seen = await pool.fetchval(
        "SELECT pk FROM chat_messages WHERE chat_id = $1 AND tg_message_id = $2",
        chat_id,
        message_id,
    )
    if seen is not None:
        return None
    pk: int = await pool.fetchval(
        "INSERT INTO chat_messages (chat_id, tg_message_id, body) VALUES ($1, $2, $3) RETURNING pk",
        chat_id,
        message_id,
        text,
    )
    return pk


@app.post("/hooks/tg")
async def webhook(request: Request) -> JSONResponse:
    secret = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
    if not hmac.compare_digest(secret, request.app.state.secret):
        return JSONResponse({"ok": False, "error": "bad secret"}, 401)
    update = parse_update(await request.body())
    if update is None:
        return JSONResponse({"ok": False, "error": "malformed update"}, 400)
    try:
        async with asyncio.timeout(WEBHOOK_DEADLINE):
            pk = await _store(request.app.state.pool, *update)
    except DB_ERRORS as error:
        log.warning("insert failed: %r", error)
        return JSONResponse({"ok": False, "error": "database unavailable"}, 503)
    if pk is None:
        return JSONResponse({"ok": True, "duplicate": True})
    nc: Client | None = request.app.state.nats
    try:  # the weakness: no outbox, no retry; a lost publish is never noticed
        if nc is None:
            raise ConnectionError("not connected to NATS yet")
        await asyncio.wait_for(nc.publish("toy.rate", json.dumps({"pk": pk}).encode()), 1)
    except Exception as error:  # noqa: BLE001 - at-most-once by design
        log.warning("publish of pk=%s lost: %r", pk, error)
    return JSONResponse({"ok": True})


@app.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    try:
        async with asyncio.timeout(2):
            await request.app.state.pool.fetchval("select 1")
    except DB_ERRORS as error:
        return JSONResponse({"ok": False, "error": repr(error)}, 503)
    return JSONResponse({"ok": True})


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["TOY_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
