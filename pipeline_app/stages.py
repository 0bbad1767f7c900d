"""How one pipeline stage runs: count the attempt, do the work, commit once, ack after commit.

The rules every stage follows, whatever its work:

* The attempt is counted in its own transaction before the work starts, so crashes count too;
  at the configured maximum the subject goes to the dead-letter state (``failed`` with a reason).
* The work commits its effect together with a processed marker ``(stage, key)`` and the outbox
  row of the next stage; a redelivered task finds the marker and only acknowledges.
* A transient failure (LLM unavailable, database unreachable) commits a delayed retry into the
  outbox and then acknowledges; if even that cannot be committed, the task is left unacked and
  JetStream redelivers it after the ack wait.
* A circuit-open LLM is not the message's fault: the attempt is refunded and retried later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from pipeline_app.bugs import bug
from pipeline_app.db import TRANSIENT_DB_ERRORS, enqueue, insert_event
from pipeline_app.llm import CircuitOpen, LLMUnavailable
from pipeline_app.settings import Settings

log = logging.getLogger(__name__)
#: BUG ZOO in_memory_retry: the retries waiting in memory (kept so they are not collected)
_RETRIES: set[asyncio.Task[None]] = set()

EXHAUSTED = -1


@dataclass(frozen=True)
class Stage:
    name: str
    task_name: str
    args_key: str

    def args(self, key: int) -> str:
        return json.dumps({self.args_key: key})


SAVE = Stage("save", "save_telegram_message", "update_id")
SCORE = Stage("score", "score_message_task", "message_id")
EXTRACT = Stage("extract", "extract_knowledge_from_messages_task", "message_id")


async def count_attempt(conn: asyncpg.Connection, stage: Stage, key: int, limit: int) -> int | None:
    """Count one more execution; None if already processed, EXHAUSTED at the limit."""
    async with conn.transaction():
        if await conn.fetchval(
            "SELECT 1 FROM processed WHERE stage = $1 AND key = $2", stage.name, key
        ):
            return None
        count: int | None = await conn.fetchval(
            "INSERT INTO attempts (stage, key, count) VALUES ($1, $2, 1)"
            " ON CONFLICT (stage, key) DO UPDATE SET count = attempts.count + 1"
            " WHERE attempts.count < $3 RETURNING count",
            stage.name,
            key,
            limit,
        )
        return EXHAUSTED if count is None else count


async def mark_processed(conn: asyncpg.Connection, stage: Stage, key: int) -> bool:
    """Insert the processed marker in the caller's transaction; False if it already existed."""
    inserted = await conn.fetchval(
        "INSERT INTO processed (stage, key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        stage.name,
        key,
    )
    return inserted is not None


async def fail_message(conn: asyncpg.Connection, message_id: int, reason: str) -> None:
    """Dead-letter a message in the caller's transaction."""
    moved = await conn.fetchval(
        "UPDATE messages SET stage = 'failed', failure_reason = $2, updated_at = now()"
        " WHERE id = $1 AND stage NOT IN ('extracted', 'failed') RETURNING id",
        message_id,
        reason,
    )
    if moved is not None:
        await insert_event(conn, message_id, "failed")


def backoff(settings: Settings, attempt: int, retry_after: float | None) -> float:
    delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempt - 1))
    delay *= random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 10.0))
    return float(delay)


Work = Callable[[asyncpg.Pool], Awaitable[None]]
DeadLetter = Callable[[asyncpg.Connection, str], Awaitable[None]]


async def run_stage(
    pool: asyncpg.Pool,
    settings: Settings,
    stage: Stage,
    key: int,
    work: Work,
    dead_letter: DeadLetter,
) -> None:
    """Run one delivery of ``stage`` for ``key``; return normally when it may be acknowledged.

    Raises only when neither the effect nor a retry could be committed.
    """
    limit = 2**31 - 1 if bug("infinite_redelivery") else settings.max_attempts
    async with pool.acquire(timeout=settings.db_acquire_timeout) as conn:
        attempt = await count_attempt(conn, stage, key, limit)
    if attempt is None:
        return
    if attempt == EXHAUSTED:
        async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
            if await mark_processed(conn, stage, key):
                last_error = await conn.fetchval(
                    "SELECT last_error FROM attempts WHERE stage = $1 AND key = $2",
                    stage.name,
                    key,
                )
                reason = (
                    f"{stage.name}: gave up after {settings.max_attempts} attempts"
                    f" (last error: {last_error or 'worker did not finish'})"
                )
                try:
                    async with conn.transaction():  # a savepoint: the marker commits anyway
                        await dead_letter(conn, reason)
                except asyncpg.PostgresError as error:
                    log.error(
                        "%s %s: %s; dead letter not storable: %s", stage.name, key, reason, error
                    )
        return
    try:
        await work(pool)
    except CircuitOpen as error:
        await _retry_later(pool, settings, stage, key, error.retry_in, str(error), refund=True)
    except LLMUnavailable as error:
        if bug("http_errors_final") and error.status is not None:  # BUG ZOO http_errors_final
            await _dead_letter_now(pool, settings, stage, key, error.reason, dead_letter)
            return
        delay = backoff(settings, attempt, error.retry_after)
        await _retry_later(pool, settings, stage, key, delay, error.reason, refund=False)
    except TRANSIENT_DB_ERRORS as error:
        reason = f"database: {type(error).__name__}"
        delay = backoff(settings, attempt, None)
        await _retry_later(pool, settings, stage, key, delay, reason, refund=False)
    except asyncpg.PostgresError as error:
        # The database refused the effect itself: retrying counts attempts until the dead letter.
        reason = f"database refused: {type(error).__name__}: {error}"[:500]
        delay = backoff(settings, attempt, None)
        await _retry_later(pool, settings, stage, key, delay, reason, refund=False)


async def _dead_letter_now(
    pool: asyncpg.Pool,
    settings: Settings,
    stage: Stage,
    key: int,
    reason: str,
    dead_letter: DeadLetter,
) -> None:
    """BUG ZOO http_errors_final: an error answer from the LLM is taken as its last word (an HTTP
    error "means the request is wrong"), so the message is dead-lettered at the first 429 or 5xx
    instead of being retried within its budget."""
    async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
        if await mark_processed(conn, stage, key):
            await dead_letter(conn, f"{stage.name}: {reason}")


async def _retry_later(
    pool: asyncpg.Pool,
    settings: Settings,
    stage: Stage,
    key: int,
    delay: float,
    reason: str,
    *,
    refund: bool,
) -> None:
    if bug("ack_failures"):
        # BUG ZOO ack_failures: no retry is scheduled; the task raises instead and taskiq's
        # WHEN_SAVED acknowledgement acknowledges the failed delivery: nothing runs it again.
        raise RuntimeError(f"{stage.name} {key} failed: {reason}")
    log.info("%s %s: %s; retrying in %.2fs", stage.name, key, reason, delay)
    if bug("in_memory_retry") and not refund:
        # BUG ZOO in_memory_retry: the retry waits in this process's memory and the task is
        # acknowledged now; a crash during the wait loses the message for good.
        _RETRIES.add(asyncio.create_task(_retry_from_memory(stage, key, delay)))
        return
    async with pool.acquire(timeout=settings.db_acquire_timeout) as conn, conn.transaction():
        await conn.execute(
            "UPDATE attempts SET last_error = $3, count = count - $4 WHERE stage = $1 AND key = $2",
            stage.name,
            key,
            reason,
            1 if refund else 0,
        )
        await enqueue(conn, stage.task_name, stage.args(key), delay)


async def _retry_from_memory(stage: Stage, key: int, delay: float) -> None:
    """BUG ZOO in_memory_retry: publish the task again after ``delay``, straight to NATS."""
    from pipeline_app.tasks import broker

    try:
        await asyncio.sleep(delay)
        task = broker.find_task(stage.task_name)
        assert task is not None
        await task.kiq(**json.loads(stage.args(key)))
    finally:
        _RETRIES.discard(asyncio.current_task())
