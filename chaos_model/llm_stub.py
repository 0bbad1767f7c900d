"""A fake LLM provider speaking OpenAI's ``POST /v1/chat/completions`` wire format.

Answers are deterministic functions of the user message (see :func:`expected_score`
and :func:`expected_knowledge`). A control API injects provider faults:

``POST /control/fault`` ``{"mode": "rate_limit"|"error"|"slow"|"hang"|"malformed",
"calls": N | null, "seconds": S | null, "retry_after": 1.0, "delay": 0.5}`` makes the next N
calls, or every call for S seconds (or, with neither, every call until cleared), answer 429 with
``Retry-After``, 500, slowly, never, or with a body that is not JSON.
``DELETE /control/fault`` clears it and releases hung calls; ``POST /control/reset`` also zeroes
the counters; ``GET /control/stats`` gives calls per message, calls in flight and the fault.

Run: ``python -m chaos_model.llm_stub --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

Mode = Literal["rate_limit", "error", "slow", "hang", "malformed"]
MODES: tuple[str, ...] = ("rate_limit", "error", "slow", "hang", "malformed")


@dataclass
class Fault:
    mode: Mode
    calls: int | None = None
    until: float | None = None
    retry_after: float = 1.0
    delay: float = 0.5

    def active(self) -> bool:
        if self.calls is not None and self.calls <= 0:
            return False
        return self.until is None or time.monotonic() < self.until


class StubState:
    def __init__(self) -> None:
        self.fault: Fault | None = None
        self.calls: Counter[str] = Counter()
        self.total = 0
        self.in_flight = 0
        self.release = asyncio.Event()

    def take_fault(self) -> Fault | None:
        fault = self.fault
        if fault is None or not fault.active():
            self.fault = None
            return None
        if fault.calls is not None:
            fault.calls -= 1
        return fault

    def clear_fault(self) -> None:
        self.fault = None
        self.release.set()
        self.release = asyncio.Event()


def expected_score(text: str) -> float:
    """The score the stub gives ``text``: a stable function of its bytes, in [0, 1]."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF


def expected_knowledge(text: str) -> list[str]:
    """The knowledge items the stub extracts from ``text``: one to three, stable."""
    words = text.split() or ["(empty)"]
    count = 1 + int.from_bytes(hashlib.sha256(text.encode()).digest()[4:5], "big") % 3
    return [f"fact {n}: {' '.join(words[n::count])[:200]}" for n in range(count)]


def _completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "pipeline-stub-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _answer(task: str, text: str) -> str:
    if "extract" in task:
        return json.dumps({"items": expected_knowledge(text)})
    return json.dumps({"score": expected_score(text)})


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 400)


def build_app() -> Starlette:
    state = StubState()

    async def completions(request: Request) -> Response:
        try:
            body = await request.json()
            messages = body["messages"]
            task = next(m["content"] for m in messages if m["role"] == "system")
            text = next(m["content"] for m in messages if m["role"] == "user")
        except (ValueError, KeyError, TypeError, StopIteration):
            return _bad_request("expected an OpenAI chat completion request")
        state.calls[str(body.get("user", "anonymous"))] += 1
        state.total += 1
        state.in_flight += 1
        try:
            fault = state.take_fault()
            if fault is None:
                return JSONResponse(_completion(_answer(task, text)))
            if fault.mode == "rate_limit":
                return JSONResponse(
                    {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                    429,
                    headers={"Retry-After": f"{fault.retry_after:g}"},
                )
            if fault.mode == "error":
                return JSONResponse({"error": {"message": "internal", "type": "server_error"}}, 500)
            if fault.mode == "malformed":
                return PlainTextResponse('{"choices": [{"message": ', 200)
            if fault.mode == "slow":
                await asyncio.sleep(fault.delay)
                return JSONResponse(_completion(_answer(task, text)))
            await state.release.wait()  # hang until the fault is cleared
            return JSONResponse({"error": {"message": "released", "type": "server_error"}}, 503)
        finally:
            state.in_flight -= 1

    async def set_fault(request: Request) -> Response:
        try:
            spec = await request.json()
            mode = spec["mode"]
            if mode not in MODES:
                raise ValueError(mode)
            seconds = spec.get("seconds")
            fault = Fault(
                mode=mode,
                calls=spec.get("calls"),
                until=None if seconds is None else time.monotonic() + float(seconds),
                retry_after=float(spec.get("retry_after", 1.0)),
                delay=float(spec.get("delay", 0.5)),
            )
        except (ValueError, KeyError, TypeError):
            return _bad_request(f"expected {{'mode': one of {list(MODES)}, 'calls'?, 'seconds'?}}")
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
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        fault = state.fault if state.fault is not None and state.fault.active() else None
        return JSONResponse(
            {
                "calls": dict(state.calls),
                "total": state.total,
                "in_flight": state.in_flight,
                "fault": None if fault is None else asdict(fault),
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/control/fault", set_fault, methods=["POST"]),
            Route("/control/fault", clear_fault, methods=["DELETE"]),
            Route("/control/reset", reset, methods=["POST"]),
            Route("/control/stats", stats, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="OpenAI-compatible LLM stub with fault control")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
