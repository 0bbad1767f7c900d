"""A Telegram Bot API delivery simulator, scaled down in time.

It delivers webhook updates the way Telegram does: per chat in FIFO order with one update in
flight, chats in parallel; any non-2xx answer or a timeout is retried with exponential backoff
(50 ms doubling to a 1 s cap here, 1 s to 60 s at Telegram) honouring ``Retry-After``; a 2xx ends
the delivery. "Accepted" therefore means exactly what Telegram means by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos_model.history import History
from chaos_model.telegram._updates import chat_id_of

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class Delivery:
    update: dict[str, Any]
    attempts: int = 0
    done: bool = False
    last_status: str = "not sent"

    @property
    def update_id(self) -> int:
        value: int = self.update["update_id"]
        return value

    @property
    def chat_id(self) -> int:
        return chat_id_of(self.update)


@dataclass
class SimulatorConfig:
    read_timeout: float = 3.0
    base_backoff: float = 0.05
    max_backoff: float = 1.0
    max_retry_after: float = 2.0


@dataclass
class _ChatQueue:
    pending: deque[Delivery] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class TelegramSimulator:
    """Runs on the given asyncio loop; its public methods are safe to call from any thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        webhook_url: str,
        secret: str,
        history: History,
        config: SimulatorConfig | None = None,
        secret_header: str = SECRET_HEADER,
    ) -> None:
        self._loop = loop
        self._url = webhook_url
        self._secret = secret
        self._secret_header = secret_header
        self._history = history
        self.config = config or SimulatorConfig()
        self._chats: dict[int, _ChatQueue] = {}
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self._client: httpx.AsyncClient | None = None
        self._stopped = False

    def submit(self, update: dict[str, Any]) -> Delivery:
        delivery = Delivery(update)
        with self._lock:
            self.deliveries.append(delivery)
        self._loop.call_soon_threadsafe(self._enqueue, delivery)
        return delivery

    def accepted_ids(self) -> set[int]:
        with self._lock:
            return {d.update_id for d in self.deliveries if d.done}

    def unfinished(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if not d.done]

    def retrying_ids(self) -> set[int]:
        """Update ids whose delivery is queued or in flight on a live chat worker."""
        ids: set[int] = set()
        for queue in list(self._chats.values()):
            if queue.task is not None and not queue.task.done():
                ids.update(d.update_id for d in queue.pending)
        return ids

    def idle(self) -> bool:
        return not self.unfinished()

    def set_read_timeout(self, seconds: float) -> None:
        self.config.read_timeout = seconds

    async def aclose(self) -> None:
        self._stopped = True
        for queue in self._chats.values():
            if queue.task is not None:
                queue.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queue.task
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ loop side
    def _enqueue(self, delivery: Delivery) -> None:
        if self._stopped:
            return
        queue = self._chats.get(delivery.chat_id)
        if queue is None:
            queue = self._chats[delivery.chat_id] = _ChatQueue()
        queue.pending.append(delivery)
        queue.wake.set()
        if queue.task is None or queue.task.done():
            queue.task = asyncio.create_task(self._run_chat(queue))

    async def _run_chat(self, queue: _ChatQueue) -> None:
        while True:
            while not queue.pending:
                queue.wake.clear()
                await queue.wake.wait()
            delivery = queue.pending[0]
            await self._deliver(delivery)
            queue.pending.popleft()

    async def _deliver(self, delivery: Delivery) -> None:
        backoff = self.config.base_backoff
        while True:
            delivery.attempts += 1
            wait = await self._attempt(delivery)
            if delivery.done:
                return
            await asyncio.sleep(max(backoff, min(wait, self.config.max_retry_after)))
            backoff = min(self.config.max_backoff, backoff * 2)

    async def _attempt(self, delivery: Delivery) -> float:
        """One POST; mark ``delivery`` done on 2xx; return the Retry-After asked for, or 0."""
        if self._client is None:
            self._client = httpx.AsyncClient()
        op = self._history.invoke(
            f"telegram-chat-{delivery.chat_id}", "deliver", {"update_id": delivery.update_id}
        )
        try:
            response = await self._client.post(
                self._url,
                json=delivery.update,
                headers={self._secret_header: self._secret},
                timeout=httpx.Timeout(self.config.read_timeout, connect=1.0),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            delivery.last_status = type(error).__name__
            self._history.complete(op, "fail", error=delivery.last_status)
            return 0.0
        except httpx.HTTPError as error:
            delivery.last_status = type(error).__name__
            self._history.complete(op, "info", error=delivery.last_status)
            return 0.0
        delivery.last_status = str(response.status_code)
        if 200 <= response.status_code < 300:
            delivery.done = True
            self._history.complete(op, "ok")
            return 0.0
        self._history.complete(op, "fail", error=f"HTTP {response.status_code}")
        try:
            return float(response.headers.get("retry-after", "0"))
        except ValueError:
            return 0.0
