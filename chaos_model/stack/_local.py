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
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from chaos_model.adapter import TargetSpec, llm_spec_to_json
from chaos_model.adapter._render import Placeholders
from chaos_model.adapter.default import default_target
from chaos_model.errors import StackError
from chaos_model.points import PointControl
from chaos_model.stack._base import target_endpoints
from chaos_model.stack._binaries import Binary, find_nats_server, find_postgres_bindir
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._launch import Launch, render_with, service_launch
from chaos_model.stack._lifecycle import StackLifecycle
from chaos_model.stack._ports import free_port
from chaos_model.stack._process import ManagedProcess, ProcessService
from chaos_model.stack._service import http_probe
from chaos_model.stack._standby import Standby

#: A deadline, not a wait: a service is used as soon as it answers. A Python service starts in
#: about a second, but on a 2-core machine running several stacks at once it has taken over 20 s.
READY_TIMEOUT = 45.0
STACK_DIR_VAR = "CHAOS_MODEL_STACK_DIR"
INFRASTRUCTURE_ORDER = ("proxy", "postgres", "nats", "llm")
REFUSING_HBA = (
    "# chaos-model: new connections refused for a while\n"
    "local all all trust\n"
    "host all all 0.0.0.0/0 reject\n"
    "host all all ::/0 reject\n"
)


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


class LocalService(ProcessService):
    """One service of the local stack: a managed process plus its readiness probe."""

    process: ManagedProcess

    def __init__(
        self,
        name: str,
        process: ManagedProcess,
        probe: Callable[[], bool],
        awaited: str,
        ready_timeout: float = READY_TIMEOUT,
        on_start: Callable[[], None] | None = None,
        before_start: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.process = process
        self._probe = probe
        self._awaited = awaited
        self._ready_timeout = ready_timeout
        self._on_start = on_start
        self._before_start = before_start

    def start(self) -> None:
        if self._before_start is not None:
            self._before_start()
        self.process.start()
        if self._on_start is not None:
            self._on_start()  # tell the guardian the new pid

    def wait_ready(self, timeout: float | None = None) -> None:
        super().wait_ready(timeout)
        standby = self.process.standby
        if standby is not None and not standby.waiting:  # the next one, ahead of need
            standby.spawn()
            if self._on_start is not None:
                self._on_start()

    def stop(self) -> None:
        """Stop cleanly: SIGTERM, or for PostgreSQL SIGINT (fast shutdown)."""
        self.process.stop(signal.SIGINT if self.name == "postgres" else signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)

    def _ready(self) -> bool:
        return self._probe()


def proxy_process(
    control_port: int,
    links: Mapping[str, tuple[int, int]],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """The fault proxy: one process serving every link ``name -> (listen, upstream)``."""
    argv = [sys.executable, "-m", "chaos_model.proxy", "--control", f"127.0.0.1:{control_port}"]
    for link, (listen, upstream) in links.items():
        argv += ["--link", f"{link}={listen}:127.0.0.1:{upstream}"]
    log = str(log_dir / "proxy.log")
    return ManagedProcess(Launch("proxy", tuple(argv), env=dict(env or {}), log=log))


class LocalStack(StackLifecycle):
    """A target's system on local processes. Use as a context manager.

    ``target`` is the adapter (default: ``./chaos-target.toml``); ``bugs`` switches on entries
    of the target's bug zoo (passed to it as ``{bugs}``); ``keep_dir`` leaves the temporary
    directory (logs, data) in place after stop.
    """

    backend = "local"
    started_by = "chaos-model"
    _llm_configured_at_launch = True

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
        check_bugs(self.target, bugs)
        self.bugs = bugs
        self.order = (*INFRASTRUCTURE_ORDER, *self.target.services)
        self.links = self.target.links()
        self.keep_dir = keep_dir
        self.quiet = quiet
        self._extra_env = dict(extra_env or {})
        self._base_dir = base_dir
        self._services: dict[str, LocalService] = {}
        self._ports: dict[str, int] = {}
        #: pg_hba.conf as initdb wrote it: what a heal always returns to
        self._pristine_hba: str | None = None
        self.binaries: dict[str, Binary] = {}

    # ----------------------------------------------------------------- public surface
    @property
    def services(self) -> Mapping[str, LocalService]:
        return self._services

    def log_paths(self) -> dict[str, Path]:
        return {name: service.process.log_path for name, service in self._services.items()}

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
        postgres = self._services["postgres"]
        if postgres.process.pid is None or not postgres.is_running():
            return
        os.kill(postgres.process.pid, signal.SIGHUP)
        self._wait_reloaded(refuse)

    # ----------------------------------------------------------------- the lifecycle's hooks
    def _failpoint_path(self) -> Path:
        return self.dir / "failpoints.json"

    def _heal_connections(self) -> list[str]:
        """A heal returns pg_hba.conf to what initdb wrote whenever it differs, whatever changed
        it and however a fault's own bookkeeping went."""
        if self._pristine_hba is None:
            return []
        with contextlib.suppress(OSError):
            if self._hba_path.read_text() != self._pristine_hba:
                self.refuse_new_db_connections(False)
                return ["postgres accepts connections again"]
        return []

    def _stop(self) -> None:
        """Stop every service, the stack's folder goes afterwards (unless kept)."""
        for name in reversed(self.order):
            service = self._services.get(name)
            if service is None:
                continue
            try:
                service.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                service.kill()
            if service.process.standby is not None:
                service.process.standby.discard()

    # ----------------------------------------------------------------- start-up
    def _start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-model-", dir=self._base_dir))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()
        self._guardian = Guardian(self.dir, "processes", keep=self.keep_dir)
        self._points = PointControl(self.dir / "points")
        self._points.prepare()
        self.failpoints.clear()
        user = _service_user()
        pg_bin = find_postgres_bindir()
        nats_bin = find_nats_server()
        self.binaries = {"postgres": pg_bin, "nats-server": nats_bin}
        app_ports = [
            f"{n}.{extra}" for n, spec in self.target.services.items() for extra in spec.ports
        ]
        names = ("postgres", "nats", "nats_monitor", "llm", "proxy", *self.target.services)
        self._ports = ports = {name: free_port() for name in (*names, *app_ports, *self.links)}
        self._endpoints = target_endpoints(
            self.target,
            database_url=f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres",
            nats_url=f"nats://127.0.0.1:{ports['nats']}",
            nats_monitor_url=f"http://127.0.0.1:{ports['nats_monitor']}",
            llm_url=f"http://127.0.0.1:{ports['llm']}",
            webhook_secret=self.target.webhook.secret,
            service_urls={name: f"http://127.0.0.1:{ports[name]}" for name in self.target.services},
            render=lambda name, template: self._placeholders(name).render(template),
            proxy_url=f"http://127.0.0.1:{ports['proxy']}",
            link_urls={link: f"http://127.0.0.1:{ports[link]}" for link in self.links},
        )
        self._open_stores(self.endpoints.database_url, self.endpoints.nats_url)
        upstream = {server: ports[server] for server in ("postgres", "nats", "llm")}
        upstream.update({name: ports[name] for name in self.target.services})
        proxy_links = {link: (ports[link], upstream[server]) for link, server in self.links.items()}
        self._add(
            "proxy",
            proxy_process(ports["proxy"], proxy_links, self.log_dir, self._marked()),
            f"{self.endpoints.proxy_url}/health",
        )
        initdb = self._initdb(pg_bin, user)
        self._add(
            "nats", self._nats_process(nats_bin), f"{self.endpoints.nats_monitor_url}/healthz"
        )
        llm_config = self.dir / "llm-config.json"
        llm_config.write_text(json.dumps(llm_spec_to_json(self.target.llm)))
        llm = [sys.executable, "-m", "chaos_model.llm_stub", "--port", str(ports["llm"])]
        llm += ["--config", str(llm_config)]
        self._add("llm", self._process("llm", llm), f"{self.endpoints.llm_url}/health")
        if initdb.wait() != 0:
            raise StackError(f"initdb failed; see {self.log_dir / 'initdb.log'}")
        self._pristine_hba = self._hba_path.read_text()
        self._services["postgres"] = LocalService(
            "postgres",
            self._postgres_process(pg_bin, user),
            self._database_answers,
            "SQL `select 1` to answer",
            self.target.limits.ready_timeout,
            on_start=self._record_pids,
            before_start=self._clear_postgres_leftovers,
        )
        self._services["postgres"].start()
        self._services["postgres"].wait_ready()
        self._migrate()
        for name in self.target.services:
            self._services[name] = self._app_service(name)
            self._services[name].start()
        for name in self.order:
            self._services[name].wait_ready()

    def _add(self, name: str, process: ManagedProcess, health_url: str) -> None:
        """Start infrastructure service ``name``, ready when ``health_url`` answers 200."""
        self._services[name] = LocalService(
            name,
            process,
            lambda: self._http_ok(health_url),
            f"GET {health_url} to answer 200",
            self.target.limits.ready_timeout,
            on_start=self._record_pids,
        )
        self._services[name].start()

    def _process(self, name: str, argv: Sequence[str], user: str | None = None) -> ManagedProcess:
        log = str(self.log_dir / f"{name}.log")
        return ManagedProcess(Launch(name, tuple(argv), env=self._marked(), log=log), user)

    def _initdb(self, pg_bin: Binary, user: str | None) -> subprocess.Popen[bytes]:
        data = self.dir / "pgdata"
        data.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(data, user, user)
        argv = [str(pg_bin.path / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        with (self.log_dir / "initdb.log").open("wb") as log:
            return subprocess.Popen(
                [*argv, "--encoding=UTF8", "--locale=C"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                group=user,
                start_new_session=True,
            )

    def _postgres_process(self, pg_bin: Binary, user: str | None) -> ManagedProcess:
        sockets = self.dir / "pgsock"
        sockets.mkdir(exist_ok=True)
        if user is not None:
            shutil.chown(sockets, user, user)
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sockets),
            "fsync": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        argv = [str(pg_bin.path / "postgres"), "-D", str(self.dir / "pgdata")]
        argv += ["-p", str(self._ports["postgres"])]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._process("postgres", argv, user)

    def _nats_process(self, nats_bin: Binary) -> ManagedProcess:
        ports = self._ports
        argv = [str(nats_bin.path), "-a", "127.0.0.1", "-p", str(ports["nats"])]
        argv += ["-m", str(ports["nats_monitor"]), "-js", "-sd", str(self.dir / "jetstream")]
        return self._process("nats", [*argv, "--server_name", "chaos-model-local"])

    def _placeholders(self, name: str | None) -> Placeholders:
        """The placeholder values of service ``name``: its URLs lead through its own links."""
        spec = self.target.services[name] if name is not None else None
        ports = self._ports

        def via(server: str, scheme: str) -> str:
            port = (
                ports[f"{name}->{server}"]
                if spec is not None and server in spec.uses
                else ports[server]
            )
            return f"{scheme}127.0.0.1:{port}"

        return Placeholders(
            root=self.target.root.resolve(),
            dir=self.dir,
            database_url=via("postgres", "postgresql://postgres@") + "/postgres",
            nats_url=via("nats", "nats://"),
            llm_url=via("llm", "http://"),
            webhook_secret=self.target.webhook.secret,
            failpoints_file=str(self.failpoints.path),
            bugs=",".join(self.bugs),
            stream=self.target.queue.stream,
            durable=self.target.queue.durable,
            port=ports[name] if name is not None else "",
            ports={extra: ports[f"{name}.{extra}"] for extra in (spec.ports if spec else ())},
        )

    def _marked(self) -> dict[str, str]:
        """Every process of a local stack carries the stack folder in its environment: a
        stack's processes can be told apart (``ps e``, the guardian's last sweep) by it."""
        return {STACK_DIR_VAR: str(self.dir)}

    def _launch(self, name: str | None) -> Launch:
        return service_launch(
            self.target,
            name,
            render_with(self._placeholders(name)),
            extra_env={**self._marked(), **self._extra_env},
            log=str(self.log_dir / f"{name or 'migrate'}.log"),
            points=self._points.folder if self._points is not None else None,
        )

    def _app_service(self, name: str) -> LocalService:
        spec = self.target.services[name]
        launch = self._launch(name)
        standby = None
        if launch.booted and spec.points.standby and self._points is not None:
            folder, modules = self._points.folder / "standby", self._points.modules_file(name)
            standby = Standby(launch, folder, modules)
        process = ManagedProcess(launch, standby=standby)
        probe, awaited = http_probe(lambda: self._http, spec.ready, self._placeholders(name).render)
        return LocalService(
            name,
            process,
            lambda: probe(process.pid),
            awaited,
            spec.ready_timeout or self.target.limits.ready_timeout,
            self._record_pids,
        )

    def _migrate(self) -> None:
        if self.target.migrate is None:
            return
        launch = self._launch(None)
        log_path = Path(launch.log)
        with log_path.open("wb") as log:
            try:
                done = subprocess.run(
                    launch.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=launch.environment(),
                    cwd=launch.cwd,
                    timeout=self.target.limits.ready_timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise StackError(f"the migration {list(launch.argv)} failed: {error}") from error
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise StackError(
                f"the migration {' '.join(launch.argv)} exited {done.returncode}; see"
                f" {log_path}\n{tail}"
            )

    def _record_pids(self) -> None:
        if self._guardian is None:
            return
        pids = {name: s.process.pid for name, s in self._services.items()}
        for name, service in self._services.items():
            if service.process.standby is not None:
                pids[f"{name} standby"] = service.process.standby.pid
        self._guardian.record(pids)

    # ----------------------------------------------------------------- PostgreSQL
    @property
    def _hba_path(self) -> Path:
        return self.dir / "pgdata" / "pg_hba.conf"

    def _clear_postgres_leftovers(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pgdata" / "postmaster.pid").unlink()


def check_bugs(target: TargetSpec, bugs: Sequence[str]) -> None:
    unknown = sorted(set(bugs) - set(target.bugs))
    if unknown:
        raise StackError(
            f"unknown bug(s) {', '.join(unknown)} for target {target.name};"
            f" known: {', '.join(target.bugs) or 'none'}"
        )


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
