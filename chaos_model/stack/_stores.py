"""Direct clients of a stack's stores, for probes and for emptying them between examples."""

from __future__ import annotations

import contextlib

import asyncpg
import nats
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop

STREAM = "pipeline"
RESET_SQL = (
    "DELETE FROM knowledge; DELETE FROM events; DELETE FROM messages;"
    " DELETE FROM telegram_updates; DELETE FROM processed; DELETE FROM attempts;"
    " DELETE FROM outbox;"
)


async def _quiet(error: Exception) -> None:
    """The stores' own NATS client sees NATS killed on purpose: nothing to print."""


class StoreClients:
    """A PostgreSQL connection and a NATS client on their own event loop thread."""

    def __init__(self, database_url: str, nats_url: str) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self._loop = ControlLoop()
        self._pg: asyncpg.Connection | None = None
        self._nats: NatsClient | None = None

    def ping(self) -> bool:
        """One fresh connection answering ``SELECT 1`` (what a new client would see)."""

        async def probe() -> bool:
            conn = await asyncpg.connect(self.database_url, timeout=0.5)
            try:
                return bool(await conn.fetchval("SELECT 1", timeout=0.5) == 1)
            finally:
                await conn.close()

        return self._loop.run(probe(), timeout=1.5)

    def reset(self) -> None:
        """Empty every table and purge the JetStream stream."""
        self._loop.run(self._reset(), timeout=10)

    async def _reset(self) -> None:
        for attempt in (1, 2):  # a connection from before a PostgreSQL restart fails once
            if self._pg is None or self._pg.is_closed():
                self._pg = await asyncpg.connect(self.database_url, timeout=2)
            try:
                await self._pg.execute(RESET_SQL, timeout=5)
                break
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                self._pg.terminate()
                self._pg = None
                if attempt == 2:
                    raise
        if self._nats is None or not self._nats.is_connected:
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()
            self._nats = await nats.connect(
                self.nats_url, connect_timeout=2, allow_reconnect=False, error_cb=_quiet
            )
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._nats.jetstream().purge_stream(STREAM)

    def close(self) -> None:
        async def close() -> None:
            if self._pg is not None:
                self._pg.terminate()
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()

        with contextlib.suppress(Exception):
            self._loop.run(close(), timeout=2)
        self._loop.close()
