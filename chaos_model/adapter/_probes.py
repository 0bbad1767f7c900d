"""Readiness probes built from a service's ``ready`` check, the same for every backend.

A backend says what it can offer (an HTTP client, the service's log file, the NATS server's
monitoring URL); a check that needs what it lacks is an :class:`AdapterError` naming why, raised
when the backend builds its services, before anything waits.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chaos_model.adapter._ready_section import (
    HttpCheck,
    LogCheck,
    NatsSubscriberCheck,
    ReadyCheck,
    TcpCheck,
)
from chaos_model.adapter._render import check_passes
from chaos_model.errors import AdapterError

#: the line a local stack writes to a service's log before each start; never the service's own
LAUNCH_HEADER = "--- starting "
PROBE_TIMEOUT = 0.5


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Readiness:
    """A service's readiness probe: ``probe(pid)`` is true once it is ready (``pid``: the
    process chaos-model started, or None), ``awaited`` says what that means (for the error),
    and ``started`` must be called just before each start of the service."""

    probe: Callable[[int | None], bool]
    awaited: str
    started: Callable[[], None] = _nothing


def readiness(
    check: ReadyCheck | None,
    render: Callable[[str], str],
    *,
    where: str,
    backend: str,
    http: Callable[[], httpx.Client | None],
    nats_monitor_url: str,
    log_path: Path | None = None,
    in_container: bool = False,
) -> Readiness:
    """The probe of ``check`` (``where``: the file and key it comes from). ``in_container``: the
    pid a service reports is the one inside its container, which chaos-model does not know (a
    container's port is its own anyway, so no older process can answer in its place)."""
    if check is None:
        return Readiness(lambda pid: True, "the service to run")
    if isinstance(check, HttpCheck):
        return _http(check, render, http, in_container)
    if isinstance(check, TcpCheck):
        address = render(check.address)
        return Readiness(lambda pid: tcp_accepts(address), f"{address} to accept a TCP connection")
    if isinstance(check, LogCheck):
        if log_path is None:
            raise AdapterError(
                f"{where}: a log check reads the log of a process chaos-model starts, and the"
                f" {backend} backend has none to read; use url, tcp or nats_subscriber"
            )
        watch = LogWatch(log_path, check.pattern)
        awaited = f"a line matching {check.pattern!r} in {log_path} since the start"
        return Readiness(lambda pid: watch(), awaited, watch.mark)
    if not nats_monitor_url:
        raise AdapterError(
            f"{where}: a nats_subscriber check reads the NATS server's monitoring endpoint; give"
            " [attach] nats_monitor_url (nats-server -m PORT)"
        )
    return _nats(check, nats_monitor_url.rstrip("/"), http)


def _http(
    check: HttpCheck,
    render: Callable[[str], str],
    http: Callable[[], httpx.Client | None],
    in_container: bool,
) -> Readiness:
    if in_container:
        expected = {key: value for key, value in check.json.items() if value != "{pid}"}
        check = dataclasses.replace(check, json=expected)
    url = render(check.url)
    awaited = f"GET {url} to answer 200" + (f" with {dict(check.json)}" if check.json else "")

    def probe(pid: int | None) -> bool:
        client = http()
        return client is not None and check_passes(client, url, check, pid)

    return Readiness(probe, awaited)


def _nats(
    check: NatsSubscriberCheck, monitor: str, http: Callable[[], httpx.Client | None]
) -> Readiness:
    def probe(pid: int | None) -> bool:
        client = http()
        return client is not None and nats_subscribed(client, monitor, check.subject)

    awaited = (
        f"a subscriber of NATS subject {check.subject!r} in {monitor}/connz (a subscription) or"
        " /jsz (a consumer with a pull request waiting or a push subscriber bound)"
    )
    return Readiness(probe, awaited)


def tcp_accepts(address: str) -> bool:
    """A TCP connection to ``host:port`` is accepted."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


class LogWatch:
    """Whether a line matching ``pattern`` was written to the log at ``path`` since the last
    :meth:`mark`: the file is appended to by every start, so what came before is not counted."""

    def __init__(self, path: Path, pattern: str) -> None:
        self.path = path
        self.pattern = re.compile(pattern)
        self.mark()

    def mark(self) -> None:
        """From now on: only lines written after this count."""
        try:
            self._offset = self.path.stat().st_size
        except OSError:
            self._offset = 0
        self._partial = b""
        self._seen = False

    def __call__(self) -> bool:
        if not self._seen:
            self._seen = self._scan()
        return self._seen

    def _scan(self) -> bool:
        try:
            with self.path.open("rb") as log:
                if log.seek(0, 2) < self._offset:  # truncated or replaced: read it afresh
                    self._offset, self._partial = 0, b""
                log.seek(self._offset)
                data = log.read()
        except OSError:
            return False
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        # a line still being written counts too: a service may not end its line at once
        return any(self._matches(line) for line in (*lines, self._partial))

    def _matches(self, raw: bytes) -> bool:
        line = raw.decode(errors="replace")
        return not line.startswith(LAUNCH_HEADER) and self.pattern.search(line) is not None


def nats_subscribed(client: httpx.Client, monitor: str, subject: str) -> bool:
    """The NATS server at monitoring URL ``monitor`` has a subscriber of ``subject``: a client
    subscription that receives it (``/connz``), or a JetStream consumer of it that is being
    consumed (``/jsz``): a pull consumer's fetch shows only as a subscription to an inbox, and
    as a waiting pull request of its consumer while it waits."""
    try:
        connz = _json(client, f"{monitor}/connz?subs=1")
        for connection in connz.get("connections") or ():
            if any(receives(p, subject) for p in connection.get("subscriptions_list") or ()):
                return True
        jsz = _json(client, f"{monitor}/jsz?consumers=true&config=true")
    except (httpx.HTTPError, ValueError):
        return False
    return any(receives(f, subject) for f in _consumed_subjects(jsz))


def _json(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.get(url, timeout=PROBE_TIMEOUT)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"{url} answered {type(body).__name__}, not an object")
    return body


def _consumed_subjects(jsz: dict[str, Any]) -> Iterable[str]:
    """The subjects of every JetStream consumer with a pull waiting or a push subscriber."""
    for account in jsz.get("account_details") or ():
        for stream in account.get("stream_detail") or ():
            stream_subjects = (stream.get("config") or {}).get("subjects") or []
            for consumer in stream.get("consumer_detail") or ():
                if not (consumer.get("num_waiting") or consumer.get("push_bound")):
                    continue
                config = consumer.get("config") or {}
                single = [config["filter_subject"]] if config.get("filter_subject") else []
                yield from config.get("filter_subjects") or single or stream_subjects


def receives(pattern: str, subject: str) -> bool:
    """A subscription to ``pattern`` (``*`` one token, ``>`` the rest) receives ``subject``."""
    if pattern == subject:
        return True
    wanted, tokens = pattern.split("."), subject.split(".")
    for at, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > at
        if at >= len(tokens) or token not in ("*", tokens[at]):
            return False
    return len(wanted) == len(tokens)
