"""Attach to a Compose project that is already up: its containers are the services.

The project here is one chaos-model's compose backend started (the reference pipeline under
``compose.test.yml``); the attached stack knows only its name and URLs, finds its containers by
their compose labels, passes the environment guard because every container carries the
test-environment label, and kills and restarts the worker container through the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest
from test_compose_chaos import REFERENCE_FILE
from test_stack_contract import compose_skip_reason

from chaos_model._wait import wait_until
from chaos_model.adapter import AttachSpec, HttpCheck, load_adapter
from chaos_model.guard import ensure_injectable
from chaos_model.history import History
from chaos_model.stack import AttachedStack, ComposeStack
from chaos_model.target import make_target
from chaos_model.telegram import message_update

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(compose_skip_reason() is not None, reason=compose_skip_reason() or ""),
]


@pytest.fixture(scope="module")
def project() -> Iterator[ComposeStack]:
    with ComposeStack(load_adapter(REFERENCE_FILE)) as stack:
        yield stack


def _attached(project: ComposeStack) -> AttachedStack:
    """The reference adapter, told only where the running project is."""
    reference = load_adapter(REFERENCE_FILE)
    endpoints = project.endpoints
    api = endpoints.service_urls["api"]
    status = endpoints.busy_urls["worker"]
    services = dict(reference.services)
    services["api"] = dataclasses.replace(
        services["api"], ready=HttpCheck(url=f"{api}/health/ready")
    )
    services["worker"] = dataclasses.replace(
        services["worker"],
        ready=HttpCheck(url=status, json={"consuming": True}),
        busy=HttpCheck(url=status, field="running"),
    )
    spec = dataclasses.replace(
        reference,
        webhook=dataclasses.replace(reference.webhook, secret=endpoints.webhook_secret),
        services=services,
        dashboard=None,
        attach=AttachSpec(
            database_url=endpoints.database_url,
            nats_url=endpoints.nats_url,
            nats_monitor_url=endpoints.nats_monitor_url,
            llm_url=endpoints.llm_url,
            urls={"api": api},
            compose_project=project.project,
        ),
    )
    return AttachedStack(spec)


def test_a_labelled_project_is_a_test_environment_and_its_worker_restarts(
    project: ComposeStack,
) -> None:
    attached = _attached(project)
    assert attached.test_environment, "every container carries the test-environment label"
    ensure_injectable(attached)
    with attached:
        assert {"postgres", "nats", "api", "worker"} <= set(attached.services)
        worker = attached.services["worker"]
        worker.kill()
        assert not worker.is_running()
        healed = attached.heal()
        assert any("worker" in line for line in healed), healed
        assert worker.is_running()
        target = make_target(attached, History())
        try:
            target.deliver(message_update(5151, 1002, "attached to compose"))

            def extracted() -> bool:
                rows = target.snapshot(timeout=2.0).messages
                return any(r.update_id == 5151 and r.stage == "extracted" for r in rows)

            wait_until(extracted, timeout=30, what="update 5151 to be extracted after the heal")
        finally:
            target.close()
    # attaching and letting go stops nothing of the project
    assert httpx.get(f"{project.endpoints.service_urls['api']}/health/ready").status_code == 200
