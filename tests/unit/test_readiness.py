"""Readiness checks of every kind: parsed from an adapter file, and probed for real (a log file,
a listening socket, NATS monitoring answers as nats-server gives them)."""

from __future__ import annotations

import json
import os
import socket
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos_model.adapter import (
    HttpCheck,
    LogCheck,
    NatsSubscriberCheck,
    TcpCheck,
    load_adapter,
    parse_adapter,
)
from chaos_model.adapter._attach_section import render_attached
from chaos_model.adapter._probes import (
    LAUNCH_HEADER,
    LogWatch,
    nats_subscribed,
    readiness,
    receives,
    tcp_accepts,
)
from chaos_model.errors import AdapterError

ADAPTER = """
[target]
name = "mini"

[webhook]
service = "web"
path = "/hook"
secret = "s"

[services.web]
command = ["{python}", "-m", "web", "--port", "{port}"]
ports = ["admin"]

[observe]
messages = "SELECT id, update_id, status FROM msgs"
"""


def _parse(ready: str, tmp_path: Path, extra: str = "") -> Any:
    text = ADAPTER.replace('ports = ["admin"]', f'ports = ["admin"]\nready = {ready}') + extra
    return parse_adapter(tomllib.loads(text), tmp_path / "chaos-target.toml")


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ('"http://127.0.0.1:{port}/ok"', HttpCheck("http://127.0.0.1:{port}/ok")),
        (
            '{ url = "http://127.0.0.1:{port}/ok", json = { up = true } }',
            HttpCheck("http://127.0.0.1:{port}/ok", {"up": True}),
        ),
        ('{ log = "Application startup complete" }', LogCheck("Application startup complete")),
        ('{ tcp = "127.0.0.1:{ports[admin]}" }', TcpCheck("127.0.0.1:{ports[admin]}")),
        ('{ nats_subscriber = "tasks.score" }', NatsSubscriberCheck("tasks.score")),
    ],
)
def test_each_kind_of_readiness_is_read(ready: str, expected: object, tmp_path: Path) -> None:
    assert _parse(ready, tmp_path).services["web"].ready == expected


@pytest.mark.parametrize(
    ("ready", "message"),
    [
        ("{ }", "services.web.ready: expected exactly one of url, log, tcp, nats_subscriber"),
        (
            '{ log = "up", tcp = "127.0.0.1:1" }',
            "services.web.ready: expected exactly one of url, log, tcp, nats_subscriber;"
            " it has log and tcp",
        ),
        ('{ log = "(unclosed" }', "services.web.ready.log: not a regular expression"),
        ('{ log = "" }', "services.web.ready.log: must not be empty"),
        ('{ log = "up", json = { a = 1 } }', "services.web.ready.json: unknown key"),
        ('{ tcp = "localhost" }', "services.web.ready.tcp: expected 'host:port'"),
        ('{ tcp = "127.0.0.1:{prot}" }', "services.web.ready.tcp: unknown placeholder {prot}"),
        (
            '{ tcp = "127.0.0.1:{ports[status]}" }',
            "services.web.ready.tcp: {ports[status]}: the service declares no port 'status'",
        ),
        ('{ nats_subscriber = "tasks score" }', "services.web.ready.nats_subscriber: expected"),
        ('{ nats_subscriber = "tasks..score" }', "services.web.ready.nats_subscriber: expected"),
        ("3", "services.web.ready: expected a table"),
    ],
)
def test_a_broken_readiness_names_the_key(ready: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(AdapterError) as raised:
        _parse(ready, tmp_path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------- log


def test_a_log_line_counts_only_when_written_after_the_start(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("worker connected to nats\n")  # a previous process's line
    watch = LogWatch(log, r"connected to nats")
    assert not watch(), "a line from before the start counted"
    watch.mark()
    with log.open("a") as out:
        out.write(f"{LAUNCH_HEADER}worker: python -m worker connected to nats\n")
        out.write("importing\n")
    assert not watch(), "chaos-model's own start line counted"
    with log.open("a") as out:
        out.write("worker connect")
    assert not watch()
    with log.open("a") as out:
        out.write("ed to nats")  # a line still being written counts once it matches
    assert watch()
    assert watch(), "ready stays ready until the next start"
    watch.mark()
    assert not watch(), "a restart waits for a new line"


def test_a_log_replaced_by_a_shorter_one_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("x" * 1000 + "\n")
    watch = LogWatch(log, "ready")
    log.write_text("ready\n")
    assert watch()


def test_a_log_that_does_not_exist_yet_is_not_ready(tmp_path: Path) -> None:
    watch = LogWatch(tmp_path / "none.log", "ready")
    assert not watch()
    (tmp_path / "none.log").write_text("ready\n")
    assert watch()


def test_the_log_readiness_marks_at_each_start_and_names_the_pattern(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("subscribed\n")
    ready = readiness(
        LogCheck("subscribed"),
        str,
        where="adapter: services.worker.ready",
        backend="local",
        http=lambda: None,
        nats_monitor_url="",
        log_path=log,
    )
    assert "'subscribed'" in ready.awaited and str(log) in ready.awaited
    ready.started()
    assert not ready.probe(123)
    log.write_text(log.read_text() + "subscribed\n")
    assert ready.probe(123)


@pytest.mark.parametrize(
    ("check", "why"),
    [
        (LogCheck("up"), "the compose backend has none to read"),
        (NatsSubscriberCheck("tasks.score"), "give [attach] nats_monitor_url"),
    ],
)
def test_a_kind_the_backend_cannot_probe_is_an_adapter_error(check: Any, why: str) -> None:
    with pytest.raises(AdapterError, match=r"^adapter: services\.worker\.ready: ") as raised:
        readiness(
            check,
            str,
            where="adapter: services.worker.ready",
            backend="compose",
            http=lambda: None,
            nats_monitor_url="",
        )
    assert why in str(raised.value)


# ---------------------------------------------------------------------------- tcp


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_tcp_readiness_is_a_connection_accepted(listening: int) -> None:
    ready = readiness(
        TcpCheck("127.0.0.1:{port}"),
        lambda template: template.format(port=listening),
        where="adapter: services.web.ready",
        backend="local",
        http=lambda: None,
        nats_monitor_url="",
    )
    assert ready.awaited == f"127.0.0.1:{listening} to accept a TCP connection"
    assert ready.probe(None)


def test_tcp_readiness_fails_on_a_closed_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    assert not tcp_accepts(f"127.0.0.1:{port}")
    assert not tcp_accepts("127.0.0.1:not-a-port")


# ---------------------------------------------------------------------------- nats

#: /connz?subs=1 and /jsz?consumers=true&config=true as nats-server 2.15 answers them (trimmed)
CONNZ = {
    "connections": [
        {
            "cid": 5,
            "subscriptions_list": [
                "_INBOX.SzEQqoCgF7LQfIJkMBiqxT",
                "toy.rate",
                "wild.*",
                "_INBOX.SzEQqoCgF7LQfIJkMBiqaR.*",
            ],
        }
    ]
}
JSZ = {
    "account_details": [
        {
            "name": "$G",
            "stream_detail": [
                {
                    "name": "TASKS",
                    "config": {"name": "TASKS", "subjects": ["tasks.>"]},
                    "consumer_detail": [
                        {
                            "name": "scorer",
                            "config": {"durable_name": "scorer", "filter_subject": "tasks.score"},
                            "num_waiting": 1,
                        },
                        {"name": "idle", "config": {"durable_name": "idle"}, "num_waiting": 0},
                        {
                            "name": "pusher",
                            "config": {"filter_subject": "tasks.push"},
                            "num_waiting": 0,
                            "push_bound": True,
                        },
                    ],
                }
            ],
        }
    ]
}


def _monitor(connz: dict[str, Any], jsz: dict[str, Any]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"/connz": connz, "/jsz": jsz}.get(request.url.path)
        return httpx.Response(200, json=body) if body is not None else httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("subject", "subscribed"),
    [
        ("toy.rate", True),  # a core subscription, queue group or not
        ("wild.card", True),  # received through a wildcard subscription
        ("toy.extract", False),
        ("tasks.score", True),  # a pull consumer with a fetch waiting
        ("tasks.push", True),  # a push consumer with its subscriber bound
        ("tasks.other", False),  # only the idle consumer (no fetch waiting) takes it
    ],
)
def test_nats_readiness_reads_subscriptions_and_consumers(subject: str, subscribed: bool) -> None:
    with _monitor(CONNZ, JSZ) as client:
        assert nats_subscribed(client, "http://monitor", subject) is subscribed


def test_a_consumer_without_a_filter_takes_its_streams_subjects() -> None:
    jsz = json.loads(json.dumps(JSZ))
    jsz["account_details"][0]["stream_detail"][0]["consumer_detail"][1]["num_waiting"] = 2
    with _monitor({"connections": []}, jsz) as client:
        assert nats_subscribed(client, "http://monitor", "tasks.other")


def test_nats_readiness_is_not_ready_while_monitoring_does_not_answer() -> None:
    failing = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    with failing:
        assert not nats_subscribed(failing, "http://monitor", "toy.rate")


def test_the_nats_readiness_names_the_subject_and_the_endpoint() -> None:
    with _monitor(CONNZ, JSZ) as client:
        ready = readiness(
            NatsSubscriberCheck("toy.rate"),
            str,
            where="adapter: services.worker.ready",
            backend="local",
            http=lambda: client,
            nats_monitor_url="http://127.0.0.1:8222/",
        )
        assert ready.probe(None)
    assert "'toy.rate'" in ready.awaited and "http://127.0.0.1:8222/connz" in ready.awaited


@pytest.mark.parametrize(
    ("pattern", "subject", "received"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.b.c", "a.b", False),
    ],
)
def test_subject_matching_follows_nats_wildcards(
    pattern: str, subject: str, received: bool
) -> None:
    assert receives(pattern, subject) is received


# ---------------------------------------------------------------------------- [target] python


def _interpreter(folder: Path) -> Path:
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


def test_the_target_python_is_relative_to_the_adapter_and_fills_python(tmp_path: Path) -> None:
    python = _interpreter(tmp_path)
    adapter = tmp_path / "chaos-target.toml"
    adapter.write_text(
        ADAPTER.replace('name = "mini"', 'name = "mini"\npython = ".venv/bin/python"')
        + '\n[attach]\ndatabase_url = "postgresql://x@127.0.0.1/x"\nllm_url = "http://127.0.0.1:1"'
        + '\nurls = { web = "http://127.0.0.1:8000" }\n'
    )
    spec = load_adapter(adapter)
    assert spec.python == str(python) and spec.interpreter == str(python)
    rendered = render_attached(spec, tmp_path, "web", "services.web.start", "{python} -m web")
    assert rendered == f"{python} -m web"


def test_without_a_target_python_it_is_the_one_running_chaos_model(tmp_path: Path) -> None:
    import sys

    spec = parse_adapter(tomllib.loads(ADAPTER), tmp_path / "chaos-target.toml")
    assert spec.python == "" and spec.interpreter == sys.executable


@pytest.mark.parametrize(
    ("given", "why"),
    [(".venv/bin/python", "does not exist"), (".", "is not an executable file")],
)
def test_a_missing_target_python_is_one_line_naming_the_key(
    given: str, why: str, tmp_path: Path
) -> None:
    text = ADAPTER.replace('name = "mini"', f'name = "mini"\npython = "{given}"')
    with pytest.raises(AdapterError) as raised:
        parse_adapter(tomllib.loads(text), tmp_path / "chaos-target.toml")
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'chaos-target.toml'}: target.python: "), message
    assert why in message and "\n" not in message


def test_an_absolute_target_python_is_taken_as_it_is(tmp_path: Path) -> None:
    python = _interpreter(tmp_path / "elsewhere")
    text = ADAPTER.replace('name = "mini"', f'name = "mini"\npython = "{python}"')
    spec = parse_adapter(tomllib.loads(text), tmp_path / "chaos-target.toml")
    assert spec.python == str(python)
    assert os.access(spec.python, os.X_OK)
