"""Filling in an adapter's placeholders, and its HTTP checks."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from chaos_model.adapter._ready_section import HttpCheck

BOT_API_HINT = ": the Bot API fake runs when a service declares uses = [\"telegram\"]"


@dataclass(frozen=True)
class Placeholders:
    """The values of one service's placeholders (or the migration's, with no service)."""

    root: Path
    dir: Path
    database_url: str
    nats_url: str
    llm_url: str
    webhook_secret: str
    failpoints_file: str
    bugs: str
    stream: str
    durable: str
    port: int | str = ""
    ports: Mapping[str, int] = field(default_factory=dict)
    #: the target's interpreter (``[target] python``); chaos-model's own by default
    python: str = sys.executable
    #: the Telegram Bot API fake's URL; empty when the stack runs none
    bot_api_url: str = ""

    def values(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "root": str(self.root),
            "dir": str(self.dir),
            "port": self.port,
            "ports": dict(self.ports),
            "database_url": self.database_url,
            **database_url_variants(self.database_url),
            "nats_url": self.nats_url,
            "llm_url": self.llm_url,
            **({"bot_api_url": self.bot_api_url} if self.bot_api_url else {}),
            "webhook_secret": self.webhook_secret,
            "failpoints_file": self.failpoints_file,
            "bugs": self.bugs,
            "stream": self.stream,
            "durable": self.durable,
            "pid": "{pid}",
        }

    def render(self, template: str) -> str:
        try:
            return template.format_map(self.values())
        except (KeyError, IndexError) as error:
            from chaos_model.errors import AdapterError

            hint = BOT_API_HINT if str(error) == "'bot_api_url'" else ""
            raise AdapterError(
                f"placeholder {error} in {template!r} has no value here{hint}"
            ) from None


def database_url_variants(url: str) -> dict[str, str]:
    """The same database as SQLAlchemy wants it (``postgresql+asyncpg://``,
    ``postgresql+psycopg://``) and as a libpq keyword string (``host=... dbname=...``)."""
    parts = urlsplit(url)
    rest = url.split("://", 1)[1] if "://" in url else url
    keywords = {
        "host": parts.hostname or "",
        "port": str(parts.port or ""),
        "dbname": unquote(parts.path.lstrip("/")),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }
    return {
        "database_url_asyncpg": f"postgresql+asyncpg://{rest}",
        "database_url_psycopg": f"postgresql+psycopg://{rest}",
        "database_dsn": " ".join(
            f"{key}={_libpq_value(value)}" for key, value in keywords.items() if value
        ),
    }


def _libpq_value(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def check_passes(client: httpx.Client, url: str, check: HttpCheck, pid: int | None) -> bool:
    """GET ``url``: 200, and every expected JSON field equal (``"{pid}"`` is the pid)."""
    try:
        response = client.get(url, timeout=0.5)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    if not check.json:
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    for key, expected in check.json.items():
        want = pid if expected == "{pid}" else expected
        if not isinstance(body, dict) or body.get(key) != want:
            return False
    return True
