"""One compose service, controlled through the docker SDK on its labelled container."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.errors import StackError
from chaos_model.stack._service import ReadyWait

PAUSE_SECONDS = 5.0


class ComposeService(ReadyWait):
    """One compose service, controlled through the docker SDK on its labelled container."""

    _gone = "the container exited"

    def __init__(
        self,
        name: str,
        container: Any,
        probe: Callable[[], bool],
        awaited: str,
        ready_timeout: float,
    ) -> None:
        super().__init__(name, probe, awaited, ready_timeout)
        self.container = container
        self.disconnected: Any = None  # the network it was disconnected from

    def _state(self) -> dict[str, Any]:
        self.container.reload()
        state: dict[str, Any] = self.container.attrs["State"]
        return state

    def is_running(self) -> bool:
        return bool(self._state()["Running"])

    def is_paused(self) -> bool:
        state = self._state()
        return bool(state["Running"] and state["Paused"])

    def pause(self) -> None:
        if not self.is_running():
            raise StackError(f"cannot pause {self.name}: it is not running")

        def frozen() -> bool:
            # the cgroup freezer can fail on a busy container ("unable to freeze"): try again
            try:
                self.container.pause()
            except Exception:
                if not self.is_paused():
                    raise
            return True

        try:
            wait_until(frozen, timeout=PAUSE_SECONDS, what=f"docker pause {self.name}")
        except WaitTimeout as error:
            raise StackError(str(error)) from error

    def resume(self) -> None:
        if self.is_paused():
            self.container.unpause()

    def kill(self) -> None:
        self.resume()
        if self.is_running():
            self.container.kill()
        wait_until(lambda: not self.is_running(), timeout=10, what=f"{self.name} to exit")

    def start(self) -> None:
        self.container.start()

    def stop(self) -> None:
        """``docker stop``: the image's stop signal (PostgreSQL: SIGINT, a fast shutdown)."""
        self.resume()
        self.container.stop(timeout=10)

    def disconnect(self, network: Any) -> None:
        """Cut the container off its compose network (a partition from every peer)."""
        network.disconnect(self.container, force=True)
        self.disconnected = network

    def reconnect(self) -> bool:
        if self.disconnected is None:
            return False
        with contextlib.suppress(Exception):  # already connected again
            self.disconnected.connect(self.container, aliases=[self.name])
        self.disconnected = None
        return True

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(Exception):
            return str(self.container.logs(tail=lines).decode(errors="replace")).rstrip()
        return ""
