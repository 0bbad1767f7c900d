"""A supervised subprocess whose whole process tree can be paused, resumed and killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.errors import StackError

LOG_TAIL_LINES = 30
STOP_GRACE_SECONDS = 5.0


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class ManagedProcess:
    """One service process, started in its own session, its output appended to ``log_path``.

    Signals go to the process and every descendant: PostgreSQL's backends call ``setsid``, so a
    process-group signal would miss them.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self._popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self.is_running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"--- starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
                group=self.user,
            )
        self.paused = False

    def _tree(self) -> list[psutil.Process]:
        if self._popen is None:
            return []
        try:
            root = psutil.Process(self._popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_tree(self, signum: signal.Signals) -> None:
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                proc.send_signal(signum)

    def is_running(self) -> bool:
        if self._popen is None:
            return False
        if self._popen.poll() is not None:
            return False
        try:
            return _alive(psutil.Process(self._popen.pid))
        except psutil.NoSuchProcess:
            return False

    def pause(self) -> None:
        """SIGSTOP the process and all its descendants."""
        self.signal_tree(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal_tree(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the whole tree and wait until none of it is alive."""
        tree = self._tree()
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        self._reap(tree, timeout=STOP_GRACE_SECONDS)
        self.paused = False

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Ask the process to stop; SIGKILL the tree if it is still alive after a grace period."""
        tree = self._tree()
        if not tree:
            return
        if self.paused:
            self.resume()
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            tree[0].send_signal(signum)
        try:
            self._reap(tree, timeout=STOP_GRACE_SECONDS)
        except StackError:
            self.kill()

    def _reap(self, tree: list[psutil.Process], timeout: float) -> None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=timeout)
        try:
            wait_until(
                lambda: not any(_alive(proc) for proc in tree),
                timeout=timeout,
                what=f"every process of {self.name} to exit",
            )
        except WaitTimeout as error:
            raise StackError(str(error)) from error

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 16384))
                text = handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
