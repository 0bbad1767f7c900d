"""``reset_peer`` toxic: TCP RST after the first data."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun


@dataclass(frozen=True, kw_only=True)
class ResetPeer(Toxic):
    """Reset the connection ``timeout`` ms after the first chunk seen in the direction.

    As in Toxiproxy, the timer starts with the first chunk that reaches the toxic after
    it took effect; that chunk and any later one are held back. ``timeout`` ms later
    both sockets are closed with SO_LINGER 0, so each peer gets a TCP RST
    (``ConnectionResetError``). ``timeout`` = 0 resets on the first chunk. An idle
    connection is not reset. If the toxic is removed first, held bytes are delivered.
    """

    kind = "reset_peer"

    timeout: int = 0

    def run(self, conn: ConnectionHandle) -> ResetPeerRun:
        return ResetPeerRun(self, conn)


class ResetPeerRun(ToxicRun[ResetPeer]):
    def __init__(self, toxic: ResetPeer, conn: ConnectionHandle) -> None:
        super().__init__(toxic, conn)
        self._timer: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().stop()

    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.toxic.timeout / 1000.0, self.conn.close, "reset")
        await self.sleep(math.inf)  # swallowed until the reset, or released on removal
        await emit(data, arrived)
