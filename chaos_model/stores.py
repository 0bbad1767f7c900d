"""Direct clients of a stack's stores (PostgreSQL, the JetStream stream), for probes and for
emptying them between examples; no backend logic, so every backend shares them."""

from __future__ import annotations

import contextlib

import asyncpg
import nats
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop
from chaos_model._pg import execute_within
from chaos_model.errors import StackTimeout


async def _quiet(error: Exception) -> None:
    """The stores' own NATS client sees NATS killed on purpose: nothing to print."""


class StoreClients:
    """A PostgreSQL connection and a NATS client on their own event loop thread.

    ``reset_sql`` empties the target's tables (the adapter's ``[database] reset``); ``stream``
    is the JetStream stream to purge (none for a target on core NATS); ``sql_seconds`` bounds
    the reset SQL.
    """

    def __init__(
        self,
        database_url: str,
        nats_url: str,
        *,
        reset_sql: str = "",
        stream: str = "",
        sql_seconds: float = 5.0,
    ) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.reset_sql = reset_sql
        self.stream = stream
        self.sql_seconds = sql_seconds
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

    def nats_answers(self) -> bool:
        """NATS accepts a connection (the stores' own, kept for the purge)."""

        async def connect() -> bool:
            await self._nats_client()
            return True

        return self._loop.run(connect(), timeout=3)

    def reset(self) -> None:
        """Run the reset SQL and purge the JetStream stream; StackTimeout if that overruns."""
        seconds = self.sql_seconds + 5
        try:
            self._loop.run(self._reset(), timeout=seconds)
        except TimeoutError:
            awaited = "the reset SQL and the stream purge"
            raise StackTimeout("resetting the stores", seconds, awaited) from None

    async def _reset(self) -> None:
        if self.reset_sql:
            await self._reset_database()
        if self.stream:
            await self._purge_stream()

    async def _reset_database(self) -> None:
        for attempt in (1, 2):  # a connection from before a PostgreSQL restart fails once
            if self._pg is None or self._pg.is_closed():
                self._pg = await asyncpg.connect(self.database_url, timeout=2)
            try:
                what = "resetting the database with the adapter's reset SQL"
                await execute_within(
                    self._pg, self.reset_sql, self.sql_seconds, self.database_url, what
                )
                break
            except StackTimeout:
                self._pg = None
                raise
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                self._pg.terminate()
                self._pg = None
                if attempt == 2:
                    raise

    async def _nats_client(self) -> NatsClient:
        if self._nats is None or not self._nats.is_connected:
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()
            self._nats = await nats.connect(
                self.nats_url, connect_timeout=2, allow_reconnect=False, error_cb=_quiet
            )
        return self._nats

    async def _purge_stream(self) -> None:
        client = await self._nats_client()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().purge_stream(self.stream)

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
