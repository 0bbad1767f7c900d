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
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaos_model.adapter import HttpCheck, TargetSpec, default_target
from chaos_model.adapter._compose_section import (
    VARIABLES,
    ComposeSpec,
)
from chaos_model.adapter._render import Placeholders
from chaos_model.errors import StackError
from chaos_model.points import BOOT_DIR, PointControl
from chaos_model.stack._base import Endpoints, target_endpoints
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
from chaos_model.stack._lifecycle import StackLifecycle
from chaos_model.stack._local import LocalService, check_bugs, proxy_process
from chaos_model.stack._ports import free_port
from chaos_model.stack._service import http_probe

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


class ComposeStack(StackLifecycle):
    """A target under Docker Compose. Use as a context manager.

    ``target`` is the adapter (default: ``./chaos-target.toml``); its ``[compose]`` section
    names the compose file. ``bugs`` switches on entries of the target's bug zoo (``CHAOS_BUGS``);
    ``keep_dir`` keeps the stack folder (logs, failpoints) after stop. The images come from
    ``images_env`` (default: ``$CHAOS_IMAGES_ENV``, else ``[compose] images_env``).
    """

    backend = "compose"
    started_by = "chaos-model"

    def __init__(
        self,
        target: TargetSpec | None = None,
        *,
        bugs: tuple[str, ...] = (),
        keep_dir: bool = False,
        images_env: Path | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.target = target if target is not None else default_target()
        if self.target.compose is None:
            raise StackError(
                f"the adapter of target {self.target.name} ({self.target.source}) has no"
                " [compose] section: the compose backend needs one naming the target's compose"
                " file (see docs/your-own-system.md); or start it with the local backend"
            )
        self.compose: ComposeSpec = self.target.compose
        self.compose.check(self.target)
        check_bugs(self.target, bugs)
        self.compose_file = self.target.root / self.compose.file
        self.bugs = bugs
        self.keep_dir = keep_dir
        #: every faultable link (``client->server`` -> server); all run through the fault proxy
        self.links = self.target.links()
        #: the compose service each fronted service's links enter through
        self.fronts = {s.fronts: n for n, s in self.compose.services.items() if s.fronts}
        self.order = (
            "proxy",
            *INFRASTRUCTURE_ORDER,
            *self.target.services,
            *self.compose.services,
        )
        self._port_variables = self.compose.port_variables(self.target)
        self.project = f"chaos-model-{secrets.token_hex(4)}"
        self._images_env = images_env if images_env is not None else images_env_path(self.target)
        self._base_dir = base_dir
        self._client: Any = None
        self._compose: list[str] = []
        self._env: dict[str, str] = {}
        self._ports: dict[str, int] = {}
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
        return labelled_test_environment(self._client, self.project)

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
        if self._client is not None:
            self._client.close()

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
        self._client = docker_client()
        images = image_environment(self._client, self.target, self._images_env)
        self._compose = compose_command()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-compose-", dir=self._base_dir))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()
        (self.dir / "state").mkdir()
        self.failpoints.clear()
        self._points = PointControl(self.dir / "state" / "points")
        self._points.prepare()
        for folder in (self._points.folder, self._points.events_dir):
            folder.chmod(0o777)  # the services in the containers write their events here
        self._ports = {key: free_port() for key in (*self._port_variables, "proxy")}
        self._endpoints = self._make_endpoints()
        self._env = self._variables(images)
        self._guardian = Guardian(self.dir, "compose", {"compose": self._guardian_state()})
        proxy = self._proxy_service()
        self._services["proxy"] = proxy
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
            containers = project_containers(self._client, self.project, name)
            if not containers:
                raise StackError(
                    f"{self.compose_file} started no container for the service {name} (the"
                    " compose file runs postgres, nats, llm, every service of the adapter and"
                    " those of [compose.services])"
                )
            probe, awaited, timeout = self._probe(name)
            self._services[name] = ComposeService(name, containers[0], probe, awaited, timeout)
        self._networked = self._on_network()
        self._open_stores(self.endpoints.database_url, self.endpoints.nats_url)
        for service in self._services.values():
            service.wait_ready()

    def _make_endpoints(self) -> Endpoints:
        ports = self._ports
        return target_endpoints(
            self.target,
            database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            nats_monitor_url=f"http://127.0.0.1:{ports['nats_monitor']}",
            llm_url=f"http://127.0.0.1:{ports['llm']}",
            webhook_secret=self.webhook_secret,
            service_urls={name: f"http://127.0.0.1:{ports[name]}" for name in self.target.services},
            render=lambda name, template: self._placeholders(name).render(template),
            proxy_url=f"http://127.0.0.1:{ports['proxy']}",
            link_urls={link: f"http://127.0.0.1:{ports[link]}" for link in self.links},
        )

    def _placeholders(self, name: str) -> Placeholders:
        """Service ``name``'s placeholders as seen from the host: ``{port}`` and
        ``{ports[NAME]}`` are the host ports it is reached on."""
        spec = self.target.services.get(name) or self.compose.services[name]
        ports = self._ports
        return Placeholders(
            root=self.target.root.resolve(),
            dir=self.dir,
            database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            llm_url=f"http://127.0.0.1:{ports['llm']}",
            webhook_secret=self.webhook_secret,
            failpoints_file=str(self.failpoints.path),
            bugs=",".join(self.bugs),
            stream=self.target.queue.stream,
            durable=self.target.queue.durable,
            port=ports[name],
            ports={extra: ports[f"{name}.{extra}"] for extra in spec.ports},
        )

    def _variables(self, images: dict[str, str]) -> dict[str, str]:
        """The compose variables: the images, every port and link, the placeholders'."""
        env = dict(images)
        env.update(
            {variable: str(self._ports[key]) for key, variable in self._port_variables.items()}
        )
        values = {
            "CHAOS_BUGS": ",".join(self.bugs),
            "CHAOS_WEBHOOK_SECRET": self.webhook_secret,
            "CHAOS_STREAM": self.target.queue.stream,
            "CHAOS_DURABLE": self.target.queue.durable,
            "CHAOS_STATE_DIR": str(self.dir / "state"),
            "CHAOS_BOOT_DIR": str(BOOT_DIR),
        }
        assert set(values) == set(VARIABLES)
        env.update(values)
        return env

    def _compose_env(self) -> dict[str, str]:
        """The compose CLI's environment: none of the caller's own ``CHAOS_*`` variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
        env.update(self._env)
        env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
        return env

    def _proxy_service(self) -> LocalService:
        ports = self._ports
        # a fronted service (the API behind nginx, say) is reached through its front
        links = {
            link: (ports[link], ports[self.fronts.get(server, server)])
            for link, server in self.links.items()
        }
        process = proxy_process(ports["proxy"], links, self.log_dir)
        url = f"{self.endpoints.proxy_url}/health"

        def recorded() -> None:
            if self._guardian is not None:
                self._guardian.record({"proxy": process.pid})

        return LocalService(
            "proxy", process, lambda: self._http_ok(url), f"GET {url}", on_start=recorded
        )

    def _probe(self, name: str) -> tuple[Callable[[], bool], str, float]:
        """How to tell service ``name`` is ready, what that awaits, and for how long at most."""
        timeout = self.target.limits.ready_timeout
        e = self.endpoints
        if name == "postgres":
            return self._database_answers, "SELECT 1", timeout
        if name in ("nats", "llm"):
            url = f"{e.nats_monitor_url}/healthz" if name == "nats" else f"{e.llm_url}/health"
            return (lambda: self._http_ok(url)), f"GET {url} to answer 200", timeout
        check: HttpCheck | None
        if name in self.target.services:
            spec = self.target.services[name]
            check = spec.ready
            timeout = spec.ready_timeout or timeout
        else:
            check = self.compose.services[name].ready
        render = self._placeholders(name).render
        probe, awaited = http_probe(lambda: self._http, check, render, in_container=True)
        return (lambda: probe(None)), awaited, timeout

    def _on_network(self) -> dict[str, Any]:
        """The services on the compose network a partition disconnects them from, and it."""
        labels = [f"{PROJECT_LABEL}={self.project}", f"{NETWORK_LABEL}={self.compose.network}"]
        found = self._client.networks.list(filters={"label": labels})
        if not found:
            return {}
        network = found[0]
        networked: dict[str, Any] = {}
        for name, service in self._services.items():
            if isinstance(service, ComposeService):
                attached = service.container.attrs["NetworkSettings"]["Networks"] or {}
                if network.name in attached:
                    networked[name] = network
        return networked

    # ----------------------------------------------------------------- helpers
    def _dump_logs(self) -> None:
        """Refresh every container's log file (read when a failure is saved)."""
        for name, service in self._services.items():
            if isinstance(service, ComposeService):
                with contextlib.suppress(Exception):
                    (self.log_dir / f"{name}.log").write_bytes(service.container.logs(tail=5000))
