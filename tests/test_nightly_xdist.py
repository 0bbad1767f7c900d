"""The plugin's support for several stacks on one machine: each xdist worker takes ports from
its own slice of the range; the shared example database option is checked up front."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BAND = """
from chaos_model.pytest_plugin import _reserve_port_band
from chaos_model.stack import _ports

low, _ = _ports.ephemeral_range()
span = (low - _ports.PORT_FLOOR) // {workers}
_reserve_port_band("gw{index}", {workers})
start = _ports.PORT_FLOOR + {index} * span
ports = [_ports.free_port() for _ in range(40)]
assert all(start <= port < start + span for port in ports), (start, span, ports)
print(len(set(ports)))
"""


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )


def test_each_worker_takes_ports_from_its_own_slice() -> None:
    for workers, index in ((2, 0), (2, 1), (4, 3)):
        result = _run(BAND.format(workers=workers, index=index))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "40"


def test_a_bad_shared_database_is_a_usage_error() -> None:
    options = ["--collect-only", "-q", "--chaos-shared-db", "not-a-repo", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "nightly", *options],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--chaos-shared-db takes OWNER/REPO, not 'not-a-repo'" in result.stderr


def test_the_shared_database_is_read_only_and_multiplexed() -> None:
    code = (
        "from hypothesis.database import MultiplexedDatabase, ReadOnlyDatabase\n"
        "from chaos_model.pytest_plugin import _shared_database, SHARED_DB_ARTIFACT\n"
        "db = _shared_database('owner/repo')\n"
        "assert isinstance(db, MultiplexedDatabase), db\n"
        "assert any(isinstance(part, ReadOnlyDatabase) for part in db._wrapped), db\n"
        "assert SHARED_DB_ARTIFACT in repr(db), db\n"
    )
    # Outside CI, Hypothesis keeps a local database: the shared one is added to it.
    local = {name: value for name, value in os.environ.items() if name not in ("CI", "TF_BUILD")}
    result = _run(code, env=local)
    assert result.returncode == 0, result.stderr


def test_in_ci_the_shared_database_is_the_only_one_and_read_only() -> None:
    code = (
        "from hypothesis.database import ReadOnlyDatabase\n"
        "from chaos_model.pytest_plugin import _shared_database, SHARED_DB_ARTIFACT\n"
        "db = _shared_database('owner/repo')\n"
        "assert isinstance(db, ReadOnlyDatabase), db\n"
        "assert SHARED_DB_ARTIFACT in repr(db), db\n"
    )
    # Hypothesis's "ci" profile, loaded when CI is set, keeps no local database.
    result = _run(code, env={**os.environ, "CI": "true"})
    assert result.returncode == 0, result.stderr
