from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from chaos_model.faults._base import Fault, register
from chaos_model.llm._faults import MODES
from chaos_model.stack import Stack

__all__ = ["MODES", "LLMFault"]
#: fields added after the first five modes: left out of the JSON while unset, so programs
#: saved before them read and print as they did
_OPTIONAL = ("status", "model", "tool", "provider")


@register
@dataclass(frozen=True)
class LLMFault(Fault):
    """Make the LLM provider misbehave as that provider would: 429 with its rate-limit headers,
    500 (or ``status``), slow, hang, malformed JSON, overloaded (Anthropic's 529), a slow first
    token, a cut stream, a malformed tool call or a refusal.

    It lasts ``seconds`` (or, when ``calls`` is set, the next ``calls`` calls); ``model`` (a
    glob), ``tool`` and ``provider`` limit it to matching calls. Heal clears it and releases
    calls that hang.
    """

    kind = "llm"
    mode: str
    seconds: float | None = 2.0
    calls: int | None = None
    retry_after: float = 1.0
    delay: float = 0.5
    status: int | None = None
    model: str | None = None
    tool: str | None = None
    provider: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"LLM fault mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        return {k: v for k, v in data.items() if k not in _OPTIONAL or v is not None}

    def apply(self, stack: Stack) -> None:
        body = {k: v for k, v in self.to_json().items() if k != "kind"}
        httpx.post(
            f"{stack.endpoints.llm_url}/control/fault", json=body, timeout=2
        ).raise_for_status()

    def heal(self, stack: Stack) -> None:
        httpx.delete(f"{stack.endpoints.llm_url}/control/fault", timeout=2).raise_for_status()
