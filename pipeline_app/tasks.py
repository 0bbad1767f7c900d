"""The task chain: ``save_telegram_message`` -> ``score_message_task`` ->
``extract_knowledge_from_messages_task``.

Each task is acknowledged by hand, after its effect (or a retry) is committed; see
:mod:`pipeline_app.stages` for the rules they share.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import asyncpg
from taskiq import Context, TaskiqDepends, TaskiqEvents, TaskiqState

from pipeline_app.broker import build_broker
from pipeline_app.bugs import bug
from pipeline_app.db import create_pool, enqueue, insert_event
from pipeline_app.failpoints import failpoint
from pipeline_app.llm import LLMClient, LLMUnavailable
from pipeline_app.settings import get_settings
from pipeline_app.stages import (
    EXTRACT,
    SAVE,
    SCORE,
    Stage,
    fail_message,
    mark_processed,
    run_stage,
)

settings = get_settings()
broker = build_broker(settings, "pipeline")

Ctx = Annotated[Context, TaskiqDepends()]
T = TypeVar("T")


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def _open_resources(state: TaskiqState) -> None:
    state.pool = await create_pool(settings, min_size=0, max_size=settings.worker_concurrency + 2)
    state.llm = LLMClient(settings)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _close_resources(state: TaskiqState) -> None:
    await state.llm.close()
    await state.pool.close()


async def _ack(context: Context) -> None:
    if context.is_ackable and not context.is_acked:
        await context.ack()


@broker.task(task_name=SAVE.task_name)
async def save_telegram_message(update_id: int, context: Ctx) -> None:
    """Turn an accepted Telegram update into a message (stage ``received``)."""
    pool: asyncpg.Pool = context.state.pool

    async def work(pool: asyncpg.Pool) -> None:
        async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
            # BUG ZOO no_update_dedup: no processed marker either, so every save task stores one
            # more message (the webhook enqueues one per delivery of the update).
            if not bug("no_update_dedup") and not await mark_processed(conn, SAVE, update_id):
                return
            message_id = await _store_message(conn, update_id, "received", None)
            if message_id is None:
                return
            await enqueue(conn, SCORE.task_name, SCORE.args(message_id))
        await failpoint("worker.save.after_commit_before_ack")

    async def dead_letter(conn: asyncpg.Connection, reason: str) -> None:
        await _store_message(conn, update_id, "failed", reason)

    await run_stage(pool, settings, SAVE, update_id, work, dead_letter)
    await _ack(context)


async def _store_message(
    conn: asyncpg.Connection, update_id: int, stage: str, reason: str | None
) -> int | None:
    """Create the message of an accepted update at ``stage``, with its event; None if the update
    is gone (the store was reset)."""
    payload = await conn.fetchval(
        "SELECT payload FROM telegram_updates WHERE update_id = $1", update_id
    )
    if payload is None:
        return None
    message = json.loads(payload)["message"]
    message_id: int = await conn.fetchval(
        "INSERT INTO messages (update_id, chat_id, tg_message_id, text, stage, failure_reason)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        update_id,
        message["chat"]["id"],
        message["message_id"],
        message.get("text") or "",
        stage,
        reason,
    )
    await insert_event(conn, message_id, stage)
    return message_id


async def _retried(conn: asyncpg.Connection, stage: Stage, message_id: int) -> bool:
    """BUG ZOO events_first_attempt_only: "a retry must not show the stage twice on the
    dashboard", so only the first attempt of a stage writes its event. The processed marker
    already makes a retry harmless; a stage that succeeds on a retry (after an LLM error) is
    left without its event."""
    count = await conn.fetchval(
        "SELECT count FROM attempts WHERE stage = $1 AND key = $2", stage.name, message_id
    )
    return bool(count is not None and count > 1)


async def _message_text(pool: asyncpg.Pool, message_id: int) -> str | None:
    async with pool.acquire(timeout=settings.db_acquire_timeout) as conn:
        text: str | None = await conn.fetchval(
            "SELECT text FROM messages WHERE id = $1", message_id
        )
        return text


async def advance(
    context: Context,
    stage: Stage,
    message_id: int,
    *,
    ask: str,
    parse: Callable[[dict[str, Any]], T],
    move: tuple[str, str],
    effect: Callable[[asyncpg.Connection, T], Awaitable[None]],
    then: Stage | None = None,
    idempotent: bool = True,
) -> None:
    """One LLM stage of a message: read its text, ask the LLM (``ask``), and commit in one
    transaction the processed marker, the stage move ``move`` (from, to), the stage's
    ``effect``, the stage event and the next stage's task (``then``); acknowledge after."""
    pool: asyncpg.Pool = context.state.pool
    llm: LLMClient = context.state.llm
    source, target = move

    marker_first = idempotent and bug("dedup_marker_first")
    publish_next = then is not None and stage is SCORE and bug("dual_write_score")
    items_first = stage is EXTRACT and bug("extract_items_before_marker")
    first_attempt_only = bug("events_first_attempt_only")

    async def work(pool: asyncpg.Pool) -> None:
        if marker_first and not await _mark_alone(pool, stage, message_id):
            return
        text = await _message_text(pool, message_id)
        if text is None:
            return
        answer = parse(await llm.complete_json(ask, message_id, text))
        await failpoint(f"worker.{stage.name}.after_llm_before_commit")
        if items_first:
            # BUG ZOO extract_items_before_marker: the items commit in a transaction of their
            # own, before the marker and the stage move; a crash between the two and the
            # redelivered task, finding no marker, stores every item again.
            async with (
                pool.acquire(timeout=settings.db_acquire_timeout) as conn,
                conn.transaction(),
            ):
                await effect(conn, answer)
        async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
            if (
                idempotent
                and not marker_first
                and not await mark_processed(conn, stage, message_id)
            ):
                return
            guard = " AND stage = $3" if idempotent else ""
            moved = await conn.fetchval(
                f"UPDATE messages SET stage = $2, updated_at = now() WHERE id = $1{guard}"
                " RETURNING id",
                message_id,
                target,
                *((source,) if idempotent else ()),
            )
            if moved is None:
                return
            if not items_first:
                await effect(conn, answer)
            # BUG ZOO events_first_attempt_only: no event for a stage done on a retry
            if not (first_attempt_only and await _retried(conn, stage, message_id)):
                await insert_event(conn, message_id, target)
            if then is not None and not publish_next:
                await enqueue(conn, then.task_name, then.args(message_id))
        if publish_next:
            assert then is not None
            # BUG ZOO dual_write_score: the next stage goes straight to NATS after the commit (a
            # dual write): a crash between the two leaves the message `scored` for good, and a
            # redelivered score task finds its marker and does nothing.
            await _publish_direct(then, message_id)
        await failpoint(f"worker.{stage.name}.after_commit_before_ack")

    async def dead_letter(conn: asyncpg.Connection, reason: str) -> None:
        await fail_message(conn, message_id, reason)

    await run_stage(pool, settings, stage, message_id, work, dead_letter)
    await _ack(context)


async def _mark_alone(pool: asyncpg.Pool, stage: Stage, message_id: int) -> bool:
    """BUG ZOO dedup_marker_first: the processed marker commits before the work is done. A
    crash after it and before the work commits leaves a message the redelivery skips: "already
    processed"."""
    async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
        return await mark_processed(conn, stage, message_id)


async def _publish_direct(stage: Stage, key: int) -> None:
    task = broker.find_task(stage.task_name)
    assert task is not None
    await task.kiq(**json.loads(stage.args(key)))


@broker.task(task_name=SCORE.task_name)
async def score_message_task(message_id: int, context: Ctx) -> None:
    """Ask the LLM for a relevance score in [0, 1]; stage ``received`` -> ``scored``."""

    async def store_score(conn: asyncpg.Connection, score: float) -> None:
        if bug("score_rounded"):
            # BUG ZOO score_rounded: two decimals are "all the dashboard shows" (a numeric(3,2)
            # column would keep the same), so the stored score is not the one the LLM gave.
            score = round(score, 2)
        await conn.execute("UPDATE messages SET score = $2 WHERE id = $1", message_id, score)

    await advance(
        context,
        SCORE,
        message_id,
        ask="score",
        parse=_valid_score,
        move=("received", "scored"),
        effect=store_score,
        then=EXTRACT,
    )


@broker.task(task_name=EXTRACT.task_name)
async def extract_knowledge_from_messages_task(message_id: int, context: Ctx) -> None:
    """Ask the LLM for knowledge items and store them; stage ``scored`` -> ``extracted``."""

    async def store_items(conn: asyncpg.Connection, items: list[str]) -> None:
        await conn.executemany(
            "INSERT INTO knowledge (message_id, item_no, content) VALUES ($1, $2, $3)",
            [(message_id, number, item) for number, item in enumerate(items)],
        )

    await advance(
        context,
        EXTRACT,
        message_id,
        ask="extract",
        parse=_valid_items,
        move=("scored", "extracted"),
        effect=store_items,
        # BUG ZOO non_idempotent_extract: no processed marker, no stage guard and (see
        # db.migrate) no unique key: a redelivered task stores the knowledge again.
        idempotent=not bug("non_idempotent_extract"),
    )


def _valid_score(answer: dict[str, Any]) -> float:
    score = answer.get("score")
    if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
        raise LLMUnavailable(f"LLM gave an invalid score: {score!r}")
    return float(score)


def _valid_items(answer: dict[str, Any]) -> list[str]:
    items = answer.get("items")
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise LLMUnavailable("LLM gave invalid knowledge items")
    return items
