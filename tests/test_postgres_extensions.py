"""A target that needs a PostgreSQL extension the system's build lacks (pgvector on Debian
bookworm): the local stack runs a build that has it, found without configuration."""

from __future__ import annotations

import dataclasses
import os
import stat

import asyncpg
import pytest

from chaos_model._loop import ControlLoop
from chaos_model.adapter import default_target
from chaos_model.errors import BinaryNotFound, StackError
from chaos_model.stack import LocalStack
from chaos_model.stack._binaries import find_postgres_bindir


def test_a_target_needing_pgvector_gets_a_build_with_it() -> None:
    target = dataclasses.replace(default_target(), extensions=("vector",))
    loop = ControlLoop()

    async def nearest(url: str) -> float:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            return float(await conn.fetchval("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector"))
        finally:
            await conn.close()

    build = find_postgres_bindir(extensions=("vector",))
    closed = [f for f in (build.path, *build.path.parents) if not f.stat().st_mode & stat.S_IXOTH]
    try:
        if os.geteuid() == 0 and closed:  # PostgreSQL runs as 'postgres' and cannot get there
            with pytest.raises(StackError, match=f"{closed[0]} does not let other users through"):
                LocalStack(target=target).start()
            return
        with LocalStack(target=target) as stack:
            assert stack.binaries["postgres"].source == "pgserver wheel"
            assert loop.run(nearest(stack.endpoints.database_url), timeout=20) == 2.0
    finally:
        loop.close()


def test_an_extension_no_build_has_is_one_line_that_says_where_to_get_one() -> None:
    with pytest.raises(BinaryNotFound) as missing:
        find_postgres_bindir(extensions=("no_such_extension",))
    message = str(missing.value)
    assert "\n" not in message
    assert "has no no_such_extension" in message
    assert "[database] postgres" in message
