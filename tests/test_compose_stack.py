"""What only the compose backend has: network partitions of a backend service, a project that
leaves nothing behind (stopped or orphaned), the test-environment label, one-line user errors,
and the adapter's ``[compose]`` section it works from.

Those that start a stack are skipped only when Docker is unavailable and this is not CI (see
``test_stack_contract.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_stack_contract import compose_skip_reason, db_answers, deliver, update, wait_extracted

from chaos_model._wait import wait_until
from chaos_model.adapter import load_adapter, parse_adapter
from chaos_model.adapter._compose_section import VARIABLES
from chaos_model.errors import AdapterError, StackError, UnsafeTarget
from chaos_model.guard import ensure_injectable
from chaos_model.stack import ComposeService, ComposeStack
from chaos_model.stack._docker import docker_client, images_env_path, project_containers

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_FILE = ROOT / "chaos-target.toml"
#: the CLI run from a temporary folder finds the reference adapter through this
CLI_ENV = {**os.environ, "CHAOS_MODEL_TARGET": str(REFERENCE_FILE)}

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


def test_the_stack_is_the_adapters(compose: ComposeStack) -> None:
    assert compose.links == compose.target.links()
    assert compose.proxy.links().keys() == compose.links.keys()
    assert set(compose.endpoints.service_urls) == set(compose.target.services)
    assert compose.endpoints.api_url == compose.endpoints.service_urls["api"]
    status = httpx.get(compose.endpoints.busy_urls["worker"], timeout=5).json()
    assert status["consuming"] is True and status["running"] == 0
    assert list(compose.services) == ["proxy", "postgres", "nats", "llm", "api", "worker", "nginx"]
    assert set(compose.log_paths()) == set(compose.services)


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
    from chaos_model.stack._docker import SOURCE_LABEL, read_env_file

    images_env = images_env_path(load_adapter(REFERENCE_FILE))
    assert images_env is not None
    images = read_env_file(images_env)
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
            env={**CLI_ENV, "CHAOS_IMAGES_ENV": str(env_file)},
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
    env = {**CLI_ENV, variable: value}
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


# ---------------------------------------------------------------------------- the [compose] section
def reference_data() -> dict[str, Any]:
    return tomllib.loads(REFERENCE_FILE.read_text())


def with_compose(**changes: Any) -> dict[str, Any]:
    """The reference adapter's data with ``[compose]`` keys changed (None: removed)."""
    data = reference_data()
    for key, value in changes.items():
        if value is None:
            data["compose"].pop(key, None)
        else:
            data["compose"][key] = value
    return data


def test_the_reference_compose_section() -> None:
    compose = load_adapter(REFERENCE_FILE).compose
    assert compose is not None
    assert compose.file == "compose.test.yml" and compose.network == "backend"
    assert compose.source == ("pyproject.toml", "chaos_model", "pipeline_app")
    assert compose.services["nginx"].fronts == "api"


def test_every_variable_the_compose_file_reads_is_one_the_stack_passes() -> None:
    stack = ComposeStack(load_adapter(REFERENCE_FILE))
    assert stack.compose is not None
    passed = {*stack._port_variables.values(), *VARIABLES, *stack.compose.images}
    read = set(re.findall(r"\$\{(CHAOS_[A-Z0-9_]+)", stack.compose_file.read_text()))
    assert read - passed == {"CHAOS_PULL_POLICY"}  # written by scripts/build-images
    assert {"CHAOS_API_PORT", "CHAOS_WORKER_STATUS_PORT", "CHAOS_NGINX_PORT"} <= passed
    assert {"CHAOS_API_POSTGRES_LINK", "CHAOS_WORKER_LLM_LINK"} <= passed


def test_an_adapter_without_a_compose_section_is_refused() -> None:
    data = reference_data()
    del data["compose"]
    target = parse_adapter(data, REFERENCE_FILE)
    assert target.compose is None
    with pytest.raises(StackError, match=r"has no \[compose\] section"):
        ComposeStack(target)


def test_an_unknown_bug_is_refused() -> None:
    with pytest.raises(StackError, match="unknown bug"):
        ComposeStack(load_adapter(REFERENCE_FILE), bugs=("no_such_bug",))


@pytest.mark.parametrize(
    ("changes", "named", "problem"),
    [
        ({"file": None}, "compose.file", "missing"),
        ({"file": ""}, "compose.file", "must name"),
        ({"fle": "x.yml"}, "compose.fle", "unknown key"),
        ({"images": "CHAOS_APP_IMAGE"}, "compose.images", "expected a list"),
        ({"images": ["not a name"]}, "compose.images", "not a variable name"),
        ({"source": ["/etc"]}, "compose.source", "must be relative"),
        ({"source": ["../x"]}, "compose.source", "must be relative"),
        ({"network": ""}, "compose.network", "must name"),
        ({"webhook_secret": 3}, "compose.webhook_secret", "expected a string"),
        ({"services": {"postgres": {}}}, "compose.services.postgres", "chaos-model provides"),
        ({"services": {"a b": {}}}, "compose.services.a b", "letters, digits"),
        ({"services": {"nginx": {"port": 1}}}, "compose.services.nginx.port", "unknown key"),
        ({"services": {"nginx": {"ports": ["a b"]}}}, "compose.services.nginx.ports", "'a b'"),
        (
            {"services": {"nginx": {"ready": "http://127.0.0.1:{prot}/"}}},
            "compose.services.nginx.ready",
            "unknown placeholder",
        ),
    ],
)
def test_every_compose_key_is_checked_and_named(
    changes: dict[str, Any], named: str, problem: str
) -> None:
    with pytest.raises(AdapterError) as error:
        parse_adapter(with_compose(**changes), REFERENCE_FILE)
    assert f": {named}: " in str(error.value) and problem in str(error.value), error.value


@pytest.mark.parametrize(
    ("services", "named", "problem"),
    [
        ({"nginx": {"fronts": "nope"}}, "compose.services.nginx.fronts", "no service 'nope'"),
        ({"api": {}}, "compose.services.api", "in [services] already"),
        (
            {"nginx": {"fronts": "api"}, "haproxy": {"fronts": "api"}},
            "compose.services.haproxy.fronts",
            "nginx fronts 'api' already",
        ),
    ],
)
def test_compose_services_are_checked_against_the_adapters(
    services: dict[str, Any], named: str, problem: str
) -> None:
    target = parse_adapter(with_compose(services=services), REFERENCE_FILE)
    with pytest.raises(AdapterError) as error:
        ComposeStack(target)
    assert f": {named}: " in str(error.value) and problem in str(error.value), error.value


def test_a_missing_compose_file_is_named(tmp_path: Path) -> None:
    target = parse_adapter(with_compose(file="nowhere.yml"), tmp_path / "chaos-target.toml")
    with pytest.raises(AdapterError, match=r"compose\.file: .*nowhere\.yml does not exist"):
        ComposeStack(target)


def test_a_missing_source_path_is_named() -> None:
    target = parse_adapter(with_compose(source=["chaos_model", "nope"]), REFERENCE_FILE)
    with pytest.raises(AdapterError, match=r"compose\.source: .*nope does not exist"):
        ComposeStack(target)


def test_two_ports_passed_as_one_variable_are_refused() -> None:
    data = reference_data()
    data["services"]["api"]["ports"] = ["status"]
    data["services"]["api_status"] = {"command": ["true"]}
    with pytest.raises(AdapterError, match="CHAOS_API_STATUS_PORT"):
        ComposeStack(parse_adapter(data, REFERENCE_FILE))
