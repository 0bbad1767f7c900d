"""A reset that the target's own open transaction blocks: a one-line error that names the
blocking session and the way out, instead of a raw TimeoutError after a silent wait."""

from __future__ import annotations

import time

import asyncpg
import pytest

from chaos_model._loop import ControlLoop
from chaos_model.errors import StackTimeout
from chaos_model.stack import LocalStack
from chaos_model.stores import StoreClients


def test_a_truncate_behind_an_open_transaction_names_the_session(stack: LocalStack) -> None:
    url = stack.endpoints.database_url
    loop = ControlLoop()

    async def hold() -> asyncpg.Connection:
        conn = await asyncpg.connect(url, server_settings={"application_name": "slow-service"})
        await conn.execute("CREATE TABLE IF NOT EXISTS reset_probe (x int)")
        await conn.execute("BEGIN")
        await conn.fetch("SELECT * FROM reset_probe")
        return conn

    holder = loop.run(hold(), timeout=10)
    stores = StoreClients(
        url, stack.endpoints.nats_url, reset_sql="TRUNCATE reset_probe", sql_seconds=1.0
    )
    try:
        began = time.monotonic()
        with pytest.raises(StackTimeout) as blocked:
            stores.reset()
        message = str(blocked.value)
        assert time.monotonic() - began < 5, "the reset gives up after its SQL deadline"
        assert "\n" not in message
        assert message.startswith(
            "resetting the database with the adapter's reset SQL did not finish within 1s"
        )
        assert f"pid {holder.get_server_pid()} (slow-service, idle in transaction" in message
        assert "DELETE only for rows another session has locked" in message
        loop.run(holder.execute("ROLLBACK"), timeout=5)
        stores.reset()  # released: the same clients reset again, on a fresh connection
    finally:
        loop.run(holder.execute("DROP TABLE IF EXISTS reset_probe"), timeout=10)
        loop.run(holder.close(), timeout=5)
        stores.close()
        loop.close()
