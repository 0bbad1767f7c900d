"""``python -m pipeline_app.migrate``: apply the schema to ``PIPELINE_DATABASE_URL``.

The database may still be starting: connecting is retried for up to 30 s.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg

from pipeline_app.db import migrate
from pipeline_app.settings import get_settings

CONNECT_DEADLINE = 30.0


async def _migrate_when_up(dsn: str) -> list[str]:
    deadline = time.monotonic() + CONNECT_DEADLINE
    while True:
        try:
            return await migrate(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def main() -> None:
    dsn = get_settings().database_url
    try:
        applied = asyncio.run(_migrate_when_up(dsn))
    except (OSError, asyncpg.PostgresError) as error:
        sys.exit(f"migration failed: {error}")
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


if __name__ == "__main__":
    main()
