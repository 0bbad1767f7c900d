"""``python -m pipeline_app migrate``: apply the SQL migrations to ``PIPELINE_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import sys

from pipeline_app.db import migrate
from pipeline_app.settings import get_settings


def main(argv: list[str]) -> int:
    if argv != ["migrate"]:
        print("usage: python -m pipeline_app migrate", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(get_settings().database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
