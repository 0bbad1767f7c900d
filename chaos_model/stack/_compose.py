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
import dataclasses
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx

from chaos_model._wait import wait_until
from chaos_model.adapter import HttpCheck, TargetSpec, default_target
from chaos_model.adapter._compose_section import (
    VARIABLES,
    ComposeSpec,
    link_variable,
    port_variable,
)
from chaos_model.adapter._render import Placeholders, check_passes
from chaos_model.errors import ServiceNotReady, StackError
from chaos_model.failpoints import FailpointFile
from chaos_model.proxy import ProxyClient
from chaos_model.stack._base import Endpoints
from chaos_model.stack._compose_guardian import ComposeGuardian, bring_down
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._docker import (
    PROJECT_LABEL,
    TEST_ENVIRONMENT_LABEL,
    compose_command,
    docker_client,
    image_environment,
    images_env_path,
    project_containers,
    run_compose,
)
from chaos_model.stack._local import HBA_RELOAD_TIMEOUT, LocalService, free_port
from chaos_model.stack._process import ManagedProcess
from chaos_model.stack._stores import StoreClients

UP_TIMEOUT = 180.0
HEAL_ROUNDS = 3
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


class ComposeStack:
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
        unknown = sorted(set(bugs) - set(self.target.bugs))
        if unknown:
            raise StackError(
                f"unknown bug(s) {', '.join(unknown)} for target {self.target.name};"
                f" known: {', '.join(self.target.bugs) or 'none'}"
            )
        self.compose_file = self.target.root / self.compose.file
        if not self.compose_file.is_file():
            raise StackError(
                f"{self.target.source}: compose.file: {self.compose_file} does not exist"
            )
        for path in self.compose.source:
            if not (self.target.root / path).exists():
                raise StackError(
                    f"{self.target.source}: compose.source: {self.target.root / path} does not"
                    " exist"
                )
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
        self._port_variables = self._variables_of_ports()
        self.project = f"chaos-model-{secrets.token_hex(4)}"
        self.dir = Path()
        self.start_seconds = 0.0
        self._images_env = images_env if images_env is not None else images_env_path(self.target)
        self._base_dir = base_dir
        self._client: Any = None
        self._compose: list[str] = []
        self._env: dict[str, str] = {}
        self._ports: dict[str, int] = {}
        self._services: dict[str, LocalService | ComposeService] = {}
        self._networked: dict[str, Any] = {}
        self._endpoints: Endpoints | None = None
        self._http = httpx.Client(timeout=2.0)
        self._proxy_client: ProxyClient | None = None
        self._stores: StoreClients | None = None
        self._guardian: ComposeGuardian | None = None
        self._refusing = False
        self._started = False
        self._previous_sigterm: Any = None

    # ----------------------------------------------------------------- public surface
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise StackError("the stack is not started")
        return self._endpoints

    @property
    def services(self) -> Mapping[str, LocalService | ComposeService]:
        return self._services

    @property
    def failpoints(self) -> FailpointFile:
        return FailpointFile(self.dir / "state" / "failpoints.json")

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def proxy(self) -> ProxyClient:
        if self._proxy_client is None:
            self._proxy_client = ProxyClient(self.endpoints.proxy_url, timeout=2.0)
        return self._proxy_client

    @property
    def webhook_secret(self) -> str:
        return self.compose.webhook_secret or self.target.webhook.secret

    @property
    def test_environment(self) -> bool:
        """Every container of the project carries the test-environment label."""
        containers = project_containers(self._client, self.project)
        return bool(containers) and all(
            c.labels.get(TEST_ENVIRONMENT_LABEL) == "true" for c in containers
        )

    def __enter__(self) -> ComposeStack:
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
        if self._started:
            raise StackError("this ComposeStack is already started")
        began = time.monotonic()
        self._client = docker_client()
        images = image_environment(self._client, self.target, self._images_env)
        self._compose = compose_command()
        self._started = True
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._start(images)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def heal(self) -> list[str]:
        """Undo every fault: disarm failpoints, unpause, reconnect, clear LLM faults and toxics,
        let PostgreSQL accept connections, start whatever is down; wait until all are ready."""
        healed: list[str] = [f"disarmed failpoint {n}" for n in sorted(self._armed())]
        self.failpoints.disarm_all()
        for name, service in self._services.items():
            if isinstance(service, ComposeService):
                if service.reconnect():
                    healed.append(f"reconnected {name}")
                if service.is_paused():
                    service.resume()
                    healed.append(f"resumed {name}")
            elif service.process.paused:
                service.resume()
                healed.append(f"resumed {name}")
        with contextlib.suppress(httpx.HTTPError):
            stats = self._http.get(f"{self.endpoints.llm_url}/control/stats").json()
            if stats.get("fault") is not None:
                healed.append("cleared LLM fault")
            self._http.delete(f"{self.endpoints.llm_url}/control/fault")
        healed += self._clear_toxics()
        if self._refusing:
            self.refuse_new_db_connections(False)
            healed.append("postgres accepts connections again")
        for round_ in range(HEAL_ROUNDS):
            healed += self._start_stopped()
            try:
                for service in self._services.values():
                    service.wait_ready()
                break
            except ServiceNotReady:
                exited = any(not s.is_running() for s in self._services.values())
                if not exited or round_ == HEAL_ROUNDS - 1:
                    raise
        self._dump_logs()
        return healed

    def reset(self) -> float:
        """Return to an empty, healthy system between examples; return the seconds it took."""
        began = time.monotonic()
        self.heal()
        self.failpoints.clear()
        self._http.post(f"{self.endpoints.llm_url}/control/reset").raise_for_status()
        assert self._stores is not None
        self._stores.reset()
        return time.monotonic() - began

    def restart_app(self) -> None:
        """Restart the containers of the adapter's services: a fresh start for a replay."""
        for name in self.target.services:
            self._services[name].kill()
        for name in self.target.services:
            self._services[name].start()
        for name in self.target.services:
            self._services[name].wait_ready()

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
        stores = self._stores
        if stores is not None:  # the reload is asynchronous: wait until it took effect

            def accepts() -> bool:
                try:
                    return stores.ping()
                except Exception:  # noqa: BLE001 - refused: not accepting
                    return False

            wait_until(
                lambda: accepts() is not refuse,
                timeout=HBA_RELOAD_TIMEOUT,
                what=f"PostgreSQL to {'refuse' if refuse else 'accept'} new connections",
            )

    def stop(self) -> None:
        """Heal nothing, leave nothing: stop the proxy, bring the project down (``-v``)."""
        if self._stores is not None:
            self._stores.close()
            self._stores = None
        proxy = self._services.get("proxy")
        if isinstance(proxy, LocalService):
            with contextlib.suppress(Exception):
                proxy.stop()
        if self._started and self._compose:
            with contextlib.suppress(Exception):
                self._dump_logs()
            bring_down(
                self.project,
                self._compose,
                self._compose_env(),
                str(self.compose_file),
                str(self.target.root),
            )
        self._started = False
        self._http.close()
        if self._proxy_client is not None:
            self._proxy_client.close()
        if self._guardian is not None:
            self._guardian.close()
            self._guardian = None
        if self._client is not None:
            self._client.close()
        if (
            self._previous_sigterm is not None
            and threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if not self.keep_dir and self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_paths(self) -> dict[str, Path]:
        return {name: self.log_dir / f"{name}.log" for name in self.order}

    # ----------------------------------------------------------------- start-up
    def _variables_of_ports(self) -> dict[str, str]:
        """Each port this stack hands out (infrastructure, services, links) -> the compose
        variable carrying it; two that would share a variable are refused."""
        extras = {name: spec.ports for name, spec in self.target.services.items()}
        extras.update({name: spec.ports for name, spec in self.compose.services.items()})
        variables = {
            "postgres": port_variable("postgres"),
            "nats": port_variable("nats"),
            "nats_monitor": port_variable("nats", "monitor"),
            "llm": port_variable("llm"),
        }
        for name, ports in extras.items():
            variables[name] = port_variable(name)
            variables.update({f"{name}.{extra}": port_variable(name, extra) for extra in ports})
        variables.update({link: link_variable(link) for link in self.links})
        seen: dict[str, str] = {}
        for key, variable in variables.items():
            if variable in seen:
                raise StackError(
                    f"{self.target.source}: the ports {seen[variable]} and {key} would both be"
                    f" given to compose as {variable}: rename a service or a port"
                )
            seen[variable] = key
        return variables

    def _start(self, images: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-compose-", dir=self._base_dir))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()
        (self.dir / "state").mkdir()
        self.failpoints.clear()
        self._ports = {key: free_port() for key in (*self._port_variables, "proxy")}
        self._endpoints = self._make_endpoints()
        self._env = self._variables(images)
        self._guardian = ComposeGuardian(
            self.dir,
            {
                "project": self.project,
                "command": self._compose,
                "env": self._compose_env(),
                "file": str(self.compose_file),
                "cwd": str(self.target.root),
            },
        )
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
        self._stores = StoreClients(
            self.endpoints.database_url,
            self.endpoints.nats_url,
            reset_sql=self.target.reset_sql,
            stream=self.target.queue.stream if self.target.queue.kind == "jetstream" else "",
        )
        for service in self._services.values():
            service.wait_ready()

    def _make_endpoints(self) -> Endpoints:
        ports = self._ports
        webhook = self.target.webhook.service
        dashboard = self.target.dashboard.service if self.target.dashboard else webhook
        service_urls = {name: f"http://127.0.0.1:{ports[name]}" for name in self.target.services}
        busy_urls = {
            name: self._placeholders(name).render(spec.busy.url)
            for name, spec in self.target.services.items()
            if spec.busy is not None
        }
        dashboard_link = ports.get(f"dashboard->{dashboard}")
        return Endpoints(
            database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            nats_monitor_url=f"http://127.0.0.1:{ports['nats_monitor']}",
            api_url=service_urls[webhook],
            llm_url=f"http://127.0.0.1:{ports['llm']}",
            webhook_secret=self.webhook_secret,
            proxy_url=f"http://127.0.0.1:{ports['proxy']}",
            dashboard_api_url=f"http://127.0.0.1:{dashboard_link}" if dashboard_link else "",
            telegram_api_url=f"http://127.0.0.1:{ports['telegram->' + webhook]}",
            service_urls=service_urls,
            busy_urls=busy_urls,
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
        argv = [
            sys.executable,
            "-m",
            "chaos_model.proxy",
            "--control",
            f"127.0.0.1:{ports['proxy']}",
        ]
        for link, server in self.links.items():
            # a fronted service (the API behind nginx, say) is reached through its front
            upstream = ports[self.fronts.get(server, server)]
            argv += ["--link", f"{link}={ports[link]}:127.0.0.1:{upstream}"]
        process = ManagedProcess("proxy", argv, log_path=self.log_dir / "proxy.log")
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
            return (lambda: self._stores is not None and self._stores.ping()), "SELECT 1", timeout
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
        if check is None:
            return (lambda: True), "the container to run", timeout
        url = self._placeholders(name).render(check.url)
        # the pid a service reports is the one in its container, not one chaos-model knows; a
        # container's port is its own anyway, so no older process can answer in its place
        expected = {key: value for key, value in check.json.items() if value != "{pid}"}
        check = dataclasses.replace(check, json=expected)
        awaited = f"GET {url} to answer 200" + (f" with {expected}" if expected else "")
        return (lambda: check_passes(self._http, url, check, None)), awaited, timeout

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
    def _http_ok(self, url: str) -> bool:
        try:
            return self._http.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _armed(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(self.failpoints.path.read_text() or "{}").get("armed") or {})
        return {}

    def _clear_toxics(self) -> list[str]:
        proxy = self._services["proxy"]
        if not proxy.is_running() or proxy.is_paused():
            return []
        try:
            links = self.proxy.links()
            toxics = sum(len(link.get("toxics", [])) for link in links.values())
            self.proxy.reset()
        except Exception:  # noqa: BLE001 - an unreachable proxy is restarted
            return []
        return [f"cleared {toxics} toxic(s)"] if toxics else []

    def _start_stopped(self) -> list[str]:
        restarted: list[str] = []
        for name, service in self._services.items():
            if not service.is_running():
                if isinstance(service, LocalService):
                    service.process.kill()
                service.start()
                restarted.append(f"restarted {name}")
        return restarted

    def _dump_logs(self) -> None:
        """Refresh every container's log file (read when a failure is saved)."""
        for name, service in self._services.items():
            if isinstance(service, ComposeService):
                with contextlib.suppress(Exception):
                    (self.log_dir / f"{name}.log").write_bytes(service.container.logs(tail=5000))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # KeyboardInterrupt, as on LocalStack: Hypothesis lets it through instead of shrinking it
    raise KeyboardInterrupt(f"signal {signum}")
