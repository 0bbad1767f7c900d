"""``bandwidth`` toxic: cap throughput."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun, loop_time


@dataclass(frozen=True, kw_only=True)
class Bandwidth(Toxic):
    """Limit the direction to ``rate`` KB/s (1 KB = 1000 bytes), per connection.

    Chunks larger than 100 ms worth of data are split into 100 ms pieces; each piece
    is released once the running byte budget allows it (like Toxiproxy). ``rate`` must
    be > 0 (use ``timeout`` to stop data entirely).
    """

    kind = "bandwidth"

    rate: int

    def _validate(self) -> None:
        if self.rate <= 0:
            raise ValueError("bandwidth.rate must be > 0 KB/s")

    def run(self, conn: ConnectionHandle) -> BandwidthRun:
        return BandwidthRun(self, conn)


class BandwidthRun(ToxicRun[Bandwidth]):
    def __init__(self, toxic: Bandwidth, conn: ConnectionHandle) -> None:
        super().__init__(toxic, conn)
        self._next_free = 0.0

    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        bytes_per_s = self.toxic.rate * 1000.0
        piece = max(1, self.toxic.rate * 100)  # 100 ms worth of bytes
        view = memoryview(data)
        while view:
            if not self.active:
                await emit(bytes(view), arrived)
                return
            part, view = view[:piece], view[piece:]
            self._next_free = max(self._next_free, loop_time()) + len(part) / bytes_per_s
            await self.sleep(self._next_free - loop_time())
            await emit(bytes(part), arrived)
