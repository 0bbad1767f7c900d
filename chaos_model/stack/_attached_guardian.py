"""The attached stack's guardian: heals the faults a runner leaves behind when it dies.

An :class:`~chaos_model.stack.AttachedStack` drives a system it did not start, so nothing of
that system may be stopped when the runner goes away; but nothing may stay broken either. The
stack starts one guardian (``python -m chaos_model.stack._attached_guardian --owner PID --state
FILE``) in a session of its own, and records in the state file, *before* applying a fault, what
it would take to undo it: the pids it is about to SIGSTOP, the command that starts a service it
is about to kill or stop, the container it is about to pause or kill. The guardian polls its
parent; when the owner is gone, even after a SIGKILL, it disarms the failpoints, SIGCONTs the
recorded processes, unpauses and starts the recorded containers, starts every recorded service
whose pid file names no live process, clears the LLM stub's fault, and exits. A normal
:meth:`AttachedStack.stop` heals by itself and dismisses the guardian by deleting the state file.

The helpers for pid files and for starting a service (:class:`Launch`) live here, so that the
stack and its guardian start a service the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from chaos_model._wait import wait_until
from chaos_model.stack._guardian import (
    POLL_SECONDS,
    _owner_alive,
    _read_state,
    dismiss,
)

STATE_FILE = "attached-guardian.json"
#: a process created this long after its pid file was written is not the one the file names
PID_SLACK_SECONDS = 1.0


# --------------------------------------------------------------------------- pid files
def read_pid(path: Path) -> int | None:
    """The pid in ``path`` (its first word), or None when there is none."""
    try:
        words = path.read_text().split()
    except OSError:
        return None
    if not words or not words[0].isdigit():
        return None
    return int(words[0])


def alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def named_process(path: Path) -> psutil.Process | None:
    """The live process ``path`` names; None when it names none, or a recycled pid (a process
    created after the file was written cannot be the one it names)."""
    pid = read_pid(path)
    if pid is None or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        written = path.stat().st_mtime
        if proc.create_time() > written + PID_SLACK_SECONDS:
            return None
    except (psutil.Error, OSError):
        return None
    return proc if alive(proc) else None


def process_tree(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and every descendant (signals must reach processes that left the group)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def write_pid_file(path: Path, pid: int) -> None:
    """Replace ``path`` atomically with ``pid``."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fresh.write_text(f"{pid}\n")
    fresh.replace(path)


def identity(proc: psutil.Process) -> dict[str, Any]:
    """What the guardian needs to signal ``proc`` later without hitting a recycled pid."""
    create_time: float | None = None
    with contextlib.suppress(psutil.Error):
        create_time = proc.create_time()
    return {"pid": proc.pid, "create_time": create_time}


def same_process(entry: Mapping[str, Any]) -> psutil.Process | None:
    try:
        proc = psutil.Process(int(entry["pid"]))
        created = entry.get("create_time")
        if created is not None and abs(proc.create_time() - float(created)) > 0.01:
            return None
    except (psutil.Error, KeyError, ValueError):
        return None
    return proc


# --------------------------------------------------------------------------- starting
@dataclass(frozen=True)
class Launch:
    """How to start one service of an attached system: detached, in a session of its own,
    with ``env`` (the adapter's, rendered) added to the caller's environment, its output
    appended to ``log``, and its pid written to ``pid_file``."""

    name: str
    argv: tuple[str, ...]
    cwd: str
    log: str
    pid_file: str
    env: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Launch:
        return cls(
            name=str(data["name"]),
            argv=tuple(data["argv"]),
            cwd=str(data["cwd"]),
            log=str(data["log"]),
            pid_file=str(data["pid_file"]),
            env=dict(data.get("env") or {}),
        )

    def start(self) -> subprocess.Popen[bytes]:
        """Start the service; its pid is in ``pid_file`` when this returns."""
        with open(self.log, "ab") as log:
            log.write(f"--- starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        write_pid_file(Path(self.pid_file), popen.pid)
        return popen


# --------------------------------------------------------------------------- the watcher
def heal_recorded(state: Mapping[str, Any]) -> list[str]:
    """Undo every fault the state records; return what was done (nothing raises)."""
    done: list[str] = []
    failpoints_file = state.get("failpoints_file")
    if failpoints_file:
        with contextlib.suppress(OSError, ValueError):
            from chaos_model.failpoints import FailpointFile

            FailpointFile(failpoints_file).disarm_all()
            done.append("disarmed the failpoints")
    for name, entry in (state.get("paused") or {}).items():
        for item in entry.get("pids", []):
            proc = same_process(item)
            if proc is not None:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
        if entry.get("pids"):
            done.append(f"resumed {name}")
    done += _heal_containers(state)
    for name, entry in (state.get("down") or {}).items():
        if "launch" not in entry:
            continue
        launch = Launch.from_json(entry["launch"])
        if named_process(Path(launch.pid_file)) is not None:
            continue
        try:
            launch.start()
        except OSError as error:
            done.append(f"could not start {name}: {error}")
        else:
            done.append(f"started {name}")
    llm_url = state.get("llm_url")
    if llm_url:
        import httpx

        try:
            httpx.delete(f"{llm_url}/control/fault", timeout=5).raise_for_status()
            done.append("cleared the LLM fault")
        except httpx.HTTPError as error:
            done.append(f"could not clear the LLM fault: {error}")
    return done


def _heal_containers(state: Mapping[str, Any]) -> list[str]:
    paused = {n: e["container"] for n, e in (state.get("paused") or {}).items() if "container" in e}
    down = {n: e["container"] for n, e in (state.get("down") or {}).items() if "container" in e}
    if not paused and not down:
        return []
    done: list[str] = []
    try:
        from chaos_model.stack._docker import docker_client

        client = docker_client()
    except Exception as error:  # noqa: BLE001 - report it, heal the rest
        return [f"could not reach Docker: {error}"]
    for names, action, past in ((paused, "unpause", "unpaused"), (down, "start", "started")):
        for name, container_id in names.items():
            try:
                container = client.containers.get(container_id)
                container.reload()
                state = container.attrs["State"]
                if action == "unpause" and state.get("Paused"):
                    container.unpause()
                elif action == "start" and not state.get("Running"):
                    container.start()
                done.append(f"{past} {name}")
            except Exception as error:  # noqa: BLE001 - report it, heal the rest
                done.append(f"could not {action} {name}: {error}")
    with contextlib.suppress(Exception):
        client.close()
    return done


def guard(owner: int, state_path: Path) -> int:
    """Poll until the owner dies (heal what it recorded) or the state file disappears."""
    wait_until(
        lambda: not _owner_alive(owner) or not state_path.exists(),
        timeout=math.inf,
        what="the owner to exit or dismiss the guardian",
        interval=POLL_SECONDS,
        max_interval=POLL_SECONDS,
    )
    state = _read_state(state_path)
    if state is None:
        return 0  # dismissed
    done = heal_recorded(state)
    print(f"guardian: owner {owner} is gone; {'; '.join(done) or 'nothing to heal'}", flush=True)
    with contextlib.suppress(FileNotFoundError):
        state_path.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_model.stack._attached_guardian")
    parser.add_argument("--owner", type=int, required=True, help="pid of the attached runner")
    parser.add_argument("--state", type=Path, required=True, help="the state file to follow")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return guard(args.owner, args.state)


# --------------------------------------------------------------------------- the owner's handle
class AttachedGuardian:
    """The runner's handle on its guardian: record what each fault needs undone, dismiss it."""

    def __init__(self, directory: Path, *, llm_url: str, failpoints_file: str) -> None:
        self.state_path = directory / STATE_FILE
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "owner": os.getpid(),
            "llm_url": llm_url,
            "failpoints_file": failpoints_file,
            "paused": {},
            "down": {},
        }
        self._write()
        with (directory / "logs" / "guardian.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos_model.stack._attached_guardian",
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

    def paused(self, name: str, entry: Mapping[str, Any] | None) -> None:
        """Record that ``name`` is about to be paused (``{"pids": [...]}`` or
        ``{"container": id}``), or, with None, that it runs again."""
        self._set("paused", name, entry)

    def down(self, name: str, entry: Mapping[str, Any] | None) -> None:
        """Record that ``name`` is about to be killed or stopped (``{"launch": ...}`` or
        ``{"container": id}``), or, with None, that it was started again."""
        self._set("down", name, entry)

    def _set(self, key: str, name: str, entry: Mapping[str, Any] | None) -> None:
        with self._lock:
            if entry is None:
                if self._state[key].pop(name, None) is None:
                    return
            else:
                self._state[key][name] = dict(entry)
            self._write()

    def _write(self) -> None:
        tmp = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._state))
        tmp.replace(self.state_path)

    def close(self) -> None:
        """Dismiss the guardian: the runner healed by itself."""
        dismiss(self.process, self.state_path)


if __name__ == "__main__":
    raise SystemExit(main())
