"""What only the compose backend has: network partitions of a backend service, a project that
leaves nothing behind (stopped or orphaned), the test-environment label, one-line user errors.

Skipped only when Docker is unavailable and this is not CI (see ``test_stack_contract.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_stack_contract import compose_skip_reason, db_answers, deliver, update, wait_extracted

from chaos_model._wait import wait_until
from chaos_model.errors import UnsafeTarget
from chaos_model.guard import ensure_injectable
from chaos_model.stack import ComposeService, ComposeStack
from chaos_model.stack._docker import docker_client, project_containers

requires_docker = pytest.mark.skipif(
    compose_skip_reason() is not None, reason=compose_skip_reason() or ""
)


@pytest.fixture(scope="module")
def compose() -> Iterator[ComposeStack]:
    reason = compose_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with ComposeStack() as stack:
        yield stack


def leftovers(project: str) -> list[str]:
    client = docker_client()
    try:
        label = {"label": f"com.docker.compose.project={project}"}
        found = [f"container {c.name}" for c in project_containers(client, project)]
        found += [f"network {n.name}" for n in client.networks.list(filters=label)]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
        return found
    finally:
        client.close()


def test_every_container_is_labelled_as_a_test_environment(compose: ComposeStack) -> None:
    assert compose.test_environment


def test_the_guard_goes_by_the_label_for_a_project_chaos_model_did_not_start(
    compose: ComposeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOS_MODEL_TEST_ENVIRONMENT", raising=False)
    monkeypatch.setattr(compose, "started_by", "the ops team")
    ensure_injectable(compose)  # every container carries the test-environment label
    monkeypatch.setattr(ComposeStack, "test_environment", property(lambda self: False))
    with pytest.raises(UnsafeTarget, match="refusing to inject faults"):
        ensure_injectable(compose)


def test_partition_disconnects_a_service_and_heal_reconnects_it(compose: ComposeStack) -> None:
    compose.reset()
    compose.partition("postgres")
    assert not db_answers(compose)
    healed = compose.heal()
    assert "reconnected postgres" in healed
    assert db_answers(compose)
    service = compose.services["postgres"]
    assert isinstance(service, ComposeService)
    networks = service.container.attrs["NetworkSettings"]["Networks"]
    aliases = networks[f"{compose.project}_backend"]["Aliases"] or []
    assert "postgres" in aliases, "the service keeps its DNS name"
    deliver(compose, update())
    wait_extracted(compose, 1)


def test_only_backend_services_can_be_disconnected(compose: ComposeStack) -> None:
    with pytest.raises(Exception, match="cannot partition api"):
        compose.partition("api")


@requires_docker
def test_stop_leaves_no_container_network_volume_or_folder() -> None:
    stack = ComposeStack()
    with stack:
        stack.services["nats"].pause()  # a frozen container must not block the way down
        assert leftovers(stack.project)
    assert leftovers(stack.project) == []
    assert not stack.dir.exists()


OWNER = """
import sys, threading
from chaos_model.stack import ComposeService, ComposeStack
stack = ComposeStack()
stack.start()
stack.services["postgres"].pause()
print(stack.project, stack.dir, flush=True)
threading.Event().wait()
"""


@requires_docker
def test_a_killed_owner_leaves_nothing_behind() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert owner.stdout is not None
        project, folder = owner.stdout.readline().split()
    finally:
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait()
    wait_until(
        lambda: not leftovers(project) and not Path(folder).exists(),
        timeout=90,
        what=f"the guardian to bring {project} down and remove {folder}",
    )


@requires_docker
def test_an_app_image_built_from_other_code_is_refused(tmp_path: Path) -> None:
    from chaos_model.stack._docker import IMAGES_ENV, SOURCE_LABEL, read_env_file

    images = read_env_file(IMAGES_ENV)
    client = docker_client()
    container = client.containers.create(images["CHAOS_APP_IMAGE"], command=["true"])
    try:
        container.commit("chaos-model/app", "stale-test", changes=[f"LABEL {SOURCE_LABEL}=old"])
    finally:
        container.remove(force=True)
    env_file = tmp_path / "images.env"
    images["CHAOS_APP_IMAGE"] = "chaos-model/app:stale-test"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in images.items()))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "chaos_model.cli", "run", "--backend", "compose"],
            env={**os.environ, "CHAOS_IMAGES_ENV": str(env_file)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        client.images.remove("chaos-model/app:stale-test", force=True)
        client.close()
    assert done.returncode == 3, done.stderr
    assert "built from other code" in done.stderr and "scripts/build-images" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "hint"),
    [
        ("CHAOS_IMAGES_ENV", "/nonexistent/images.env", "scripts/"),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock", "scripts/docker-engine"),
    ],
)
def test_a_missing_engine_or_images_is_one_line(
    variable: str, value: str, hint: str, tmp_path: Path
) -> None:
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", "run", "--backend", "compose"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("chaos-model:")]
    assert len(errors) == 1 and hint in errors[0], done.stderr
