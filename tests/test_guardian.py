"""The guardian: a LocalStack whose owner is SIGKILLed leaves no process and no folder behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos_model._wait import wait_until

OWNER = """
import json, threading
from chaos_model.stack import LocalStack

stack = LocalStack()
stack.start()
print(json.dumps({
    "dir": str(stack.dir),
    "pids": {name: s.process.pid for name, s in stack.services.items()},
}), flush=True)
threading.Event().wait()
"""


def _alive(proc: psutil.Process) -> bool:
    """Still running and the same process; a zombie counts as dead."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@pytest.mark.slow
def test_a_sigkilled_owner_leaves_no_process_and_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "owner.log"
    with out.open("wb") as log:
        owner = subprocess.Popen(
            [sys.executable, "-c", OWNER],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> dict[str, Any] | None:
            assert owner.poll() is None, out.read_text()
            for line in out.read_text().splitlines():
                if line.startswith("{"):
                    info: dict[str, Any] = json.loads(line)
                    return info
            return None

        info = wait_until(started, timeout=90, what="the stack to start")
        stack_dir = Path(info["dir"])
        # Every process of the stack: the service roots, their children (PostgreSQL's backends),
        # and the guardian itself.
        procs: list[psutil.Process] = []
        for pid in info["pids"].values():
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        guardian = [
            child
            for child in psutil.Process(owner.pid).children()
            if "chaos_model.stack._guardian" in " ".join(child.cmdline())
        ]
        assert len(guardian) == 1, "LocalStack.start() spawns one guardian"
        procs += guardian
        assert len(procs) > len(info["pids"]) + 1, "PostgreSQL has backends"
        assert all(_alive(proc) for proc in procs)
    finally:
        owner.kill()
        owner.wait()
    killed = time.monotonic()

    wait_until(
        lambda: not any(_alive(proc) for proc in procs) and not stack_dir.exists(),
        timeout=10,
        what="every process of the orphaned stack to die and its folder to go",
        on_timeout=lambda: (
            f"alive: {[p.pid for p in procs if _alive(p)]}; folder exists: {stack_dir.exists()}"
        ),
    )
    assert time.monotonic() - killed < 10
