"""The stub's provider faults: one at a time, for the next N matching calls, for a duration, or
until cleared.

``POST /control/fault`` takes ``{"mode", "calls"?, "seconds"?, "retry_after"?, "delay"?}`` as
it always has, plus ``status`` (the code of an ``error``: 500, 502 or 503) and matchers ``model``
(a glob), ``tool`` (a tool the call offers) and ``provider``: a call that does not match is
answered normally and does not count.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos_model.llm._request import Ask, EmbedAsk

#: the first five are the original modes; the rest are provider-exact additions
MODES: tuple[str, ...] = (
    "rate_limit",  # 429 with retry-after and the provider's rate-limit headers
    "error",  # 500 (or ``status``) with the provider's error body
    "slow",  # the whole answer ``delay`` seconds late
    "hang",  # no answer until the fault is cleared (then 503)
    "malformed",  # 200 with a body that is not JSON
    "overloaded",  # Anthropic's 529 overloaded_error; 503 from OpenAI and Ollama
    "slow_first_token",  # a stream's first token ``delay`` seconds after its start
    "cut",  # the answer (streamed or not) stops halfway and the connection drops
    "malformed_tool_call",  # the tool call's (or structured answer's) JSON is cut short
    "refusal",  # the model refuses: OpenAI's refusal, Anthropic's stop_reason "refusal"
)
#: modes that send no answer at all: an error status, a body that is not JSON, or nothing
NO_ANSWER = frozenset({"rate_limit", "error", "hang", "malformed", "overloaded"})
#: modes about a chat answer's content, which an embedding call cannot have
CHAT_ONLY = frozenset({"slow_first_token", "malformed_tool_call", "refusal"})
ERROR_STATUSES = (500, 502, 503)
PROVIDERS = ("openai", "anthropic", "ollama")


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    mode: str
    calls: int | None = None
    until: float | None = None
    retry_after: float = 1.0
    delay: float = 0.5
    status: int = 500
    model: str = ""
    tool: str = ""
    provider: str = ""

    def active(self) -> bool:
        if self.calls is not None and self.calls <= 0:
            return False
        return self.until is None or time.monotonic() < self.until

    def matches(self, ask: Ask | EmbedAsk) -> bool:
        if self.provider and ask.provider != self.provider:
            return False
        if self.model and not fnmatch.fnmatchcase(ask.model, self.model):
            return False
        if isinstance(ask, EmbedAsk):
            return not self.tool and self.mode not in CHAT_ONLY
        return not self.tool or ask.tool(self.tool) is not None


def fault_from_spec(spec: Any) -> Fault:
    """Read ``POST /control/fault``'s body; a mistake is a :class:`FaultSpecError` saying which
    field is wrong."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("expected a JSON object with 'mode'")
    known = {"mode", "calls", "seconds", "retry_after", "delay", "status", "model", "tool"}
    known.add("provider")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FaultSpecError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}")
    mode = spec.get("mode")
    if mode not in MODES:
        raise FaultSpecError(f"'mode' must be one of {', '.join(MODES)}, not {mode!r}")
    calls = _number(spec, "calls", None, integral=True)
    seconds = _number(spec, "seconds", None)
    status = int(_number(spec, "status", 500, integral=True) or 500)
    if status not in ERROR_STATUSES:
        raise FaultSpecError(f"'status' must be one of {ERROR_STATUSES}, not {status}")
    provider = str(spec.get("provider") or "")
    if provider and provider not in PROVIDERS:
        raise FaultSpecError(f"'provider' must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    return Fault(
        mode=mode,
        calls=None if calls is None else int(calls),
        until=None if seconds is None else time.monotonic() + seconds,
        retry_after=float(_number(spec, "retry_after", 1.0) or 0.0),
        delay=float(_number(spec, "delay", 0.5) or 0.0),
        status=status,
        model=str(spec.get("model") or ""),
        tool=str(spec.get("tool") or ""),
        provider=provider,
    )


def _number(
    spec: Mapping[str, Any], key: str, default: float | None, *, integral: bool = False
) -> float | None:
    value = spec.get(key, default)
    if value is None:
        return None
    kinds = (int,) if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        kind = "a whole number" if integral else "a number"
        raise FaultSpecError(f"{key!r} must be {kind} >= 0 or null, not {value!r}")
    return float(value)
