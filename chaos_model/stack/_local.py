"""The embedded local backend: a target's whole system as local processes, no Docker.

``LocalStack`` creates a temporary directory and starts, on free loopback ports, its own
PostgreSQL cluster (initdb, fsync on), its own nats-server with JetStream (file store in that
directory), the LLM stub and the fault proxy, runs the target's migration, then starts every
service its adapter names (see :mod:`chaos_model.adapter`), each a supervised subprocess with
its log in ``<dir>/logs``. It is a context manager: on exit, on an exception, on SIGINT and
on SIGTERM it stops everything and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import asyncpg
import httpx
import nats
from nats.aio.client import Client as NatsClient

from chaos_model._loop import ControlLoop
from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.adapter import TargetSpec, llm_spec_to_json
from chaos_model.adapter._render import Placeholders, check_passes, service_env
from chaos_model.adapter.default import default_target
from chaos_model.errors import ServiceNotReady, StackError
from chaos_model.failpoints import FailpointFile
from chaos_model.proxy import ProxyClient
from chaos_model.stack._base import Endpoints
from chaos_model.stack._binaries import Binary, find_nats_server, find_postgres_bindir
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._process import ManagedProcess

#: A deadline, not a wait: a service is used as soon as it answers. A Python service starts in
#: about a second, but on a 2-core machine running several stacks at once it has taken over 20 s.
READY_TIMEOUT = 45.0
HEAL_ROUNDS = 3
HBA_RELOAD_TIMEOUT = 10.0
STACK_DIR_VAR = "CHAOS_MODEL_STACK_DIR"
PORT_FLOOR = 20000
INFRASTRUCTURE_ORDER = ("proxy", "postgres", "nats", "llm")
REFUSING_HBA = (
    "# chaos-model: new connections refused for a while\n"
    "local all all trust\n"
    "host all all 0.0.0.0/0 reject\n"
    "host all all ::/0 reject\n"
)


async def _quiet_nats_error(error: Exception) -> None:
    """The stack's own NATS client sees NATS killed on purpose: nothing to print."""


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port below the ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the range it also uses for outgoing
    connections, so between choosing it and the service binding it, any client (the proxy's
    upstream connections, a database pool) may take it; ports below that range are only ever
    taken on purpose.
    """
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randint(PORT_FLOOR, max(PORT_FLOOR + 1000, low - 1))
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StackError("no free loopback port found below the ephemeral port range")


def _service_user() -> str | None:
    """PostgreSQL refuses to run as root: use the ``postgres`` account then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as error:
        raise StackError(
            "running as root and no 'postgres' user exists; PostgreSQL refuses to run as root:"
            " create one (`useradd --system postgres`) or run as a normal user"
        ) from error
    return "postgres"


class LocalService:
    """One service of the local stack: a managed process plus its readiness probe."""

    def __init__(
        self,
        name: str,
        process: ManagedProcess,
        probe: Callable[[], bool],
        awaited: str,
        ready_timeout: float = READY_TIMEOUT,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_start = on_start
        self.process = process
        self._probe = probe
        self._awaited = awaited
        self._ready_timeout = ready_timeout

    def is_running(self) -> bool:
        return self.process.is_running()

    def is_paused(self) -> bool:
        return self.process.paused and self.process.is_running()

    def pause(self) -> None:
        self._require_running("pause")
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def kill(self) -> None:
        self.process.kill()

    def start(self) -> None:
        self.process.start()
        if self._on_start is not None:
            self._on_start()  # tell the guardian the new pid

    def restart(self) -> None:
        self.process.kill()
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        """Stop cleanly: SIGTERM, or for PostgreSQL SIGINT (fast shutdown)."""
        self.process.stop(signal.SIGINT if self.name == "postgres" else signal.SIGTERM)

    def wait_ready(self, timeout: float | None = None) -> None:
        seconds = self._ready_timeout if timeout is None else timeout

        exited = False

        def ready() -> bool:
            nonlocal exited
            if not self.process.is_running():
                exited = True
                return True
            return self._probe()

        try:
            wait_until(ready, timeout=seconds, what=self._awaited)
        except WaitTimeout as error:
            raise ServiceNotReady(
                self.name, self._awaited, seconds, self.process.log_tail()
            ) from error
        if exited:
            raise ServiceNotReady(
                self.name, f"{self._awaited} (the process exited)", 0.0, self.process.log_tail()
            )

    def _require_running(self, action: str) -> None:
        if not self.process.is_running():
            raise StackError(f"cannot {action} {self.name}: it is not running")


class LocalStack:
    """A target's system on local processes. Use as a context manager.

    ``target`` is the adapter (default: ``./chaos-target.toml``); ``bugs`` switches on entries
    of the target's bug zoo (passed to it as ``{bugs}``); ``keep_dir`` leaves the temporary
    directory (logs, data) in place after stop.
    """

    backend = "local"
    started_by = "chaos-model"

    def __init__(
        self,
        target: TargetSpec | None = None,
        *,
        bugs: tuple[str, ...] = (),
        base_dir: str | os.PathLike[str] | None = None,
        keep_dir: bool = False,
        extra_env: Mapping[str, str] | None = None,
        quiet: bool = True,
    ) -> None:
        self.target = target if target is not None else default_target()
        unknown = sorted(set(bugs) - set(self.target.bugs))
        if unknown:
            raise StackError(
                f"unknown bug(s) {', '.join(unknown)} for target {self.target.name};"
                f" known: {', '.join(self.target.bugs) or 'none'}"
            )
        self.bugs = bugs
        self.order = (*INFRASTRUCTURE_ORDER, *self.target.services)
        self.links = self.target.links()
        self.keep_dir = keep_dir
        self.quiet = quiet
        self._extra_env = dict(extra_env or {})
        self._base_dir = base_dir
        self.dir = Path()
        self._services: dict[str, LocalService] = {}
        self._control: ControlLoop | None = None
        self._pg_conn: asyncpg.Connection | None = None
        self._nats: NatsClient | None = None
        self._http = httpx.Client(timeout=2.0)
        self._endpoints: Endpoints | None = None
        self._ports: dict[str, int] = {}
        self._proxy_client: ProxyClient | None = None
        #: pg_hba.conf as initdb wrote it: what a heal always returns to
        self._pristine_hba: str | None = None
        self._started = False
        self._guardian: Guardian | None = None
        self._previous_sigterm: Any = None
        self.binaries: dict[str, Binary] = {}
        self.start_seconds = 0.0

    # ----------------------------------------------------------------- public surface
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise StackError("the stack is not started")
        return self._endpoints

    @property
    def services(self) -> Mapping[str, LocalService]:
        return self._services

    @property
    def failpoints(self) -> FailpointFile:
        return FailpointFile(self.dir / "failpoints.json")

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def __enter__(self) -> LocalStack:
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
            raise StackError("this LocalStack is already started")
        began = time.monotonic()
        self._started = True
        self._install_sigterm_handler()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def heal(self) -> list[str]:
        """Undo every fault: release failpoints, clear LLM faults, resume, restart. Wait ready."""
        healed: list[str] = []
        with contextlib.suppress(OSError, ValueError):
            armed = json.loads(self.failpoints.path.read_text() or "{}").get("armed") or {}
            healed += [f"disarmed failpoint {name}" for name in sorted(armed)]
        self.failpoints.disarm_all()
        for name in self.order:
            service = self._services[name]
            if service.process.paused:
                service.resume()
                healed.append(f"resumed {name}")
        with contextlib.suppress(httpx.HTTPError):
            if self._llm_fault_active():
                healed.append("cleared LLM fault")
            self._http.delete(f"{self.endpoints.llm_url}/control/fault")
        healed += self._clear_toxics()
        if self._hba_changed():
            self.refuse_new_db_connections(False)
            healed.append("postgres accepts connections again")
        # A process may still be on its way down when heal starts (a failpoint that just fired):
        # restart whatever is not running, wait, and go round again if something exited meanwhile.
        for round_ in range(HEAL_ROUNDS):
            healed += self._restart_stopped()
            try:
                for name in self.order:
                    self._services[name].wait_ready()
                return healed
            except ServiceNotReady:
                exited = any(not s.is_running() for s in self._services.values())
                if not exited or round_ == HEAL_ROUNDS - 1:
                    raise
        return healed

    def _clear_toxics(self) -> list[str]:
        if not self._services["proxy"].is_running() or self._services["proxy"].process.paused:
            return []  # restarted below: a new proxy has no toxics
        try:
            links = self.proxy.links()
            toxics = sum(len(link.get("toxics", [])) for link in links.values())
            down = [name for name, link in links.items() if not link.get("enabled", True)]
            self.proxy.reset()
        except Exception:  # noqa: BLE001 - an unreachable proxy is restarted below
            return []
        return ([f"cleared {toxics} toxic(s)"] if toxics else []) + [f"restored {n}" for n in down]

    def _restart_stopped(self) -> list[str]:
        restarted: list[str] = []
        for name in self.order:
            service = self._services[name]
            if not service.is_running():
                if name == "postgres":
                    self._clear_postgres_leftovers()
                service.process.kill()  # reap any remnant of the tree
                service.start()
                restarted.append(f"restarted {name}")
        return restarted

    def restart_app(self) -> None:
        """Restart the target's own processes: a fresh start for a replay."""
        for name in self.target.services:
            self._services[name].process.kill()
        for name in self.target.services:
            self._services[name].start()
        for name in self.target.services:
            self._services[name].wait_ready()

    def refuse_new_db_connections(self, refuse: bool) -> None:
        """Make PostgreSQL reject new TCP connections (pg_hba ``reject``) or accept them again.

        Open connections are untouched, as when a database hits its connection limit or an
        administrator locks clients out. PostgreSQL rereads pg_hba.conf on SIGHUP.
        """
        if self._pristine_hba is None:
            raise StackError("PostgreSQL is not set up yet")
        wanted = REFUSING_HBA if refuse else self._pristine_hba
        if self._hba_path.read_text() == wanted:
            return
        _replace_file(self._hba_path, wanted)
        pid = self._services["postgres"].process.pid
        if pid is None or not self._services["postgres"].is_running():
            return
        os.kill(pid, signal.SIGHUP)
        # The reload happens when the postmaster gets to it: wait for it, so that the step
        # after a heal does not meet the refusing rules still in force.
        wait_until(
            lambda: self._accepts_connections() is not refuse,
            timeout=HBA_RELOAD_TIMEOUT,
            what=f"PostgreSQL to {'refuse' if refuse else 'accept'} new connections after reload",
        )

    @property
    def _hba_path(self) -> Path:
        return self.dir / "pgdata" / "pg_hba.conf"

    def _hba_changed(self) -> bool:
        """pg_hba.conf is not as initdb wrote it (whatever changed it, and however a fault's
        own bookkeeping went, a heal puts it back)."""
        if self._pristine_hba is None:
            return False
        try:
            return self._hba_path.read_text() != self._pristine_hba
        except OSError:
            return False

    def _accepts_connections(self) -> bool:
        try:
            return self._probe_postgres()
        except Exception:  # noqa: BLE001 - refused, or not answering: not accepting
            return False

    def reset(self) -> float:
        """Return to an empty, healthy pipeline between examples; return the seconds it took."""
        began = time.monotonic()
        self.heal()
        self.failpoints.clear()
        self._http.post(f"{self.endpoints.llm_url}/control/reset").raise_for_status()
        assert self._control is not None
        self._control.run(self._reset_stores(), timeout=10)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop every service (healing first, so nothing stays frozen) and clean up."""
        if self._control is not None:
            with contextlib.suppress(Exception):
                self._control.run(self._close_clients(), timeout=2)
        for name in reversed(self.order):
            service = self._services.get(name)
            if service is None:
                continue
            try:
                if name == "postgres":
                    service.process.stop(signal.SIGINT)  # fast shutdown
                else:
                    service.process.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                service.process.kill()
        if self._control is not None:
            self._control.close()
            self._control = None
        self._http.close()
        if self._proxy_client is not None:
            self._proxy_client.close()
        self._restore_sigterm_handler()
        if self._guardian is not None:
            self._guardian.close()
        if not self.keep_dir and self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_paths(self) -> dict[str, Path]:
        return {name: service.process.log_path for name, service in self._services.items()}

    # ----------------------------------------------------------------- start-up
    def _start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-", dir=self._base_dir))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()
        self._guardian = Guardian(self.dir, keep=self.keep_dir)
        self.failpoints.clear()
        user = _service_user()
        pg_bin = find_postgres_bindir()
        nats_bin = find_nats_server()
        self.binaries = {"postgres": pg_bin, "nats-server": nats_bin}
        self._control = ControlLoop()

        app_ports = [
            f"{name}.{extra}" for name, spec in self.target.services.items() for extra in spec.ports
        ]
        ports = {
            name: free_port()
            for name in (
                "postgres",
                "nats",
                "nats_monitor",
                "llm",
                "proxy",
                *self.target.services,
                *app_ports,
                *self.links,
            )
        }
        self._ports = ports
        webhook = self.target.webhook.service
        dashboard = self.target.dashboard.service if self.target.dashboard else webhook
        service_urls = {name: f"http://127.0.0.1:{ports[name]}" for name in self.target.services}
        busy_urls = {
            name: self._placeholders(name).render(spec.busy.url)
            for name, spec in self.target.services.items()
            if spec.busy is not None
        }
        self._endpoints = Endpoints(
            database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            nats_monitor_url=f"http://127.0.0.1:{ports['nats_monitor']}",
            api_url=service_urls[webhook],
            llm_url=f"http://127.0.0.1:{ports['llm']}",
            webhook_secret=self.target.webhook.secret,
            proxy_url=f"http://127.0.0.1:{ports['proxy']}",
            dashboard_api_url=f"http://127.0.0.1:{ports['dashboard->' + dashboard]}"
            if f"dashboard->{dashboard}" in ports
            else "",
            telegram_api_url=f"http://127.0.0.1:{ports['telegram->' + webhook]}",
            service_urls=service_urls,
            busy_urls=busy_urls,
        )
        self._services["proxy"] = self._proxy_service(ports)
        self._services["proxy"].start()

        initdb = self._initdb(pg_bin, user)
        self._services["nats"] = self._nats_service(nats_bin, ports)
        self._services["nats"].start()
        self._services["llm"] = self._llm_service(ports)
        self._services["llm"].start()
        if initdb.wait() != 0:
            raise StackError(f"initdb failed; see {self.log_dir / 'initdb.log'}")
        self._pristine_hba = self._hba_path.read_text()
        self._services["postgres"] = self._postgres_service(pg_bin, user, ports)
        self._services["postgres"].start()
        self._services["postgres"].wait_ready()
        self._migrate()
        for name in self.target.services:
            self._services[name] = self._app_service(name)
            self._services[name].start()
        for name in self.order:
            self._services[name].wait_ready()

    def _initdb(self, pg_bin: Binary, user: str | None) -> subprocess.Popen[bytes]:
        data = self.dir / "pgdata"
        data.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(data, user, user)
        log = (self.log_dir / "initdb.log").open("wb")
        with log:
            return subprocess.Popen(
                [
                    str(pg_bin.path / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                group=user,
                start_new_session=True,
            )

    def _postgres_service(
        self, pg_bin: Binary, user: str | None, ports: dict[str, int]
    ) -> LocalService:
        sockets = self.dir / "pgsock"
        sockets.mkdir(exist_ok=True)
        if user is not None:
            shutil.chown(sockets, user, user)
        argv = [
            str(pg_bin.path / "postgres"),
            "-D",
            str(self.dir / "pgdata"),
            "-p",
            str(ports["postgres"]),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            "fsync=on",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
            "-c",
            "log_min_messages=warning",
        ]
        process = ManagedProcess(
            "postgres",
            argv,
            log_path=self.log_dir / "postgres.log",
            user=user,
            env=self._marked_env(),
        )
        return self._service("postgres", process, self._probe_postgres, "SQL `select 1` to answer")

    def _nats_service(self, nats_bin: Binary, ports: dict[str, int]) -> LocalService:
        argv = [
            str(nats_bin.path),
            "-a",
            "127.0.0.1",
            "-p",
            str(ports["nats"]),
            "-m",
            str(ports["nats_monitor"]),
            "-js",
            "-sd",
            str(self.dir / "jetstream"),
            "--server_name",
            "chaos-model-local",
        ]
        process = ManagedProcess(
            "nats", argv, log_path=self.log_dir / "nats.log", env=self._marked_env()
        )
        url = f"http://127.0.0.1:{ports['nats_monitor']}/healthz"
        return self._service(
            "nats", process, lambda: self._http_ok(url), f"GET {url} to answer 200"
        )

    def _proxy_service(self, ports: dict[str, int]) -> LocalService:
        upstream = {
            "postgres": ports["postgres"],
            "nats": ports["nats"],
            "llm": ports["llm"],
            **{name: ports[name] for name in self.target.services},
        }
        argv = [
            sys.executable,
            "-m",
            "chaos_model.proxy",
            "--control",
            f"127.0.0.1:{ports['proxy']}",
        ]
        for link, server in self.links.items():
            argv += ["--link", f"{link}={ports[link]}:127.0.0.1:{upstream[server]}"]
        process = ManagedProcess(
            "proxy", argv, log_path=self.log_dir / "proxy.log", env=self._marked_env()
        )
        url = f"{self.endpoints.proxy_url}/health"
        return self._service("proxy", process, lambda: self._http_ok(url), f"GET {url}")

    @property
    def proxy(self) -> ProxyClient:
        """The client of this stack's fault proxy (every link goes through it)."""
        if self._proxy_client is None:
            self._proxy_client = ProxyClient(self.endpoints.proxy_url, timeout=2.0)
        return self._proxy_client

    def _service(
        self, name: str, process: ManagedProcess, probe: Callable[[], bool], awaited: str
    ) -> LocalService:
        return LocalService(
            name,
            process,
            probe,
            awaited,
            self.target.limits.ready_timeout,
            on_start=self._record_pids,
        )

    def _llm_service(self, ports: dict[str, int]) -> LocalService:
        config = self.dir / "llm-config.json"
        config.write_text(json.dumps(llm_spec_to_json(self.target.llm)))
        argv = [sys.executable, "-m", "chaos_model.llm_stub", "--port", str(ports["llm"])]
        argv += ["--config", str(config)]
        process = ManagedProcess(
            "llm", argv, log_path=self.log_dir / "llm.log", env=self._marked_env()
        )
        url = f"{self.endpoints.llm_url}/health"
        return self._service("llm", process, lambda: self._http_ok(url), f"GET {url}")

    def _placeholders(self, name: str | None) -> Placeholders:
        """The placeholder values of service ``name``: its URLs lead through its own links."""
        spec = self.target.services[name] if name is not None else None
        ports = self._ports

        def via(server: str, scheme: str, direct: int) -> str:
            if spec is not None and server in spec.uses:
                return f"{scheme}127.0.0.1:{ports[f'{name}->{server}']}"
            return f"{scheme}127.0.0.1:{direct}"

        return Placeholders(
            root=self.target.root.resolve(),
            dir=self.dir,
            database_url=via("postgres", "postgresql://postgres@", ports["postgres"])
            + "/postgres",
            nats_url=via("nats", "nats://", ports["nats"]),
            llm_url=via("llm", "http://", ports["llm"]),
            webhook_secret=self.target.webhook.secret,
            failpoints_file=str(self.dir / "failpoints.json"),
            bugs=",".join(self.bugs),
            stream=self.target.queue.stream,
            durable=self.target.queue.durable,
            port=ports[name] if name is not None else "",
            ports={extra: ports[f"{name}.{extra}"] for extra in (spec.ports if spec else ())},
        )

    def _marked_env(self) -> dict[str, str]:
        """This process's environment, plus the stack folder: a stack's processes can be told
        apart (``ps e``, the guardian's last sweep) by ``CHAOS_MODEL_STACK_DIR``."""
        return {**os.environ, STACK_DIR_VAR: str(self.dir)}

    def _app_env(self, name: str | None) -> dict[str, str]:
        spec = self.target.services[name] if name is not None else None
        env = self._marked_env()
        env.update(service_env(self.target, spec, self._placeholders(name)))
        env.update(self._extra_env)
        return env

    def _app_service(self, name: str) -> LocalService:
        spec = self.target.services[name]
        if spec.command is None:
            raise StackError(
                f"{self.target.source}: services.{name}.command: missing; a local stack starts"
                " every service (or attach to a running system with --attach-target)"
            )
        values = self._placeholders(name)
        argv = [values.render(arg) for arg in spec.command]
        process = ManagedProcess(
            name,
            argv,
            log_path=self.log_dir / f"{name}.log",
            env=self._app_env(name),
            cwd=self.target.root.resolve(),
        )
        timeout = spec.ready_timeout or self.target.limits.ready_timeout
        check = spec.ready
        if check is None:
            return LocalService(
                name, process, lambda: True, "the process to run", timeout, self._record_pids
            )
        url = values.render(check.url)
        awaited = f"GET {url} to answer 200" + (f" with {dict(check.json)}" if check.json else "")
        return LocalService(
            name,
            process,
            lambda: check_passes(self._http, url, check, process.pid),
            awaited,
            timeout,
            self._record_pids,
        )

    def _migrate(self) -> None:
        command = self.target.migrate
        if command is None:
            return
        values = self._placeholders(None)
        argv = [values.render(arg) for arg in command]
        log_path = self.log_dir / "migrate.log"
        with log_path.open("wb") as log:
            try:
                done = subprocess.run(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._app_env(None),
                    cwd=self.target.root.resolve(),
                    timeout=self.target.limits.ready_timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise StackError(f"the migration {argv} failed: {error}") from error
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise StackError(
                f"the migration {' '.join(argv)} exited {done.returncode}; see {log_path}\n{tail}"
            )

    def _record_pids(self) -> None:
        if self._guardian is not None:
            self._guardian.record({n: s.process.pid for n, s in self._services.items()})

    # ----------------------------------------------------------------- probes and control
    def _http_ok(self, url: str) -> bool:
        try:
            return self._http.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _probe_postgres(self) -> bool:
        assert self._control is not None

        async def probe() -> bool:
            conn = await asyncpg.connect(self.endpoints.database_url, timeout=0.5)
            try:
                return bool(await conn.fetchval("SELECT 1", timeout=0.5) == 1)
            finally:
                await conn.close()

        return self._control.run(probe(), timeout=1.5)

    def _llm_fault_active(self) -> bool:
        stats = self._http.get(f"{self.endpoints.llm_url}/control/stats").json()
        return stats.get("fault") is not None

    def _clear_postgres_leftovers(self) -> None:
        pid_file = self.dir / "pgdata" / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()

    async def _pg(self) -> asyncpg.Connection:
        if self._pg_conn is None or self._pg_conn.is_closed():
            self._pg_conn = await asyncpg.connect(self.endpoints.database_url, timeout=2)
        return self._pg_conn

    async def _js_client(self) -> NatsClient:
        if self._nats is None or not self._nats.is_connected:
            if self._nats is not None:
                with contextlib.suppress(Exception):
                    await self._nats.close()
            self._nats = await nats.connect(
                self.endpoints.nats_url,
                connect_timeout=2,
                allow_reconnect=False,
                error_cb=_quiet_nats_error,
            )
        return self._nats

    async def _reset_stores(self) -> None:
        if self.target.reset_sql:
            conn = await self._pg()
            await conn.execute(self.target.reset_sql)
        if self.target.queue.kind == "jetstream":
            client = await self._js_client()
            js = client.jetstream()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.purge_stream(self.target.queue.stream)

    async def _close_clients(self) -> None:
        if self._pg_conn is not None:
            self._pg_conn.terminate()
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.close()

    # ----------------------------------------------------------------- signals
    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            # KeyboardInterrupt, not SystemExit: Hypothesis treats SystemExit raised inside a
            # test as a failure to shrink, but always lets KeyboardInterrupt through.
            raise KeyboardInterrupt(f"signal {signum}")

        self._previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm_handler(self) -> None:
        if self._previous_sigterm is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None


@contextlib.contextmanager
def local_stack(**kwargs: Any) -> Iterator[LocalStack]:
    with LocalStack(**kwargs) as stack:
        yield stack


def _replace_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically, keeping its owner and mode.

    Written in place, the file is empty for a moment; a PostgreSQL reload (SIGHUP) that reads
    pg_hba.conf then fails and keeps the rules it had, which may be the refusing ones.
    """
    status = path.stat()
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.chmod(fresh, status.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(fresh, status.st_uid, status.st_gid)
    os.replace(fresh, path)
