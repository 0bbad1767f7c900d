"""A stack owned by another process (``chaos-model stack up``), driven over its control API.

``RemoteStack.from_state_file(path)`` reads the owner's descriptor. While it is in use a
heartbeat thread renews a lease on the owner every ~0.2 s, listing the faults currently applied
(:meth:`RemoteStack.fault_applied` / :meth:`RemoteStack.fault_healed`, which the chaos machine
calls). If this process dies, even by SIGKILL, the heartbeat stops and the owner's watchdog heals
the stack; a fault that outlives its ``max_seconds`` is healed too. :meth:`RemoteStack.stop`
releases the lease; it never stops the owner's stack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from chaos_model.adapter import TargetSpec, load_target
from chaos_model.errors import ServiceNotReady, StackError, UnsupportedFault
from chaos_model.failpoints import FailpointFile
from chaos_model.proxy import ProxyClient
from chaos_model.stack import Endpoints
from chaos_model.stack._base import Stoppable

HEARTBEAT_SECONDS = 0.2
LEASE_TTL = 1.0
DEFAULT_MAX_FAULT_SECONDS = 60.0
REQUEST_TIMEOUT = 10.0
SLOW_TIMEOUT = 120.0  # heal, reset, restart and wait_ready wait for services to be ready
REQUIRED_KEYS = ("control_url", "endpoints", "failpoints_file")


class RemoteService:
    """One service of a remote stack; every call is a request to the owner."""

    def __init__(self, stack: RemoteStack, name: str) -> None:
        self._stack = stack
        self.name = name

    def _status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._stack._request("GET", f"/services/{self.name}")
        return status

    def is_running(self) -> bool:
        return bool(self._status()["running"])

    def is_paused(self) -> bool:
        status = self._status()
        return bool(status["paused"] and status["running"])

    @property
    def pid(self) -> int | None:
        pid = self._status().get("pid")
        return None if pid is None else int(pid)

    def _act(self, action: str, body: dict[str, Any] | None = None, slow: bool = False) -> None:
        self._stack._request(
            "POST",
            f"/services/{self.name}/{action}",
            body,
            timeout=SLOW_TIMEOUT if slow else REQUEST_TIMEOUT,
        )

    def pause(self) -> None:
        self._act("pause")

    def resume(self) -> None:
        self._act("resume")

    def kill(self) -> None:
        self._act("kill", slow=True)

    def stop(self) -> None:
        self._act("stop", slow=True)

    def start(self) -> None:
        self._act("start")

    def restart(self) -> None:
        self._act("restart", slow=True)

    def wait_ready(self, timeout: float | None = None) -> None:
        self._act("wait_ready", {"timeout": timeout}, slow=True)


class RemoteStack(Stoppable):
    """The Stack protocol over the control API of a stack another process owns."""

    backend = "remote"

    def __init__(self, descriptor: Mapping[str, Any], *, path: Path | None = None) -> None:
        missing = [key for key in REQUIRED_KEYS if key not in descriptor]
        if missing:
            where = f"{path}: " if path is not None else ""
            raise StackError(f"{where}not a chaos-model stack descriptor (missing {missing[0]!r})")
        self.descriptor = dict(descriptor)
        self.path = path
        self.control_url: str = str(descriptor["control_url"]).rstrip("/")
        self.started_by: str | None = descriptor.get("started_by")
        known = {f.name for f in dataclasses.fields(Endpoints)}
        try:
            self._endpoints = Endpoints(
                **{  # type: ignore[arg-type]
                    k: dict(v) if isinstance(v, dict) else str(v)
                    for k, v in descriptor["endpoints"].items()
                    if k in known
                }
            )
        except (TypeError, AttributeError) as error:
            raise StackError(f"{path}: the descriptor's endpoints are incomplete") from error
        names = descriptor.get("services") or []
        self._services = {str(name): RemoteService(self, str(name)) for name in names}
        self._http = httpx.Client(timeout=REQUEST_TIMEOUT)
        self._beat_http = httpx.Client(timeout=REQUEST_TIMEOUT)
        self.runner_pid = os.getpid()
        self.lease_ttl = LEASE_TTL
        self._faults: list[dict[str, Any]] = []
        self._faults_lock = threading.Lock()
        self._beat_lock = threading.Lock()
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._proxy: ProxyClient | None = None
        self.last_heartbeat_error: str | None = None

    @classmethod
    def from_state_file(cls, path: str | os.PathLike[str], *, check: bool = True) -> RemoteStack:
        """Read the descriptor ``chaos-model stack up`` wrote; with ``check``, ask the owner."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as error:
            raise StackError(
                f"{path}: no such stack descriptor (start one with `chaos-model stack up`)"
            ) from error
        except OSError as error:
            raise StackError(f"{path}: cannot read it ({error.strerror})") from error
        except ValueError as error:
            raise StackError(f"{path}: not a chaos-model stack descriptor (not JSON)") from error
        if not isinstance(data, dict):
            raise StackError(f"{path}: not a chaos-model stack descriptor")
        stack = cls(data, path=path)
        if check:
            stack.check()
        return stack

    def check(self) -> None:
        """Raise :class:`StackError` unless the owner answers."""
        try:
            self._http.get(f"{self.control_url}/services", timeout=5.0).raise_for_status()
        except httpx.HTTPError as error:
            owner = self.descriptor.get("owner_pid", "?")
            raise StackError(
                f"the stack owner (pid {owner}) does not answer at {self.control_url}"
                f" ({type(error).__name__}); is `chaos-model stack up` still running?"
            ) from error

    # ----------------------------------------------------------------- the Stack protocol
    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    @property
    def services(self) -> Mapping[str, RemoteService]:
        return self._services

    @functools.cached_property
    def target(self) -> TargetSpec:
        """The adapter of the owner's stack (read when first needed: the guard goes first)."""
        return load_target(self.descriptor.get("target"))

    @property
    def failpoints(self) -> FailpointFile:
        return FailpointFile(self.descriptor["failpoints_file"])

    @property
    def proxy(self) -> ProxyClient | None:
        """A client of the owner's fault proxy (its control API is on loopback too)."""
        if self._proxy is None and self._endpoints.proxy_url:
            self._proxy = ProxyClient(self._endpoints.proxy_url, timeout=5.0)
        return self._proxy

    def log_paths(self) -> dict[str, Path]:
        return {name: Path(p) for name, p in (self.descriptor.get("logs") or {}).items()}

    def heal(self) -> list[str]:
        """Heal every fault on the owner's stack; nothing stays recorded in the lease."""
        healed: list[str] = self._request("POST", "/heal", timeout=SLOW_TIMEOUT)["healed"]
        with self._faults_lock:
            self._faults.clear()
        self._beat_quietly()
        return healed

    def reset(self) -> float:
        seconds: float = self._request("POST", "/reset", timeout=SLOW_TIMEOUT)["seconds"]
        with self._faults_lock:  # reset heals first
            self._faults.clear()
        self._beat_quietly()
        return seconds

    def stop(self) -> None:
        """Release the lease (the owner heals what is still recorded); the stack keeps running."""
        self._stopping.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        with contextlib.suppress(httpx.HTTPError):
            self._http.request(
                "DELETE", f"{self.control_url}/lease", json={"runner_pid": self.runner_pid}
            )
        self._http.close()
        self._beat_http.close()

    def start(self) -> None:
        """Take the lease (what entering the context manager does)."""
        self.start_heartbeat()

    # ----------------------------------------------------------------- lease and heartbeat
    def start_heartbeat(self) -> None:
        """Take the lease now and renew it every ~0.2 s from a daemon thread."""
        if self._heartbeat is not None:
            return
        self._beat()
        self._stopping.clear()
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="chaos-model-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def fault_applied(
        self, fault_json: Mapping[str, Any], max_seconds: float = DEFAULT_MAX_FAULT_SECONDS
    ) -> None:
        """Record a fault in the lease before it is applied; the owner knows it at once."""
        entry = {
            "kind": str(fault_json.get("kind", "fault")),
            "applied_at": time.time(),
            "max_seconds": float(max_seconds),
            "fault": dict(fault_json),
        }
        with self._faults_lock:
            self._faults.append(entry)
        if self._heartbeat is None:
            self.start_heartbeat()
        else:
            self._beat()

    def fault_healed(self, fault_json: Mapping[str, Any]) -> None:
        """Forget a healed fault (the first recorded one equal to ``fault_json``)."""
        with self._faults_lock:
            for index, entry in enumerate(self._faults):
                if entry["fault"] == dict(fault_json):
                    del self._faults[index]
                    break
        self._beat_quietly()

    @property
    def active_faults(self) -> list[dict[str, Any]]:
        with self._faults_lock:
            return [dict(entry) for entry in self._faults]

    def _beat(self) -> None:
        with self._beat_lock:  # snapshot and send in one go: no stale list overtakes a new one
            with self._faults_lock:
                faults = [dict(entry) for entry in self._faults]
            body = {"runner_pid": self.runner_pid, "ttl": self.lease_ttl, "faults": faults}
            try:
                response = self._beat_http.post(f"{self.control_url}/lease", json=body)
            except httpx.HTTPError as error:
                raise StackError(
                    f"cannot renew the lease at {self.control_url}: {type(error).__name__}"
                ) from error
        if response.is_error:
            raise StackError(f"the owner refused the lease: {response.text}")
        expired = {tuple(item) for item in response.json().get("expired", [])}
        if expired:  # the watchdog healed these already: stop reporting them
            with self._faults_lock:
                self._faults = [
                    e for e in self._faults if (e["kind"], e["applied_at"]) not in expired
                ]

    def _beat_quietly(self) -> None:
        if self._heartbeat is None:
            return  # no lease taken: nothing to renew
        try:
            self._beat()
            self.last_heartbeat_error = None
        except StackError as error:
            self.last_heartbeat_error = str(error)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):  # a period, not a synchronisation
            self._beat_quietly()

    # ----------------------------------------------------------------- requests
    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                f"{self.control_url}{path}",
                json=dict(body) if body is not None else None,
                timeout=timeout,
            )
        except httpx.HTTPError as error:
            raise StackError(
                f"{method} {path} on the stack owner at {self.control_url} failed:"
                f" {type(error).__name__}: {error}"
            ) from error
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text}
        if response.is_error:
            raise _remote_error(
                payload,
                f"{method} {path}: the stack owner answered {response.status_code}:"
                f" {payload.get('error', payload)}",
            )
        return payload


def _remote_error(payload: dict[str, Any], message: str) -> StackError | UnsupportedFault:
    """The owner's error as the exception a local stack would have raised (same class)."""
    kind = payload.get("type")
    if kind == "ServiceNotReady":
        not_ready = ServiceNotReady.__new__(ServiceNotReady)
        Exception.__init__(not_ready, message)
        not_ready.service = str(payload.get("service", ""))
        return not_ready
    if kind == "UnsupportedFault":
        unsupported = UnsupportedFault.__new__(UnsupportedFault)
        Exception.__init__(unsupported, message)
        unsupported.fault = str(payload.get("fault", ""))
        unsupported.backend = str(payload.get("backend", ""))
        return unsupported
    return StackError(message)
