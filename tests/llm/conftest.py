"""The LLM stub as its users run it (``python -m chaos_model.llm_stub``), on a loopback port,
for real client libraries to talk to.

* ``stub`` (session): the process, with the answer rules of :data:`RULES`;
  :class:`Stub` sets and clears faults and reads the records. Reset before each test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_client import ControlClient

from chaos_model._wait import wait_until
from chaos_model.stack._ports import free_port

#: an adapter's [llm] section as the stub reads it: a tool rule and a fixed answer
RULES = {
    "key": "user",
    "rules": [
        {"name": "weather", "tool": "get_weather", "json": {"city": "Berlin"}},
        {"name": "greeting", "prompt": "(?i)^say hello$", "text": "Hello!"},
    ],
}


class Stub(ControlClient):
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        super().__init__(url)
        self.process = process
        self.log = log


@pytest.fixture(scope="session")
def stub_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    folder = tmp_path_factory.mktemp("llm-stub")
    config = folder / "llm.json"
    config.write_text(json.dumps(RULES))
    log = folder / "llm.log"
    port = free_port()
    argv = [sys.executable, "-m", "chaos_model.llm_stub", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen([*argv, "--config", str(config)], stdout=out, stderr=out)
    stub = Stub(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(
            lambda: stub.http.get("/health").status_code == 200,
            timeout=20,
            what="the LLM stub to answer /health",
            on_timeout=lambda: log.read_text()[-2000:],
        )
        yield stub
    finally:
        stub.http.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stub(stub_process: Stub) -> Iterator[Stub]:
    stub_process.reset()
    yield stub_process
    stub_process.clear()
