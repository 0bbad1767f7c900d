"""The Telegram Bot API fake as its users run it (``python -m chaos_model.bot_api``), on a
loopback port, with a client of its control API."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from control_client import ControlClient

from chaos_model._wait import wait_until
from chaos_model.stack._ports import free_port


class BotApiFake(ControlClient):
    records_by = "method"


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
