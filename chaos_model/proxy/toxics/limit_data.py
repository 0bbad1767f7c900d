"""``limit_data`` toxic: close after N bytes."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun


@dataclass(frozen=True, kw_only=True)
class LimitData(Toxic):
    """Forward at most ``bytes`` bytes in the direction, then close the connection.

    Bytes are counted from when the toxic started affecting the connection. The chunk
    that crosses the limit is truncated to it, the forwarded bytes are flushed, and
    both sockets are closed with FIN. With ``bytes`` = 0 the first chunk closes it.
    """

    kind = "limit_data"

    bytes: int

    def run(self, conn: ConnectionHandle) -> LimitDataRun:
        return LimitDataRun(self, conn)


class LimitDataRun(ToxicRun[LimitData]):
    def __init__(self, toxic: LimitData, conn: ConnectionHandle) -> None:
        super().__init__(toxic, conn)
        self._sent = 0

    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        remaining = self.toxic.bytes - self._sent
        if remaining > 0:
            part = data[:remaining]
            self._sent += len(part)
            await emit(part, arrived)
        if self._sent >= self.toxic.bytes:
            self.conn.close("graceful")
