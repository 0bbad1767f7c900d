from __future__ import annotations

from dataclasses import dataclass

import httpx

from chaos_model.faults._base import Fault, register
from chaos_model.stack import Stack

MODES = ("rate_limit", "error", "slow", "hang", "malformed")


@register
@dataclass(frozen=True)
class LLMFault(Fault):
    """Make the LLM provider misbehave: 429 with Retry-After, 500, slow, hang or malformed JSON.

    It lasts ``seconds`` (or, when ``calls`` is set, the next ``calls`` calls); heal clears it and
    releases calls that hang.
    """

    kind = "llm"
    mode: str
    seconds: float | None = 2.0
    calls: int | None = None
    retry_after: float = 1.0
    delay: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"LLM fault mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    def apply(self, stack: Stack) -> None:
        body = {
            "mode": self.mode,
            "seconds": self.seconds,
            "calls": self.calls,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }
        httpx.post(
            f"{stack.endpoints.llm_url}/control/fault", json=body, timeout=2
        ).raise_for_status()

    def heal(self, stack: Stack) -> None:
        httpx.delete(f"{stack.endpoints.llm_url}/control/fault", timeout=2).raise_for_status()
