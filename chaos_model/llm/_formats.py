"""Which provider format serves which endpoint, and the pure answer of a request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chaos_model.adapter import LLMSpec
from chaos_model.llm import _anthropic, _ollama, _openai
from chaos_model.llm._reply import Reply
from chaos_model.llm._request import Ask, BadRequest, EmbedAsk
from chaos_model.llm._rules import Answer, decide


class Format(Protocol):
    """What every provider module offers: its errors and its malformed answer."""

    def error(self, kind: str, status: int, retry_after: float, message: str = "") -> Reply: ...

    def malformed(self, ask: Ask | EmbedAsk) -> Reply: ...


class ChatFormat(Format, Protocol):
    def parse_chat(self, endpoint: str, body: Mapping[str, Any]) -> Ask: ...

    def reply(
        self, ask: Ask, answer: Answer, body: Mapping[str, Any], mode: str | None
    ) -> Reply: ...


class EmbedFormat(Format, Protocol):
    def parse_embeddings(self, endpoint: str, body: Mapping[str, Any]) -> EmbedAsk: ...

    def embeddings_reply(self, ask: EmbedAsk, vectors: list[list[float]]) -> Reply: ...


#: chat-like endpoints
CHAT: dict[str, ChatFormat] = {
    "/v1/chat/completions": _openai,
    "/v1/messages": _anthropic,
    "/api/chat": _ollama,
    "/api/generate": _ollama,
}
#: embedding endpoints
EMBED: dict[str, EmbedFormat] = {
    "/v1/embeddings": _openai,
    "/api/embeddings": _ollama,
    "/api/embed": _ollama,
}


def answer_for(endpoint: str, body: Mapping[str, Any], spec: LLMSpec | None = None) -> Answer:
    """The answer the stub gives the chat request ``body`` sent to ``endpoint`` (faults aside):
    what the oracle recomputes from a record's request, without the stub running.

    Raises :class:`BadRequest` for a request the provider would refuse (400), and
    ``CannotAnswer`` for a schema no instance can be made of.
    """
    if endpoint not in CHAT:
        raise BadRequest(f"no chat endpoint {endpoint!r}; known: {', '.join(CHAT)}")
    return decide(CHAT[endpoint].parse_chat(endpoint, body), spec)
