"""Wake-ups from PostgreSQL ``LISTEN``, with a reconnecting connection.

A lost notification only delays the listener until its next poll, so callers always combine
:meth:`Notifications.wait` with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from pipeline_app.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_DELAY = 0.5


class Notifications:
    def __init__(self, settings: Settings, channels: tuple[str, ...]) -> None:
        self._settings = settings
        self._events = {channel: asyncio.Event() for channel in channels}
        self._subscribers: dict[str, set[asyncio.Event]] = {channel: set() for channel in channels}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, channel: str) -> asyncio.Event:
        event = asyncio.Event()
        self._subscribers[channel].add(event)
        return event

    def unsubscribe(self, channel: str, event: asyncio.Event) -> None:
        self._subscribers[channel].discard(event)

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        for event in self._subscribers.get(channel, ()):
            event.set()

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._settings.database_url, timeout=self._settings.db_connect_timeout
                )
                for channel in self._subscribers:
                    await conn.add_listener(channel, self._on_notify)
                # Missed notifications while disconnected: wake everyone once.
                for channel in self._subscribers:
                    self._on_notify(conn, 0, channel, "")
                while not conn.is_closed():
                    await asyncio.sleep(RECONNECT_DELAY)
                    await conn.execute("SELECT 1", timeout=self._settings.db_command_timeout)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as error:  # noqa: BLE001 - reconnect on any failure
                log.debug("LISTEN connection lost: %s", error)
                if conn is not None:
                    conn.terminate()
                await asyncio.sleep(RECONNECT_DELAY)


async def wait_for(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass, then clear it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    event.clear()
