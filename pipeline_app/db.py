"""PostgreSQL access: pool creation with timeouts everywhere, migrations, transient-error test."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

import asyncpg

from pipeline_app.bugs import bug
from pipeline_app.settings import Settings

log = logging.getLogger(__name__)

EVENTS_LOCK_KEY = 7_146_001
MIGRATIONS_LOCK_KEY = 7_146_002

TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
)


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=settings.db_connect_timeout,
        command_timeout=settings.db_command_timeout,
        max_inactive_connection_lifetime=30,
    )
    return pool


def _migration_sql() -> list[tuple[str, str]]:
    folder = resources.files("pipeline_app") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name
    )
    return [(entry.name, entry.read_text()) for entry in files]


async def migrate(dsn: str) -> list[str]:
    """Apply pending SQL migrations; return the names applied. Safe to run concurrently."""
    conn = await asyncpg.connect(dsn, timeout=5)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in _migration_sql():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        # BUG ZOO no_update_dedup: drop the unique keys that make update_id a dedup key.
        if bug("no_update_dedup"):
            await conn.execute(
                "ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_update_id_key"
            )
        # BUG ZOO non_idempotent_extract, extract_items_before_marker: no unique key on
        # (message_id, item_no) either, so items stored twice are stored twice.
        if bug("non_idempotent_extract") or bug("extract_items_before_marker"):
            await conn.execute(
                "ALTER TABLE knowledge DROP CONSTRAINT IF EXISTS knowledge_message_item_key"
            )
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK_KEY)
    finally:
        await conn.close()
    return applied


async def insert_event(conn: asyncpg.Connection, message_id: int, stage: str) -> None:
    """Record a stage event inside the caller's transaction, in commit order."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", EVENTS_LOCK_KEY)
    await conn.execute("INSERT INTO events (message_id, stage) VALUES ($1, $2)", message_id, stage)
    await conn.execute("SELECT pg_notify('events', '')")


async def enqueue(
    conn: asyncpg.Connection, task_name: str, args: str, delay_seconds: float = 0.0
) -> None:
    """Add a task to the outbox inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO outbox (task_name, args, available_at)"
        " VALUES ($1, $2::jsonb, now() + make_interval(secs => $3))",
        task_name,
        args,
        delay_seconds,
    )
    await conn.execute("SELECT pg_notify('outbox', '')")
