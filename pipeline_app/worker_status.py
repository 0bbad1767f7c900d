"""The worker's status endpoint: ``GET /status`` -> ``{"pid", "running", "consuming"}``.

``running`` counts tasks between receipt and completion, whatever the acknowledgement mode, so a
supervisor can tell "idle" from "busy but already acknowledged". Served on
``PIPELINE_WORKER_STATUS_PORT`` (loopback) when set.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult


class RunningTasks(TaskiqMiddleware):
    """Counts tasks in execution."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        self.running += 1
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        self.running -= 1


class StatusServer:
    def __init__(self, tasks: RunningTasks) -> None:
        self._tasks = tasks
        self.consuming = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            body = json.dumps(
                {"pid": os.getpid(), "running": self._tasks.running, "consuming": self.consuming}
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
