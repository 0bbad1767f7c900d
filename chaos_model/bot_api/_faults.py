"""The Bot API's own failures, set through ``POST /control/fault``: one at a time, for the next
N matching calls, for a duration, or until cleared.

``{"mode": "rate_limit"|"error"|"slow"|"hang", "calls"?, "seconds"?, "retry_after"?, "delay"?,
"status"?, "method"?}``: ``rate_limit`` is Telegram's flood control (429, ``Too Many Requests:
retry after N`` with ``parameters.retry_after``), ``error`` a 5xx (``status`` 500, 502, 503 or
504), ``slow`` the answer ``delay`` seconds late, ``hang`` no answer until the fault is cleared.
``method`` (a glob, case-insensitive: ``send*``) limits it to the calls of matching methods; a
call that does not match is answered normally and does not count.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("rate_limit", "error", "slow", "hang")
ERROR_STATUSES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
ERROR_STATUSES[504] = "Gateway Timeout"
FIELDS = ("mode", "calls", "seconds", "retry_after", "delay", "status", "method")


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    mode: str
    calls: int | None = None
    until: float | None = None
    #: whole seconds, as Telegram gives them
    retry_after: int = 1
    delay: float = 0.5
    status: int = 500
    method: str = ""

    def active(self) -> bool:
        in_time = self.until is None or time.monotonic() < self.until
        return in_time and (self.calls is None or self.calls > 0)

    def take(self, method: str) -> bool:
        """Whether a call of ``method`` gets this fault now; one that does counts."""
        wanted = not self.method or fnmatch.fnmatchcase(method.lower(), self.method.lower())
        if not wanted or not self.active():
            return False
        if self.calls is not None:
            self.calls -= 1
        return True


def fault_from_spec(spec: Any) -> Fault:
    """Read ``POST /control/fault``'s body; a mistake names the field."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("expected a JSON object with 'mode'")
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise FaultSpecError(f"unknown field {unknown[0]!r}; known: {', '.join(FIELDS)}")
    mode = spec.get("mode")
    if mode not in MODES:
        raise FaultSpecError(f"'mode' must be one of {', '.join(MODES)}, not {mode!r}")
    whole = (int,)
    status = _number(spec, "status", 500, whole)
    if status not in ERROR_STATUSES:
        known = ", ".join(map(str, ERROR_STATUSES))
        raise FaultSpecError(f"'status' must be one of {known}, not {status}")
    calls, seconds = _number(spec, "calls", None, whole), _number(spec, "seconds", None)
    return Fault(
        mode=mode,
        calls=calls,
        until=None if seconds is None else time.monotonic() + seconds,
        retry_after=_number(spec, "retry_after", 1, whole),
        delay=float(_number(spec, "delay", 0.5)),
        status=status,
        method=str(spec.get("method") or ""),
    )


def _number(
    spec: Mapping[str, Any], key: str, default: Any, kinds: tuple[type, ...] = (int, float)
) -> Any:
    """``spec[key]``, a number >= 0 of ``kinds``; ``default`` when absent or null."""
    value: Any = spec.get(key)
    if value is None:
        return default
    number = isinstance(value, kinds) and not isinstance(value, bool)
    if not number or value < 0:
        kind = "a whole number" if kinds == (int,) else "a number"
        raise FaultSpecError(f"{key!r} must be {kind} >= 0, not {value!r}")
    return value
