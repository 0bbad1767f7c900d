"""``slicer`` toxic: split data into small delayed writes."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import ConnectionHandle, Emit, Toxic, ToxicRun


@dataclass(frozen=True, kw_only=True)
class Slicer(Toxic):
    """Split each chunk into slices of ``average_size`` +/- ``size_variation`` bytes.

    Each slice is written to the socket separately, ``delay`` microseconds apart
    (sizes are uniform random in the range, at least 1 byte). Requires
    ``average_size`` > 0 and ``size_variation`` < ``average_size``.
    """

    kind = "slicer"

    average_size: int
    size_variation: int = 0
    delay: int = 0

    def _validate(self) -> None:
        if self.average_size <= 0:
            raise ValueError("slicer.average_size must be > 0")
        if self.size_variation >= self.average_size:
            raise ValueError("slicer.size_variation must be < average_size")

    def run(self, conn: ConnectionHandle) -> SlicerRun:
        return SlicerRun(self, conn)


class SlicerRun(ToxicRun[Slicer]):
    async def process(self, data: bytes, arrived: float, emit: Emit) -> None:
        avg, var = self.toxic.average_size, self.toxic.size_variation
        pos = 0
        while pos < len(data):
            if not self.active:
                await emit(data[pos:], arrived)
                return
            size = max(1, avg + (self.conn.rng.randint(-var, var) if var else 0))
            await emit(data[pos : pos + size], arrived)
            pos += size
            if pos < len(data) and self.toxic.delay:
                await self.sleep(self.toxic.delay / 1_000_000.0)
