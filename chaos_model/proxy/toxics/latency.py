"""``latency`` toxic: delay every chunk."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun, loop_time


@dataclass(frozen=True, kw_only=True)
class Latency(Toxic):
    """Delay each chunk by ``latency`` ms, plus a uniform random ``[-jitter, +jitter]`` ms.

    The delay is counted from the moment the proxy read the chunk, so back-to-back
    chunks are pipelined (not delayed cumulatively) and byte order is preserved: a
    chunk whose jittered deadline falls before its predecessor's leaves right after it.
    Removing the toxic releases chunks being delayed immediately.
    """

    kind = "latency"

    latency: int
    jitter: int = 0

    def run(self, conn: ConnectionHandle) -> LatencyRun:
        return LatencyRun(self, conn)


class LatencyRun(ToxicRun[Latency]):
    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        delay_ms = float(self.toxic.latency)
        if self.toxic.jitter:
            delay_ms += self.conn.rng.uniform(-self.toxic.jitter, self.toxic.jitter)
        await self.sleep(arrived + max(delay_ms, 0.0) / 1000.0 - loop_time())
        await emit(data, arrived)
