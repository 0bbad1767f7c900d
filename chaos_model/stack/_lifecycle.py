"""The lifecycle every stack backend shares: start, heal, reset, restart the app, stop.

:class:`StackLifecycle` owns what each backend does the same way: the context manager, a start
that cleans up after itself when it fails (and turns SIGTERM into KeyboardInterrupt while the
stack runs, so that Hypothesis lets it through and the stack is stopped), healing in rounds,
reset and a fresh start of the app. A backend supplies only what differs: how it starts and
stops, and how a connection fault of its own is undone. :class:`OwnedStack` adds what the stacks
chaos-model starts itself (local, compose) share: the target's bug zoo, loopback ports, the
endpoints and placeholders built from them, the fault proxy.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from chaos_model._wait import wait_until
from chaos_model.adapter import LLMSpec, TargetSpec, default_target, llm_spec_to_json
from chaos_model.adapter._render import Placeholders
from chaos_model.errors import ServiceNotReady, StackError, UnsupportedFault
from chaos_model.failpoints import FailpointFile
from chaos_model.points import PointControl
from chaos_model.proxy import ProxyClient
from chaos_model.stack._base import Endpoints, Service, Stoppable, target_endpoints
from chaos_model.stack._guardian import Guardian
from chaos_model.stack._launch import Launch
from chaos_model.stack._process import LocalService, ManagedProcess
from chaos_model.stores import StoreClients

#: heal restarts what is down and waits; a process may still be on its way down when heal starts
#: (a failpoint that just fired), so it goes round again if something exited meanwhile
HEAL_ROUNDS = 3
HBA_RELOAD_TIMEOUT = 10.0


class NoFailpoints(UnsupportedFault, AttributeError):
    """The stack has no failpoint file; to ``getattr`` it has none."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # KeyboardInterrupt, not SystemExit: Hypothesis treats SystemExit raised inside a test as a
    # failure to shrink, but always lets KeyboardInterrupt through.
    raise KeyboardInterrupt(f"signal {signum}")


class StackLifecycle(Stoppable):
    """Base of the stacks chaos-model drives directly. Use as a context manager."""

    backend = "stack"
    target: TargetSpec
    #: the stack's own HTTP client (readiness checks, the LLM stub's control API)
    _http: httpx.Client | None = None
    _endpoints: Endpoints | None = None
    _proxy_client: ProxyClient | None = None
    _previous_sigterm: Any = None
    start_seconds = 0.0
    #: where a stack's processes keep their logs and state
    dir: Path = Path()
    #: the LLM stub was started with the adapter's ``[llm]`` section; else every reset sends it
    _llm_configured_at_launch = False
    #: keep the stack folder (logs, data) after stop
    keep_dir = False
    _stores: StoreClients | None = None
    _guardian: Guardian | None = None
    #: the Docker engine's client, if the stack uses one
    _docker: Any = None
    #: the control folder of the fault points at the target's I/O calls, if it has any
    _points: PointControl | None = None

    # ----------------------------------------------------------------- what a backend supplies
    @property
    def services(self) -> Mapping[str, Service]:
        raise NotImplementedError

    def _start(self) -> None:
        """Start everything and wait until it is ready."""
        raise NotImplementedError

    def _stop(self) -> None:
        """Stop (or let go of) everything; never raises."""
        raise NotImplementedError

    def _heal_connections(self) -> list[str]:
        """Undo the backend's own connection faults (pg_hba, a network disconnect)."""
        return []

    def _failpoint_path(self) -> Path | None:
        """Where the target's processes read their failpoints, if they have any."""
        return None

    def _app_services(self) -> Iterable[str]:
        """The target's own services this stack can restart."""
        return self.target.services

    # ----------------------------------------------------------------- the shared surface
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise StackError("the stack is not started")
        return self._endpoints

    @property
    def proxy(self) -> ProxyClient | None:
        """The client of the stack's fault proxy (every link goes through it), if it has one."""
        if self._proxy_client is None and self._endpoints is not None and self._endpoints.proxy_url:
            self._proxy_client = ProxyClient(self._endpoints.proxy_url, timeout=2.0)
        return self._proxy_client

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def points(self) -> PointControl:
        """The fault points at every I/O call of the target's Python services."""
        if self._points is None:
            why = "no service of it starts with the fault-point bootstrap"
            raise NoFailpoints("point", self.backend, why)
        return self._points

    @property
    def failpoints(self) -> FailpointFile:
        path = self._failpoint_path()
        if path is None:
            why = f"{self.target.source} names no failpoint file for this stack"
            raise NoFailpoints("failpoint", self.backend, why)
        return FailpointFile(path)

    def start(self) -> None:
        if self._started:
            raise StackError(f"this {type(self).__name__} is already started")
        began = time.monotonic()
        self._started = True
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        self._http = httpx.Client(timeout=2.0)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            self._release()

    def _release(self) -> None:
        """Close the stack's own clients, dismiss its guardian, remove its folder."""
        for client in (self._stores, self._http, self._proxy_client, self._guardian, self._docker):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._stores = self._http = self._proxy_client = self._guardian = self._docker = None
        if not self.keep_dir and self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        main = threading.current_thread() is threading.main_thread()
        if self._previous_sigterm is not None and main:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None

    def heal(self) -> list[str]:
        """Undo every fault, then start what is down and wait until every service is ready."""
        if not self._started or self._http is None:
            raise StackError(
                f"the {self.backend} stack is not started (call start() or use `with`)"
            )
        healed = self._disarm_failpoints()
        if self._points is not None:
            healed += [f"disarmed point {arm['point']}" for arm in self._points.disarm_all()]
        for name, service in self.services.items():
            if service.is_paused():
                service.resume()
                healed.append(f"resumed {name}")
        healed += self._clear_fault("LLM", self.endpoints.llm_url)
        if self.endpoints.bot_api_url:
            healed += self._clear_fault("Bot API", self.endpoints.bot_api_url)
        healed += self._clear_toxics()
        healed += self._heal_connections()
        healed += self._start_in_rounds()
        return healed

    def reset(self) -> float:
        """Return to an empty, healthy system between examples; return the seconds it took."""
        began = time.monotonic()
        self.heal()
        failpoints = self._failpoint_file()
        if failpoints is not None:
            failpoints.clear()
        if self._points is not None:
            self._points.new_example()
        for url in filter(None, (self.endpoints.llm_url, self.endpoints.bot_api_url)):
            self._control(url, "POST", "/control/reset")
        if not self._llm_configured_at_launch and self.target.llm != LLMSpec():
            config = llm_spec_to_json(self.target.llm)
            self._control(self.endpoints.llm_url, "POST", "/control/config", config)
        assert self._stores is not None
        self._stores.reset()
        return time.monotonic() - began

    def restart_app(self) -> None:
        """Restart the target's own processes: a fresh start for a replay."""
        names = list(self._app_services())
        for name in names:
            self.services[name].kill()
        for name in names:
            self.services[name].start()
        for name in names:
            self.services[name].wait_ready()

    def _open_stores(self, database_url: str, nats_url: str) -> None:
        queue = self.target.queue
        stream = queue.stream if queue.kind == "jetstream" else ""
        reset = self.target.reset_sql
        self._stores = StoreClients(database_url, nats_url, reset_sql=reset, stream=stream)

    def _failpoint_file(self) -> FailpointFile | None:
        path = self._failpoint_path() if self._started else None
        return FailpointFile(path) if path is not None else None

    def _wait_reloaded(self, refuse: bool) -> None:
        """PostgreSQL reloads pg_hba.conf when the postmaster gets to it: wait for it, so that
        the step after a heal does not meet the refusing rules still in force."""
        if self._stores is not None:
            wait_until(
                lambda: self._database_answers() is not refuse,
                timeout=HBA_RELOAD_TIMEOUT,
                what=f"PostgreSQL to {'refuse' if refuse else 'accept'} new connections",
            )

    def _database_answers(self) -> bool:
        try:
            return self._stores is not None and self._stores.ping()
        except Exception:  # noqa: BLE001 - refused, or not answering: not accepting
            return False

    # ----------------------------------------------------------------- heal, step by step
    def _disarm_failpoints(self) -> list[str]:
        failpoints = self._failpoint_file()
        if failpoints is None:
            return []
        armed: Iterable[str] = ()
        with contextlib.suppress(OSError, ValueError):
            armed = failpoints.armed()
        failpoints.disarm_all()
        return [f"disarmed failpoint {name}" for name in sorted(armed)]

    def _clear_fault(self, what: str, base: str) -> list[str]:
        """Clear the fault of a fake with a control API (the LLM stub's, the Bot API's)."""
        try:
            active = self._control(base, "GET", "/control/stats").get("fault") is not None
            self._control(base, "DELETE", "/control/fault")
        except StackError:
            return []  # not answering: started again below, with no fault
        return [f"cleared {what} fault"] if active else []

    def _control(
        self, base: str, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        assert self._http is not None
        url = f"{base}{path}"
        try:
            response = self._http.request(method, url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise StackError(f"a control API failed: {method} {url}: {error}") from None
        return answer if isinstance(answer, dict) else {}

    def _clear_toxics(self) -> list[str]:
        proxy_service = self.services.get("proxy")
        if self.proxy is None or proxy_service is None or not proxy_service.is_running():
            return []  # no proxy, or one restarted below: a new proxy has no toxics
        try:
            links = self.proxy.links()
            toxics = sum(len(link.get("toxics", [])) for link in links.values())
            down = [name for name, link in links.items() if not link.get("enabled", True)]
            self.proxy.reset()
        except Exception:  # noqa: BLE001 - an unreachable proxy is restarted below
            return []
        return ([f"cleared {toxics} toxic(s)"] if toxics else []) + [f"restored {n}" for n in down]

    def _start_in_rounds(self) -> list[str]:
        healed: list[str] = []
        for round_ in range(HEAL_ROUNDS):
            healed += self._start_stopped()
            try:
                for service in self.services.values():
                    service.wait_ready()
                return healed
            except ServiceNotReady:
                exited = any(not s.is_running() for s in self.services.values())
                if not exited or round_ == HEAL_ROUNDS - 1:
                    raise
        return healed

    def _start_stopped(self) -> list[str]:
        started: list[str] = []
        for name, service in self.services.items():
            if not service.is_running():
                service.kill()  # reap any remnant of the tree
                service.start()
                started.append(f"restarted {name}")
        return started

    def _ready_timeout(self, name: str) -> float:
        """How long service ``name`` may take to become ready: its own limit, else the target's."""
        spec = self.target.services.get(name)
        own = spec.ready_timeout if spec is not None else None
        return own or self.target.limits.ready_timeout

    def _probing(self, name: str) -> dict[str, Any]:
        """What this stack offers a readiness probe of service ``name``, but its log."""
        return {
            "where": f"{self.target.source}: services.{name}.ready",
            "backend": self.backend,
            "http": lambda: self._http,
            "nats_monitor_url": self.endpoints.nats_monitor_url,
        }

    def _http_check(self, url: str) -> tuple[Callable[[], bool], str]:
        """A probe that ``url`` answers 200, and what it awaits."""
        return (lambda: self._http_ok(url)), f"GET {url} to answer 200"

    def _http_ok(self, url: str) -> bool:
        if self._http is None:
            return False
        try:
            return self._http.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False


class OwnedStack(StackLifecycle):
    """A stack chaos-model starts itself, every service on a loopback port of its own.

    ``target`` is the adapter (default: ``./chaos-target.toml``); ``bugs`` switches on entries
    of the target's bug zoo; ``keep_dir`` keeps the stack folder (logs, data) after stop.
    """

    started_by = "chaos-model"

    def __init__(self, target: TargetSpec | None, bugs: tuple[str, ...], keep_dir: bool) -> None:
        self.target = target if target is not None else default_target()
        check_bugs(self.target, bugs)
        self.bugs = bugs
        self.keep_dir = keep_dir
        #: every faultable link (``client->server`` -> server); all run through the fault proxy
        self.links = self.target.links()
        self._ports: dict[str, int] = {}

    @property
    def webhook_secret(self) -> str:
        return self.target.webhook.secret

    @property
    def _bot_api(self) -> bool:
        """The stack runs the Telegram Bot API fake (as service ``telegram``)."""
        return "telegram" in self._ports

    def _placeholders(self, name: str) -> Placeholders:
        raise NotImplementedError

    def _make_dir(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.chmod(0o755)
        self.log_dir.mkdir()

    def _loopback_endpoints(self) -> Endpoints:
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
            bot_api_url=f"http://127.0.0.1:{ports['telegram']}" if self._bot_api else "",
        )

    def _loopback_placeholders(
        self, name: str | None, extra_ports: Sequence[str], port_of: Callable[[str], int]
    ) -> Placeholders:
        """Service ``name``'s placeholders (the migration's when None), each server reached on
        loopback at ``port_of(server)``."""
        return Placeholders(
            root=self.target.root.resolve(),
            dir=self.dir,
            database_url=f"postgresql://postgres@127.0.0.1:{port_of('postgres')}/postgres",
            nats_url=f"nats://127.0.0.1:{port_of('nats')}",
            llm_url=f"http://127.0.0.1:{port_of('llm')}",
            webhook_secret=self.webhook_secret,
            failpoints_file=str(self.failpoints.path),
            bugs=",".join(self.bugs),
            stream=self.target.queue.stream,
            durable=self.target.queue.durable,
            bot_api_url=f"http://127.0.0.1:{port_of('telegram')}" if self._bot_api else "",
            port=self._ports[name] if name is not None else "",
            ports={extra: self._ports[f"{name}.{extra}"] for extra in extra_ports},
            python=self.target.interpreter,
        )

    def _proxy_service(
        self, env: Mapping[str, str], fronts: Mapping[str, str] | None = None
    ) -> LocalService:
        """The fault proxy: one process serving every link, each to its server's port (or that
        of the server's front in ``fronts``: the API behind nginx, say)."""
        ports, fronts = self._ports, fronts or {}
        control = f"127.0.0.1:{ports['proxy']}"
        argv = [sys.executable, "-m", "chaos_model.proxy", "--control", control]
        for link, server in self.links.items():
            upstream = ports[fronts.get(server, server)]
            argv += ["--link", f"{link}={ports[link]}:127.0.0.1:{upstream}"]
        log = str(self.log_dir / "proxy.log")
        process = ManagedProcess(Launch("proxy", tuple(argv), env=dict(env), log=log))
        return self._infrastructure("proxy", process, f"{self.endpoints.proxy_url}/health")

    def _infrastructure(self, name: str, process: ManagedProcess, health_url: str) -> LocalService:
        """Infrastructure service ``name``, ready when ``health_url`` answers 200."""
        probe, awaited = self._http_check(health_url)
        timeout = self.target.limits.ready_timeout
        return LocalService(name, process, probe, awaited, timeout, self._record_pids)

    def _record_pids(self) -> None:
        """Tell the guardian the pid of every process the stack runs on the host."""
        if self._guardian is None:
            return
        pids: dict[str, int | None] = {}
        for name, service in self.services.items():
            if isinstance(service, LocalService):
                pids[name] = service.process.pid
                if service.process.standby is not None:
                    pids[f"{name} standby"] = service.process.standby.pid
        self._guardian.record(pids)


def check_bugs(target: TargetSpec, bugs: Sequence[str]) -> None:
    unknown = sorted(set(bugs) - set(target.bugs))
    if unknown:
        raise StackError(
            f"unknown bug(s) {', '.join(unknown)} for target {target.name};"
            f" known: {', '.join(target.bugs) or 'none'}"
        )
