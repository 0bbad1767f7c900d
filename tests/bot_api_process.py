"""The Telegram Bot API fake as its users run it (``python -m chaos_model.bot_api``), on a
loopback port, with a client of its control API."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from chaos_model._wait import wait_until
from chaos_model.stack._ports import free_port


class BotApiFake:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=5)

    def fault(self, mode: str, **spec: Any) -> None:
        self.http.post("/control/fault", json={"mode": mode, **spec}).raise_for_status()

    def clear(self) -> None:
        self.http.delete("/control/fault").raise_for_status()

    def reset(self) -> None:
        self.http.post("/control/reset").raise_for_status()

    def records(self, method: str | None = None) -> list[dict[str, Any]]:
        params = {"method": method} if method is not None else {}
        found: list[dict[str, Any]] = self.http.get("/control/records", params=params).json()[
            "records"
        ]
        return found

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/control/stats").json()
        return stats


@contextlib.contextmanager
def running_bot_api(folder: Path) -> Iterator[BotApiFake]:
    log = folder / "bot-api.log"
    port = free_port()
    argv = [sys.executable, "-m", "chaos_model.bot_api", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out)
    fake = BotApiFake(f"http://127.0.0.1:{port}")
    try:
        wait_until(
            lambda: fake.http.get("/health").status_code == 200,
            timeout=20,
            what="the Bot API fake to answer /health",
            on_timeout=lambda: log.read_text()[-2000:],
        )
        yield fake
    finally:
        fake.http.close()
        process.terminate()
        process.wait(timeout=10)
