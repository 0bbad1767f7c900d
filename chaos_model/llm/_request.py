"""A provider's request, read into one shape the answer rules and the records work on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chaos_model.adapter import LLMSpec

Provider = Literal["openai", "anthropic", "ollama"]
#: "tool": one named tool must be called; "required": some tool must be called
ToolChoice = Literal["auto", "none", "required", "tool"]


class BadRequest(Exception):
    """The request is not one the provider would accept; the message says what is wrong."""


@dataclass(frozen=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Ask:
    """A chat (or generate) request: what the model is asked and what form the answer takes."""

    provider: Provider
    endpoint: str
    model: str
    #: the system prompt (every system part, joined)
    system: str = ""
    #: the first user message: the reference pipeline's text
    prompt: str = ""
    #: every message as (role, text), tool calls and results included: the answer's seed
    turns: tuple[tuple[str, str], ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    forced_tool: str = ""
    #: tools the conversation has already called
    called: frozenset[str] = frozenset()
    #: the JSON schema of the answer (a json_schema response format, Ollama's format)
    schema: Mapping[str, Any] | None = None
    #: a JSON object is asked for, without a schema
    json_mode: bool = False
    stream: bool = False
    #: the provider's own end-user field (OpenAI ``user``, Anthropic ``metadata.user_id``)
    user: str = ""

    @property
    def texts(self) -> str:
        """The system prompt and every user message: what a rule's ``prompt`` searches."""
        users = (text for role, text in self.turns if role == "user")
        return "\n".join(part for part in (self.system, *users) if part)

    def tool(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)


@dataclass(frozen=True)
class EmbedAsk:
    provider: Provider
    endpoint: str
    model: str
    inputs: tuple[str, ...]
    dimensions: int
    base64: bool = False
    user: str = ""
    stream: bool = False

    @property
    def texts(self) -> str:
        return "\n".join(self.inputs)


def message_key(ask: Ask | EmbedAsk, headers: Mapping[str, str], spec: LLMSpec) -> str:
    """The message a call belongs to, as the adapter's ``[llm] key`` says to read it."""
    if spec.key == "header":
        found = headers.get(spec.key_header.lower()) or headers.get(spec.key_header)
        if found:
            return found
    elif spec.key == "prompt":
        match = re.search(spec.key_pattern, ask.texts)
        if match is not None:
            return match.group(1) if match.groups() else match.group(0)
    return ask.user or "anonymous"


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts/blocks with text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "content" in part:  # an Anthropic tool_result block
                    parts.append(text_of(part["content"]))
        return "\n".join(parts)
    raise BadRequest(f"message content must be a string or a list of parts, not {content!r}"[:200])


def need(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``body[key]``, which must be of ``kind``, or :class:`BadRequest`."""
    if key not in body:
        raise BadRequest(f"missing required parameter: '{key}'")
    value = body[key]
    if not isinstance(value, kind):
        raise BadRequest(f"invalid type for '{key}': {type(value).__name__}")
    return value


def schema_of(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequest(f"'{where}' must be a JSON schema object")
    return value
