"""The toy target's worker: rates each stored message, then extracts facts from it.

Rating is a plain HTTP call asking for a JSON object; extraction goes through the openai SDK
with a structured output (a pydantic model as the ``json_schema`` response format), as a real
service would. Each stage tries the LLM three times (the adapter's ``max_attempts``), waiting
0.2 s doubling, or as long as a Retry-After asks, between tries; a malformed answer is tried
again like an error.

Run: ``TOY_DB=postgresql://... TOY_NATS=nats://... TOY_LLM=http://127.0.0.1:8081
TOY_HEALTH_PORT=8091 python -m tests.toy_target.worker``. Ready when ``GET /healthz`` on
``TOY_HEALTH_PORT`` answers 200: both core-NATS subscriptions (queue group ``toy-workers``) are
active. A message whose handling hits a database error is logged and dropped (at-most-once).

A second weakness is planted here, between two I/O calls: a publish of the extraction that
times out is sent again (it may have gone out: the server can have it), and extraction stores
the facts before it moves the status, in one transaction that commits even when the status had
moved already. A timed-out publish that did go out therefore stores every fact twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from typing import Any

import asyncpg
import httpx
import nats
import openai
import pydantic
from nats.aio.msg import Msg

from tests.toy_target.api import connect_nats

log = logging.getLogger("toy.worker")


#: LLM calls per stage: the adapter's [limits] max_attempts
ATTEMPTS = 3


class LLMError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


class Facts(pydantic.BaseModel):
    """The extraction's structured output."""

    facts: list[str] = pydantic.Field(min_length=1, max_length=5)


def _check_score(answer: Any) -> float:
    score = answer["score"]
    if type(score) not in (int, float) or not 0 <= score <= 1:
        raise ValueError(score)
    return float(score)


class Worker:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.subscribed = False
        self.pool: Any = None
        self.llm = httpx.AsyncClient(base_url=os.environ["TOY_LLM"], timeout=5)
        self.sdk = openai.AsyncOpenAI(
            base_url=os.environ["TOY_LLM"] + "/v1", api_key="toy", timeout=5, max_retries=0
        )

    async def ask(self, pk: int, task: str, text: str) -> Any:
        """The LLM's checked answer (a score, or the facts); :class:`LLMError` when every try
        failed."""
        call = self.rate if task == "score" else self.extract
        for attempt in range(ATTEMPTS):
            try:
                return await call(pk, text)
            except LLMError as error:
                log.info("pk=%s %s try %d failed: %s", pk, task, attempt + 1, error)
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(max(0.2 * 2**attempt, error.retry_after or 0.0))
        raise AssertionError("the last try returns or raises")  # pragma: no cover

    async def rate(self, pk: int, text: str) -> float:
        """One call over plain HTTP."""
        messages = [{"role": "system", "content": "score"}, {"role": "user", "content": text}]
        body: dict[str, Any] = {"model": "toy", "messages": messages, "user": f"toy-{pk}"}
        body["response_format"] = {"type": "json_object"}
        try:
            response = await self.llm.post("/v1/chat/completions", json=body)
            if response.status_code != 200:
                retry_after = _retry_after(response.headers)
                raise LLMError(f"llm: HTTP {response.status_code}", retry_after)
            content = response.json()["choices"][0]["message"]["content"]
            return _check_score(json.loads(content))
        except httpx.HTTPError as error:
            raise LLMError(f"llm: {type(error).__name__}") from error
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise LLMError("llm: malformed answer") from error

    async def extract(self, pk: int, text: str) -> list[str]:
        """One call through the SDK (its own retries off: the stage retries)."""
        try:
            completion = await self.sdk.chat.completions.parse(
                model="toy",
                messages=[
                    {"role": "system", "content": "extract the facts"},
                    {"role": "user", "content": text},
                ],
                response_format=Facts,
                user=f"toy-{pk}",
            )
        except openai.APIStatusError as error:
            retry_after = _retry_after(error.response.headers)
            raise LLMError(f"llm: HTTP {error.status_code}", retry_after) from error
        except openai.OpenAIError as error:
            raise LLMError(f"llm: {type(error).__name__}") from error
        except (pydantic.ValidationError, ValueError) as error:
            raise LLMError("llm: malformed answer") from error
        parsed = completion.choices[0].message.parsed
        if parsed is None:
            raise LLMError("llm: refused")
        return parsed.facts

    async def handle(self, msg: Msg) -> None:
        try:
            pk = json.loads(msg.data)["pk"]
            row = await self.pool.fetchrow("SELECT status, body FROM chat_messages WHERE pk=$1", pk)
            want, task = ("new", "score") if msg.subject == "toy.rate" else ("rated", "extract")
            if row is None or row["status"] != want:
                return
            try:
                answer = await self.ask(pk, task, row["body"])
            except LLMError as error:
                await self.pool.execute(
                    "UPDATE chat_messages SET status='error', error=$3 WHERE pk=$1 AND status=$2",
                    *(pk, want, str(error)),
                )
                return
            rating = round(answer * 100) if task == "score" else None
            async with self.pool.acquire() as conn, conn.transaction():
                if task == "extract":  # the facts first, then the status moves to done
                    facts = [(pk, item) for item in answer]
                    await conn.executemany("INSERT INTO facts VALUES ($1, $2)", facts)
                moved = await conn.execute(
                    "UPDATE chat_messages SET status=$3, rating=coalesce($4, rating)"
                    " WHERE pk=$1 AND status=$2",
                    *(pk, want, "rated" if task == "score" else "done", rating),
                )
                if moved != "UPDATE 1":  # handled meanwhile
                    return
            if task == "score":
                await self.hand_on(pk)
        except Exception:  # database errors included: log and drop (at-most-once)
            log.exception("dropped %s %r", msg.subject, msg.data)

    async def hand_on(self, pk: int) -> None:
        """Publish the extraction; a publish that times out is sent again."""
        body = json.dumps({"pk": pk}).encode()
        for attempt in range(3):
            try:
                await self.nc.publish("toy.extract", body)
                return
            except nats.errors.Error as error:
                log.info("pk=%s publish attempt %d failed: %s", pk, attempt + 1, error)

    async def on_message(self, msg: Msg) -> None:  # handlers run as tasks: never block the sub
        task = asyncio.create_task(self.handle(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            found = request.split(b" ")[1:2] == [b"/healthz"]
            code = "404 Not Found" if not found else "200 OK" if self.subscribed else "503 No"
            state = {"pid": os.getpid(), "subscribed": self.subscribed, "busy": len(self.tasks)}
            body = json.dumps(state).encode()
            head = f"HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: "
            writer.write(f"{head}{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        writer.close()

    async def run(self) -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        port = int(os.environ["TOY_HEALTH_PORT"])
        server = await asyncio.start_server(self.health, "127.0.0.1", port)
        self.pool = await asyncpg.create_pool(
            os.environ["TOY_DB"], min_size=0, max_size=10, timeout=2, command_timeout=5
        )
        connecting = asyncio.create_task(connect_nats())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            self.nc = connecting.result()
            for subject in ("toy.rate", "toy.extract"):
                await self.nc.subscribe(subject, queue="toy-workers", cb=self.on_message)
            await self.nc.flush(timeout=5)  # the server has registered both subscriptions
            self.subscribed = True
            log.info("subscribed")
            await stopping
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self.nc.drain(), 5)
        connecting.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        server.close()
        await self.llm.aclose()
        await self.sdk.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pool.close(), 5)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(Worker().run())


if __name__ == "__main__":
    main()
