"""Attaching to a running system (``AttachedStack``) instead of starting one.

The system is the reference pipeline run by hand, as a user would: a LocalStack provides
PostgreSQL, nats-server and the LLM stub (its own API and worker are stopped), and this module
starts a second API and worker itself, pointed straight at them, each writing a pid file. The
adapter is the reference one (``chaos-target.toml``) with its services rewritten for attach
mode (``pid_file``, ``start``, ``{port}`` from ``[attach] urls``) and an ``[attach]`` section.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from helpers import make_update

from chaos_model._wait import wait_until
from chaos_model.adapter import AttachSpec, TargetSpec, load_adapter
from chaos_model.config import ChaosConfig
from chaos_model.errors import AdapterError, StackError, UnsafeTarget
from chaos_model.guard import ENV_VAR, ensure_injectable
from chaos_model.runner import run
from chaos_model.stack import AttachedStack, LocalStack
from chaos_model.stack._ports import free_port
from chaos_model.stack._process import named_process

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "chaos-target.toml"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/api/v1/telegram/webhook"
#: a deadline, not a wait: two cores shared with other test runs
STARTUP_TIMEOUT = 90.0
EXTRACTED_TIMEOUT = 60.0

SERVICES = """
[services.api]
uses = ["postgres", "nats"]
env = {{ PIPELINE_API_HOST = "127.0.0.1", PIPELINE_API_PORT = "{{port}}" }}
ready = "http://127.0.0.1:{{port}}/health/ready"
faults = ["kill"]
pid_file = "api.pid"
start = ["{{python}}", "-m", "pipeline_app.api"]

[services.worker]
uses = ["postgres", "nats", "llm"]
env = {{ PIPELINE_WORKER_STATUS_PORT = "{{port}}" }}
busy = {{ url = "http://127.0.0.1:{{port}}/status", field = "running" }}
faults = ["pause", "kill", "stop"]
pid_file = "worker.pid"
start = ["{{python}}", "-m", "pipeline_app.worker"]

[services.worker.ready]
url = "http://127.0.0.1:{{port}}/status"
json = {{ pid = "{{pid}}", consuming = true }}

[attach]
{database_url}nats_url = "{nats_url}"
nats_monitor_url = "{nats_monitor_url}"
llm_url = "{llm_url}"
failpoints_file = "failpoints.json"
urls = {{ api = "http://127.0.0.1:{api_port}", worker = "http://127.0.0.1:{status_port}" }}
"""


def reference_without_services() -> str:
    """The reference adapter, minus its ``[services.*]`` tables (a local stack's)."""
    kept: list[str] = []
    skipping = False
    for line in REFERENCE.read_text().splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header is not None:
            skipping = header.group(1).startswith("services.")
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def write_adapter(
    folder: Path,
    *,
    database_url: str = "postgresql://postgres@127.0.0.1:1/postgres",
    nats_url: str = "nats://127.0.0.1:2",
    nats_monitor_url: str = "http://127.0.0.1:3",
    llm_url: str = "http://127.0.0.1:4",
    api_port: int = 5,
    status_port: int = 6,
    with_database_url: bool = True,
) -> Path:
    services = SERVICES.format(
        database_url=f'database_url = "{database_url}"\n' if with_database_url else "",
        nats_url=nats_url,
        nats_monitor_url=nats_monitor_url,
        llm_url=llm_url,
        api_port=api_port,
        status_port=status_port,
    )
    path = folder / "chaos-target.toml"
    path.write_text(reference_without_services() + services)
    return path


# --------------------------------------------------------------------------- the running system
@dataclass
class System:
    """The pipeline as a user runs it, and the adapter describing it."""

    local: LocalStack
    folder: Path
    adapter: Path
    api_url: str
    status_url: str
    database_url: str
    llm_url: str
    #: the folders of attached stacks (logs of the processes they started), removed at the end
    stack_dirs: list[Path] = field(default_factory=list)

    def target(self) -> TargetSpec:
        return load_adapter(self.adapter)

    def pid(self, name: str) -> int | None:
        proc = named_process(self.folder / f"{name}.pid")
        return proc.pid if proc is not None else None


def _env(local: LocalStack, folder: Path, api_port: int, status_port: int) -> dict[str, str]:
    endpoints = local.endpoints
    return {
        **os.environ,
        "PIPELINE_DATABASE_URL": endpoints.database_url,
        "PIPELINE_NATS_URL": endpoints.nats_url,
        "PIPELINE_LLM_URL": endpoints.llm_url,
        "PIPELINE_WEBHOOK_SECRET": endpoints.webhook_secret,
        "PIPELINE_STREAM_NAME": local.target.queue.stream,
        "PIPELINE_DURABLE_NAME": local.target.queue.durable,
        "PIPELINE_FAILPOINTS_FILE": str(folder / "failpoints.json"),
        "PIPELINE_API_HOST": "127.0.0.1",
        "PIPELINE_API_PORT": str(api_port),
        "PIPELINE_WORKER_STATUS_PORT": str(status_port),
        "PYTHONUNBUFFERED": "1",
    }


def _ready(url: str, **expected: Any) -> bool:
    response = httpx.get(url, timeout=1.0)
    body = response.json() if expected else {}
    return response.status_code == 200 and all(body.get(k) == v for k, v in expected.items())


def _kill_named(pid_file: Path) -> None:
    proc = named_process(pid_file)
    if proc is None:
        return
    with contextlib.suppress(psutil.Error):
        tree = [proc, *proc.children(recursive=True)]
        for member in tree:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(tree, timeout=10)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    folder = tmp_path_factory.mktemp("attached")
    with LocalStack() as local:
        # Only this module's API and worker may consume the queue.
        local.services["api"].process.stop()
        local.services["worker"].process.stop()
        api_port, status_port = free_port(), free_port()
        env = _env(local, folder, api_port, status_port)
        started: list[subprocess.Popen[bytes]] = []
        stack_dirs: list[Path] = []
        try:
            for name in ("api", "worker"):
                with (folder / f"{name}.log").open("ab") as log:
                    popen = subprocess.Popen(
                        [sys.executable, "-m", f"pipeline_app.{name}"],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=folder,
                        start_new_session=True,
                    )
                started.append(popen)
                (folder / f"{name}.pid").write_text(f"{popen.pid}\n")
            api_url = f"http://127.0.0.1:{api_port}"
            status_url = f"http://127.0.0.1:{status_port}/status"
            wait_until(
                lambda: _ready(f"{api_url}/health/ready"),
                timeout=STARTUP_TIMEOUT,
                what="the hand-started API to be ready",
            )
            wait_until(
                lambda: _ready(status_url, consuming=True),
                timeout=STARTUP_TIMEOUT,
                what="the hand-started worker to consume",
            )
            endpoints = local.endpoints
            adapter = write_adapter(
                folder,
                database_url=endpoints.database_url,
                nats_url=endpoints.nats_url,
                nats_monitor_url=endpoints.nats_monitor_url,
                llm_url=endpoints.llm_url,
                api_port=api_port,
                status_port=status_port,
            )
            yield System(
                local,
                folder,
                adapter,
                api_url,
                status_url,
                endpoints.database_url,
                endpoints.llm_url,
                stack_dirs,
            )
        finally:
            for name in ("api", "worker"):
                _kill_named(folder / f"{name}.pid")
            for popen in started:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
            for stack_dir in stack_dirs:
                shutil.rmtree(stack_dir, ignore_errors=True)


def _post(system: System, update: dict[str, Any]) -> None:
    response = httpx.post(
        f"{system.api_url}{WEBHOOK_PATH}",
        json=update,
        headers={SECRET_HEADER: system.target().webhook.secret},
        timeout=5.0,
    )
    assert response.status_code == 200, response.text


def _stages(database_url: str, update_ids: list[int]) -> dict[int, str]:
    async def read() -> dict[int, str]:
        conn = await asyncpg.connect(database_url, timeout=2)
        try:
            rows = await conn.fetch(
                "SELECT update_id, stage FROM messages WHERE update_id = any($1::bigint[])",
                update_ids,
            )
        finally:
            await conn.close()
        return {row["update_id"]: row["stage"] for row in rows}

    return asyncio.run(read())


def _wait_extracted(system: System, update_ids: list[int]) -> None:
    def extracted() -> bool:
        stages = _stages(system.database_url, update_ids)
        return all(stages.get(uid) == "extracted" for uid in update_ids)

    wait_until(
        extracted,
        timeout=EXTRACTED_TIMEOUT,
        what=f"updates {update_ids} to reach 'extracted'",
        max_interval=0.2,
        on_timeout=lambda: f"stages: {_stages(system.database_url, update_ids)}",
    )


def _status(proc_pid: int) -> str:
    return str(psutil.Process(proc_pid).status())


# --------------------------------------------------------------------------- tests
def test_guard_needs_a_test_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    target = load_adapter(write_adapter(tmp_path))
    with pytest.raises(UnsafeTarget, match="attached stack was not started by chaos-model"):
        ensure_injectable(AttachedStack(target))
    ensure_injectable(AttachedStack(target, test_environment=True))
    assert target.attach is not None
    declared = dataclasses.replace(
        target, attach=dataclasses.replace(target.attach, test_environment=True)
    )
    ensure_injectable(AttachedStack(declared))
    remote = dataclasses.replace(
        target,
        attach=dataclasses.replace(
            target.attach, database_url="postgresql://postgres@10.1.2.3/postgres"
        ),
    )
    with pytest.raises(UnsafeTarget, match=r"'10\.1\.2\.3' is not a loopback"):
        ensure_injectable(AttachedStack(remote, test_environment=True))


def test_bad_attach_section_names_the_key(tmp_path: Path) -> None:
    path = write_adapter(tmp_path, with_database_url=False)
    with pytest.raises(AdapterError, match=r"attach\.database_url: missing"):
        load_adapter(path)
    # The same mistake in an adapter built in Python, and a target with no [attach] at all.
    target = load_adapter(write_adapter(tmp_path))
    assert target.attach is not None
    no_database = dataclasses.replace(
        target, attach=dataclasses.replace(target.attach, database_url="")
    )
    with pytest.raises(AdapterError, match=r"attach\.database_url: missing"):
        AttachedStack(no_database)
    with pytest.raises(AdapterError, match=r"\[attach\]: missing: attaching needs"):
        AttachedStack(dataclasses.replace(target, attach=None))
    no_urls = dataclasses.replace(target, attach=AttachSpec(database_url="x", llm_url="y"))
    with pytest.raises(AdapterError, match=r"attach\.nats_url: missing"):
        AttachedStack(no_urls)


def test_adapter_mistakes_in_services_name_the_key(tmp_path: Path) -> None:
    text = write_adapter(tmp_path).read_text()
    local_port = text.replace(
        'PIPELINE_WORKER_STATUS_PORT = "{port}"', 'PIPELINE_WORKER_STATUS_PORT = "{ports[status]}"'
    )
    (tmp_path / "ports.toml").write_text(local_port)
    with pytest.raises(AdapterError, match=r"services\.worker\.env\.PIPELINE_WORKER_STATUS_PORT"):
        AttachedStack(load_adapter(tmp_path / "ports.toml"))
    no_start = text.replace('start = ["{python}", "-m", "pipeline_app.worker"]\n', "")
    (tmp_path / "no-start.toml").write_text(no_start)
    with pytest.raises(AdapterError, match=r"services\.worker\.start: needed to restart"):
        AttachedStack(load_adapter(tmp_path / "no-start.toml"))
    # Without kill and stop among its faults, a service needs no start command.
    pause_only = no_start.replace('faults = ["pause", "kill", "stop"]', 'faults = ["pause"]')
    (tmp_path / "pause-only.toml").write_text(pause_only)
    stack = AttachedStack(load_adapter(tmp_path / "pause-only.toml"))
    assert set(stack.services) == {"api", "worker"}
    assert stack.links == {}
    assert stack.unsupported_faults == {"refuse_connections", "partition", "network"}
    assert stack.endpoints.busy_urls == {"worker": "http://127.0.0.1:6/status"}


@pytest.mark.slow
def test_attach_refuses_a_service_that_is_not_running(system: System, tmp_path: Path) -> None:
    text = system.adapter.read_text().replace('"worker.pid"', f'"{tmp_path / "absent.pid"}"')
    (system.folder / "absent.toml").write_text(text)
    stack = AttachedStack(load_adapter(system.folder / "absent.toml"), test_environment=True)
    with pytest.raises(StackError, match=r"services\.worker\.pid_file: .* names no running"):
        stack.start()
    stack.stop()


@pytest.mark.slow
def test_pause_and_kill_the_worker_then_heal(system: System) -> None:
    with AttachedStack(system.target(), test_environment=True) as stack:
        system.stack_dirs.append(stack.dir)
        ensure_injectable(stack)
        stack.reset()
        worker = stack.services["worker"]
        first = system.pid("worker")
        assert first is not None and worker.is_running() and not worker.is_paused()

        worker.pause()
        assert worker.is_paused()
        assert _status(first) == psutil.STATUS_STOPPED
        paused_update = make_update()
        _post(system, paused_update)  # the API takes it; the worker cannot
        assert stack.heal() == ["resumed worker"]
        assert _status(first) != psutil.STATUS_STOPPED
        _wait_extracted(system, [paused_update["update_id"]])

        worker.pause()
        waiting = make_update()
        _post(system, waiting)
        worker.kill()
        assert not worker.is_running()
        healed = stack.heal()
        assert "restarted worker" in healed, healed
        second = system.pid("worker")
        assert second is not None and second != first
        assert worker.is_running() and not worker.is_paused()
        assert httpx.get(system.status_url, timeout=2).json()["pid"] == second
        fresh = make_update()
        _post(system, fresh)
        _wait_extracted(system, [waiting["update_id"], fresh["update_id"]])
        assert stack.log_paths()["worker"].read_text().count("--- starting worker") == 1


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_short_chaos_run_on_the_correct_pipeline_passes(system: System, tmp_path: Path) -> None:
    config = ChaosConfig(
        examples=3,
        steps=5,
        seed=11,
        faults=("kill", "pause", "llm"),
        database=False,
        progress=False,
        sweep=False,
        shrink=False,
        failures_dir=tmp_path / "f",
    )
    with AttachedStack(system.target(), test_environment=True) as stack:
        system.stack_dirs.append(stack.dir)
        report = run(stack, config, log_dirs=stack.log_paths())
    assert report.hypothesis_error is None, report.hypothesis_error
    assert not report.failed, report.program
    assert report.violations == 0
    assert report.examples >= 1 and report.faults >= 1, report.faults_by_kind
    assert system.pid("api") is not None and system.pid("worker") is not None


GUARDED_RUNNER = """
import sys
from chaos_model.adapter import load_adapter
from chaos_model.faults import LLMFault
from chaos_model.stack import AttachedStack

stack = AttachedStack(load_adapter(sys.argv[1]), test_environment=True)
stack.start()
print(stack.dir, flush=True)
stack.services["worker"].pause()
stack.services["api"].kill()
LLMFault("error", seconds=None).apply(stack)
print("faulted", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_guardian_heals_after_the_runner_is_sigkilled(system: System) -> None:
    worker = system.pid("worker")
    runner = subprocess.Popen(
        [sys.executable, "-c", GUARDED_RUNNER, str(system.adapter)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert runner.stdout is not None
    stack_dir = Path(runner.stdout.readline().decode().strip())
    system.stack_dirs.append(stack_dir)
    try:
        assert runner.stdout.readline().decode().strip() == "faulted"
        assert worker is not None and _status(worker) == psutil.STATUS_STOPPED
        assert system.pid("api") is None
        assert httpx.get(f"{system.llm_url}/control/stats", timeout=2).json()["fault"] is not None
        runner.kill()
        runner.wait(timeout=10)

        wait_until(
            lambda: _status(worker) != psutil.STATUS_STOPPED,
            timeout=30,
            what="the guardian to resume the worker",
        )
        wait_until(
            lambda: httpx.get(f"{system.llm_url}/control/stats", timeout=2).json()["fault"] is None,
            timeout=30,
            what="the guardian to clear the LLM fault",
        )
        wait_until(
            lambda: system.pid("api") is not None and _ready(f"{system.api_url}/health/ready"),
            timeout=STARTUP_TIMEOUT,
            what="the guardian to start the API again",
        )
        wait_until(
            lambda: not (stack_dir / "guardian.json").exists(),
            timeout=30,
            what="the guardian to finish",
        )
        update = make_update()
        _post(system, update)
        _wait_extracted(system, [update["update_id"]])
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
        assert runner.stdout is not None
        runner.stdout.close()
        assert runner.stdin is not None
        runner.stdin.close()
