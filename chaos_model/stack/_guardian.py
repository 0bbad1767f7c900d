"""The guardian: a watcher process that removes a stack whose owner died without stopping it.

:class:`~chaos_model.stack.LocalStack` starts one per stack (``python -m
chaos_model.stack._guardian --owner PID --state FILE``) in a session of its own, so neither a
Ctrl-C in the terminal nor a signal to the owner's process group reaches it. The owner keeps the
state file (JSON, rewritten atomically) up to date with the pid of every service process. The
guardian polls the owner about every 100 ms; when the owner is gone, even after a SIGKILL that
left it no chance to clean up, the guardian SIGCONTs and SIGKILLs every recorded process tree
(walking children: PostgreSQL's backends call ``setsid``), removes the stack folder unless it is
to be kept, and exits. It also exits, doing nothing, when the state file disappears: that is how
a normal :meth:`LocalStack.stop` dismisses it (it also terminates it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from chaos_model._wait import WaitTimeout, wait_until

POLL_SECONDS = 0.1
STATE_FILE = "guardian.json"
KILL_WAIT_SECONDS = 5.0


def _owner_alive(owner: int) -> bool:
    # The guardian is the owner's child: once the owner exits (even as an unreaped zombie) the
    # guardian is re-parented, so the parent pid is the exact, reuse-proof test.
    return os.getppid() == owner


def _tree(pid: int, create_time: float | None) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        if create_time is not None and abs(root.create_time() - create_time) > 0.01:
            return []  # the pid was recycled: not ours
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_recorded(state: Mapping[str, Any]) -> list[int]:
    """SIGCONT then SIGKILL every recorded service tree; return the pids signalled."""
    procs: dict[int, psutil.Process] = {}
    for entry in state.get("services", {}).values():
        for proc in _tree(int(entry["pid"]), entry.get("create_time")):
            procs[proc.pid] = proc
    procs.pop(os.getpid(), None)
    for signum in (signal.SIGCONT, signal.SIGKILL):
        for proc in procs.values():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                proc.send_signal(signum)
    with contextlib.suppress(WaitTimeout):  # orphans are reaped by init; zombies count as gone
        wait_until(
            lambda: not any(_alive(proc) for proc in procs.values()),
            timeout=KILL_WAIT_SECONDS,
            what="the killed processes to exit",
        )
    return sorted(procs)


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def guard(owner: int, state_path: Path) -> int:
    """Poll until the owner dies (clean up) or the state file disappears (just exit)."""
    wait_until(
        lambda: not _owner_alive(owner) or not state_path.exists(),
        timeout=math.inf,
        what="the owner to exit or dismiss the guardian",
        interval=POLL_SECONDS,
        max_interval=POLL_SECONDS,
    )
    state = _read_state(state_path)
    if state is None:
        return 0  # dismissed: the state file is gone
    killed = kill_recorded(state)
    print(f"guardian: owner {owner} is gone; killed {len(killed)} process(es)", flush=True)
    stack_dir = state.get("dir")
    if stack_dir and not state.get("keep", False):
        shutil.rmtree(stack_dir, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            state_path.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_model.stack._guardian")
    parser.add_argument("--owner", type=int, required=True, help="pid of the stack's owner")
    parser.add_argument("--state", type=Path, required=True, help="the state file to follow")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return guard(args.owner, args.state)


class Guardian:
    """The owner's handle on its guardian: spawn it, record service pids, dismiss it."""

    def __init__(self, stack_dir: Path, *, keep: bool) -> None:
        self.dir = stack_dir
        self.keep = keep
        self.state_path = stack_dir / STATE_FILE
        self._services: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._write()
        log = (stack_dir / "logs" / "guardian.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos_model.stack._guardian",
                    "--owner",
                    str(os.getpid()),
                    "--state",
                    str(self.state_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def record(self, pids: Mapping[str, int | None]) -> None:
        """Record the current pid of every service (call after every start or restart)."""
        services: dict[str, dict[str, Any]] = {}
        for name, pid in pids.items():
            if pid is None:
                continue
            create_time: float | None = None
            with contextlib.suppress(psutil.Error):
                create_time = psutil.Process(pid).create_time()
            services[name] = {"pid": pid, "create_time": create_time}
        with self._lock:
            self._services = services
            self._write()

    def _write(self) -> None:
        state = {"owner": os.getpid(), "dir": str(self.dir), "keep": self.keep}
        state["services"] = self._services
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def close(self) -> None:
        """Dismiss the guardian: the stack was stopped properly."""
        dismiss(self.process, self.state_path)


def dismiss(process: subprocess.Popen[bytes], state_path: Path) -> None:
    """Tell a guardian its owner stopped properly (its state file goes) and end it."""
    with contextlib.suppress(FileNotFoundError):
        state_path.unlink()
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=KILL_WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
