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
from collections.abc import Mapping, Sequence
from pathlib import Path

from chaos_model.adapter import TargetSpec, llm_spec_to_json
from chaos_model.adapter._probes import readiness
from chaos_model.adapter._render import Placeholders
from chaos_model.errors import StackError
from chaos_model.points import PointControl
from chaos_model.stack._binaries import (
    Binary,
    check_others_can_run,
    find_nats_server,
    find_postgres_bindir,
)
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._launch import Launch, service_launch
from chaos_model.stack._lifecycle import OwnedStack
from chaos_model.stack._ports import free_port
from chaos_model.stack._process import LocalService, ManagedProcess
from chaos_model.stack._standby import Standby

STACK_DIR_VAR = "CHAOS_MODEL_STACK_DIR"
INFRASTRUCTURE_ORDER = ("proxy", "postgres", "nats", "llm", "telegram")
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


class LocalStack(OwnedStack):
    """A target's system on local processes. Use as a context manager.

    ``target``, ``bugs`` (passed to it as ``{bugs}``) and ``keep_dir``: see :class:`OwnedStack`;
    ``extra_env`` is added to the environment of every service of the target.
    """

    backend = "local"
    _llm_configured_at_launch = True

    def __init__(
        self,
        target: TargetSpec | None = None,
        *,
        bugs: tuple[str, ...] = (),
        keep_dir: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(target, bugs, keep_dir)
        bot_api = bool(self.target.telegram_users)
        infrastructure = [name for name in INFRASTRUCTURE_ORDER if bot_api or name != "telegram"]
        self.order = (*infrastructure, *self.target.services)
        self._extra_env = dict(extra_env or {})
        self._services: dict[str, LocalService] = {}
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
        pid = self._services["postgres"].process.pid
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            self._wait_reloaded(refuse)

    # ----------------------------------------------------------------- the lifecycle's hooks
    def _failpoint_path(self) -> Path:
        return self.dir / "failpoints.json"

    def _heal_connections(self) -> list[str]:
        """A heal returns pg_hba.conf to what initdb wrote whenever it differs, whatever changed
        it and however a fault's own bookkeeping went."""
        if self._pristine_hba is not None:
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
        self._make_dir("chaos-model-")
        self._guardian = Guardian(self.dir, "processes", keep=self.keep_dir)
        self._points = PointControl(self.dir / "points")
        self._points.prepare()
        self.failpoints.clear()
        user = _service_user()
        pg_bin = find_postgres_bindir(self.target.postgres_bin, self.target.extensions)
        if user is not None:
            check_others_can_run(pg_bin, user)
        nats_bin = find_nats_server()
        self.binaries = {"postgres": pg_bin, "nats-server": nats_bin}
        app_ports = [
            f"{n}.{extra}" for n, spec in self.target.services.items() for extra in spec.ports
        ]
        names = ("nats_monitor", *self.order)
        self._ports = ports = {name: free_port() for name in (*names, *app_ports, *self.links)}
        self._endpoints = self._loopback_endpoints()
        self._open_stores(self.endpoints.database_url, self.endpoints.nats_url)
        self._add(self._proxy_service(self._marked()))
        initdb = self._initdb(pg_bin, user)
        nats_health = f"{self.endpoints.nats_monitor_url}/healthz"
        self._add(self._infrastructure("nats", self._nats_process(nats_bin), nats_health))
        llm_config = self.dir / "llm-config.json"
        llm_config.write_text(json.dumps(llm_spec_to_json(self.target.llm)))
        llm = [sys.executable, "-m", "chaos_model.llm_stub", "--port", str(ports["llm"])]
        llm += ["--config", str(llm_config)]
        llm_health = f"{self.endpoints.llm_url}/health"
        self._add(self._infrastructure("llm", self._process("llm", llm), llm_health))
        if self._bot_api:
            fake = [sys.executable, "-m", "chaos_model.bot_api", "--port", str(ports["telegram"])]
            health = f"{self.endpoints.bot_api_url}/health"
            self._add(self._infrastructure("telegram", self._process("telegram", fake), health))
        if initdb.wait() != 0:
            raise StackError(f"initdb failed; see {self.log_dir / 'initdb.log'}")
        self._pristine_hba = self._hba_path.read_text()
        postgres = LocalService(
            "postgres",
            self._postgres_process(pg_bin, user),
            self._database_answers,
            "SQL `select 1` to answer",
            self.target.limits.ready_timeout,
            on_start=self._record_pids,
            before_start=lambda: (self.dir / "pgdata" / "postmaster.pid").unlink(missing_ok=True),
        )
        self._add(postgres)
        postgres.wait_ready()
        self._migrate()
        for name in self.target.services:
            self._add(self._app_service(name))
        for name in self.order:
            self._services[name].wait_ready()

    def _add(self, service: LocalService) -> None:
        self._services[service.name] = service
        service.start()

    def _process(self, name: str, argv: Sequence[str], user: str | None = None) -> ManagedProcess:
        log = str(self.log_dir / f"{name}.log")
        return ManagedProcess(Launch(name, tuple(argv), env=self._marked(), log=log), user)

    def _initdb(self, pg_bin: Binary, user: str | None) -> subprocess.Popen[bytes]:
        data = self.dir / "pgdata"
        data.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(data, user, user)
        argv = [str(pg_bin.path / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        argv += ["--encoding=UTF8", "--locale=C"]
        return Launch("initdb", tuple(argv), log=str(self.log_dir / "initdb.log")).start(user)

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
        argv = [str(nats_bin.path), "-a", "127.0.0.1", "-p", str(self._ports["nats"])]
        argv += ["-m", str(self._ports["nats_monitor"]), "-js", "-sd", str(self.dir / "jetstream")]
        return self._process("nats", [*argv, "--server_name", "chaos-model-local"])

    def _placeholders(self, name: str | None) -> Placeholders:
        """The placeholder values of service ``name``: its URLs lead through its own links."""
        spec = self.target.services[name] if name is not None else None
        uses = spec.uses if spec is not None else ()
        return self._loopback_placeholders(
            name,
            spec.ports if spec is not None else (),
            lambda server: self._ports[f"{name}->{server}" if server in uses else server],
        )

    def _marked(self) -> dict[str, str]:
        """Every process of a local stack carries the stack folder in its environment: a
        stack's processes can be told apart (``ps e``, the guardian's last sweep) by it."""
        return {STACK_DIR_VAR: str(self.dir)}

    def _launch(self, name: str | None) -> Launch:
        return service_launch(
            self.target,
            name,
            lambda key, template: self._placeholders(name).render(template),
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
        render, log = self._placeholders(name).render, process.log_path
        ready = readiness(spec.ready, render, **self._probing(name), log_path=log)
        probe, timeout = (lambda: ready.probe(process.pid)), self._ready_timeout(name)
        on_start, before_start = self._record_pids, ready.started
        return LocalService(name, process, probe, ready.awaited, timeout, on_start, before_start)

    def _migrate(self) -> None:
        if self.target.migrate is None:
            return
        launch = self._launch(None)
        log_path = launch.log_path
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

    # ----------------------------------------------------------------- PostgreSQL
    @property
    def _hba_path(self) -> Path:
        return self.dir / "pgdata" / "pg_hba.conf"


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
