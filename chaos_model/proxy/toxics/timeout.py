"""``timeout`` toxic: stop data, optionally close after a while."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun


@dataclass(frozen=True, kw_only=True)
class Timeout(Toxic):
    """Stop all data in the direction: bytes are held back, never answered.

    With ``timeout`` = 0 the connection stays open and data is held until the toxic is
    removed, then delivered intact and in order (Toxiproxy drops it; holding keeps the
    byte stream valid so a stalled client can recover). The proxy stops reading the
    sender once ~256 KiB are held, so TCP back-pressure reaches the sender.
    With ``timeout`` > 0 the connection is additionally closed (FIN) ``timeout`` ms
    after the toxic started affecting it; held bytes are discarded.
    """

    kind = "timeout"

    timeout: int = 0

    def run(self, conn: ConnectionHandle) -> TimeoutRun:
        return TimeoutRun(self, conn)


class TimeoutRun(ToxicRun[Timeout]):
    def __init__(self, toxic: Timeout, conn: ConnectionHandle) -> None:
        super().__init__(toxic, conn)
        self._timer: asyncio.TimerHandle | None = None
        if toxic.timeout > 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(toxic.timeout / 1000.0, conn.close, "graceful")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().stop()

    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        await self.sleep(math.inf)
        await emit(data, arrived)
