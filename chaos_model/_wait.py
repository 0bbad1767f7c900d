"""Waiting on conditions with a deadline: the only way tests and the stack synchronise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline; the message names what was awaited."""


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.01,
    max_interval: float = 0.1,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` until it returns a truthy value; return that value.

    Exceptions from ``condition`` count as "not yet". On timeout raise :class:`WaitTimeout`
    naming ``what`` and, if given, the text returned by ``on_timeout`` (a log tail, a state dump).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - a failing probe means "not yet"
            last_error = error
        if time.monotonic() >= deadline:
            detail = (
                f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            )
            extra = f"\n{on_timeout()}" if on_timeout is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}{detail}{extra}")
        time.sleep(interval)
        interval = min(max_interval, interval * 1.5)
