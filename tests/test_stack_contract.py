"""One contract, every backend: the same lifecycle, fault, heal and reset assertions run on the
local stack (processes) and on the compose stack (compose.test.yml under Docker).

The compose parameter is skipped only when Docker is unavailable and this is not CI; under CI
(``CI=true``) it runs, and a missing engine or missing images fail it with the reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from chaos_model._wait import wait_until
from chaos_model.faults import (
    ArmFailpoint,
    KillService,
    LLMFault,
    NetworkToxic,
    Partition,
    PauseService,
    RefuseConnections,
    StopService,
    TerminateConnections,
)
from chaos_model.guard import ensure_injectable, is_loopback
from chaos_model.stack import ComposeStack, LocalStack, Service, Stack
from chaos_model.stack._docker import docker_available
from chaos_model.telegram import SECRET_HEADER, message_update

SERVICE_ORDER = ("proxy", "postgres", "nats", "llm", "api", "worker")

WEBHOOK = "/api/v1/telegram/webhook"
RESET_BUDGET = 2.0
_update_ids = iter(range(7_000_000, 8_000_000))

AnyStack = LocalStack | ComposeStack


def compose_skip_reason() -> str | None:
    """Why the compose parameter cannot run here, or None when it must run."""
    if os.environ.get("CI") == "true" or docker_available():
        return None
    return "Docker is not available (and CI is not set): run scripts/docker-engine as root"


@pytest.fixture(scope="module", params=["local", "compose"])
def backend(request: pytest.FixtureRequest) -> Iterator[AnyStack]:
    stack: AnyStack
    if request.param == "compose":
        reason = compose_skip_reason()
        if reason is not None:
            pytest.skip(reason)
        stack = ComposeStack()
    else:
        stack = LocalStack()
    with stack:
        yield stack


@pytest.fixture
def stack(backend: AnyStack) -> Iterator[AnyStack]:
    backend.reset()
    yield backend
    backend.heal()


# ---------------------------------------------------------------------------- helpers
def update(text: str = "the quick brown fox") -> dict[str, Any]:
    return message_update(next(_update_ids), 42, text)


def deliver(stack: Stack, body: dict[str, Any]) -> None:
    """Post through the Telegram link (nginx in front of the API on compose)."""
    response = httpx.post(
        stack.endpoints.telegram_api_url + WEBHOOK,
        json=body,
        headers={SECRET_HEADER: stack.endpoints.webhook_secret},
        timeout=5,
    )
    assert response.is_success, (response.status_code, response.text)


def sql(stack: Stack, query: str) -> Any:
    async def fetch() -> Any:
        conn = await asyncpg.connect(stack.endpoints.database_url, timeout=2)
        try:
            return await conn.fetchval(query, timeout=2)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def db_answers(stack: Stack, timeout: float = 0.5) -> bool:
    async def probe() -> bool:
        conn = await asyncpg.connect(stack.endpoints.database_url, timeout=timeout)
        try:
            return bool(await conn.fetchval("SELECT 1", timeout=timeout) == 1)
        finally:
            conn.terminate()

    try:
        return asyncio.run(asyncio.wait_for(probe(), timeout * 2))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


def http_ok(url: str, timeout: float = 0.5) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_extracted(stack: Stack, count: int, timeout: float = 30) -> None:
    wait_until(
        lambda: sql(stack, "SELECT count(*) FROM messages WHERE stage = 'extracted'") == count,
        timeout=timeout,
        what=f"{count} message(s) extracted",
    )


#: for each service, a check from outside that it answers
ANSWERS: dict[str, Callable[[Stack], bool]] = {
    "postgres": db_answers,
    "nats": lambda s: http_ok(f"{s.endpoints.nats_monitor_url}/healthz"),
    "llm": lambda s: http_ok(f"{s.endpoints.llm_url}/health"),
    "api": lambda s: http_ok(f"{s.endpoints.api_url}/health/live"),
    "worker": lambda s: http_ok(s.endpoints.busy_urls["worker"]),
}


# ---------------------------------------------------------------------------- lifecycle
def test_the_stack_fulfils_the_protocol(stack: AnyStack) -> None:
    assert isinstance(stack, Stack)
    assert set(SERVICE_ORDER) <= set(stack.services)
    for service in stack.services.values():
        assert isinstance(service, Service)
        assert service.is_running() and not service.is_paused()
    ensure_injectable(stack)
    for name, url in stack.endpoints.as_dict().items():
        if url:
            assert is_loopback(urlsplit(url).hostname or ""), f"{name} is not on loopback: {url}"


def test_an_update_goes_through_every_stage(stack: AnyStack) -> None:
    for _ in range(3):
        deliver(stack, update())
    wait_extracted(stack, 3)
    listed = httpx.get(f"{stack.endpoints.dashboard_api_url}/api/v1/messages", timeout=5)
    assert listed.status_code == 200 and len(listed.json()["messages"]) == 3


def test_reset_empties_every_store_quickly(stack: AnyStack) -> None:
    deliver(stack, update())
    wait_extracted(stack, 1)
    seconds = stack.reset()
    assert seconds < RESET_BUDGET
    for table in ("messages", "telegram_updates", "outbox", "events", "knowledge"):
        assert sql(stack, f"SELECT count(*) FROM {table}") == 0, table
    stream = httpx.get(f"{stack.endpoints.nats_monitor_url}/jsz?streams=true", timeout=2).json()
    assert stream["messages"] == 0


def test_restart_app_gives_fresh_app_processes(stack: AnyStack) -> None:
    stack.restart_app()
    deliver(stack, update())
    wait_extracted(stack, 1)


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize("service", ["postgres", "nats", "api", "worker"])
def test_pause_freezes_a_service_and_heal_thaws_it(stack: AnyStack, service: str) -> None:
    fault = PauseService(service)
    fault.apply(stack)
    assert stack.services[service].is_paused() and stack.services[service].is_running()
    assert not ANSWERS[service](stack)
    fault.heal(stack)
    assert not stack.services[service].is_paused()
    stack.services[service].wait_ready()
    assert ANSWERS[service](stack)


@pytest.mark.parametrize("service", ["postgres", "nats", "llm", "api", "worker"])
def test_kill_stops_a_service_and_heal_starts_it(stack: AnyStack, service: str) -> None:
    fault = KillService(service)
    fault.apply(stack)
    assert not stack.services[service].is_running()
    assert not ANSWERS[service](stack)
    fault.heal(stack)
    stack.services[service].wait_ready()
    assert ANSWERS[service](stack)


def test_stop_shuts_postgres_down_and_data_survives(stack: AnyStack) -> None:
    deliver(stack, update())
    wait_extracted(stack, 1)
    StopService("postgres").apply(stack)
    assert not stack.services["postgres"].is_running()
    StopService("postgres").heal(stack)
    stack.heal()
    assert sql(stack, "SELECT count(*) FROM messages") == 1


def test_partition_cuts_a_link_until_healed(stack: AnyStack) -> None:
    health = f"{stack.endpoints.telegram_api_url}/health/live"
    assert http_ok(health)
    fault = Partition("telegram->api")
    fault.apply(stack)
    assert not http_ok(health)
    assert http_ok(f"{stack.endpoints.api_url}/health/live"), "only that link is cut"
    fault.heal(stack)
    assert http_ok(health)


def test_latency_toxic_slows_a_link(stack: AnyStack) -> None:
    url = f"{stack.endpoints.dashboard_api_url}/health/live"
    toxic = {"type": "latency", "stream": "downstream", "attributes": {"latency": 400}}
    fault = NetworkToxic("dashboard->api", toxic)
    fault.apply(stack)
    began = time.monotonic()
    assert http_ok(url, timeout=5)
    assert time.monotonic() - began >= 0.4
    fault.heal(stack)
    began = time.monotonic()
    assert http_ok(url)
    assert time.monotonic() - began < 0.4


def test_refused_connections_until_healed(stack: AnyStack) -> None:
    fault = RefuseConnections()
    fault.apply(stack)
    wait_until(lambda: not db_answers(stack), timeout=5, what="new connections to be refused")
    fault.heal(stack)
    wait_until(lambda: db_answers(stack), timeout=5, what="new connections to be accepted")


def test_terminate_connections_cuts_open_ones(stack: AnyStack) -> None:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(stack.endpoints.database_url, timeout=2))
    try:
        TerminateConnections().apply(stack)  # runs its own event loop
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            loop.run_until_complete(conn.fetchval("SELECT 1", timeout=2))
    finally:
        conn.terminate()
        loop.close()


def test_llm_fault_until_healed(stack: AnyStack) -> None:
    stats = f"{stack.endpoints.llm_url}/control/stats"
    fault = LLMFault("error", seconds=None)
    fault.apply(stack)
    assert httpx.get(stats, timeout=2).json()["fault"] is not None
    fault.heal(stack)
    assert httpx.get(stats, timeout=2).json()["fault"] is None


def test_failpoint_crashes_the_worker_and_heal_recovers(stack: AnyStack) -> None:
    worker = stack.services["worker"]
    ArmFailpoint("worker.score.after_llm_before_commit", "crash").apply(stack)
    deliver(stack, update())
    wait_until(lambda: not worker.is_running(), timeout=20, what="the worker to crash")
    healed = stack.heal()
    assert "restarted worker" in healed
    wait_extracted(stack, 1)


def test_heal_undoes_every_fault_at_once(stack: AnyStack) -> None:
    PauseService("nats").apply(stack)
    KillService("worker").apply(stack)
    Partition("api->postgres").apply(stack)
    LLMFault("hang", seconds=None).apply(stack)
    RefuseConnections().apply(stack)
    ArmFailpoint("worker.extract.after_llm_before_commit", "hang").apply(stack)
    healed = stack.heal()
    for expected in (
        "resumed nats",
        "restarted worker",
        "cleared LLM fault",
        "postgres accepts connections again",
        "disarmed failpoint worker.extract.after_llm_before_commit",
    ):
        assert expected in healed, healed
    assert any("toxic" in line for line in healed), healed
    for name, service in stack.services.items():
        assert service.is_running() and not service.is_paused(), name
    deliver(stack, update())
    wait_extracted(stack, 1)
