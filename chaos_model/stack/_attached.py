"""Attaching to a running system: chaos-model drives what it did not start.

The adapter's ``[attach]`` section says where the running system is (its database, NATS, the
LLM stub the user runs with ``python -m chaos_model.llm_stub --port N``, and the base URL of
each HTTP service). A service that names a ``pid_file`` can be paused (SIGSTOP of its process
tree), resumed, killed and stopped; its ``start`` command starts it again after a kill (run
detached in the adapter's folder, with the adapter's environment added to chaos-model's; its
pid is written to the pid file). With ``compose_project``, services that are containers of that
Compose project (PostgreSQL and NATS too) are controlled through the docker SDK instead.

There is no fault proxy in front of an attached system, so it has no network or partition
faults, and chaos-model does not reconfigure its PostgreSQL (no ``refuse_connections``).
Stopping the stack heals every fault but never stops the user's processes; a small guardian
(:mod:`chaos_model.stack._attached_guardian`) heals what a runner killed mid-fault leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import string
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import nats
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop
from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import AttachSpec, HttpCheck, ServiceSpec, TargetSpec
from chaos_model.adapter._render import Placeholders, check_passes
from chaos_model.errors import AdapterError, ServiceNotReady, StackError, UnsupportedFault
from chaos_model.failpoints import FailpointFile
from chaos_model.stack._attached_guardian import (
    AttachedGuardian,
    Launch,
)
from chaos_model.stack._attached_service import (
    ContainerService,
    NoFailpoints,
    PidFileService,
)
from chaos_model.stack._base import Endpoints, Service

HEAL_ROUNDS = 3
#: seconds the running system has to answer when chaos-model attaches
ATTACH_TIMEOUT = 5.0
STOPPING_FAULTS = ("kill", "stop")


async def _quiet_nats_error(error: Exception) -> None:
    """NATS paused or killed on purpose: nothing to print."""




class AttachedStack:
    """A running system the adapter's ``[attach]`` section describes. Use as a context manager.

    ``test_environment`` declares the system a test environment chaos may touch (as the
    adapter's ``[attach] test_environment = true`` does); without either, the environment guard
    refuses to inject faults.
    """

    backend = "attached"
    started_by: str | None = None

    def __init__(self, target: TargetSpec, *, test_environment: bool = False) -> None:
        if target.attach is None:
            raise AdapterError(
                f"{target.source}: [attach]: missing: attaching needs the running system's URLs"
            )
        self.target = target
        self.attach: AttachSpec = target.attach
        self.test_environment = bool(
            self.attach.test_environment or test_environment or self._project_is_labelled()
        )
        #: no fault proxy in front of an attached system: no link can be cut or degraded
        self.links: dict[str, str] = {}
        self.bugs: tuple[str, ...] = ()
        #: fault kinds this backend cannot perform: a run should leave them out
        self.unsupported_faults = frozenset(
            {"refuse_connections", "partition", "network"}
            | (set() if self.attach.failpoints_file else {"failpoint"})
        )
        self.dir = Path()
        self._started = False
        self._control: ControlLoop | None = None
        self._http: httpx.Client | None = None
        self._pg_conn: asyncpg.Connection | None = None
        self._nats: NatsClient | None = None
        self._guardian: AttachedGuardian | None = None
        self._docker: Any = None
        self._started_any = False
        self._check_attach()
        self._endpoints = self._make_endpoints()
        self._services: dict[str, Service] = {}
        for name, spec in target.services.items():
            if spec.pid_file:
                self._services[name] = self._pid_service(name, spec)
        if not self.attach.compose_project:
            self._check_restartable()

    # ----------------------------------------------------------------- public surface
    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    @property
    def services(self) -> Mapping[str, Service]:
        return self._services

    @property
    def failpoints(self) -> FailpointFile:
        if not self.attach.failpoints_file:
            raise NoFailpoints(
                "failpoint",
                self.backend,
                f"{self.target.source}: [attach] names no failpoints_file",
            )
        return FailpointFile(self._path(self.attach.failpoints_file))

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def log_paths(self) -> dict[str, Path]:
        """The logs of the processes chaos-model starts (after a kill), by service."""
        return {
            name: service.log_path
            for name, service in self._services.items()
            if isinstance(service, PidFileService) and service.can_start
        }

    def __enter__(self) -> AttachedStack:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Attach: check that the system answers, and start the guardian."""
        if self._started:
            raise StackError("this AttachedStack is already started")
        self._started = True
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-attached-"))
            self.log_dir.mkdir()
            self._control = ControlLoop()
            self._http = httpx.Client(timeout=2.0)
            self._check_database()
            self._check_http(
                f"the webhook's service {self.target.webhook.service}", self.endpoints.api_url
            )
            self._check_http("the LLM stub's control API", f"{self.attach.llm_url}/control/stats")
            if self.target.queue.kind == "jetstream":
                self._check_nats()
            if self.attach.compose_project:
                self._attach_containers()
                self._check_restartable()
            self._check_pid_files()
            failpoints = self.attach.failpoints_file
            self._guardian = AttachedGuardian(
                self.dir,
                llm_url=self.attach.llm_url,
                failpoints_file=str(self._path(failpoints)) if failpoints else "",
            )
        except BaseException:
            self._close()
            raise

    def heal(self) -> list[str]:
        """Undo every fault: disarm failpoints, clear the LLM fault, resume what is paused,
        start what is not running; wait until every service is ready."""
        self._require_started()
        healed: list[str] = []
        if self.attach.failpoints_file:
            with contextlib.suppress(OSError, ValueError):
                armed = json.loads(self.failpoints.path.read_text() or "{}").get("armed") or {}
                healed += [f"disarmed failpoint {name}" for name in sorted(armed)]
            self.failpoints.disarm_all()
        for name, service in self._services.items():
            if service.is_paused():
                service.resume()
                healed.append(f"resumed {name}")
        if self._llm_fault_active():
            healed.append("cleared LLM fault")
        self._llm("DELETE", "/control/fault")
        # A process may still be on its way down when heal starts (a failpoint that just fired):
        # start what is not running, wait, and go round again if something exited meanwhile.
        for round_ in range(HEAL_ROUNDS):
            healed += self._start_stopped()
            try:
                for service in self._services.values():
                    service.wait_ready()
                return healed
            except ServiceNotReady:
                exited = any(not s.is_running() for s in self._services.values())
                if not exited or round_ == HEAL_ROUNDS - 1:
                    raise
        return healed

    def reset(self) -> float:
        """Heal, then empty the stores and the LLM stub's counters; return the seconds taken."""
        self._require_started()
        began = time.monotonic()
        self.heal()
        if self.attach.failpoints_file:
            self.failpoints.clear()
        self._llm("POST", "/control/reset")
        self._run(self._reset_stores(), timeout=15)
        return time.monotonic() - began

    def restart_app(self) -> None:
        """Restart the target's own services that chaos-model can start: a fresh start."""
        names = [
            name
            for name, service in self._services.items()
            if name in self.target.services and getattr(service, "can_start", False)
        ]
        for name in names:
            self._services[name].kill()
        for name in names:
            self._services[name].start()
        for name in names:
            self._services[name].wait_ready()

    def refuse_new_db_connections(self, refuse: bool) -> None:
        raise UnsupportedFault(
            "refuse_connections",
            self.backend,
            "chaos-model does not reconfigure the PostgreSQL of a system it did not start",
        )

    def stop(self) -> None:
        """Heal every fault and let go of the system; its processes keep running."""
        try:
            if self._started and self._http is not None:
                try:
                    self.heal()
                except Exception as error:  # noqa: BLE001 - let go of the system anyway
                    print(
                        f"chaos-model: healing the attached system failed: {error}",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            self._close()

    # ----------------------------------------------------------------- construction
    def _where(self, key: str) -> str:
        return f"{self.target.source}: {key}"

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.target.root.resolve() / path

    def _check_attach(self) -> None:
        attach, target = self.attach, self.target
        required = {"database_url": attach.database_url, "llm_url": attach.llm_url}
        if target.queue.kind == "jetstream":
            required["nats_url"] = attach.nats_url
        for key, value in required.items():
            if not value:
                why = " (the queue is jetstream)" if key == "nats_url" else ""
                raise AdapterError(self._where(f"attach.{key}: missing (required){why}"))
        needed = {target.webhook.service: "the webhook's service"}
        if target.dashboard is not None:
            needed.setdefault(target.dashboard.service, "the dashboard's service")
        for name, what in needed.items():
            if not attach.urls.get(name):
                raise AdapterError(
                    self._where(f"attach.urls.{name}: missing: {what} {name!r} needs a URL")
                )
        for name, url in attach.urls.items():
            split = urlsplit(url)
            if split.scheme not in ("http", "https") or not split.hostname:
                raise AdapterError(
                    self._where(f"attach.urls.{name}: expected an http(s) URL, got {url!r}")
                )

    def _check_restartable(self) -> None:
        """A service chaos-model may kill or stop must have a way to be started again."""
        for name, spec in self.target.services.items():
            if name in self._services and isinstance(self._services[name], ContainerService):
                continue
            if not spec.pid_file or spec.start is not None:
                continue
            stopping = [fault for fault in spec.faults if fault in STOPPING_FAULTS]
            if stopping:
                raise AdapterError(
                    self._where(
                        f"services.{name}.start: needed to restart after a kill (its faults"
                        f" include {' and '.join(stopping)}); give the command that starts it,"
                        f" or leave {' and '.join(stopping)} out of services.{name}.faults"
                    )
                )

    def _placeholders(self, name: str | None) -> Placeholders:
        url = self.attach.urls.get(name or "", "")
        failpoints = self.attach.failpoints_file
        return Placeholders(
            root=self.target.root.resolve(),
            dir=self.dir,
            database_url=self.attach.database_url,
            nats_url=self.attach.nats_url,
            llm_url=self.attach.llm_url,
            webhook_secret=self.target.webhook.secret,
            failpoints_file=str(self._path(failpoints)) if failpoints else "",
            bugs="",
            stream=self.target.queue.stream,
            durable=self.target.queue.durable,
            port=_port(url) if url else "",
        )

    def _render(self, name: str | None, key: str, template: str) -> str:
        """``template`` with the attached system's values; a placeholder that needs a stack
        chaos-model starts is an AdapterError naming ``key``."""
        fields = {
            field.split("[", 1)[0].split(".", 1)[0]
            for _, field, _, _ in string.Formatter().parse(template)
            if field is not None
        }
        if "ports" in fields:
            raise AdapterError(
                self._where(
                    f"{key}: {{ports[...]}} in {template!r} is a port chaos-model picks when it"
                    f" starts the service; attached, write the port itself, or give"
                    f" [attach] urls.{name} and use {{port}}"
                )
            )
        if "port" in fields and not self.attach.urls.get(name or ""):
            raise AdapterError(
                self._where(f"{key}: {{port}} in {template!r} needs [attach] urls.{name}")
            )
        try:
            return self._placeholders(name).render(template)
        except AdapterError as error:
            raise AdapterError(self._where(f"{key}: {error}")) from None

    def _env(self, name: str, spec: ServiceSpec) -> dict[str, str]:
        env = {
            key: self._render(name, f"env.{key} (for services.{name})", value)
            for key, value in self.target.env.items()
        }
        env.update(
            {
                key: self._render(name, f"services.{name}.env.{key}", value)
                for key, value in spec.env.items()
            }
        )
        return env

    def _make_endpoints(self) -> Endpoints:
        urls = {name: url.rstrip("/") for name, url in self.attach.urls.items()}
        webhook = self.target.webhook.service
        dashboard = self.target.dashboard.service if self.target.dashboard else None
        busy_urls = {
            name: self._render(name, f"services.{name}.busy", spec.busy.url)
            for name, spec in self.target.services.items()
            if spec.busy is not None
        }
        return Endpoints(
            database_url=self.attach.database_url,
            nats_url=self.attach.nats_url,
            nats_monitor_url=self.attach.nats_monitor_url,
            api_url=urls[webhook],
            llm_url=self.attach.llm_url.rstrip("/"),
            webhook_secret=self.target.webhook.secret,
            dashboard_api_url=urls[dashboard] if dashboard else "",
            telegram_api_url=urls[webhook],
            service_urls=urls,
            busy_urls=busy_urls,
        )

    def _pid_service(self, name: str, spec: ServiceSpec) -> PidFileService:
        launch: Callable[[], Launch] | None = None
        if spec.start is not None:
            start = spec.start

            def launch() -> Launch:
                return Launch(
                    name=name,
                    argv=tuple(self._render(name, f"services.{name}.start", a) for a in start),
                    cwd=str(self.target.root.resolve()),
                    log=str(self.log_dir / f"{name}.log"),
                    pid_file=str(self._path(spec.pid_file)),
                    env=self._env(name, spec),
                )

            launch()  # every placeholder must have a value: fail now, not after a kill
        probe, awaited = self._ready_probe(name, spec, with_pid=True)
        return PidFileService(
            self,
            name,
            self._path(spec.pid_file),
            probe=probe,
            awaited=awaited,
            ready_timeout=self._ready_timeout(spec),
            launch=launch,
        )

    def _ready_probe(
        self, name: str, spec: ServiceSpec, *, with_pid: bool
    ) -> tuple[Callable[[int | None], bool], str]:
        check = spec.ready
        if check is None:
            return (lambda pid: True), "the process to run"
        if not with_pid:  # a container's pid is not the one its service reports
            json_fields = {k: v for k, v in check.json.items() if v != "{pid}"}
            check = HttpCheck(url=check.url, json=json_fields, field=check.field)
        url = self._render(name, f"services.{name}.ready", check.url)
        awaited = f"GET {url} to answer 200" + (f" with {dict(check.json)}" if check.json else "")
        ready = check

        def probe(pid: int | None) -> bool:
            return self._http is not None and check_passes(self._http, url, ready, pid)

        return probe, awaited

    def _ready_timeout(self, spec: ServiceSpec) -> float:
        return spec.ready_timeout or self.target.limits.ready_timeout

    # ----------------------------------------------------------------- attaching
    def _check_database(self) -> None:
        async def probe() -> bool:
            conn = await asyncpg.connect(self.attach.database_url, timeout=2)
            try:
                return bool(await conn.fetchval("SELECT 1", timeout=2) == 1)
            finally:
                await conn.close()

        try:
            wait_until(
                lambda: self._run(probe(), timeout=3),
                timeout=ATTACH_TIMEOUT,
                what=f"the database at {_safe(self.attach.database_url)} to answer `SELECT 1`",
            )
        except WaitTimeout as error:
            raise StackError(f"cannot attach: {error}") from None

    def _check_http(self, what: str, url: str) -> None:
        assert self._http is not None
        http = self._http
        try:
            wait_until(
                lambda: http.get(url, timeout=2) is not None,
                timeout=ATTACH_TIMEOUT,
                what=f"{what} to answer at {url}",
            )
        except WaitTimeout as error:
            raise StackError(f"cannot attach: {error}") from None

    def _check_nats(self) -> None:
        try:
            wait_until(
                lambda: self._run(self._js_client(), timeout=3) is not None,
                timeout=ATTACH_TIMEOUT,
                what=f"NATS at {self.attach.nats_url} to accept a connection",
            )
        except WaitTimeout as error:
            raise StackError(f"cannot attach: {error}") from None

    def _check_pid_files(self) -> None:
        for name, service in self._services.items():
            if isinstance(service, PidFileService) and not service.is_running():
                raise StackError(
                    f"cannot attach: {self.target.source}: services.{name}.pid_file:"
                    f" {service.pid_file} names no running process; start {name} first"
                    " (or fix the path)"
                )

    def _project_is_labelled(self) -> bool:
        """A compose project whose every container carries the test-environment label says
        it is a test environment (as ``compose.test.yml`` does)."""
        if not self.attach.compose_project:
            return False
        from chaos_model.stack._docker import (
            TEST_ENVIRONMENT_LABEL,
            docker_client,
            project_containers,
        )

        try:
            client = docker_client()
        except Exception:  # noqa: BLE001 - no engine: not labelled; the guard says so
            return False
        try:
            containers = project_containers(client, self.attach.compose_project)
            return bool(containers) and all(
                (c.labels or {}).get(TEST_ENVIRONMENT_LABEL) == "true" for c in containers
            )
        finally:
            client.close()

    def _attach_containers(self) -> None:
        from chaos_model.stack._docker import docker_client, project_containers

        project = self.attach.compose_project
        self._docker = docker_client()
        containers: dict[str, Service] = {}
        for name in ("postgres", "nats", *self.target.services):
            found = project_containers(self._docker, project, name)
            if not found:
                continue
            if len(found) > 1:
                raise StackError(
                    f"cannot attach: compose project {project} runs {len(found)} containers of"
                    f" {name}; chaos-model controls one container per service"
                )
            probe, awaited = self._container_probe(name)
            timeout = (
                self._ready_timeout(self.target.services[name])
                if name in self.target.services
                else self.target.limits.ready_timeout
            )
            containers[name] = ContainerService(self, name, found[0], probe, awaited, timeout)
        services = {n: s for n, s in containers.items() if n not in self.target.services}
        for name in self.target.services:
            chosen = containers.get(name) or self._services.get(name)
            if chosen is not None:
                services[name] = chosen
        self._services = services

    def _container_probe(self, name: str) -> tuple[Callable[[], bool], str]:
        if name == "postgres":
            return self._postgres_answers, "SQL `SELECT 1` to answer"
        if name == "nats":
            if self.attach.nats_monitor_url:
                url = f"{self.attach.nats_monitor_url.rstrip('/')}/healthz"
                return (lambda: self._http_ok(url)), f"GET {url} to answer 200"
            return (lambda: _tcp_open(self.attach.nats_url)), f"{self.attach.nats_url} to accept"
        probe, awaited = self._ready_probe(name, self.target.services[name], with_pid=False)
        return (lambda: probe(None)), awaited

    # ----------------------------------------------------------------- control
    def _require_started(self) -> None:
        if self._http is None:
            raise StackError("the attached stack is not started (call start() or use `with`)")

    def _guard(self, key: str, name: str, entry: Mapping[str, Any] | None) -> None:
        """Record for the guardian what undoing a fault on ``name`` needs (before applying it)."""
        if self._guardian is None:
            return
        if key == "paused":
            self._guardian.paused(name, entry)
        else:
            self._guardian.down(name, entry)

    def _start_stopped(self) -> list[str]:
        started: list[str] = []
        for name, service in self._services.items():
            if not service.is_running():
                service.kill()  # reap any remnant of the tree
                service.start()
                started.append(f"restarted {name}")
        return started

    def _run(self, coro: Any, timeout: float) -> Any:
        if self._control is None:
            coro.close()
            raise StackError("the attached stack is not started")
        return self._control.run(coro, timeout=timeout)

    def _llm(self, method: str, path: str) -> None:
        assert self._http is not None
        url = f"{self.endpoints.llm_url}{path}"
        try:
            self._http.request(method, url).raise_for_status()
        except httpx.HTTPError as error:
            raise StackError(
                f"the LLM stub's control API failed: {method} {url}: {error}"
            ) from None

    def _llm_fault_active(self) -> bool:
        assert self._http is not None
        try:
            stats = self._http.get(f"{self.endpoints.llm_url}/control/stats").json()
        except (httpx.HTTPError, ValueError):
            return False
        return isinstance(stats, dict) and stats.get("fault") is not None

    def _http_ok(self, url: str) -> bool:
        if self._http is None:
            return False
        try:
            return self._http.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _postgres_answers(self) -> bool:
        async def probe() -> bool:
            conn = await asyncpg.connect(self.attach.database_url, timeout=0.5)
            try:
                return bool(await conn.fetchval("SELECT 1", timeout=0.5) == 1)
            finally:
                await conn.close()

        return bool(self._run(probe(), timeout=1.5))

    async def _js_client(self) -> NatsClient:
        if self._nats is None or not self._nats.is_connected:
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()
            self._nats = await nats.connect(
                self.attach.nats_url,
                connect_timeout=2,
                allow_reconnect=False,
                error_cb=_quiet_nats_error,
            )
        return self._nats

    async def _reset_stores(self) -> None:
        if self.target.reset_sql:
            for attempt in (1, 2):  # a connection from before a PostgreSQL restart fails once
                if self._pg_conn is None or self._pg_conn.is_closed():
                    self._pg_conn = await asyncpg.connect(self.attach.database_url, timeout=2)
                try:
                    await self._pg_conn.execute(self.target.reset_sql, timeout=10)
                    break
                except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                    self._pg_conn.terminate()
                    self._pg_conn = None
                    if attempt == 2:
                        raise
        if self.target.queue.kind == "jetstream":
            client = await self._js_client()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().purge_stream(self.target.queue.stream)

    async def _close_clients(self) -> None:
        if self._pg_conn is not None:
            self._pg_conn.terminate()
            self._pg_conn = None
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.close()
            self._nats = None

    def _close(self) -> None:
        if self._guardian is not None:
            self._guardian.close()
            self._guardian = None
        if self._control is not None:
            with contextlib.suppress(Exception):
                self._control.run(self._close_clients(), timeout=3)
            self._control.close()
            self._control = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._docker is not None:
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None
        # The logs of processes chaos-model started stay: those processes keep writing them.
        if self.dir != Path() and not self._started_any:
            shutil.rmtree(self.dir, ignore_errors=True)


def _port(url: str) -> int | str:
    split = urlsplit(url)
    try:
        port = split.port
    except ValueError:
        return ""
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(split.scheme, "")


def _tcp_open(url: str) -> bool:
    split = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        with socket.create_connection((split.hostname or "127.0.0.1", split.port or 4222), 0.5):
            return True
    except OSError:
        return False


def _safe(url: str) -> str:
    """``url`` without its password."""
    split = urlsplit(url)
    if split.password is None:
        return url
    return url.replace(f":{split.password}@", ":***@", 1)
