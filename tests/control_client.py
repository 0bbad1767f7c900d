"""A client of the control API chaos-model's fakes share (the LLM stub, the Bot API fake):
faults set and cleared, reset, records and counters read."""

from __future__ import annotations

from typing import Any

import httpx


class ControlClient:
    """``records_by`` names the query parameter that narrows the records (the LLM stub keys
    them by message, the Bot API fake by method)."""

    records_by = "key"

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=5)

    def fault(self, mode: str, **spec: Any) -> None:
        self.http.post("/control/fault", json={"mode": mode, **spec}).raise_for_status()

    def clear(self) -> None:
        self.http.delete("/control/fault").raise_for_status()

    def reset(self) -> None:
        self.http.post("/control/reset").raise_for_status()

    def records(self, narrow: str | None = None) -> list[dict[str, Any]]:
        params = {self.records_by: narrow} if narrow is not None else {}
        response = self.http.get("/control/records", params=params)
        found: list[dict[str, Any]] = response.json()["records"]
        return found

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/control/stats").json()
        return stats
