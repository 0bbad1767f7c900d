"""Every fault, injected into the real local stack through its fault object, with its effect
checked from outside and its heal proven by an update that completes afterwards."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from helpers import Api, assert_processed_once, db_fetch, make_update

from chaos_model._loop import ControlLoop
from chaos_model._wait import wait_until
from chaos_model.faults import (
    KillService,
    LatencyRamp,
    LLMFault,
    NetworkToxic,
    NoFault,
    Partition,
    PauseService,
    RefuseConnections,
    StopService,
    TerminateConnections,
)
from chaos_model.history import History
from chaos_model.stack import LocalStack
from chaos_model.telegram import SimulatorConfig, TelegramSimulator

pytestmark = pytest.mark.slow


def _extracts(api: Api) -> None:
    update = make_update(text="after heal")
    api.send([update])
    api.wait_stage([update["update_id"]])


def test_noop_changes_nothing(pipeline: LocalStack, api: Api) -> None:
    fault = NoFault()
    fault.apply(pipeline)
    _extracts(api)
    fault.heal(pipeline)


def test_partition_api_postgres_answers_503_within_2s(pipeline: LocalStack, api: Api) -> None:
    fault = Partition("api->postgres")
    fault.apply(pipeline)
    try:
        began = time.monotonic()
        response = api.post_update(make_update(), timeout=5)
        assert response.status_code == 503, response.text
        assert time.monotonic() - began < 2.0
    finally:
        fault.heal(pipeline)
    wait_until(
        lambda: api.post_update(make_update()).is_success,
        timeout=5,
        what="the webhook to accept again after the partition healed",
    )


def test_partition_cuts_open_pooled_connections(pipeline: LocalStack, api: Api) -> None:
    """A partition is not only "no new connections": PostgreSQL sees the API's pooled
    connections go away, as it would if the network between them failed."""
    api.send([make_update()])  # the API's pool now holds an open connection

    def backends() -> int:
        rows = db_fetch(
            pipeline,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        return int(rows[0]["n"])

    before = backends()
    fault = Partition("api->postgres")
    fault.apply(pipeline)
    try:
        wait_until(
            lambda: backends() < before,
            timeout=5,
            what="PostgreSQL to lose the API's pooled connections",
        )
    finally:
        fault.heal(pipeline)
    _extracts(api)


def test_worker_llm_latency_slows_scoring(pipeline: LocalStack, api: Api) -> None:
    fault = NetworkToxic(
        "worker->llm",
        {
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 1200},
        },
    )
    fault.apply(pipeline)
    try:
        update = make_update(text="slow llm")
        began = time.monotonic()
        api.send([update])
        api.wait_stage([update["update_id"]], "scored")
        assert time.monotonic() - began >= 1.2
    finally:
        fault.heal(pipeline)
    api.wait_stage([update["update_id"]])


def test_latency_ramp_grows_then_heals(pipeline: LocalStack, api: Api) -> None:
    fault = LatencyRamp("worker->llm", latency_ms=1000, ramp_seconds=1.0)

    def latency() -> int:
        toxics = pipeline.proxy.toxics("worker->llm")
        return int(toxics[0].to_dict()["attributes"]["latency"]) if toxics else 0

    fault.apply(pipeline)
    try:
        assert 0 < latency() < 1000, "the ramp starts low"
        wait_until(lambda: latency() == 1000, timeout=5, what="the ramp to reach 1000 ms")
    finally:
        fault.heal(pipeline)
    assert latency() == 0
    _extracts(api)


def test_worker_nats_partition_holds_work_until_heal(pipeline: LocalStack, api: Api) -> None:
    fault = Partition("worker->nats")
    fault.apply(pipeline)
    try:
        update = make_update(text="held")
        api.send([update])
        with pytest.raises(AssertionError):
            api.wait_stage([update["update_id"]], "received", timeout=1.5)
    finally:
        fault.heal(pipeline)
    api.wait_stage([update["update_id"]])
    assert_processed_once(pipeline, api, [update])


@pytest.mark.parametrize(
    "toxic",
    [
        {"type": "timeout", "attributes": {"timeout": 0}},
        {"type": "reset_peer", "attributes": {"timeout": 50}},
        {"type": "slicer", "attributes": {"average_size": 8, "size_variation": 4, "delay": 100}},
        {"type": "limit_data", "attributes": {"bytes": 512}},
        {"type": "bandwidth", "attributes": {"rate": 8}},
        {"type": "slow_close", "attributes": {"delay": 300}},
    ],
    ids=lambda toxic: toxic["type"],
)
def test_toxics_on_worker_postgres_then_heal(
    pipeline: LocalStack, api: Api, toxic: dict[str, object]
) -> None:
    fault = NetworkToxic("worker->postgres", {"stream": "downstream", "toxicity": 1.0, **toxic})
    update = make_update(text=f"through {toxic['type']}")
    fault.apply(pipeline)
    try:
        assert pipeline.proxy.links()["worker->postgres"]["toxics"], "the toxic is not on the link"
        api.send([update])
    finally:
        fault.heal(pipeline)
    assert not pipeline.proxy.links()["worker->postgres"]["toxics"]
    api.wait_stage([update["update_id"]])
    assert_processed_once(pipeline, api, [update])


@pytest.mark.parametrize("mode", ["rate_limit", "error", "slow", "hang", "malformed"])
def test_llm_fault_modes(pipeline: LocalStack, api: Api, mode: str) -> None:
    fault = LLMFault(mode, seconds=None, calls=1, delay=0.3)
    fault.apply(pipeline)
    update = make_update(text=f"llm {mode}")
    api.send([update])
    if mode == "hang":
        wait_until(
            lambda: api.llm_stats()["in_flight"] >= 1,
            timeout=10,
            what="a call to hang in the LLM stub",
        )
        fault.heal(pipeline)
    api.wait_stage([update["update_id"]])
    message = next(m for m in api.messages() if m["update_id"] == update["update_id"])
    calls = api.llm_calls(message["id"])
    if mode == "slow":
        assert calls == 2
    else:
        assert calls == 3, "the faulty answer must have been retried once"
    fault.heal(pipeline)


def test_kill_and_stop_postgres(pipeline: LocalStack, api: Api) -> None:
    for fault in (KillService("postgres"), StopService("postgres")):
        fault.apply(pipeline)
        assert not pipeline.services["postgres"].is_running()
        assert api.post_update(make_update(), timeout=5).status_code == 503
        fault.heal(pipeline)
        wait_until(
            lambda: api.post_update(make_update()).is_success,
            timeout=5,
            what=f"the webhook to accept again after {fault.describe()}",
        )
    _extracts(api)


def test_refuse_connections_keeps_open_ones(pipeline: LocalStack, api: Api) -> None:
    dsn = pipeline.endpoints.database_url

    async def scenario() -> None:
        held = await asyncpg.connect(dsn, timeout=2)
        try:
            fault = RefuseConnections()
            fault.apply(pipeline)
            try:

                async def refused() -> bool:
                    try:
                        conn = await asyncpg.connect(dsn, timeout=2)
                    except asyncpg.InvalidAuthorizationSpecificationError:
                        return True
                    await conn.close()
                    return False

                for _ in range(100):  # PostgreSQL rereads pg_hba.conf asynchronously on SIGHUP
                    if await refused():
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("new connections were never refused")
                assert await held.fetchval("SELECT 1") == 1, "an open connection must keep working"
            finally:
                fault.heal(pipeline)
        finally:
            await held.close()

    asyncio.run(scenario())
    wait_until(
        lambda: api.post_update(make_update()).is_success,
        timeout=5,
        what="the webhook to work after connections are accepted again",
    )
    _extracts(api)


def test_terminate_connections(pipeline: LocalStack, api: Api) -> None:
    api.send([make_update()])
    TerminateConnections().apply(pipeline)
    wait_until(
        lambda: api.post_update(make_update()).is_success,
        timeout=5,
        what="the webhook to work with fresh connections",
    )
    _extracts(api)


def test_nats_kill_keeps_the_store(pipeline: LocalStack, api: Api) -> None:
    worker = PauseService("worker")
    worker.apply(pipeline)
    try:
        update = make_update(text="stored in jetstream")
        api.send([update])
        wait_until(
            lambda: (
                db_fetch(pipeline, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"]
                == 0
            ),
            timeout=10,
            what="the outbox to be published to JetStream",
        )
        nats = KillService("nats")
        nats.apply(pipeline)
        nats.heal(pipeline)
    finally:
        worker.heal(pipeline)
    api.wait_stage([update["update_id"]])
    assert_processed_once(pipeline, api, [update])


def test_slow_webhook_makes_telegram_redeliver_a_committed_update(pipeline: LocalStack) -> None:
    """Telegram's read timeout shorter than the handler's answer: it redelivers an update the
    app did commit, which must still be stored once."""
    fault = NetworkToxic(
        "telegram->api",
        {
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 1500},
        },
    )
    loop = ControlLoop()
    history = History()
    simulator = TelegramSimulator(
        loop.loop,
        f"{pipeline.endpoints.telegram_api_url}/api/v1/telegram/webhook",
        pipeline.endpoints.webhook_secret,
        history,
        SimulatorConfig(read_timeout=1.0),
    )
    update = make_update(text="redelivered")
    fault.apply(pipeline)
    try:
        delivery = simulator.submit(update)
        wait_until(lambda: delivery.attempts >= 2, timeout=10, what="a redelivery")
    finally:
        fault.heal(pipeline)
    wait_until(lambda: delivery.done, timeout=10, what="Telegram to get a 2xx")
    loop.run(simulator.aclose(), timeout=5)
    loop.close()
    assert any(op.type == "info" for op in history.ops), "the first attempt should time out"
    api = Api(pipeline)
    try:
        api.wait_stage([update["update_id"]])
        assert_processed_once(pipeline, api, [update])
    finally:
        api.close()


def test_unsupported_backend_error_names_fault_and_backend() -> None:
    class NoProxyStack:
        backend = "bare"

    with pytest.raises(Exception, match="bare backend cannot perform the fault partition"):
        Partition("api->postgres").apply(NoProxyStack())  # type: ignore[arg-type]
