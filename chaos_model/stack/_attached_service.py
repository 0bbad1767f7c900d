"""The services of an attached system: processes found by pid file, or Compose containers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.errors import ServiceNotReady, StackError, UnsupportedFault
from chaos_model.stack._attached_guardian import (
    Launch,
    alive,
    identity,
    named_process,
    process_tree,
)
from chaos_model.stack._compose_service import ComposeService

#: seconds a service has to exit after SIGTERM before its tree is SIGKILLed
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
LOG_TAIL_LINES = 30


if TYPE_CHECKING:
    from chaos_model.stack._attached import AttachedStack


class NoFailpoints(UnsupportedFault, AttributeError):
    """The attached system names no failpoint file; to ``getattr`` the stack has none."""


class PidFileService:
    """One process of the attached system, found through its pid file."""

    def __init__(
        self,
        stack: AttachedStack,
        name: str,
        pid_file: Path,
        *,
        probe: Callable[[int], bool],
        awaited: str,
        ready_timeout: float,
        launch: Callable[[], Launch] | None,
    ) -> None:
        self.name = name
        self.pid_file = pid_file
        self._stack = stack
        self._probe = probe
        self._awaited = awaited
        self._ready_timeout = ready_timeout
        self._launch = launch
        #: the process of the last start, kept to reap it when it exits
        self._popen: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def pid(self) -> int | None:
        proc = named_process(self.pid_file)
        return proc.pid if proc is not None else None

    @property
    def can_start(self) -> bool:
        return self._launch is not None

    @property
    def log_path(self) -> Path:
        return self._stack.log_dir / f"{self.name}.log"

    def _process(self) -> psutil.Process | None:
        if self._popen is not None:
            self._popen.poll()  # reap it if it exited: a zombie is not running
        return named_process(self.pid_file)

    def is_running(self) -> bool:
        return self._process() is not None

    def is_paused(self) -> bool:
        proc = self._process()
        if proc is None:
            return False
        if self._paused:
            return True
        try:
            return bool(proc.status() == psutil.STATUS_STOPPED)
        except psutil.Error:
            return False

    def pause(self) -> None:
        proc = self._process()
        if proc is None:
            raise StackError(f"cannot pause {self.name}: {self.pid_file} names no running process")
        tree = process_tree(proc)
        self._stack._guard("paused", self.name, {"pids": [identity(p) for p in tree]})
        self._paused = True
        for member in tree:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                member.send_signal(signal.SIGSTOP)
        self._wait_status(tree, stopped=True)

    def resume(self) -> None:
        proc = self._process()
        if proc is not None:
            tree = process_tree(proc)
            for member in tree:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    member.send_signal(signal.SIGCONT)
            self._wait_status(tree, stopped=False)
        self._paused = False
        self._stack._guard("paused", self.name, None)

    def _wait_status(self, tree: list[psutil.Process], *, stopped: bool) -> None:
        """Signals are delivered asynchronously: return once every living member of the
        tree is (or is no longer) stopped."""

        def settled() -> bool:
            for member in tree:
                try:
                    status = member.status()
                except psutil.Error:
                    continue  # gone: nothing to wait for
                if status != psutil.STATUS_ZOMBIE and (status == psutil.STATUS_STOPPED) != stopped:
                    return False
            return True

        what = f"{self.name} to be {'stopped' if stopped else 'running again'}"
        try:
            wait_until(settled, timeout=KILL_WAIT_SECONDS, what=what)
        except WaitTimeout as error:
            raise StackError(str(error)) from error

    def kill(self) -> None:
        """SIGKILL the whole tree and wait until none of it is alive."""
        self._going_down()
        proc = self._process()
        if proc is None:
            return
        tree = process_tree(proc)
        for member in tree:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                member.send_signal(signal.SIGKILL)
        self._wait_gone(tree, KILL_WAIT_SECONDS)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT if paused); SIGKILL the tree if it outlives the grace period."""
        self._going_down()
        proc = self._process()
        if proc is None:
            return
        tree = process_tree(proc)
        for member in tree:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                member.send_signal(signal.SIGCONT)
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            self._wait_gone(tree, STOP_GRACE_SECONDS)
        except StackError:
            self.kill()

    def _going_down(self) -> None:
        launch = self._launch() if self._launch is not None else None
        self._stack._guard("down", self.name, {"launch": launch.to_json()} if launch else None)
        self._stack._guard("paused", self.name, None)
        self._paused = False

    def _wait_gone(self, tree: list[psutil.Process], timeout: float) -> None:
        popen = self._popen
        if popen is not None and any(p.pid == popen.pid for p in tree):
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=timeout)
            self._popen = None
        try:
            wait_until(
                lambda: not any(alive(p) for p in tree),
                timeout=timeout,
                what=f"every process of {self.name} to exit",
            )
        except WaitTimeout as error:
            raise StackError(str(error)) from error

    def start(self) -> None:
        if self.is_running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        if self._launch is None:
            raise StackError(
                f"cannot start {self.name}: {self._stack.target.source}:"
                f" services.{self.name}.start is not set"
            )
        launch = self._launch()
        try:
            self._popen = launch.start()
        except OSError as error:
            raise StackError(
                f"cannot start {self.name} ({' '.join(launch.argv)}): {error}"
            ) from None
        self._paused = False
        self._stack._started_any = True
        self._stack._guard("down", self.name, None)

    def restart(self) -> None:
        self.kill()
        self.start()
        self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        seconds = self._ready_timeout if timeout is None else timeout
        exited = False

        def ready() -> bool:
            nonlocal exited
            proc = self._process()
            if proc is None:
                # No process under the pid file yet: it is starting, unless the start command
                # already failed (a start command runs in the foreground; see the module doc).
                if self._popen is None or self._popen.poll() not in (None, 0):
                    exited = True
                    return True
                return False
            return self._probe(proc.pid)

        try:
            wait_until(ready, timeout=seconds, what=self._awaited)
        except WaitTimeout as error:
            raise ServiceNotReady(self.name, self._awaited, seconds, self.log_tail()) from error
        if exited:
            raise ServiceNotReady(
                self.name,
                f"{self._awaited} ({self.pid_file} names no running process)",
                0.0,
                self.log_tail(),
            )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ContainerService(ComposeService):
    """A container of the attached Compose project; every fault is recorded for the guardian."""

    def __init__(
        self,
        stack: AttachedStack,
        name: str,
        container: Any,
        probe: Callable[[], bool],
        awaited: str,
        ready_timeout: float,
    ) -> None:
        super().__init__(name, container, probe, awaited, ready_timeout)
        self._stack = stack

    @property
    def can_start(self) -> bool:
        return True

    def pause(self) -> None:
        self._stack._guard("paused", self.name, {"container": self.container.id})
        super().pause()

    def resume(self) -> None:
        super().resume()
        self._stack._guard("paused", self.name, None)

    def kill(self) -> None:
        self._stack._guard("down", self.name, {"container": self.container.id})
        super().kill()
        self._stack._guard("paused", self.name, None)

    def stop(self) -> None:
        self._stack._guard("down", self.name, {"container": self.container.id})
        super().stop()
        self._stack._guard("paused", self.name, None)

    def start(self) -> None:
        super().start()
        self._stack._guard("down", self.name, None)
