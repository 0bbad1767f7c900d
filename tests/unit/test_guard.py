"""The environment guard refuses targets that are not chaos-model test stacks on this machine.

The stand-in objects below carry only ``endpoints`` and ``started_by``: the guard must refuse
them before anything is touched, so no stack is needed for this error path.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from chaos_model.errors import UnsafeTarget
from chaos_model.guard import ENV_VAR, ensure_injectable, is_loopback
from chaos_model.lease import RemoteStack
from chaos_model.stack import Endpoints, LocalStack

LOCAL = Endpoints(
    database_url="postgresql://postgres@127.0.0.1:5432/postgres",
    nats_url="nats://127.0.0.1:4222",
    nats_monitor_url="http://localhost:8222",
    api_url="http://[::1]:8000",
    llm_url="http://127.0.0.2:9000",
    webhook_secret="s",
    busy_urls={"worker": "http://127.0.0.1:9100/status"},
)


def stand_in(endpoints: Endpoints = LOCAL, **attributes: object) -> SimpleNamespace:
    return SimpleNamespace(endpoints=endpoints, backend="stand-in", **attributes)


@pytest.fixture(autouse=True)
def _no_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _refused(stack: object) -> str:
    with pytest.raises(UnsafeTarget) as caught:
        ensure_injectable(stack)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("refusing to inject faults")
    return message


def test_a_chaos_model_stack_on_loopback_is_accepted() -> None:
    ensure_injectable(stand_in(started_by="chaos-model"))
    assert LocalStack.started_by == "chaos-model"


@pytest.mark.parametrize("started_by", [None, "ops-team", ""])
def test_a_stack_not_started_by_chaos_model_is_refused(started_by: str | None) -> None:
    stack = stand_in() if started_by is None else stand_in(started_by=started_by)
    message = _refused(stack)
    assert ENV_VAR in message


def test_the_environment_variable_marks_an_external_stack_as_a_test_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    ensure_injectable(stand_in(started_by="ops-team"))
    ensure_injectable(stand_in())
    monkeypatch.setenv(ENV_VAR, "yes")
    _refused(stand_in())


@pytest.mark.parametrize(
    ("field", "url", "host"),
    [
        ("database_url", "postgresql://app:pw@db.internal:5432/app", "db.internal"),
        ("nats_url", "nats://127.0.0.1:4222,nats://10.0.0.5:4222", "10.0.0.5"),
        ("api_url", "https://api.example.com", "api.example.com"),
        ("llm_url", "http://192.168.1.20:9000", "192.168.1.20"),
        ("nats_monitor_url", "http://[2001:db8::1]:8222", "2001:db8::1"),
        ("api_url", "http://0.0.0.0:8000", "0.0.0.0"),
    ],
)
def test_a_non_loopback_endpoint_is_refused_even_in_a_test_environment(
    field: str, url: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints = replace(LOCAL, **{field: url})
    assert host in _refused(stand_in(endpoints, started_by="chaos-model"))
    monkeypatch.setenv(ENV_VAR, "1")
    assert host in _refused(stand_in(endpoints, started_by="chaos-model"))


def test_the_control_url_must_be_loopback_too() -> None:
    remote = RemoteStack(
        {
            "started_by": "chaos-model",
            "control_url": "http://10.1.2.3:8080",
            "failpoints_file": "/nonexistent/failpoints.json",
            "endpoints": {k: v for k, v in vars(LOCAL).items()},
        }
    )
    assert "control" in _refused(remote)
    remote.descriptor["started_by"] = None
    remote.started_by = None
    remote.control_url = "http://127.0.0.1:8080"
    assert "not started by chaos-model" in _refused(remote)


def test_a_unix_socket_database_is_local() -> None:
    endpoints = replace(LOCAL, database_url="postgresql:///app?host=/var/run/postgresql")
    ensure_injectable(stand_in(endpoints, started_by="chaos-model"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("LOCALHOST", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("localhost.example.com", False),
        ("::", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
