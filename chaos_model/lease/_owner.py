"""The owner side of a shared stack: a loopback control API and a dead-man switch.

``chaos-model stack up`` owns a :class:`~chaos_model.stack.LocalStack` and lets runners in other
processes drive it through :class:`StackOwner`: an HTTP API bound to 127.0.0.1 only, described
by a JSON descriptor file (control URL, endpoints, failpoint file, ``"started_by":
"chaos-model"``), which :class:`~chaos_model.lease.RemoteStack` reads.

The API (JSON in, JSON out)::

    GET    /                               the descriptor
    GET    /services                       {"services": {name: {running, paused, pid}}}
    GET    /services/{name}                one service
    POST   /services/{name}/{action}       pause|resume|kill|stop|start|restart|wait_ready
    POST   /heal                           {"healed": [...]}
    POST   /reset                          {"seconds": ...}
    POST   /lease                          heartbeat {"runner_pid", "ttl", "faults": [...]}
    DELETE /lease                          release ({"runner_pid": N}; all leases without it)
    GET    /leases                         current leases and the watchdog's heal count

A runner holds a lease and renews it every ~0.2 s, listing the faults it has applied
(``{"kind", "applied_at": <unix time>, "max_seconds"}``). The watchdog thread heals the whole
stack (``stack.heal()``, the single place that knows how to undo every fault) when a lease's
heartbeat lapses (the runner died, even by SIGKILL), when a fault outlives its ``max_seconds``,
or when a runner releases its lease with faults still recorded. It logs one line per heal
naming what it healed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chaos_model.errors import ChaosModelError
from chaos_model.stack import LocalStack

STARTED_BY = "chaos-model"
WATCHDOG_PERIOD = 0.1
HEAL_RETRY_SECONDS = 1.0
MAX_TTL = 60.0
ACTIONS = ("pause", "resume", "kill", "stop", "start", "restart", "wait_ready")
SERVICE_ROUTE = re.compile(r"^/services/(?P<name>[\w.-]+)(?:/(?P<action>\w+))?$")


class BadRequest(ValueError):
    """A malformed control request (HTTP 400)."""


class NotFound(LookupError):
    """An unknown route, service or action (HTTP 404)."""


@dataclass
class Lease:
    runner_pid: int
    ttl: float
    expires: float  # time.monotonic()
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: faults (kind, applied_at) the watchdog already healed for outliving max_seconds
    expired: set[tuple[str, float]] = field(default_factory=set)

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "runner_pid": self.runner_pid,
            "ttl": self.ttl,
            "expires_in": round(self.expires - now, 3),
            "faults": self.faults,
            "expired": sorted([kind, at] for kind, at in self.expired),
        }


def _parse_faults(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BadRequest("'faults' must be a list")
    faults = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            raise BadRequest("each fault needs a 'kind' string")
        try:
            applied_at = float(item["applied_at"])
            max_seconds = float(item.get("max_seconds", 60.0))
        except (KeyError, TypeError, ValueError) as error:
            raise BadRequest("each fault needs numeric 'applied_at' and 'max_seconds'") from error
        faults.append({**item, "applied_at": applied_at, "max_seconds": max_seconds})
    return faults


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


def _default_log(line: str) -> None:
    print(f"chaos-model stack: {line}", file=sys.stderr, flush=True)


class StackOwner:
    """Serve the control API and run the watchdog for ``stack`` until :meth:`close`."""

    def __init__(
        self,
        stack: LocalStack,
        *,
        state_file: Path | None = None,
        port: int = 0,
        log: Callable[[str], None] = _default_log,
    ) -> None:
        self.stack = stack
        self.state_file = state_file or stack.dir / "stack.json"
        self.log = log
        self._lock = threading.RLock()  # one stack operation at a time
        self._leases_lock = threading.Lock()
        self._leases: dict[int, Lease] = {}
        self._pending: list[str] = []
        self._retry_at = 0.0
        self.watchdog_heals = 0
        self.last_heal = ""
        self._closed = False
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.control_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="stack-control", daemon=True),
            threading.Thread(target=self._watchdog, name="stack-watchdog", daemon=True),
        ]

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> StackOwner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.descriptor(), indent=2))
        tmp.replace(self.state_file)

    def close(self) -> None:
        """Stop serving and watching; the caller then stops the stack itself."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        with self._lock:  # let an operation in flight finish; refuse any later one
            self._closed = True
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def descriptor(self) -> dict[str, Any]:
        stack = self.stack
        return {
            "started_by": STARTED_BY,
            "backend": stack.backend,
            "control_url": self.control_url,
            "owner_pid": os.getpid(),
            "stack_dir": str(stack.dir),
            "failpoints_file": str(stack.failpoints.path),
            "target": str(stack.target.source),
            "endpoints": dataclasses.asdict(stack.endpoints),
            "services": list(stack.services),
            "logs": {name: str(path) for name, path in stack.log_paths().items()},
        }

    # ----------------------------------------------------------------- stack operations
    def _guarded(self) -> None:
        if self._closed:
            raise ChaosModelError("the stack owner is shutting down")

    def services_status(self) -> dict[str, Any]:
        return {name: self.service_status(name) for name in self.stack.services}

    def service_status(self, name: str) -> dict[str, Any]:
        service = self.stack.services.get(name)
        if service is None:
            raise NotFound(f"no service {name!r}; services: {', '.join(self.stack.services)}")
        return {
            "running": service.is_running(),
            "paused": service.is_paused(),
            "pid": service.process.pid,
        }

    def service_action(self, name: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        self.service_status(name)
        if action not in ACTIONS:
            raise NotFound(f"no action {action!r}; actions: {', '.join(ACTIONS)}")
        with self._lock:
            self._guarded()
            service = self.stack.services[name]
            if action == "wait_ready":
                timeout = body.get("timeout")
                service.wait_ready(None if timeout is None else float(timeout))
            else:
                getattr(service, action)()
            return self.service_status(name)

    def heal(self) -> list[str]:
        with self._lock:
            self._guarded()
            return self.stack.heal()

    def reset(self) -> float:
        with self._lock:
            self._guarded()
            return self.stack.reset()

    # ----------------------------------------------------------------- leases
    def put_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            pid = int(body["runner_pid"])
            ttl = min(MAX_TTL, max(0.1, float(body.get("ttl", 1.0))))
        except (KeyError, TypeError, ValueError) as error:
            raise BadRequest("a lease needs an integer 'runner_pid' and a numeric 'ttl'") from error
        faults = _parse_faults(body.get("faults", []))
        with self._leases_lock:
            lease = self._leases.get(pid)
            if lease is None:
                lease = self._leases[pid] = Lease(pid, ttl, 0.0)
            lease.ttl = ttl
            lease.expires = time.monotonic() + ttl
            lease.faults = faults
            listed = {(f["kind"], f["applied_at"]) for f in faults}
            lease.expired &= listed
            return {"ok": True, "expired": sorted([kind, at] for kind, at in lease.expired)}

    def release_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._leases_lock:
            if "runner_pid" in body:
                try:
                    pids = [int(body["runner_pid"])]
                except (TypeError, ValueError) as error:
                    raise BadRequest("'runner_pid' must be an integer") from error
            else:
                pids = list(self._leases)
            released = []
            for pid in pids:
                lease = self._leases.pop(pid, None)
                if lease is None:
                    continue
                released.append(pid)
                open_faults = [
                    f for f in lease.faults if (f["kind"], f["applied_at"]) not in lease.expired
                ]
                if open_faults:
                    kinds = ", ".join(f["kind"] for f in open_faults)
                    self._pending.append(
                        f"runner {pid} released its lease with fault(s) still recorded: {kinds}"
                    )
            return {"released": released, "healing": bool(self._pending)}

    def leases(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._leases_lock:
            return {
                "leases": [lease.as_json(now) for lease in self._leases.values()],
                "watchdog_heals": self.watchdog_heals,
                "last_heal": self.last_heal,
            }

    # ----------------------------------------------------------------- the watchdog
    def _watchdog(self) -> None:
        while not self._stopping.wait(WATCHDOG_PERIOD):  # a period, not a synchronisation
            reasons = self._due()
            if reasons:
                self._watchdog_heal(reasons)

    def _due(self) -> list[str]:
        now, wall = time.monotonic(), time.time()
        reasons: list[str] = []
        with self._leases_lock:
            for pid, lease in list(self._leases.items()):
                if now > lease.expires:
                    del self._leases[pid]
                    kinds = ", ".join(f["kind"] for f in lease.faults) or "none"
                    reasons.append(
                        f"the lease of runner {pid} lapsed (no heartbeat for {lease.ttl:g}s;"
                        f" faults recorded: {kinds})"
                    )
                    continue
                for fault in lease.faults:
                    key = (fault["kind"], fault["applied_at"])
                    if key not in lease.expired and wall - key[1] > fault["max_seconds"]:
                        lease.expired.add(key)
                        reasons.append(
                            f"the {fault['kind']} fault of runner {pid} outlived its"
                            f" {fault['max_seconds']:g}s"
                        )
            if self._pending and now >= self._retry_at:
                reasons += self._pending
                self._pending = []
        return reasons

    def _watchdog_heal(self, reasons: list[str]) -> None:
        why = "; ".join(reasons)
        try:
            with self._lock:
                if self._closed:
                    return
                healed = self.stack.heal()
        except Exception as error:  # noqa: BLE001 - retried; the owner must keep watching
            self.log(f"watchdog: heal failed ({_first_line(error)}); retrying; because {why}")
            with self._leases_lock:
                self._pending = reasons + self._pending
                self._retry_at = time.monotonic() + HEAL_RETRY_SECONDS
            return
        line = f"watchdog healed {', '.join(healed) or 'nothing (already healthy)'}; because {why}"
        with self._leases_lock:
            self.watchdog_heals += 1
            self.last_heal = line
        self.log(line)


def _handler(owner: StackOwner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "chaos-model-stack"

        def log_message(self, format: str, *args: Any) -> None:
            return None  # one line per heal is the owner's log; requests are not logged

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw.strip():
                return {}
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise BadRequest(f"the body is not JSON: {error}") from error
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            return body

        def _route(self, method: str) -> Any:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            body = self._body()
            if method == "GET" and path == "/":
                return owner.descriptor()
            if method == "GET" and path == "/services":
                return {"services": owner.services_status()}
            if method == "GET" and path == "/leases":
                return owner.leases()
            if method == "POST" and path == "/heal":
                return {"healed": owner.heal()}
            if method == "POST" and path == "/reset":
                return {"seconds": owner.reset()}
            if path == "/lease" and method == "POST":
                return owner.put_lease(body)
            if path == "/lease" and method == "DELETE":
                return owner.release_lease(body)
            match = SERVICE_ROUTE.match(path)
            if match is not None:
                name, action = match["name"], match["action"]
                if method == "GET" and action is None:
                    return owner.service_status(name)
                if method == "POST" and action is not None:
                    return owner.service_action(name, action, body)
            raise NotFound(f"no route {method} {path}")

        def _dispatch(self, method: str) -> None:
            try:
                status, payload = HTTPStatus.OK, self._route(method)
            except BadRequest as error:
                status, payload = HTTPStatus.BAD_REQUEST, {"error": str(error)}
            except NotFound as error:
                status, payload = HTTPStatus.NOT_FOUND, {"error": str(error)}
            except ChaosModelError as error:
                status = HTTPStatus.CONFLICT
                payload = {"error": str(error), "type": type(error).__name__}
                for attribute in ("service", "fault", "backend"):
                    if isinstance(getattr(error, attribute, None), str):
                        payload[attribute] = getattr(error, attribute)
            except Exception as error:  # noqa: BLE001 - the answer names it; the server lives on
                status = HTTPStatus.INTERNAL_SERVER_ERROR
                payload = {"error": f"{type(error).__name__}: {error}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
