"""``slow_close`` toxic: delay the end of stream."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import ConnectionHandle, Toxic, ToxicRun


@dataclass(frozen=True, kw_only=True)
class SlowClose(Toxic):
    """Delay forwarding the sender's close (FIN) by ``delay`` ms; data is unaffected.

    The receiving peer therefore sees end-of-stream ``delay`` ms after the sender
    closed. Removing the toxic forwards a pending close at once.
    """

    kind = "slow_close"

    delay: int

    def run(self, conn: ConnectionHandle) -> SlowCloseRun:
        return SlowCloseRun(self, conn)


class SlowCloseRun(ToxicRun[SlowClose]):
    async def eof(self) -> None:
        await self.sleep(self.toxic.delay / 1000.0)
