"""A second, deliberately different target, driven only through its adapter file.

``tests/toy_target/`` is another schema, another webhook path, core NATS instead of JetStream,
no WebSocket and no update_id column, with a weakness planted: no outbox, so a task published
while no worker listens is lost. Given only ``tests/toy_target/chaos-target.toml``, the suite
must start it, find that weakness, and shrink it to the two steps that show it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chaos_model._wait import wait_until
from chaos_model.adapter import NatsSubscriberCheck, TargetSpec, TcpCheck, load_adapter
from chaos_model.adapter._probes import nats_subscribed
from chaos_model.errors import ServiceNotReady
from chaos_model.history import History
from chaos_model.stack import LocalStack
from chaos_model.target import make_target
from chaos_model.telegram import message_update

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
ADAPTER = ROOT / "tests" / "toy_target" / "chaos-target.toml"


@pytest.fixture(scope="module")
def toy() -> Iterator[LocalStack]:
    with LocalStack(load_adapter(ADAPTER)) as stack:
        yield stack


def test_the_toy_is_not_the_reference_pipeline(toy: LocalStack) -> None:
    spec = toy.target
    assert spec.webhook.path == "/hooks/tg"
    assert spec.queue.kind == "core" and spec.dashboard is None
    assert spec.observe.correlate == "chat_message"
    assert set(toy.services) == {"proxy", "postgres", "nats", "llm", "web", "worker"}


def test_an_update_goes_through_the_toy_and_is_read_back_by_chat_and_message(
    toy: LocalStack,
) -> None:
    from chaos_model._wait import wait_until

    toy.reset()
    target = make_target(toy, History())
    try:
        update = message_update(4242, 1001, "hello toy")
        target.deliver(update)

        def done() -> bool:
            rows = target.snapshot(timeout=2.0).messages
            return any(row.update_id == 4242 and row.stage == "extracted" for row in rows)

        wait_until(done, timeout=20, what="update 4242 to reach the toy's 'done' status")
        snapshot = target.snapshot(timeout=2.0)
        (row,) = [row for row in snapshot.messages if row.update_id == 4242]
        assert row.score is not None and 0 <= row.score <= 1
        assert [mid for mid, _ in snapshot.knowledge].count(row.id) >= 1
        wait_until(target.quiescent, timeout=20, what="the toy to quiesce")
    finally:
        target.close()


def test_the_suite_finds_the_planted_weakness_and_shrinks_it(tmp_path: Path) -> None:
    """The command a user runs, with nothing but the toy's adapter file."""
    failures = tmp_path / "failures"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaos_model.cli",
            "run",
            "--target",
            str(ADAPTER),
            "--examples",
            "20",
            "--steps",
            "8",
            "--max-time",
            "4m",
            "--seed",
            "1",
            "--no-database",
            "--failures-dir",
            str(failures),
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    out = completed.stdout
    assert completed.returncode == 1, f"no violation found:\n{out}\n{completed.stderr[-3000:]}"
    assert "accepted_updates_complete invalid" in out, out
    assert "stuck at received" in out, out
    saved = json.loads(next(failures.glob("*/first/steps.json")).read_text())
    steps = [(step["rule"], step["args"]) for step in saved["steps"]]
    assert len(steps) <= 4, steps
    # the task is lost whether no worker listens (killed) or NATS itself restarts under it
    stopped = {args.get("service") for rule, args in steps if rule in ("kill", "stop", "pause")}
    assert stopped and stopped <= {"worker", "nats"}, (steps, out)
    assert saved["target"] == str(ADAPTER)
    # kill(worker) loses the task every time; kill(nats) only when the API reconnects before
    # the worker has subscribed again, so a program found that way may reproduce less often
    reproduced = int(out.split("reproduced in ")[1].split(" of")[0])
    assert reproduced >= 1, out


def _slow_web(ready_timeout: float) -> TargetSpec:
    """The toy with a web service that takes 3 s to start, and a deadline for it."""
    spec = load_adapter(ADAPTER)
    web = spec.services["web"]
    slow = dataclasses.replace(
        web, env={**web.env, "TOY_STARTUP_DELAY": "3"}, ready_timeout=ready_timeout
    )
    return dataclasses.replace(spec, services={**spec.services, "web": slow})


def test_a_slow_service_gets_the_deadline_its_adapter_gives() -> None:
    with (
        pytest.raises(ServiceNotReady, match=r"web not ready after 1\.0s"),
        LocalStack(_slow_web(ready_timeout=1.0)),
    ):
        pass
    with LocalStack(_slow_web(ready_timeout=30.0)) as stack:
        stack.services["web"].kill()
        began = time.monotonic()
        assert "restarted web" in stack.heal()
        assert time.monotonic() - began >= 3.0, "the heal waited for the slow start"
        assert stack.services["web"].is_running()


def test_a_worker_without_http_is_ready_once_nats_lists_its_subscription() -> None:
    """Readiness a service needs no change for: the worker by its NATS subscription (read from
    nats-server's monitoring), the API by a TCP connection; a restarted worker is ready again
    only once it has subscribed again."""
    spec = load_adapter(ADAPTER)
    web = dataclasses.replace(spec.services["web"], ready=TcpCheck("127.0.0.1:{port}"))
    worker = dataclasses.replace(
        spec.services["worker"], ready=NatsSubscriberCheck("toy.extract"), busy=None
    )
    spec = dataclasses.replace(spec, services={"web": web, "worker": worker})
    with LocalStack(spec) as stack, httpx.Client() as client:
        monitor = stack.endpoints.nats_monitor_url
        log = stack.log_paths()["worker"]
        assert nats_subscribed(client, monitor, "toy.extract")
        assert log.read_text().count("toy.worker subscribed") == 1
        stack.services["worker"].kill()
        wait_until(
            lambda: not nats_subscribed(client, monitor, "toy.extract"),
            timeout=10,
            what="nats-server to drop the killed worker's subscription",
        )
        assert "restarted worker" in stack.heal()
        assert nats_subscribed(client, monitor, "toy.extract")
        assert log.read_text().count("toy.worker subscribed") == 2
