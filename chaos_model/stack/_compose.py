"""The compose backend: the reference pipeline under Docker Compose (``compose.test.yml``).

``ComposeStack`` starts its own compose project (``chaos-model-<hex>``) on free loopback ports,
with the images ``scripts/build-images`` built, and stops it (``down -v``) on exit, on an
exception, on SIGINT/SIGTERM, and through its guardian when its owner dies. Faults go through the
docker SDK on the containers labelled with that project and service: pause/unpause, kill/start,
stop, restart, network disconnect/connect. Every link runs through the fault proxy on the host,
as in :class:`~chaos_model.stack.LocalStack`, for partitions and toxics.
"""

from __future__ import annotations

import contextlib
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
from chaos_model.adapter import TargetSpec, default_target
from chaos_model.errors import ServiceNotReady, StackError
from chaos_model.failpoints import FailpointFile
from chaos_model.proxy import ProxyClient
from chaos_model.stack._base import Endpoints
from chaos_model.stack._compose_guardian import ComposeGuardian, bring_down
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._docker import (
    COMPOSE_FILE,
    IMAGES_ENV,
    TEST_ENVIRONMENT_LABEL,
    compose_command,
    docker_client,
    image_environment,
    project_containers,
    run_compose,
)
from chaos_model.stack._local import HBA_RELOAD_TIMEOUT, LocalService, free_port
from chaos_model.stack._process import ManagedProcess
from chaos_model.stack._stores import StoreClients

UP_TIMEOUT = 180.0
HEAL_ROUNDS = 3
#: Every link between two parts of the stack, as ``client->server``: all traffic on a link goes
#: through the stack's fault proxy, so each link can be slowed, cut or partitioned on its own.
LINKS: dict[str, str] = {
    "api->postgres": "postgres",
    "api->nats": "nats",
    "worker->postgres": "postgres",
    "worker->nats": "nats",
    "worker->llm": "llm",
    "dashboard->api": "api",
    "telegram->api": "api",
}
#: the order services are healed and waited on (the proxy is a host process)
COMPOSE_SERVICE_ORDER = ("proxy", "postgres", "nats", "llm", "api", "worker", "nginx")
CONTAINER_SERVICES = COMPOSE_SERVICE_ORDER[1:]
APP_SERVICES = ("api", "worker")
#: services on the compose network, which a partition can disconnect from it
NETWORKED = ("postgres", "nats", "llm")
WEBHOOK_SECRET = "chaos-model-compose-secret"
PORTS = ("postgres", "nats", "nats_monitor", "llm", "api", "nginx", "worker_status", "proxy")
#: compose variable for each link a container opens through the proxy
LINK_VARIABLES = {
    "api->postgres": "CHAOS_API_POSTGRES_LINK",
    "api->nats": "CHAOS_API_NATS_LINK",
    "worker->postgres": "CHAOS_WORKER_POSTGRES_LINK",
    "worker->nats": "CHAOS_WORKER_NATS_LINK",
    "worker->llm": "CHAOS_WORKER_LLM_LINK",
}
REFUSE_SCRIPT = (
    'cd "$PGDATA" && { [ -f pg_hba.conf.chaos ] || cp pg_hba.conf pg_hba.conf.chaos; }'
    " && printf '%s\\n' 'local all all trust' 'host all all 0.0.0.0/0 reject'"
    " 'host all all ::/0 reject' >pg_hba.conf.new && mv pg_hba.conf.new pg_hba.conf"
)
ACCEPT_SCRIPT = (
    'cd "$PGDATA" && if [ -f pg_hba.conf.chaos ]; then mv pg_hba.conf.chaos pg_hba.conf; fi'
)


class ComposeStack:
    """The reference pipeline under Docker Compose. Use as a context manager.

    ``bugs`` switches on bug-zoo entries; ``keep_dir`` keeps the stack folder (logs, failpoints)
    after stop. The images come from ``images_env`` (written by ``scripts/build-images``).
    """

    backend = "compose"
    started_by = "chaos-model"

    def __init__(
        self,
        target: TargetSpec | None = None,
        *,
        bugs: tuple[str, ...] = (),
        keep_dir: bool = False,
        images_env: Path = IMAGES_ENV,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.target = target if target is not None else default_target()
        if self.target.links() != LINKS:
            raise StackError(
                f"the compose backend runs compose.test.yml, whose services and links are not"
                f" those of target {self.target.name} ({self.target.source}); start that"
                " target with the local backend or attach to it (--attach-target)"
            )
        self.bugs = bugs
        self.keep_dir = keep_dir
        self.project = f"chaos-model-{secrets.token_hex(4)}"
        self.dir = Path()
        self.start_seconds = 0.0
        self._images_env = images_env
        self._base_dir = base_dir
        self._client: Any = None
        self._compose: list[str] = []
        self._env: dict[str, str] = {}
        self._services: dict[str, LocalService | ComposeService] = {}
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
        images = image_environment(self._client, self._images_env)
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
        """Return to an empty, healthy pipeline between examples; return the seconds it took."""
        began = time.monotonic()
        self.heal()
        self.failpoints.clear()
        self._http.post(f"{self.endpoints.llm_url}/control/reset").raise_for_status()
        assert self._stores is not None
        self._stores.reset()
        return time.monotonic() - began

    def restart_app(self) -> None:
        """Restart the API and the worker containers: a fresh start for a replay."""
        for name in APP_SERVICES:
            self._services[name].kill()
        for name in APP_SERVICES:
            self._services[name].start()
        for name in APP_SERVICES:
            self._services[name].wait_ready()

    def partition(self, service: str) -> None:
        """Disconnect a backend service from the compose network (every peer loses it)."""
        target = self._services.get(service)
        if service not in NETWORKED or not isinstance(target, ComposeService):
            raise StackError(
                f"cannot partition {service}: only {', '.join(NETWORKED)} are on the compose"
                " network (partition a link through the fault proxy instead)"
            )
        network = self._client.networks.get(f"{self.project}_backend")
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
            bring_down(self.project, self._compose, self._compose_env())
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
        return {name: self.log_dir / f"{name}.log" for name in COMPOSE_SERVICE_ORDER}

    # ----------------------------------------------------------------- start-up
    def _start(self, images: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-compose-", dir=self._base_dir))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()
        (self.dir / "state").mkdir()
        self.failpoints.clear()
        ports = {name: free_port() for name in (*PORTS, *LINKS)}
        self._endpoints = _endpoints(ports)
        self._env = self._variables(images, ports)
        self._guardian = ComposeGuardian(
            self.dir,
            {"project": self.project, "command": self._compose, "env": self._compose_env()},
        )
        proxy = self._proxy_service(ports)
        self._services["proxy"] = proxy
        proxy.start()
        proxy.wait_ready()
        run_compose(
            self._compose,
            ["-p", self.project, "-f", str(COMPOSE_FILE), "up", "-d", "--no-build"],
            self._compose_env(),
            timeout=UP_TIMEOUT,
        )
        probes = self._probes()
        for name in CONTAINER_SERVICES:
            containers = project_containers(self._client, self.project, name)
            if not containers:
                raise StackError(f"compose started no container for {name}")
            probe, awaited = probes[name]
            self._services[name] = ComposeService(name, containers[0], probe, awaited)
        self._stores = StoreClients(self.endpoints.database_url, self.endpoints.nats_url)
        for service in self._services.values():
            service.wait_ready()

    def _variables(self, images: dict[str, str], ports: dict[str, int]) -> dict[str, str]:
        env = dict(images)
        env.update(
            {
                "CHAOS_POSTGRES_PORT": str(ports["postgres"]),
                "CHAOS_NATS_PORT": str(ports["nats"]),
                "CHAOS_NATS_MONITOR_PORT": str(ports["nats_monitor"]),
                "CHAOS_LLM_PORT": str(ports["llm"]),
                "CHAOS_API_PORT": str(ports["api"]),
                "CHAOS_NGINX_PORT": str(ports["nginx"]),
                "CHAOS_WORKER_STATUS_PORT": str(ports["worker_status"]),
                "CHAOS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "CHAOS_STATE_DIR": str(self.dir / "state"),
                "PIPELINE_BUGS": ",".join(self.bugs),
            }
        )
        env.update({variable: str(ports[link]) for link, variable in LINK_VARIABLES.items()})
        return env

    def _compose_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_", "PIPELINE_"))}
        env.update(self._env)
        env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
        return env

    def _proxy_service(self, ports: dict[str, int]) -> LocalService:
        upstream = {
            "postgres": ports["postgres"],
            "nats": ports["nats"],
            "llm": ports["llm"],
            "api": ports["nginx"],  # Telegram and the dashboard reach the API through nginx
        }
        argv = [
            sys.executable,
            "-m",
            "chaos_model.proxy",
            "--control",
            f"127.0.0.1:{ports['proxy']}",
        ]
        for link, server in LINKS.items():
            argv += ["--link", f"{link}={ports[link]}:127.0.0.1:{upstream[server]}"]
        process = ManagedProcess("proxy", argv, log_path=self.log_dir / "proxy.log")
        url = f"{self.endpoints.proxy_url}/health"

        def recorded() -> None:
            if self._guardian is not None:
                self._guardian.record({"proxy": process.pid})

        return LocalService(
            "proxy", process, lambda: self._http_ok(url), f"GET {url}", on_start=recorded
        )

    def _probes(self) -> dict[str, tuple[Callable[[], bool], str]]:
        e = self.endpoints
        nginx = f"http://127.0.0.1:{self._env['CHAOS_NGINX_PORT']}/nginx-health"
        api = f"{e.api_url}/health/ready"
        return {
            "postgres": (lambda: self._stores is not None and self._stores.ping(), "SELECT 1"),
            "nats": (lambda: self._http_ok(f"{e.nats_monitor_url}/healthz"), "NATS /healthz"),
            "llm": (lambda: self._http_ok(f"{e.llm_url}/health"), f"GET {e.llm_url}/health"),
            "api": (lambda: self._http_ok(api), f"GET {api} to be 200"),
            "worker": (self._worker_consuming, f"GET {e.worker_status_url} to report consuming"),
            "nginx": (lambda: self._http_ok(nginx), f"GET {nginx} to be 200"),
        }

    # ----------------------------------------------------------------- helpers
    def _http_ok(self, url: str) -> bool:
        try:
            return self._http.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _worker_consuming(self) -> bool:
        status = self._http.get(self.endpoints.worker_status_url, timeout=0.5).json()
        return bool(status["consuming"])

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


def _endpoints(ports: dict[str, int]) -> Endpoints:
    return Endpoints(
        database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
        nats_url=f"nats://127.0.0.1:{ports['nats']}",
        nats_monitor_url=f"http://127.0.0.1:{ports['nats_monitor']}",
        api_url=f"http://127.0.0.1:{ports['api']}",
        llm_url=f"http://127.0.0.1:{ports['llm']}",
        webhook_secret=WEBHOOK_SECRET,
        worker_status_url=f"http://127.0.0.1:{ports['worker_status']}/status",
        proxy_url=f"http://127.0.0.1:{ports['proxy']}",
        dashboard_api_url=f"http://127.0.0.1:{ports['dashboard->api']}",
        telegram_api_url=f"http://127.0.0.1:{ports['telegram->api']}",
        service_urls={"api": f"http://127.0.0.1:{ports['api']}"},
        busy_urls={"worker": f"http://127.0.0.1:{ports['worker_status']}/status"},
    )
