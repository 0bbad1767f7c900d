"""A warm standby for a Python service: the next process, started ahead of need.

A crashed Python service takes about a second to start again, nearly all of it importing; a
point sweep crashes services often. So chaos-model keeps one more process of each Python service
waiting (``chaos_model/boot/site/chaos_standby.py``): it has imported what the service imported
last time and blocks on a FIFO. Starting the service writes ``go`` into it, and the standby
becomes the service; a new standby is started for the next time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from chaos_model.stack._launch import Launch

STANDBY_VAR = "CHAOS_MODEL_STANDBY"
MODULES_VAR = "CHAOS_MODEL_STANDBY_MODULES"
#: how long a start waits for a standby still importing before starting a cold process
TAKE_WAIT_SECONDS = 3.0


class Standby:
    """The waiting process of one service: ``take()`` hands it over, ``discard()`` ends it."""

    def __init__(self, launch: Launch, folder: Path, modules: Path, user: str | None = None):
        self.launch = launch
        self.fifo = folder / f"{launch.name}.fifo"
        self.modules = modules
        self.user = user
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        popen = self._popen
        return popen.pid if popen is not None and popen.poll() is None else None

    @property
    def waiting(self) -> bool:
        return self.pid is not None

    def spawn(self) -> None:
        """Start a standby, unless one is waiting already."""
        if self.waiting:
            return
        self.fifo.parent.mkdir(parents=True, exist_ok=True)
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo, 0o600)
        if self.user is not None:
            with contextlib.suppress(OSError):
                shutil.chown(self.fifo, self.user, self.user)
        env = {**self.launch.env, STANDBY_VAR: str(self.fifo), MODULES_VAR: str(self.modules)}
        standby = replace(self.launch, name=f"{self.launch.name} (standby)", env=env)
        self._popen = standby.start(self.user)

    def take(self) -> subprocess.Popen[bytes] | None:
        """The standby, told to go on as the service; None when none is ready in time."""
        if not self.waiting:
            return None
        deadline = time.monotonic() + TAKE_WAIT_SECONDS
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as error:
                # ENXIO: the standby has not opened its end yet (it is still importing)
                if error.errno != errno.ENXIO or time.monotonic() > deadline or not self.waiting:
                    self.discard()
                    return None
                time.sleep(0.01)
        with os.fdopen(fd, "w") as handle:
            handle.write("go\n")
        popen, self._popen = self._popen, None
        return popen

    def discard(self) -> None:
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        self.fifo.unlink(missing_ok=True)
