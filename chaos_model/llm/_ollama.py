"""Ollama's own API: ``POST /api/chat``, ``/api/generate`` (NDJSON streams, on by default),
``/api/embeddings`` and ``/api/embed``; errors are ``{"error": "..."}``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chaos_model.llm._reply import REFUSAL, Reply, broken, ndjson, pieces, tokens
from chaos_model.llm._request import (
    Ask,
    BadRequest,
    EmbedAsk,
    Provider,
    Tool,
    need,
    schema_of,
    text_of,
)
from chaos_model.llm._rules import Answer

NAME: Provider = "ollama"
NDJSON = "application/x-ndjson"
DIMENSIONS = 768
_ERRORS = {
    429: "too many requests, please try again later",
    500: "llama runner process has terminated: exit status 2",
    502: "bad gateway",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def parse_chat(endpoint: str, body: Mapping[str, Any]) -> Ask:
    model = need(body, "model", str)
    if endpoint == "/api/generate":
        system = str(body.get("system") or "")
        prompt = text_of(body.get("prompt"))
        turns = ((("system", system),) if system else ()) + (("user", prompt),)
        return _ask(endpoint, model, body, system, tuple(turns), (), frozenset())
    messages = need(body, "messages", list)
    system_parts: list[str] = []
    found: list[tuple[str, str]] = []
    called: set[str] = set()
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequest("each message needs a role")
        text = text_of(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            called.add(str(function.get("name", "")))
            text += f"\n{function.get('name')}({function.get('arguments')})"
        if message["role"] == "system":
            system_parts.append(text)
        found.append((message["role"], text))
    tools = tuple(
        Tool(
            str(entry["function"]["name"]),
            schema_of(
                entry["function"].get("parameters") or {"type": "object", "properties": {}},
                f"tools.{entry['function']['name']}.parameters",
            ),
        )
        for entry in body.get("tools") or ()
        if isinstance(entry, Mapping) and isinstance(entry.get("function"), Mapping)
    )
    return _ask(endpoint, model, body, "\n".join(system_parts), tuple(found), tools, called)


def _ask(
    endpoint: str,
    model: str,
    body: Mapping[str, Any],
    system: str,
    turns: tuple[tuple[str, str], ...],
    tools: tuple[Tool, ...],
    called: set[str] | frozenset[str],
) -> Ask:
    fmt = body.get("format")
    return Ask(
        provider=NAME,
        endpoint=endpoint,
        model=model,
        system=system,
        prompt=next((text for role, text in turns if role == "user"), ""),
        turns=turns,
        tools=tools,
        called=frozenset(called),
        schema=schema_of(fmt, "format") if isinstance(fmt, Mapping) else None,
        json_mode=fmt == "json",
        stream=body.get("stream", True) is not False,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reply(ask: Ask, answer: Answer, body: Mapping[str, Any], mode: str | None) -> Reply:
    content = REFUSAL if mode == "refusal" else answer.content
    calls: list[dict[str, Any]] = []
    if answer.tool is not None and mode not in ("refusal", "malformed_tool_call"):
        calls = [{"function": {"name": answer.tool, "arguments": answer.value}}]
        content = ""
    elif mode == "malformed_tool_call":  # Ollama gives a tool call it cannot parse as text
        content = broken(answer.content)
    prompt = sum(tokens(text) for _, text in ask.turns)
    done = {
        "done": True,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 200_000,
        "eval_count": tokens(content) or 1,
        "eval_duration": 700_000,
    }
    generate = ask.endpoint == "/api/generate"
    if generate:
        done["context"] = list(range(1, prompt + 1))[:64]

    def part(text: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if generate:
            return {"model": ask.model, "created_at": _now(), "response": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"model": ask.model, "created_at": _now(), "message": message}

    if not ask.stream:
        return Reply(200, {**part(content, calls), **done})
    lines = [ndjson({**part(piece), "done": False}) for piece in pieces(content)]
    if calls:
        lines.append(ndjson({**part("", calls), "done": False}))
    lines.append(ndjson({**part(""), **done}))
    return Reply(200, chunks=lines, media_type=NDJSON)


def error(kind: str, status: int, retry_after: float, message: str = "") -> Reply:
    status = {"rate_limit": 429, "overloaded": 503, "bad_request": 400}.get(kind, status)
    headers = {"retry-after": f"{retry_after:g}"} if kind == "rate_limit" else {}
    return Reply(status, {"error": message or _ERRORS.get(status, _ERRORS[500])}, headers=headers)


def malformed(ask: Ask | EmbedAsk) -> Reply:
    if ask.stream:
        return Reply(
            200,
            chunks=[b'{"model": "' + ask.model.encode() + b'", "message": {\n'],
            media_type=NDJSON,
        )
    return Reply(200, b'{"model": "' + ask.model.encode() + b'", "message": {')


def parse_embeddings(endpoint: str, body: Mapping[str, Any]) -> EmbedAsk:
    model = need(body, "model", str)
    if endpoint == "/api/embeddings":
        inputs: tuple[str, ...] = (str(body.get("prompt") or ""),)
    else:
        raw = need(body, "input", (str, list))
        inputs = (raw,) if isinstance(raw, str) else tuple(map(str, raw))
    dimensions = body.get("dimensions") or DIMENSIONS
    if not isinstance(dimensions, int) or dimensions < 1:
        raise BadRequest("dimensions must be a positive integer")
    return EmbedAsk(NAME, endpoint, model, inputs, dimensions)


def embeddings_reply(ask: EmbedAsk, vectors: list[list[float]]) -> Reply:
    if ask.endpoint == "/api/embeddings":
        return Reply(200, {"embedding": vectors[0]})
    body = {
        "model": ask.model,
        "embeddings": vectors,
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": sum(tokens(text) for text in ask.inputs),
    }
    return Reply(200, body)
