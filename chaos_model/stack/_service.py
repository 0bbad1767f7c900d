"""What every backend's service does the same way: wait until it is ready, restart.

A backend's service says only how it is found running (a process, a container, a pid file), how
it is probed, and what "gone" means for it; waiting with a deadline that names what it waited
for, and noticing a service that exited instead of becoming ready, live here once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.errors import ServiceNotReady
from chaos_model.stack._base import Service

LOG_TAIL_LINES = 30


class ReadyWait(Service):
    """Base of a service: ``wait_ready`` and ``restart`` from its own ``probe``.

    ``awaited`` says what readiness means (for the error). A subclass provides the rest of
    :class:`Service` and ``log_tail``; it overrides ``_exited`` when "not running" can also mean
    "still starting".
    """

    #: why a service that is not running can no longer become ready, for the error
    _gone: str = "the process exited"

    def __init__(
        self, name: str, probe: Callable[[], bool], awaited: str, ready_timeout: float
    ) -> None:
        self.name = name
        self._ready = probe
        self._awaited = awaited
        self._ready_timeout = ready_timeout

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        raise NotImplementedError

    def _exited(self) -> bool:
        return not self.is_running()

    def restart(self) -> None:
        self.kill()
        self.start()
        self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        seconds = self._ready_timeout if timeout is None else timeout
        exited = False

        def ready() -> bool:
            nonlocal exited
            if self._exited():
                exited = True
                return True
            return self._ready()

        try:
            wait_until(ready, timeout=seconds, what=self._awaited)
        except WaitTimeout as error:
            raise ServiceNotReady(self.name, self._awaited, seconds, self.log_tail()) from error
        if exited:
            raise ServiceNotReady(
                self.name, f"{self._awaited} ({self._gone})", 0.0, self.log_tail()
            )


def file_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
