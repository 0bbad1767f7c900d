from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack


async def _terminate_all(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        count: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND datname = current_database()"
        )
        return count
    finally:
        await conn.close()


@register
@dataclass(frozen=True)
class TerminateConnections(Fault):
    """Terminate every client connection to PostgreSQL (``pg_terminate_backend``), as an
    administrator or a failover would. Instant: pools must notice and reconnect by themselves."""

    kind = "terminate_connections"
    instant = True

    def apply(self, stack: Stack) -> None:
        asyncio.run(_terminate_all(stack.endpoints.database_url))

    def heal(self, stack: Stack) -> None:
        return None
