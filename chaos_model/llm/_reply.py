"""What the stub sends back, independent of the provider: a status, headers and a body, whole or
in chunks, with the timing and truncation a fault asks for."""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

REFUSAL = "I'm sorry, but I can't help with that request."
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Reply:
    status: int
    #: the whole body (JSON-serialisable, or bytes sent as they are) when not streamed
    body: Any = None
    #: the body's parts, when streamed (server-sent events or NDJSON lines)
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    #: seconds between the first part and the rest (a slow first token)
    first_delay: float = 0.0
    #: send this much of the body, then drop the connection (a stream cut in the middle)
    cut: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def tokens(text: str) -> int:
    """A stand-in for a tokenizer's count (no encoding can be downloaded): words and signs."""
    return len(_TOKEN.findall(text))


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def broken(text: str) -> str:
    """``text`` with a stray word after its opening bracket: JSON no parser accepts, not even a
    lenient one reading a partial stream."""
    if text[:1] in ("{", "["):
        return f"{text[0]}oops, {text[1:]}"
    return f"oops {text}"


def pieces(text: str, count: int = 6) -> list[str]:
    """``text`` in a few pieces, as tokens arrive."""
    size = max(1, -(-len(text) // count))
    return [text[start : start + size] for start in range(0, len(text), size)]


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


def ndjson(data: Any) -> bytes:
    return json.dumps(data).encode() + b"\n"
