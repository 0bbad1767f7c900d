"""Apply ``schema.sql``: ``TOY_DB=postgresql://... python -m tests.toy_target.migrate``.

Retries the connection for up to 30 s (the database may still be starting).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

SCHEMA = Path(__file__).with_name("schema.sql")


async def migrate(dsn: str, deadline: float = 30.0) -> None:
    give_up = time.monotonic() + deadline
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
            break
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            if time.monotonic() > give_up:
                raise RuntimeError(f"cannot connect to TOY_DB: {error}") from error
            await asyncio.sleep(0.2)  # readiness poll: the database may be starting
    try:
        await conn.execute(SCHEMA.read_text())
    finally:
        await conn.close()


def main() -> None:
    dsn = os.environ.get("TOY_DB")
    if not dsn:
        sys.exit("migrate: TOY_DB is not set")
    try:
        asyncio.run(migrate(dsn))
    except (RuntimeError, OSError, ValueError, asyncpg.PostgresError) as error:
        sys.exit(f"migrate: {type(error).__name__}: {error}".splitlines()[0])


if __name__ == "__main__":
    main()
