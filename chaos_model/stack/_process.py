"""Process trees that can be paused, resumed, killed and stopped as a whole.

Signals go to the process and every descendant: PostgreSQL's backends call ``setsid``, so a
process-group signal would miss them. :class:`ManagedProcess` is a process chaos-model starts
and supervises (a :class:`LocalService`); :class:`PidFileProcess` is one of a system
chaos-model attached to, found through its pid file.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.errors import StackError
from chaos_model.stack._guardian import KILL_WAIT_SECONDS, alive, process_tree
from chaos_model.stack._launch import Launch
from chaos_model.stack._service import ReadyWait, file_tail
from chaos_model.stack._standby import Standby

STOP_GRACE_SECONDS = 5.0
#: a process created this long after its pid file was written is not the one the file names
PID_SLACK_SECONDS = 1.0


class ProcessTree:
    """A process and its descendants, signalled together. A subclass finds the root."""

    name: str
    stop_grace = STOP_GRACE_SECONDS
    paused = False
    #: the process of the last start, kept to reap it when it exits
    _popen: subprocess.Popen[bytes] | None = None

    def root(self) -> psutil.Process | None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        root = self.root()
        return root.pid if root is not None else None

    def is_running(self) -> bool:
        return self.root() is not None

    def tree(self) -> list[psutil.Process]:
        root = self.root()
        return process_tree(root) if root is not None else []

    def signal_tree(self, signum: signal.Signals, tree: list[psutil.Process] | None = None) -> None:
        for proc in self.tree() if tree is None else tree:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                proc.send_signal(signum)

    def pause(self) -> None:
        """SIGSTOP the process and all its descendants; return once they are stopped."""
        tree = self.tree()
        self.paused = True
        self.signal_tree(signal.SIGSTOP, tree)
        self._wait_status(tree, stopped=True)

    def resume(self) -> None:
        tree = self.tree()
        self.signal_tree(signal.SIGCONT, tree)
        self._wait_status(tree, stopped=False)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL the whole tree and wait until none of it is alive."""
        tree = self.tree()
        self.signal_tree(signal.SIGKILL, tree)
        self._reap(tree, KILL_WAIT_SECONDS)
        self.paused = False

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Ask the process to stop (after SIGCONT); SIGKILL the tree if it is still alive after
        a grace period."""
        tree = self.tree()
        if not tree:
            return
        self.signal_tree(signal.SIGCONT, tree)
        self.paused = False
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            tree[0].send_signal(signum)
        try:
            self._reap(tree, self.stop_grace)
        except StackError:
            self.kill()

    def _reap(self, tree: list[psutil.Process], timeout: float) -> None:
        popen = self._popen
        if popen is not None and any(proc.pid == popen.pid for proc in tree):
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=timeout)
        gone = f"every process of {self.name} to exit"
        _wait(lambda: not any(alive(proc) for proc in tree), timeout, gone)

    def _wait_status(self, tree: list[psutil.Process], *, stopped: bool) -> None:
        """Signals are delivered asynchronously: return once every living member of the tree
        is (or is no longer) stopped."""

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
        _wait(settled, KILL_WAIT_SECONDS, what)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        wait_until(condition, timeout=timeout, what=what)
    except WaitTimeout as error:
        raise StackError(str(error)) from error


class ProcessService(ReadyWait):
    """A service that is one process tree: a fault on it goes to the whole tree."""

    process: ProcessTree

    def is_running(self) -> bool:
        return self.process.is_running()

    def is_paused(self) -> bool:
        return self.process.paused and self.process.is_running()

    def pause(self) -> None:
        if not self.process.is_running():
            raise StackError(f"cannot pause {self.name}: it is not running")
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def kill(self) -> None:
        self.process.kill()


class ManagedProcess(ProcessTree):
    """One service process chaos-model starts (``launch``) and supervises."""

    def __init__(
        self, launch: Launch, user: str | None = None, standby: Standby | None = None
    ) -> None:
        self.name = launch.name
        self.launch = launch
        self.log_path = launch.log_path
        self.user = user
        #: the next process, waiting with its imports done (a Python service's)
        self.standby = standby

    def root(self) -> psutil.Process | None:
        if self._popen is None or self._popen.poll() is not None:
            return None
        try:
            proc = psutil.Process(self._popen.pid)
        except psutil.NoSuchProcess:
            return None
        return proc if alive(proc) else None

    def start(self) -> None:
        if self.is_running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        warm = self.standby.take() if self.standby is not None else None
        self._popen = warm or self.launch.start(self.user)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        return file_tail(self.log_path, lines)


class LocalService(ProcessService):
    """A service whose process chaos-model starts and supervises, with its readiness probe.

    ``before_start`` runs before each start; ``on_start`` after each start and after a new
    standby is spawned (to tell the guardian the new pids).
    """

    process: ManagedProcess

    def __init__(
        self,
        name: str,
        process: ManagedProcess,
        probe: Callable[[], bool],
        awaited: str,
        ready_timeout: float,
        on_start: Callable[[], None],
        before_start: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, probe, awaited, ready_timeout)
        self.process = process
        self._on_start = on_start
        self._before_start = before_start

    def start(self) -> None:
        if self._before_start is not None:
            self._before_start()
        self.process.start()
        self._on_start()

    def wait_ready(self, timeout: float | None = None) -> None:
        super().wait_ready(timeout)
        standby = self.process.standby
        if standby is not None and not standby.waiting:  # the next one, ahead of need
            standby.spawn()
            self._on_start()

    def stop(self) -> None:
        """Stop cleanly: SIGTERM, or for PostgreSQL SIGINT (fast shutdown)."""
        self.process.stop(signal.SIGINT if self.name == "postgres" else signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)


class PidFileProcess(ProcessTree):
    """A process of an attached system: whatever live process its pid file names."""

    stop_grace = 10.0

    def __init__(self, name: str, pid_file: Path) -> None:
        self.name = name
        self.pid_file = pid_file

    def root(self) -> psutil.Process | None:
        if self._popen is not None:
            self._popen.poll()  # reap it if it exited: a zombie is not running
        return named_process(self.pid_file)

    def start(self, launch: Launch) -> None:
        if self.is_running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        try:
            self._popen = launch.start()
        except OSError as error:
            raise StackError(
                f"cannot start {self.name} ({' '.join(launch.argv)}): {error}"
            ) from None
        self.paused = False

    def start_failed(self) -> bool:
        """No process under the pid file, and none on its way: the start command failed (it
        runs in the foreground, or exits 0 once the service it started wrote its pid file)."""
        return self._popen is None or self._popen.poll() not in (None, 0)


def named_process(path: Path) -> psutil.Process | None:
    """The live process ``path`` names (its first word); None when it names none, or a recycled
    pid (a process created after the file was written cannot be the one it names)."""
    try:
        words = path.read_text().split()
        pid = int(words[0]) if words and words[0].isdigit() else 0
        if pid <= 0:
            return None
        proc = psutil.Process(pid)
        if proc.create_time() > path.stat().st_mtime + PID_SLACK_SECONDS:
            return None
    except (psutil.Error, OSError):
        return None
    return proc if alive(proc) else None
