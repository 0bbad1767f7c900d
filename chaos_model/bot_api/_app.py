"""The fake's HTTP app: the Bot API's ``/bot<token>/<method>`` and ``/file/bot<token>/<path>``,
and the control API that sets faults and reads the records."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos_model.bot_api._faults import ERROR_STATUSES, Fault, FaultSpecError, fault_from_spec
from chaos_model.bot_api._methods import BY_LOWER_NAME, DESCRIPTIONS, Bots, Call, CallError, answer
from chaos_model.bot_api._objects import bot_id, file_content
from chaos_model.bot_api._params import BadParams, parse_params, recorded
from chaos_model.bot_api._records import Record, Records

#: a bot token as BotFather gives it: the bot's id, a colon, the secret
TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")
#: what a download is recorded as
FILE_METHOD = "file"


class FakeState:
    def __init__(self) -> None:
        self.bots = Bots()
        self.records = Records()
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.fault: Fault | None = None
        self.release = asyncio.Event()

    def active_fault(self) -> Fault | None:
        if self.fault is not None and not self.fault.active():
            self.fault = None
        return self.fault

    async def failure(self, record: Record) -> CallError | None:
        """What the fault answers this call instead of its method, if it gets one (None too
        once a ``slow`` fault's delay is over); the record says which fault it got."""
        fault = self.active_fault()
        if fault is None or not fault.take(record.method):
            return None
        record.fault = fault.mode
        if fault.mode == "rate_limit":
            description = f"Too Many Requests: retry after {fault.retry_after}"
            return CallError(429, description, {"retry_after": fault.retry_after})
        if fault.mode == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.mode == "hang":
            await self.release.wait()  # until the fault is cleared
            return CallError(502, ERROR_STATUSES[502])
        return CallError(fault.status, ERROR_STATUSES[fault.status])

    def clear_fault(self) -> None:
        self.fault = None
        self.release.set()
        self.release = asyncio.Event()

    def reset(self) -> None:
        self.clear_fault()
        self.bots = Bots()
        self.records.clear()
        self.calls.clear()


def build_app() -> Starlette:
    state = FakeState()

    async def begin(request: Request, method: str, params: dict[str, Any]) -> Record:
        token = request.path_params["token"]
        record = Record(method, bot_id(token), request.method, recorded(params), time.time())
        state.calls[method] += 1
        state.in_flight += 1
        return state.records.begin(record)

    def end(record: Record, status: int) -> None:
        state.in_flight -= 1
        record.status, record.answered_at = status, time.time()

    async def call(request: Request) -> Response:
        token, called = request.path_params["token"], request.path_params["method"]
        if not TOKEN.fullmatch(token):
            return _error(CallError(404, "Not Found"))
        try:
            body = await request.body()
            content_type = request.headers.get("content-type", "")
            params = parse_params(request.query_params, content_type, body)
        except BadParams as error:
            return _error(CallError(400, f"Bad Request: {error}"))
        method = BY_LOWER_NAME.get(called.lower(), (called, None))[0]
        record = await begin(request, method, params)
        status = 500
        try:
            failure = await state.failure(record)
            if failure is not None:
                raise failure
            name, result = answer(called, Call(token, params, state.bots))
            record.result, status = result, 200
            answered: dict[str, Any] = {"ok": True, "result": result}
            if name in DESCRIPTIONS:
                answered["description"] = DESCRIPTIONS[name]
            return JSONResponse(answered)
        except CallError as error:
            record.description, status = error.description, error.code
            return _error(error)
        finally:
            end(record, status)

    async def download(request: Request) -> Response:
        token, path = request.path_params["token"], request.path_params["path"]
        if not TOKEN.fullmatch(token):
            return _error(CallError(404, "Not Found"))
        record = await begin(request, FILE_METHOD, {"file_path": path})
        status = 500
        try:
            failure = await state.failure(record)
            if failure is not None:
                record.description, status = failure.description, failure.code
                return _error(failure)
            content, status = file_content(path), 200
            return Response(content, media_type="application/octet-stream")
        finally:
            end(record, status)

    async def set_fault(request: Request) -> Response:
        try:
            fault = fault_from_spec(await request.json())
        except (ValueError, FaultSpecError) as error:
            return JSONResponse({"error": f"bad fault: {error}"}, 400)
        state.clear_fault()
        state.fault = fault
        return JSONResponse({"fault": asdict(fault)})

    async def clear_fault(request: Request) -> Response:
        state.clear_fault()
        return JSONResponse({"fault": None})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        fault = state.active_fault()
        return JSONResponse(
            {
                "calls": dict(state.calls),
                "total": sum(state.calls.values()),
                "in_flight": state.in_flight,
                "fault": None if fault is None else asdict(fault),
            }
        )

    async def records(request: Request) -> Response:
        method = request.query_params.get("method")
        return JSONResponse({"records": state.records.query(method)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    api = ["GET", "POST"]
    return Starlette(
        routes=[
            Route("/bot{token}/{method}", call, methods=api),
            # Telegram's test environment, as aiogram's TEST server addresses it
            Route("/bot{token}/test/{method}", call, methods=api),
            Route("/file/bot{token}/{path:path}", download, methods=["GET"]),
            Route("/control/fault", set_fault, methods=["POST"]),
            Route("/control/fault", clear_fault, methods=["DELETE"]),
            Route("/control/reset", reset, methods=["POST"]),
            Route("/control/stats", stats, methods=["GET"]),
            Route("/control/records", records, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def _error(error: CallError) -> JSONResponse:
    return JSONResponse(error.body(), error.code)
