"""LLM client: the OpenAI chat-completions wire format over HTTP, behind a circuit breaker.

Every call has a timeout. Errors are classified so the caller can decide: :class:`LLMUnavailable`
(429, 5xx, timeouts, connection errors, malformed answers) is transient and carries the delay the
server asked for; :class:`CircuitOpen` means this process has stopped calling for a moment.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from pipeline_app.bugs import bug
from pipeline_app.settings import Settings


class LLMUnavailable(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: the HTTP status of an error answer; None when there was no answer
        self.status = status


class CircuitOpen(Exception):
    def __init__(self, retry_in: float) -> None:
        super().__init__(f"LLM circuit open for another {retry_in:.2f}s")
        self.retry_in = retry_in


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets calls through after ``cooldown``."""

    threshold: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None

    def check(self) -> None:
        if self.opened_at is None:
            return
        remaining = self.opened_at + self.cooldown - time.monotonic()
        if remaining > 0:
            raise CircuitOpen(remaining)
        self.opened_at = None  # half-open: the next outcome decides

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class LLMClient:
    def __init__(self, settings: Settings) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.llm_url,
            timeout=httpx.Timeout(settings.llm_timeout, connect=0.5),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.breaker = CircuitBreaker(
            threshold=settings.breaker_failure_threshold, cooldown=settings.breaker_open_seconds
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def complete_json(
        self, purpose: str, message_id: int, text: str, *, user: str | None = None
    ) -> dict[str, object]:
        """Ask the model for a JSON object about ``text``; raise on any unusable answer. The
        call is the message's (``user``: the provider's end-user field) unless ``user`` says."""
        self.breaker.check()
        try:
            content = await self._call(purpose, user or f"message-{message_id}", text)
        except LLMUnavailable:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return content

    async def _call(self, purpose: str, user: str, text: str) -> dict[str, object]:
        body = {
            "model": "pipeline-stub-1",
            "user": user,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": f"task: {purpose}"},
                {"role": "user", "content": text},
            ],
        }
        try:
            response = await self._post(body)
        except httpx.HTTPError as error:
            raise LLMUnavailable(f"{type(error).__name__} calling the LLM") from error
        if response.status_code != 200:
            raise LLMUnavailable(
                f"LLM answered {response.status_code}",
                _parse_retry_after(response.headers.get("retry-after")),
                response.status_code,
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
            parsed = json.loads(content)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise LLMUnavailable("LLM answer is not valid JSON") from error
        if not isinstance(parsed, dict):
            raise LLMUnavailable("LLM answer is not a JSON object")
        return parsed

    async def _post(self, body: Mapping[str, object]) -> httpx.Response:
        # BUG ZOO llm_client_retries: the client retries a failed call three more times on its
        # own, as SDKs do by default; each attempt of the stage, itself retried up to its
        # budget, then makes up to four calls.
        tries = 4 if bug("llm_client_retries") else 1
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                response = await self._http.post("/v1/chat/completions", json=body)
            except httpx.HTTPError:
                if last:
                    raise
            else:
                if last or (response.status_code < 500 and response.status_code != 429):
                    return response
            await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("the last try returns or raises")  # pragma: no cover
