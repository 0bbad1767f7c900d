"""OpenAI's wire format: ``POST /v1/chat/completions`` (plain, JSON mode, ``json_schema``
response formats, tools, server-sent events) and ``POST /v1/embeddings``. Ollama serves the same
under its ``/v1``."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping
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

NAME: Provider = "openai"
SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


def parse_chat(endpoint: str, body: Mapping[str, Any]) -> Ask:
    model = need(body, "model", str)
    messages = need(body, "messages", list)
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    called: set[str] = set()
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequest("each message needs a 'role'")
        role, text = message["role"], text_of(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            called.add(str(function.get("name", "")))
            text += f"\n{function.get('name')}({function.get('arguments', '')})"
        if role in ("system", "developer"):
            system.append(text)
        turns.append((role, text))
    tools = tuple(_tool(entry) for entry in body.get("tools") or ())
    choice, forced = _tool_choice(body.get("tool_choice"), tools)
    schema, json_mode = _response_format(body.get("response_format"))
    return Ask(
        provider=NAME,
        endpoint=endpoint,
        model=model,
        system="\n".join(system),
        prompt=next((text for role, text in turns if role == "user"), ""),
        turns=tuple(turns),
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        called=frozenset(called),
        schema=schema,
        json_mode=json_mode,
        stream=bool(body.get("stream")),
        user=str(body.get("user") or body.get("safety_identifier") or ""),
    )


def _tool(entry: Any) -> Tool:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("function"), Mapping):
        raise BadRequest("each tool needs a 'function' with a 'name'")
    function = entry["function"]
    name = need(function, "name", str)
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(name, schema_of(parameters, f"tools.{name}.parameters"))


def _tool_choice(value: Any, tools: tuple[Tool, ...]) -> tuple[ToolChoice, str]:
    if value is None or value == "auto" or not tools:
        return ("auto" if value != "none" else "none"), ""
    if value in ("none", "required"):
        return value, ""
    if isinstance(value, Mapping) and isinstance(value.get("function"), Mapping):
        name = str(value["function"].get("name", ""))
        if not any(tool.name == name for tool in tools):
            raise BadRequest(f"tool_choice names the function {name!r}, which is not in tools")
        return "tool", name
    return "auto", ""  # allowed_tools and custom choices: the model decides


def _response_format(value: Any) -> tuple[Mapping[str, Any] | None, bool]:
    if not isinstance(value, Mapping):
        return None, False
    if value.get("type") == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping) or "schema" not in spec:
            raise BadRequest("response_format.json_schema needs a 'schema'")
        return schema_of(spec["schema"], "response_format.json_schema.schema"), False
    return None, value.get("type") == "json_object"


def reply(ask: Ask, answer: Answer, body: Mapping[str, Any], mode: str | None) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    content = answer.content
    if mode == "refusal":
        message["refusal"] = content = REFUSAL
    elif answer.tool is not None:
        arguments = broken(content) if mode == "malformed_tool_call" else content
        message["tool_calls"] = [_call(answer.tool, arguments)]
    else:
        message["content"] = broken(content) if mode == "malformed_tool_call" else content
    finish = "stop"
    if answer.tool is not None and mode != "refusal" and ask.tool_choice != "tool":
        finish = "tool_calls"
    usage = _usage(ask, content)
    head = {
        "id": random_id("chatcmpl-"),
        "created": int(time.time()),
        "model": ask.model,
        "system_fingerprint": "fp_chaos_model",
    }
    headers = {"x-request-id": random_id("req_"), **_limits(remaining=59)}
    if not ask.stream:
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        whole = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        return Reply(200, whole, headers=headers)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunk = {**head, "object": "chat.completion.chunk"}
    if with_usage:
        chunk["usage"] = None

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse({**chunk, "choices": [choice]})

    chunks = [event({"role": "assistant", "content": "", "refusal": None})]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        chunks.append(event({"tool_calls": [{"index": 0, **opening}]}))
        for piece in pieces(call["function"]["arguments"]):
            chunks.append(event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        field = "refusal" if mode == "refusal" else "content"
        chunks += [event({field: piece}) for piece in pieces(message[field] or "")]
    chunks.append(event({}, finish))
    if with_usage:
        chunks.append(sse({**chunk, "choices": [], "usage": usage}))
    chunks.append(sse("[DONE]"))
    return Reply(200, chunks=chunks, headers=headers, media_type="text/event-stream")


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": random_id("call_"),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _usage(ask: Ask, content: str) -> dict[str, Any]:
    prompt = sum(tokens(text) for _, text in ask.turns)
    completion = tokens(content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _limits(remaining: int, reset: float = 1.0) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": f"{reset:g}s",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": str(150000 if remaining else 0),
        "x-ratelimit-reset-tokens": f"{reset:g}s",
    }


def error(kind: str, status: int, retry_after: float, message: str = "") -> Reply:
    """An error as OpenAI sends it: ``kind`` is rate_limit, server, overloaded or bad_request."""
    headers = {"x-request-id": random_id("req_")}
    body: dict[str, Any]
    if kind == "rate_limit":
        text = "Rate limit reached for requests per min (RPM): Limit 60, Used 60, Requested 1."
        body = {"message": f"{text} Please try again in {retry_after:g}s.", "type": "requests"}
        body |= {"param": None, "code": "rate_limit_exceeded"}
        headers |= {"retry-after": f"{retry_after:g}", **_limits(remaining=0, reset=retry_after)}
        return Reply(429, {"error": body}, headers=headers)
    if kind == "bad_request":
        body = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return Reply(400, {"error": body}, headers=headers)
    status = 503 if kind == "overloaded" else status
    text = message or SERVER_ERRORS.get(status, SERVER_ERRORS[500])
    body = {"message": text, "type": "server_error", "param": None, "code": None}
    return Reply(status, {"error": body}, headers=headers)


def malformed(ask: Ask | EmbedAsk) -> Reply:
    if ask.stream:
        chunks = [sse('{"choices": [{"delta": '), sse("[DONE]")]
        return Reply(200, chunks=chunks, media_type="text/event-stream")
    return Reply(200, b'{"choices": [{"message": ')


def parse_embeddings(endpoint: str, body: Mapping[str, Any]) -> EmbedAsk:
    model = need(body, "model", str)
    raw = need(body, "input", (str, list))
    inputs = [raw] if isinstance(raw, str) else raw
    if not inputs:
        raise BadRequest("'input' cannot be an empty list")
    texts = tuple(item if isinstance(item, str) else " ".join(map(str, item)) for item in inputs)
    dimensions = body.get("dimensions") or (3072 if model.endswith("-3-large") else 1536)
    if not isinstance(dimensions, int) or dimensions < 1:
        raise BadRequest("'dimensions' must be a positive integer")
    return EmbedAsk(
        provider=NAME,
        endpoint=endpoint,
        model=model,
        inputs=texts,
        dimensions=dimensions,
        base64=body.get("encoding_format") == "base64",
        user=str(body.get("user") or ""),
    )


def embeddings_reply(ask: EmbedAsk, vectors: list[list[float]]) -> Reply:
    data = []
    for index, vector in enumerate(vectors):
        encoded: Any = vector
        if ask.base64:
            packed = struct.pack(f"<{len(vector)}f", *vector)
            encoded = base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    used = sum(tokens(text) for text in ask.inputs)
    body = {
        "object": "list",
        "data": data,
        "model": ask.model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
    return Reply(200, body, headers={"x-request-id": random_id("req_")})
