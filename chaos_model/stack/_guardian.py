"""The guardian: a watcher process that undoes what a stack leaves behind when its owner dies.

Every stack starts one (``python -m chaos_model.stack._guardian --owner PID --state FILE``) in a
session of its own, so neither a Ctrl-C in the terminal nor a signal to the owner's process group
reaches it. The owner keeps the state file (JSON, rewritten atomically) up to date with what
undoing the stack needs, *before* it is needed. The guardian polls its parent about every 100 ms;
when the owner is gone, even after a SIGKILL that left it no chance to clean up, it runs the
state's reaper, removes the stack folder unless it is to be kept, and exits. When the state file
disappears it exits doing nothing: that is how a normal stop dismisses it. There is one reaper
per backend (:data:`REAPERS`); the attached one stops nothing of the user's system.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from chaos_model._wait import WaitTimeout, wait_until

POLL_SECONDS = 0.1
STATE_FILE = "guardian.json"
KILL_WAIT_SECONDS = 5.0


def replace_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically: a reader sees the old text or the new, never half of it."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fresh.write_text(text)
    fresh.replace(path)


def _owner_alive(owner: int) -> bool:
    # The guardian is the owner's child: once the owner exits (even as an unreaped zombie) the
    # guardian is re-parented, so the parent pid is the exact, reuse-proof test.
    return os.getppid() == owner


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a killed process can linger as one for a while)."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def identity(pid: int) -> dict[str, Any]:
    """What signalling ``pid`` later needs, so that a recycled pid is never hit."""
    create_time: float | None = None
    with contextlib.suppress(psutil.Error):
        create_time = psutil.Process(pid).create_time()
    return {"pid": pid, "create_time": create_time}


def same_process(entry: Mapping[str, Any]) -> psutil.Process | None:
    """The process an :func:`identity` names, if it still is that process."""
    try:
        proc = psutil.Process(int(entry["pid"]))
        created = entry.get("create_time")
        if created is not None and abs(proc.create_time() - float(created)) > 0.01:
            return None  # the pid was recycled: not ours
    except (psutil.Error, KeyError, ValueError):
        return None
    return proc


def process_tree(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and every descendant (PostgreSQL's backends call ``setsid``)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


# ----------------------------------------------------------------------------- reapers
def reap_processes(state: Mapping[str, Any]) -> list[str]:
    """SIGCONT then SIGKILL every recorded service tree."""
    procs: dict[int, psutil.Process] = {}
    for entry in state.get("services", {}).values():
        root = same_process(entry)
        for proc in process_tree(root) if root is not None else []:
            procs[proc.pid] = proc
    procs.pop(os.getpid(), None)
    for signum in (signal.SIGCONT, signal.SIGKILL):
        for proc in procs.values():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                proc.send_signal(signum)
    with contextlib.suppress(WaitTimeout):  # orphans are reaped by init; zombies count as gone
        wait_until(
            lambda: not any(alive(proc) for proc in procs.values()),
            timeout=KILL_WAIT_SECONDS,
            what="the killed processes to exit",
        )
    return [f"killed {len(procs)} process(es)"]


def reap_compose(state: Mapping[str, Any]) -> list[str]:
    """The host processes, then the whole compose project (containers, networks, volumes)."""
    from chaos_model.stack._docker import bring_down

    done = reap_processes(state)
    bring_down(**state["compose"])
    return [*done, f"brought compose project {state['compose']['project']} down"]


def reap_attached(state: Mapping[str, Any]) -> list[str]:
    """Heal the faults the runner recorded; the attached system itself keeps running."""
    from chaos_model.stack._attached_service import heal_recorded

    return heal_recorded(state)


REAPERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "processes": reap_processes,
    "compose": reap_compose,
    "attached": reap_attached,
}


# ----------------------------------------------------------------------------- the watcher
def guard(owner: int, state_path: Path) -> int:
    """Poll until the owner dies (reap) or the state file disappears (just exit)."""
    wait_until(
        lambda: not _owner_alive(owner) or not state_path.exists(),
        timeout=math.inf,
        what="the owner to exit or dismiss the guardian",
        interval=POLL_SECONDS,
        max_interval=POLL_SECONDS,
    )
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return 0  # dismissed: the state file is gone
    try:
        done = REAPERS[state.get("reaper", "processes")](state)
    except Exception as error:  # noqa: BLE001 - report it; the folder still goes
        done = [f"the reaper failed: {type(error).__name__}: {error}"]
    print(f"guardian: owner {owner} is gone; {'; '.join(done)}", flush=True)
    stack_dir = state.get("dir")
    if stack_dir and not state.get("keep", False):
        shutil.rmtree(stack_dir, ignore_errors=True)
    else:
        state_path.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_model.stack._guardian")
    parser.add_argument("--owner", type=int, required=True, help="pid of the stack's owner")
    parser.add_argument("--state", type=Path, required=True, help="the state file to follow")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return guard(args.owner, args.state)


class Guardian:
    """The owner's handle on its guardian: spawn it, keep its state, dismiss it.

    ``state`` says what the ``reaper`` needs beyond the recorded pids; the guardian removes
    ``directory`` after reaping unless ``keep``.
    """

    def __init__(
        self,
        directory: Path,
        reaper: str,
        state: Mapping[str, Any] | None = None,
        *,
        keep: bool = False,
    ) -> None:
        self.state_path = directory / STATE_FILE
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"owner": os.getpid(), "reaper": reaper, "keep": keep}
        self._state.update({"dir": str(directory), "services": {}, **(state or {})})
        replace_text(self.state_path, json.dumps(self._state))
        argv = [sys.executable, "-m", "chaos_model.stack._guardian", "--owner", str(os.getpid())]
        with (directory / "logs" / "guardian.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "--state", str(self.state_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def record(self, pids: Mapping[str, int | None]) -> None:
        """Record the current pid of every service (call after every start or restart)."""
        services = {name: identity(pid) for name, pid in pids.items() if pid is not None}
        with self._lock:
            self._state["services"] = services
            replace_text(self.state_path, json.dumps(self._state))

    def close(self) -> None:
        """Dismiss the guardian (the stack was stopped properly): its state file goes, and it
        ends."""
        self.state_path.unlink(missing_ok=True)
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
