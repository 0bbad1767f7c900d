"""The services of an attached system: processes found by pid file, or Compose containers.

The stack's guardian knows them all from the start (each pid file with the command that starts
its service, each container), so that :func:`heal_recorded` can undo any fault should the
runner die mid-fault: whatever is stopped runs again, whatever is down starts again.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from chaos_model.errors import StackError
from chaos_model.failpoints import FailpointFile
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._launch import Launch
from chaos_model.stack._process import PidFileProcess, ProcessService
from chaos_model.stack._service import file_tail

if TYPE_CHECKING:
    from chaos_model.stack._attached import AttachedStack


class PidFileService(ProcessService):
    """One process of the attached system, found through its pid file."""

    process: PidFileProcess

    def __init__(
        self,
        stack: AttachedStack,
        name: str,
        pid_file: Path,
        *,
        probe: Callable[[int | None], bool],
        awaited: str,
        ready_timeout: float,
        launch: Callable[[], Launch] | None,
    ) -> None:
        super().__init__(
            name,
            lambda: (pid := self.process.pid) is not None and probe(pid),
            awaited,
            ready_timeout,
        )
        self.pid_file = pid_file
        self.process = PidFileProcess(name, pid_file)
        self._stack = stack
        self._gone = f"{pid_file} names no running process"
        self._launch = launch

    @property
    def can_start(self) -> bool:
        return self._launch is not None

    @property
    def log_path(self) -> Path:
        return self._stack.log_dir / f"{self.name}.log"

    def is_paused(self) -> bool:
        root = self.process.root()
        if root is None:
            return False
        try:
            return self.process.paused or root.status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return False

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        if self._launch is None:
            raise StackError(
                f"cannot start {self.name}: {self._stack.target.source}:"
                f" services.{self.name}.start is not set"
            )
        self.process.start(self._launch())
        self._stack.keep_dir = True  # the processes chaos-model started keep writing their logs

    def _exited(self) -> bool:
        return not self.process.is_running() and self.process.start_failed()

    def log_tail(self, lines: int = 30) -> str:
        return file_tail(self.log_path, lines)


def guardian_entry(service: PidFileService | ComposeService) -> dict[str, Any]:
    """What the guardian needs to bring ``service`` back: its pid file and start, or its
    container."""
    if isinstance(service, ComposeService):
        return {"container": service.container.id}
    launch = service._launch
    return {"pid_file": str(service.pid_file), "launch": launch().to_json() if launch else None}


def heal_recorded(state: Mapping[str, Any]) -> list[str]:
    """Undo whatever a runner that died left behind (every fault, every service down); return
    what was done (nothing raises)."""
    done: list[str] = []
    failpoints_file = state.get("failpoints_file")
    if failpoints_file:
        with contextlib.suppress(OSError, ValueError):
            FailpointFile(failpoints_file).disarm_all()
            done.append("disarmed the failpoints")
    services = state.get("services") or {}
    for name, entry in services.items():
        if "pid_file" in entry:
            done += _bring_back(name, entry)
    containers = {n: e["container"] for n, e in services.items() if "container" in e}
    done += _heal_containers(containers)
    llm_url = state.get("llm_url")
    if llm_url:
        try:
            httpx.delete(f"{llm_url}/control/fault", timeout=5).raise_for_status()
            done.append("cleared the LLM fault")
        except httpx.HTTPError as error:
            done.append(f"could not clear the LLM fault: {error}")
    return done


def _bring_back(name: str, entry: Mapping[str, Any]) -> list[str]:
    process = PidFileProcess(name, Path(entry["pid_file"]))
    if process.is_running():
        stopped = [p for p in process.tree() if p.status() == psutil.STATUS_STOPPED]
        process.signal_tree(signal.SIGCONT)
        return [f"resumed {name}"] if stopped else []
    if not entry.get("launch"):
        return [f"could not start {name}: it has no start command"]
    try:
        process.start(Launch.from_json(entry["launch"]))
    except StackError as error:
        return [str(error)]
    return [f"started {name}"]


def _heal_containers(containers: Mapping[str, str]) -> list[str]:
    if not containers:
        return []
    try:
        from chaos_model.stack._docker import docker_client

        client = docker_client()
    except Exception as error:  # noqa: BLE001 - report it, heal the rest
        return [f"could not reach Docker: {error}"]
    done: list[str] = []
    for name, container_id in containers.items():
        try:
            container = client.containers.get(container_id)
            status = container.attrs["State"]
            if status.get("Paused"):
                container.unpause()
                done.append(f"unpaused {name}")
            elif not status.get("Running"):
                container.start()
                done.append(f"started {name}")
        except Exception as error:  # noqa: BLE001 - report it, heal the rest
            done.append(f"could not heal {name}: {error}")
    with contextlib.suppress(Exception):
        client.close()
    return done
