"""PostgreSQL statements with a deadline that, when they overrun, say which sessions held them up
(from ``pg_stat_activity``), instead of a bare TimeoutError after a silent wait."""

from __future__ import annotations

import asyncio
import contextlib
import re

import asyncpg

from chaos_model.errors import StackTimeout

#: the sessions holding the locks a backend waits for, as PostgreSQL sees them
BLOCKERS_SQL = """
SELECT pid, coalesce(state, '?') AS state, coalesce(application_name, '') AS application,
       coalesce(extract(epoch FROM now() - xact_start)::int, 0) AS open_for, query
FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids($1))
"""
NON_BLOCKING_RESET = (
    "TRUNCATE waits for every open transaction that has touched the table, DELETE only for"
    " rows another session has locked (docs/your-own-system.md, [database])"
)


async def execute_within(
    conn: asyncpg.Connection, sql: str, seconds: float, database_url: str, what: str
) -> None:
    """Run ``sql`` on ``conn``; past ``seconds``, terminate ``conn`` and raise StackTimeout
    naming the sessions it waited for (read on a second connection to ``database_url``)."""
    statement = asyncio.ensure_future(conn.execute(sql))
    done, _ = await asyncio.wait({statement}, timeout=seconds)
    if statement in done:
        statement.result()
        return
    blockers = await blocking_sessions(database_url, conn.get_server_pid())
    statement.cancel()
    with contextlib.suppress(BaseException):
        await statement
    conn.terminate()
    awaited = f"`{one_line(sql, 80)}`"
    if blockers:
        awaited += f", blocked by {blockers}; {NON_BLOCKING_RESET}"
    raise StackTimeout(what, seconds, awaited)


async def blocking_sessions(database_url: str, pid: int) -> str:
    """The sessions ``pid`` waits for, on one line; empty when they cannot be read."""
    try:
        conn = await asyncpg.connect(database_url, timeout=2)
        try:
            rows = await conn.fetch(BLOCKERS_SQL, pid, timeout=2)
        finally:
            conn.terminate()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return ""
    return "; ".join(
        f"pid {row['pid']} ({row['application'] or 'no application_name'},"
        f" {row['state']}, transaction open {row['open_for']} s,"
        f" last query `{one_line(row['query'], 60)}`)"
        for row in rows
    )


def one_line(text: str, width: int) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= width else flat[: width - 3] + "..."
