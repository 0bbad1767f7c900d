"""A service's readiness check (``ready`` in ``[services.NAME]``): what tells chaos-model that a
service it started, or started again, can work.

One kind per service::

    ready = "http://127.0.0.1:{port}/healthz"            # GET answers 200
    ready = { url = "...", json = { pid = "{pid}" } }     # ... with these JSON fields
    ready = { log = "Listening on" }                      # a line of its log since its start
    ready = { tcp = "127.0.0.1:{port}" }                  # a TCP connection is accepted
    ready = { nats_subscriber = "tasks.score" }           # NATS has a subscriber of the subject

Without one, a service counts as ready as soon as its process runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from chaos_model.adapter._load import _Table


@dataclass(frozen=True)
class HttpCheck:
    """GET ``url`` and expect HTTP 200; with ``json``, expect those fields in the answer
    (the value ``"{pid}"`` stands for the pid of the service's process)."""

    url: str
    json: Mapping[str, Any] = field(default_factory=dict)
    #: for a busy check: the JSON field holding the number of tasks running
    field: str = ""


@dataclass(frozen=True)
class LogCheck:
    """A line the service wrote to its log since its latest start matches ``pattern`` (a
    regular expression, searched in each line)."""

    pattern: str


@dataclass(frozen=True)
class TcpCheck:
    """A TCP connection to ``address`` (``host:port``, placeholders filled in) is accepted."""

    address: str


@dataclass(frozen=True)
class NatsSubscriberCheck:
    """The NATS server's monitoring lists a subscriber of ``subject``: a client subscription
    that receives it, or a JetStream consumer of it with a pull request waiting or a push
    subscriber bound."""

    subject: str


ReadyCheck = HttpCheck | LogCheck | TcpCheck | NatsSubscriberCheck
READY_KINDS = ("url", "log", "tcp", "nats_subscriber")


def ready_template(check: ReadyCheck | None) -> tuple[str, str]:
    """The key and the text of ``check`` whose placeholders are filled in (none: '', '')."""
    if isinstance(check, HttpCheck):
        return "url", check.url
    if isinstance(check, TcpCheck):
        return "tcp", check.address
    return "", ""


def parse_ready(entry: _Table) -> ReadyCheck | None:
    """``ready``: a URL, or a table with exactly one of ``url`` (and ``json``), ``log``,
    ``tcp``, ``nats_subscriber``."""
    if not entry.has("ready"):
        return None
    if isinstance(entry.data["ready"], str):
        url = entry.text("ready")
        entry.check_template("ready", url)
        return HttpCheck(url=url)
    table = entry.table("ready")
    assert table is not None
    given = [kind for kind in READY_KINDS if table.has(kind)]
    if len(given) != 1:
        found = f"; it has {' and '.join(given)}" if given else ""
        table.fail("", f"expected exactly one of {', '.join(READY_KINDS)}{found}")
    check = _READERS[given[0]](table)
    table.done()
    return check


def _url(table: _Table) -> HttpCheck:
    url = table.text("url")
    table.check_template("url", url)
    return HttpCheck(url=url, json=dict(table._get("json", dict, False) or {}))


def _log(table: _Table) -> LogCheck:
    pattern = table.text("log")
    if not pattern:
        table.fail("log", "must not be empty (it would match any line)")
    try:
        re.compile(pattern)
    except re.error as error:
        table.fail("log", f"not a regular expression: {error} in {pattern!r}")
    return LogCheck(pattern)


def _tcp(table: _Table) -> TcpCheck:
    address = table.text("tcp")
    table.check_template("tcp", address)
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port:
        table.fail("tcp", f"expected 'host:port', e.g. '127.0.0.1:{{port}}', got {address!r}")
    return TcpCheck(address)


def _nats_subscriber(table: _Table) -> NatsSubscriberCheck:
    subject = table.text("nats_subscriber")
    if not subject or any(c.isspace() for c in subject) or "" in subject.split("."):
        why = f"expected a NATS subject like 'tasks.score', got {subject!r}"
        table.fail("nats_subscriber", why)
    return NatsSubscriberCheck(subject)


_READERS: dict[str, Callable[[_Table], ReadyCheck]] = {
    "url": _url,
    "log": _log,
    "tcp": _tcp,
    "nats_subscriber": _nats_subscriber,
}
