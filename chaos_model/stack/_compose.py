"""The compose backend: a target under Docker Compose, as its adapter's ``[compose]`` section says.

``ComposeStack`` starts its own compose project (``chaos-model-<hex>``) of the target's compose
file on free loopback ports, with images already built (nothing is pulled or built), and stops
it (``down -v``) on exit, on an exception, on SIGINT/SIGTERM, and through its guardian when its
owner dies. It tells the compose file its ports, links and the values of a few placeholders
through compose variables derived from the adapter (their names:
:mod:`chaos_model.adapter._compose_section`).
Faults go through the docker SDK on the containers labelled with that project and service:
pause/unpause, kill/start, stop, restart, network disconnect/connect. Every link runs through
the fault proxy on the host, as in :class:`~chaos_model.stack.LocalStack`, for partitions and
toxics.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaos_model.adapter import TargetSpec, default_target
from chaos_model.adapter._compose_section import VARIABLES, ComposeSpec
from chaos_model.adapter._probes import readiness
from chaos_model.adapter._render import Placeholders
from chaos_model.errors import StackError
from chaos_model.points import BOOT_DIR, PointControl
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._docker import (
    PROJECT_LABEL,
    bring_down,
    compose_command,
    docker_client,
    image_environment,
    images_env_path,
    labelled_test_environment,
    project_containers,
    run_compose,
)
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._lifecycle import OwnedStack
from chaos_model.stack._ports import free_port
from chaos_model.stack._process import LocalService

UP_TIMEOUT = 180.0
#: chaos-model's own services, which every compose file of a target runs under these names
INFRASTRUCTURE_ORDER = ("postgres", "nats", "llm")
NETWORK_LABEL = "com.docker.compose.network"
REFUSE_SCRIPT = (
    'cd "$PGDATA" && { [ -f pg_hba.conf.chaos ] || cp pg_hba.conf pg_hba.conf.chaos; }'
    " && printf '%s\\n' 'local all all trust' 'host all all 0.0.0.0/0 reject'"
    " 'host all all ::/0 reject' >pg_hba.conf.new && mv pg_hba.conf.new pg_hba.conf"
)
ACCEPT_SCRIPT = (
    'cd "$PGDATA" && if [ -f pg_hba.conf.chaos ]; then mv pg_hba.conf.chaos pg_hba.conf; fi'
)


class ComposeStack(OwnedStack):
    """A target under Docker Compose. Use as a context manager.

    ``target``, ``bugs`` (``CHAOS_BUGS``) and ``keep_dir``: see :class:`OwnedStack`; the
    target's ``[compose]`` section names the compose file. The images come from ``images_env``
    (default: ``$CHAOS_IMAGES_ENV``, else ``[compose] images_env``).
    """

    backend = "compose"

    def __init__(
        self,
        target: TargetSpec | None = None,
        *,
        bugs: tuple[str, ...] = (),
        keep_dir: bool = False,
        images_env: Path | None = None,
    ) -> None:
        target = target if target is not None else default_target()
        if target.compose is None:
            raise StackError(
                f"the adapter of target {target.name} ({target.source}) has no"
                " [compose] section: the compose backend needs one naming the target's compose"
                " file (see docs/your-own-system.md); or start it with the local backend"
            )
        self.compose: ComposeSpec = target.compose
        self.compose.check(target)
        super().__init__(target, bugs, keep_dir)
        self.compose_file = self.target.root / self.compose.file
        #: the compose service each fronted service's links enter through
        self.fronts = {s.fronts: n for n, s in self.compose.services.items() if s.fronts}
        self.order = ("proxy", *INFRASTRUCTURE_ORDER, *self.target.services, *self.compose.services)
        self._port_variables = self.compose.port_variables(self.target)
        self.project = f"chaos-model-{secrets.token_hex(4)}"
        self._images_env = images_env if images_env is not None else images_env_path(self.target)
        self._compose: list[str] = []
        self._env: dict[str, str] = {}
        self._services: dict[str, LocalService | ComposeService] = {}
        self._networked: dict[str, Any] = {}
        self._refusing = False

    # ----------------------------------------------------------------- public surface
    @property
    def services(self) -> Mapping[str, LocalService | ComposeService]:
        return self._services

    @property
    def webhook_secret(self) -> str:
        return self.compose.webhook_secret or self.target.webhook.secret

    @property
    def test_environment(self) -> bool:
        """Every container of the project carries the test-environment label."""
        return labelled_test_environment(self._docker, self.project)

    def heal(self) -> list[str]:
        healed = super().heal()
        self._dump_logs()
        return healed

    def partition(self, service: str) -> None:
        """Disconnect a service from the compose network (every peer loses it)."""
        network = self._networked.get(service)
        target = self._services.get(service)
        if network is None or not isinstance(target, ComposeService):
            on = ", ".join(self._networked) or "no service"
            raise StackError(
                f"cannot partition {service}: only {on} are on the compose network"
                f" {self.compose.network!r} ([compose] network); partition a link through the"
                " fault proxy instead"
            )
        target.disconnect(network)

    def refuse_new_db_connections(self, refuse: bool) -> None:
        """PostgreSQL rejects new TCP connections (pg_hba ``reject``, reloaded) or accepts them
        again; open connections are untouched."""
        if not refuse and not self._refusing:
            return
        service = self._services["postgres"]
        assert isinstance(service, ComposeService)
        script = (REFUSE_SCRIPT if refuse else ACCEPT_SCRIPT) + ' && pg_ctl reload -s -D "$PGDATA"'
        result = service.container.exec_run(["sh", "-c", script], user="postgres")
        if result.exit_code != 0:
            raise StackError(f"could not rewrite pg_hba.conf: {result.output.decode()[-200:]}")
        self._refusing = refuse
        self._wait_reloaded(refuse)

    def _stop(self) -> None:
        """Heal nothing, leave nothing: stop the proxy, bring the project down (``-v``)."""
        proxy = self._services.get("proxy")
        if isinstance(proxy, LocalService):
            with contextlib.suppress(Exception):
                proxy.stop()
        if self._compose:
            with contextlib.suppress(Exception):
                self._dump_logs()
            bring_down(**self._guardian_state())
        self._started = False

    # ----------------------------------------------------------------- the lifecycle's hooks
    def _failpoint_path(self) -> Path:
        return self.dir / "state" / "failpoints.json"

    def _heal_connections(self) -> list[str]:
        healed = [
            f"reconnected {name}"
            for name, service in self._services.items()
            if isinstance(service, ComposeService) and service.reconnect()
        ]
        if self._refusing:
            self.refuse_new_db_connections(False)
            healed.append("postgres accepts connections again")
        return healed

    def _guardian_state(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "command": self._compose,
            "env": self._compose_env(),
            "file": str(self.compose_file),
            "cwd": str(self.target.root),
        }

    def log_paths(self) -> dict[str, Path]:
        return {name: self.log_dir / f"{name}.log" for name in self.order}

    # ----------------------------------------------------------------- start-up
    def _start(self) -> None:
        self._docker = docker_client()
        images = image_environment(self._docker, self.target, self._images_env)
        self._compose = compose_command()
        self._make_dir("chaos-model-compose-")
        (self.dir / "state").mkdir()
        self.failpoints.clear()
        self._points = PointControl(self.dir / "state" / "points")
        self._points.prepare()
        for folder in (self._points.folder, self._points.events_dir):
            folder.chmod(0o777)  # the services in the containers write their events here
        self._ports = {key: free_port() for key in (*self._port_variables, "proxy")}
        self._endpoints = self._loopback_endpoints()
        self._env = self._variables(images)
        self._guardian = Guardian(self.dir, "compose", {"compose": self._guardian_state()})
        self._services["proxy"] = proxy = self._proxy_service({}, self.fronts)
        proxy.start()
        proxy.wait_ready()
        run_compose(
            self._compose,
            ["-p", self.project, "-f", str(self.compose_file), "up", "-d", "--no-build"],
            self._compose_env(),
            cwd=self.target.root,
            timeout=UP_TIMEOUT,
        )
        for name in self.order[1:]:
            containers = project_containers(self._docker, self.project, name)
            if not containers:
                raise StackError(
                    f"{self.compose_file} started no container for the service {name} (the"
                    " compose file runs postgres, nats, llm, every service of the adapter and"
                    " those of [compose.services])"
                )
            timeout = self._ready_timeout(name)
            self._services[name] = ComposeService(name, containers[0], *self._probe(name), timeout)
        self._networked = self._on_network()
        self._open_stores(self.endpoints.database_url, self.endpoints.nats_url)
        for service in self._services.values():
            service.wait_ready()

    def _placeholders(self, name: str) -> Placeholders:
        """Service ``name``'s placeholders as seen from the host: ``{port}`` and
        ``{ports[NAME]}`` are the host ports it is reached on."""
        spec = self.target.services.get(name) or self.compose.services[name]
        return self._loopback_placeholders(name, spec.ports, self._ports.__getitem__)

    def _variables(self, images: dict[str, str]) -> dict[str, str]:
        """The compose variables: the images, every port and link, the placeholders'."""
        ports = {variable: str(self._ports[key]) for key, variable in self._port_variables.items()}
        values = {
            "CHAOS_BUGS": ",".join(self.bugs),
            "CHAOS_WEBHOOK_SECRET": self.webhook_secret,
            "CHAOS_STREAM": self.target.queue.stream,
            "CHAOS_DURABLE": self.target.queue.durable,
            "CHAOS_STATE_DIR": str(self.dir / "state"),
            "CHAOS_BOOT_DIR": str(BOOT_DIR),
        }
        assert set(values) == set(VARIABLES)
        return {**images, **ports, **values}

    def _compose_env(self) -> dict[str, str]:
        """The compose CLI's environment: none of the caller's own ``CHAOS_*`` variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
        return {**env, **self._env, "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def _probe(self, name: str) -> tuple[Callable[[], bool], str]:
        """How to tell service ``name`` is ready, and what that awaits."""
        e = self.endpoints
        if name == "postgres":
            return self._database_answers, "SELECT 1"
        if name in ("nats", "llm"):
            url = f"{e.nats_monitor_url}/healthz" if name == "nats" else f"{e.llm_url}/health"
            return self._http_check(url)
        spec = self.target.services.get(name) or self.compose.services[name]
        render = self._placeholders(name).render
        ready = readiness(spec.ready, render, **self._probing(name), in_container=True)
        return (lambda: ready.probe(None)), ready.awaited

    def _on_network(self) -> dict[str, Any]:
        """The services on the compose network a partition disconnects them from, and it."""
        labels = [f"{PROJECT_LABEL}={self.project}", f"{NETWORK_LABEL}={self.compose.network}"]
        found = self._docker.networks.list(filters={"label": labels})
        if not found:
            return {}
        network = found[0]
        return {
            name: network
            for name, service in self._services.items()
            if isinstance(service, ComposeService)
            and network.name in (service.container.attrs["NetworkSettings"]["Networks"] or {})
        }

    # ----------------------------------------------------------------- helpers
    def _dump_logs(self) -> None:
        """Refresh every container's log file (read when a failure is saved)."""
        for name, service in self._services.items():
            if isinstance(service, ComposeService):
                with contextlib.suppress(Exception):
                    (self.log_dir / f"{name}.log").write_bytes(service.container.logs(tail=5000))
