"""The stub's HTTP app: the provider endpoints, and the control API that injects faults, sets
the answer rules and reads the records."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chaos_model.adapter import LLMSpec, llm_spec_from_json, llm_spec_to_json
from chaos_model.errors import AdapterError
from chaos_model.llm._embeddings import embedding
from chaos_model.llm._faults import NO_ANSWER, Fault, FaultSpecError, fault_from_spec
from chaos_model.llm._formats import CHAT, EMBED, ChatFormat, EmbedFormat, Format
from chaos_model.llm._instances import CannotAnswer
from chaos_model.llm._records import Record, Records
from chaos_model.llm._reply import Reply
from chaos_model.llm._request import Ask, BadRequest, EmbedAsk, message_key
from chaos_model.llm._rules import Answer, decide

log = logging.getLogger("chaos_model.llm")


class StreamCut(Exception):
    """Raised to drop a connection halfway through an answer (the ``cut`` fault)."""


class _QuietCuts(logging.Filter):
    """uvicorn logs an exception that ends a response; a planned cut is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


class StubState:
    def __init__(self, spec: LLMSpec) -> None:
        self.spec = spec
        self.fault: Fault | None = None
        self.calls: Counter[str] = Counter()
        self.total = 0
        self.in_flight = 0
        self.release = asyncio.Event()
        self.records = Records()

    def take_fault(self, ask: Ask | EmbedAsk) -> Fault | None:
        fault = self.fault
        if fault is None or not fault.active():
            self.fault = None
            return None
        if not fault.matches(ask):
            return None
        if fault.calls is not None:
            fault.calls -= 1
        return fault

    def clear_fault(self) -> None:
        self.fault = None
        self.release.set()
        self.release = asyncio.Event()

    def active_fault(self) -> Fault | None:
        return self.fault if self.fault is not None and self.fault.active() else None


class _Sent(Response):
    """A reply sent part by part: a stream, or any reply a fault delays or cuts halfway."""

    def __init__(self, reply: Reply, done: Callable[[], None]) -> None:
        # not Response.__init__: it would render a body and set its length
        self.reply = reply
        self.done = done
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = self.reply
        parts = reply.chunks if reply.chunks is not None else [reply.payload()]
        headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        headers.append((b"content-type", reply.media_type.encode()))
        if reply.chunks is None:
            headers.append((b"content-length", str(len(parts[0])).encode()))
        if reply.cut:
            parts = (
                parts[: max(1, len(parts) // 2)]
                if len(parts) > 1
                else [parts[0][: len(parts[0]) // 2]]
            )
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            for index, part in enumerate(parts):
                await send({"type": "http.response.body", "body": part, "more_body": True})
                if index == 0 and reply.first_delay:
                    await asyncio.sleep(reply.first_delay)
            if reply.cut:
                raise StreamCut("the cut fault drops the connection here")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.done()


def build_app(spec: LLMSpec | None = None) -> Starlette:
    state = StubState(spec or LLMSpec())
    logging.getLogger("uvicorn.error").addFilter(_QuietCuts())

    def send(reply: Reply, record: Record) -> Response:
        record.status = reply.status

        def done() -> None:
            state.in_flight -= 1
            record.answered_at = time.time()

        if reply.chunks is None and not reply.cut:
            done()
            return Response(reply.payload(), reply.status, reply.headers, reply.media_type)
        return _Sent(reply, done)

    async def begin(
        request: Request, fmt: Format, parse: Callable[[Any], Ask | EmbedAsk]
    ) -> tuple[Ask | EmbedAsk, dict[str, Any], Record] | Response:
        requested_at = time.time()
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            ask = parse(body)
        except (ValueError, BadRequest) as error:
            reply = fmt.error("bad_request", 400, 0.0, str(error) or "invalid JSON")
            return Response(reply.payload(), reply.status, reply.headers, reply.media_type)
        key = message_key(ask, request.headers, state.spec)
        state.calls[key] += 1
        state.total += 1
        state.in_flight += 1
        record = Record(key, ask.provider, request.url.path, ask.model, requested_at)
        record.stream = ask.stream
        return ask, body, state.records.begin(record)

    async def failure(fmt: Format, ask: Ask | EmbedAsk, fault: Fault, record: Record) -> Reply:
        """The reply of a fault in :data:`NO_ANSWER`."""
        if fault.mode == "rate_limit":
            state.records.retry_after(record, fault.retry_after, time.time())
            return fmt.error("rate_limit", 429, fault.retry_after)
        if fault.mode == "overloaded":
            return fmt.error("overloaded", 529, fault.retry_after)
        if fault.mode == "malformed":
            return fmt.malformed(ask)
        if fault.mode == "hang":
            await state.release.wait()  # until the fault is cleared
            return fmt.error("server", 503, 0.0, "released")
        return fmt.error("server", fault.status, 0.0)

    async def chat(request: Request) -> Response:
        fmt: ChatFormat = CHAT[request.url.path]
        begun = await begin(request, fmt, lambda body: fmt.parse_chat(request.url.path, body))
        if isinstance(begun, Response):
            return begun
        ask, body, record = begun
        assert isinstance(ask, Ask)
        record.system, record.prompt = ask.system, ask.prompt
        try:
            fault = state.take_fault(ask)
            mode = record.fault = fault.mode if fault is not None else None
            # decided before a fault answers instead, so the record says which call it was
            try:
                answer: Answer | None = decide(ask, state.spec)
            except CannotAnswer as error:
                answer, cannot = None, error
            if answer is not None:
                record.rule, record.tool = answer.rule, answer.tool
            if fault is not None and fault.mode in NO_ANSWER:
                return send(await failure(fmt, ask, fault, record), record)
            if fault is not None and (
                mode == "slow" or (mode == "slow_first_token" and not ask.stream)
            ):
                await asyncio.sleep(fault.delay)
            if answer is None:
                log.warning("cannot answer %s: %s", request.url.path, cannot)
                record.error = str(cannot)
                return send(fmt.error("server", 500, 0.0, f"chaos-model stub: {cannot}"), record)
            if mode not in ("refusal", "malformed_tool_call", "cut"):
                record.answer = answer.value
            reply = fmt.reply(ask, answer, body, mode)
            if fault is not None and mode == "slow_first_token":
                reply.first_delay = fault.delay
            reply.cut = mode == "cut"
            return send(reply, record)
        except BaseException:
            state.in_flight -= 1
            raise

    async def embed(request: Request) -> Response:
        fmt: EmbedFormat = EMBED[request.url.path]
        parse = lambda body: fmt.parse_embeddings(request.url.path, body)  # noqa: E731
        begun = await begin(request, fmt, parse)
        if isinstance(begun, Response):
            return begun
        ask, _, record = begun
        assert isinstance(ask, EmbedAsk)
        try:
            fault = state.take_fault(ask)
            record.fault = fault.mode if fault is not None else None
            if fault is not None and fault.mode in NO_ANSWER:
                return send(await failure(fmt, ask, fault, record), record)
            if fault is not None and fault.mode == "slow":
                await asyncio.sleep(fault.delay)
            vectors = [embedding(ask.model, text, ask.dimensions) for text in ask.inputs]
            record.rule = "embedding"
            record.answer = {"inputs": len(vectors), "dimensions": ask.dimensions}
            reply = fmt.embeddings_reply(ask, vectors)
            reply.cut = fault is not None and fault.mode == "cut"
            return send(reply, record)
        except BaseException:
            state.in_flight -= 1
            raise

    async def set_fault(request: Request) -> Response:
        try:
            fault = fault_from_spec(await request.json())
        except (ValueError, FaultSpecError) as error:
            return _bad_request(f"bad fault: {error}")
        state.clear_fault()
        state.fault = fault
        return JSONResponse({"fault": asdict(fault)})

    async def clear_fault(request: Request) -> Response:
        state.clear_fault()
        return JSONResponse({"fault": None})

    async def reset(request: Request) -> Response:
        state.clear_fault()
        state.calls.clear()
        state.total = 0
        state.records.clear()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        fault = state.active_fault()
        return JSONResponse(
            {
                "calls": dict(state.calls),
                "total": state.total,
                "in_flight": state.in_flight,
                "fault": None if fault is None else asdict(fault),
            }
        )

    async def records(request: Request) -> Response:
        return JSONResponse({"records": state.records.query(request.query_params.get("key"))})

    async def get_config(request: Request) -> Response:
        return JSONResponse(llm_spec_to_json(state.spec))

    async def set_config(request: Request) -> Response:
        try:
            state.spec = llm_spec_from_json(await request.json(), "POST /control/config")
        except ValueError:
            return _bad_request("POST /control/config: the body is not JSON")
        except AdapterError as error:
            return _bad_request(str(error))
        return JSONResponse(llm_spec_to_json(state.spec))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ollama_tags(request: Request) -> Response:
        model = {"name": "chaos-stub:latest", "model": "chaos-stub:latest", "size": 1}
        return JSONResponse({"models": [{**model, "digest": "0" * 64, "details": {}}]})

    async def ollama_version(request: Request) -> Response:
        return JSONResponse({"version": "0.6.0"})

    return Starlette(
        routes=[
            *(Route(path, chat, methods=["POST"]) for path in CHAT),
            *(Route(path, embed, methods=["POST"]) for path in EMBED),
            Route("/api/tags", ollama_tags, methods=["GET"]),
            Route("/api/version", ollama_version, methods=["GET"]),
            Route("/control/fault", set_fault, methods=["POST"]),
            Route("/control/fault", clear_fault, methods=["DELETE"]),
            Route("/control/reset", reset, methods=["POST"]),
            Route("/control/stats", stats, methods=["GET"]),
            Route("/control/records", records, methods=["GET"]),
            Route("/control/config", get_config, methods=["GET"]),
            Route("/control/config", set_config, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 400)
