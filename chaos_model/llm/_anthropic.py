"""Anthropic's wire format: ``POST /v1/messages`` (text, ``tools`` answered with ``tool_use``,
``output_config`` JSON schemas, streaming events) and its errors (``rate_limit_error`` with the
``anthropic-ratelimit-*`` headers, 529 ``overloaded_error``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chaos_model.llm._reply import REFUSAL, Reply, broken, pieces, random_id, sse, tokens
from chaos_model.llm._request import (
    Ask,
    BadRequest,
    EmbedAsk,
    Provider,
    Tool,
    ToolChoice,
    need,
    schema_of,
    text_of,
)
from chaos_model.llm._rules import Answer

NAME: Provider = "anthropic"
_ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}


def parse_chat(endpoint: str, body: Mapping[str, Any]) -> Ask:
    model = need(body, "model", str)
    need(body, "max_tokens", int)
    messages = need(body, "messages", list)
    system = text_of(body.get("system"))
    turns: list[tuple[str, str]] = [("system", system)] if system else []
    called: set[str] = set()
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise BadRequest("each message needs a 'role' of user or assistant")
        content = message.get("content")
        text = text_of(content)
        for block in content if isinstance(content, list) else ():
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                called.add(str(block.get("name", "")))
                text += f"\n{block.get('name')}({block.get('input')})"
        turns.append((message["role"], text))
    tools = tuple(
        Tool(str(entry["name"]), schema_of(entry["input_schema"], f"tools.{entry['name']}"))
        for entry in body.get("tools") or ()
        if isinstance(entry, Mapping) and "input_schema" in entry and "name" in entry
    )
    choice, forced = _tool_choice(body.get("tool_choice"), tools)
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    return Ask(
        provider=NAME,
        endpoint=endpoint,
        model=model,
        system=system,
        prompt=next((text for role, text in turns if role == "user"), ""),
        turns=tuple(turns),
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        called=frozenset(called),
        schema=_output_schema(body),
        stream=bool(body.get("stream")),
        user=str((metadata or {}).get("user_id") or ""),
    )


def _tool_choice(value: Any, tools: tuple[Tool, ...]) -> tuple[ToolChoice, str]:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if not tools or kind in (None, "auto"):
        return "auto", ""
    if kind == "none":
        return "none", ""
    if kind == "any":
        return "required", ""
    if kind == "tool":
        name = str(value.get("name", "")) if isinstance(value, Mapping) else ""
        if not any(tool.name == name for tool in tools):
            raise BadRequest(f"tool_choice.name: no tool named {name!r} in tools")
        return "tool", name
    raise BadRequest(f"tool_choice.type: unknown type {kind!r}")


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        return schema_of(fmt.get("schema"), "output_config.format.schema")
    return None


def reply(ask: Ask, answer: Answer, body: Mapping[str, Any], mode: str | None) -> Reply:
    content = answer.content
    stop = "end_turn"
    if mode == "refusal":
        block: dict[str, Any] = {"type": "text", "text": REFUSAL}
        content, stop = REFUSAL, "refusal"
    elif answer.tool is not None:
        arguments: Any = answer.value
        if mode == "malformed_tool_call":  # what the API gives for a model's broken tool JSON
            arguments = {"INVALID_JSON": broken(content)}
        block = {"type": "tool_use", "id": random_id("toolu_01"), "name": answer.tool}
        block["input"] = arguments
        stop = "tool_use"
    else:
        text = broken(content) if mode == "malformed_tool_call" else content
        block = {"type": "text", "text": text}
    prompt = sum(tokens(text) for _, text in ask.turns)
    usage = {
        "input_tokens": prompt,
        "output_tokens": tokens(content),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }
    message = {
        "id": random_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": ask.model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    headers = {"request-id": random_id("req_01"), **_limits(remaining=49)}
    if not ask.stream:
        return Reply(200, message, headers=headers)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        json_text = content if mode != "malformed_tool_call" else broken(content)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(json_text)]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
    chunks = [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": opening},
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]
    chunks += [
        sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        for delta in deltas
    ]
    chunks += [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return Reply(200, chunks=chunks, headers=headers, media_type="text/event-stream")


def _limits(remaining: int, reset: float = 1.0) -> dict[str, str]:
    at = (datetime.now(UTC) + timedelta(seconds=reset)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {}
    for name, limit in (
        ("requests", 50),
        ("tokens", 100000),
        ("input-tokens", 80000),
        ("output-tokens", 20000),
    ):
        left = remaining if name == "requests" else (limit if remaining else 0)
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(left)
        headers[f"anthropic-ratelimit-{name}-reset"] = at
    return headers


def error(kind: str, status: int, retry_after: float, message: str = "") -> Reply:
    """An error as Anthropic sends it: ``kind`` is rate_limit, server, overloaded or
    bad_request."""
    status = {"rate_limit": 429, "overloaded": 529, "bad_request": 400}.get(kind, status)
    texts = {429: "Number of requests has exceeded your rate limit.", 529: "Overloaded"}
    text = message or texts.get(status, "Internal server error")
    request_id = random_id("req_01")
    body = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": text},
        "request_id": request_id,
    }
    headers = {"request-id": request_id}
    if kind == "rate_limit":
        headers |= {"retry-after": f"{retry_after:g}", **_limits(0, reset=retry_after)}
    return Reply(status, body, headers=headers)


def malformed(ask: Ask | EmbedAsk) -> Reply:
    if ask.stream:
        chunks = [sse('{"type": "message_start", "message": {', "message_start")]
        return Reply(200, chunks=chunks, media_type="text/event-stream")
    return Reply(200, b'{"type": "message", "content": [')
