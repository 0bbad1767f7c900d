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
(:mod:`chaos_model.stack._guardian`) heals what a runner killed mid-fault leaves behind.
"""

from __future__ import annotations

import functools
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import AttachSpec, ServiceSpec, TargetSpec
from chaos_model.adapter._attach_section import (
    attached_path,
    check_attach,
    check_restartable,
    render_attached,
)
from chaos_model.adapter._probes import readiness
from chaos_model.errors import StackError, UnsupportedFault
from chaos_model.stack._attached_service import PidFileService, guardian_entry
from chaos_model.stack._base import Service, target_endpoints
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._launch import Launch, service_launch
from chaos_model.stack._lifecycle import StackLifecycle

#: seconds the running system has to answer when chaos-model attaches
ATTACH_TIMEOUT = 5.0


class AttachedStack(StackLifecycle):
    """A running system the adapter's ``[attach]`` section describes. Use as a context manager.

    ``test_environment`` declares the system a test environment chaos may touch (as the
    adapter's ``[attach] test_environment = true`` does); without either, the environment guard
    refuses to inject faults.
    """

    backend = "attached"
    started_by: str | None = None

    def __init__(self, target: TargetSpec, *, test_environment: bool = False) -> None:
        check_attach(target)
        assert target.attach is not None
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
        self._endpoints = target_endpoints(
            target,
            database_url=self.attach.database_url,
            nats_url=self.attach.nats_url,
            nats_monitor_url=self.attach.nats_monitor_url,
            llm_url=self.attach.llm_url.rstrip("/"),
            webhook_secret=target.webhook.secret,
            service_urls={name: url.rstrip("/") for name, url in self.attach.urls.items()},
            render=lambda name, template: self._render(name, f"services.{name}.busy", template),
        )
        self._services: dict[str, Service] = {}
        for name, spec in target.services.items():
            if spec.pid_file:
                self._services[name] = self._pid_service(name, spec)
        if not self.attach.compose_project:
            check_restartable(target)

    # ----------------------------------------------------------------- public surface
    @property
    def services(self) -> Mapping[str, Service]:
        return self._services

    def log_paths(self) -> dict[str, Path]:
        """The logs of the processes chaos-model starts (after a kill), by service."""
        return {
            name: service.log_path
            for name, service in self._services.items()
            if isinstance(service, PidFileService) and service.can_start
        }

    def refuse_new_db_connections(self, refuse: bool) -> None:
        raise UnsupportedFault(
            "refuse_connections",
            self.backend,
            "chaos-model does not reconfigure the PostgreSQL of a system it did not start",
        )

    # ----------------------------------------------------------------- the lifecycle's hooks
    def _start(self) -> None:
        """Attach: check that the system answers, and start the guardian."""
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-attached-"))
        self.log_dir.mkdir()
        self._open_stores(self.attach.database_url, self.attach.nats_url)
        self._check_answers()
        if self.attach.compose_project:
            self._attach_containers()
            containers = [n for n, s in self._services.items() if isinstance(s, ComposeService)]
            check_restartable(self.target, containers)
        self._check_pid_files()
        state = {
            "llm_url": self.attach.llm_url,
            "failpoints_file": str(self._failpoint_path() or ""),
            "services": {
                name: guardian_entry(service)
                for name, service in self._services.items()
                if isinstance(service, PidFileService | ComposeService)
            },
        }
        self._guardian = Guardian(self.dir, "attached", state, keep=True)

    def _stop(self) -> None:
        """Heal every fault and let go of the system; its processes keep running."""
        if self._started and self._http is not None and self._guardian is not None:
            try:
                self.heal()
            except Exception as error:  # noqa: BLE001 - let go of the system anyway
                message = f"chaos-model: healing the attached system failed: {error}"
                print(message, file=sys.stderr, flush=True)

    def _failpoint_path(self) -> Path | None:
        failpoints = self.attach.failpoints_file
        return self._path(failpoints) if failpoints else None

    def _app_services(self) -> Iterable[str]:
        return [
            name
            for name, service in self._services.items()
            if name in self.target.services
            and (isinstance(service, ComposeService) or getattr(service, "can_start", False))
        ]

    # ----------------------------------------------------------------- construction
    def _path(self, value: str) -> Path:
        return attached_path(self.target, value)

    def _render(self, name: str | None, key: str, template: str) -> str:
        return render_attached(self.target, self.dir, name, key, template)

    def _pid_service(self, name: str, spec: ServiceSpec) -> PidFileService:
        launch: Callable[[], Launch] | None = None
        if spec.start is not None:
            start = spec.start

            def launch() -> Launch:  # the log folder is made when the stack starts
                return service_launch(
                    self.target,
                    name,
                    functools.partial(self._render, name),
                    command=start,
                    command_key="start",
                    log=str(self.log_dir / f"{name}.log"),
                    pid_file=str(self._path(spec.pid_file)),
                )

            launch()  # every placeholder must have a value: fail now, not after a kill
        probe, awaited = self._ready_probe(name, in_container=False)
        return PidFileService(
            self,
            name,
            self._path(spec.pid_file),
            probe=probe,
            awaited=awaited,
            ready_timeout=self._ready_timeout(name),
            launch=launch,
        )

    def _ready_probe(
        self, name: str, *, in_container: bool
    ) -> tuple[Callable[[int | None], bool], str]:
        check = self.target.services[name].ready
        render = functools.partial(self._render, name, f"services.{name}.ready")
        ready = readiness(check, render, **self._probing(name), in_container=in_container)
        return ready.probe, ready.awaited

    # ----------------------------------------------------------------- attaching
    def _check_answers(self) -> None:
        """The system answers: its database, the webhook's service, the LLM stub, NATS."""
        stores, http = self._stores, self._http
        assert stores is not None and http is not None
        webhook = f"the webhook's service {self.target.webhook.service} to answer"
        database = f"the database at {_safe(self.attach.database_url)} to answer `SELECT 1`"
        llm = self.attach.llm_url
        checks: list[tuple[Callable[[], object], str]] = [
            (stores.ping, database),
            (lambda: http.get(self.endpoints.api_url, timeout=2), webhook),
            (
                lambda: http.get(f"{llm}/control/stats", timeout=2),
                f"the LLM stub's control API to answer at {llm}",
            ),
        ]
        if self.target.queue.kind == "jetstream":
            what = f"NATS at {self.attach.nats_url} to accept a connection"
            checks.append((stores.nats_answers, what))
        for condition, what in checks:
            try:
                wait_until(condition, timeout=ATTACH_TIMEOUT, what=what)
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
        from chaos_model.stack._docker import docker_client, labelled_test_environment

        try:
            client = docker_client()
        except Exception:  # noqa: BLE001 - no engine: not labelled; the guard says so
            return False
        try:
            return labelled_test_environment(client, self.attach.compose_project)
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
            timeout = self._ready_timeout(name)
            containers[name] = ComposeService(name, found[0], *self._container_probe(name), timeout)
        services = {n: s for n, s in containers.items() if n not in self.target.services}
        for name in self.target.services:
            chosen = containers.get(name) or self._services.get(name)
            if chosen is not None:
                services[name] = chosen
        self._services = services

    def _container_probe(self, name: str) -> tuple[Callable[[], bool], str]:
        if name == "postgres":
            return self._database_answers, "SQL `SELECT 1` to answer"
        if name == "nats":
            if self.attach.nats_monitor_url:
                return self._http_check(f"{self.attach.nats_monitor_url.rstrip('/')}/healthz")
            return (lambda: _tcp_open(self.attach.nats_url)), f"{self.attach.nats_url} to accept"
        probe, awaited = self._ready_probe(name, in_container=True)
        return (lambda: probe(None)), awaited


def _tcp_open(url: str) -> bool:
    split = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        with socket.create_connection((split.hostname or "127.0.0.1", split.port or 4222), 0.5):
            return True
    except OSError:
        return False


def _safe(url: str) -> str:
    """``url`` without its password."""
    password = urlsplit(url).password
    return url if password is None else url.replace(f":{password}@", ":***@", 1)
