"""Healing that cannot be skipped: a runner attached to a stack owned by ``chaos-model stack up``
dies (SIGKILL) with a fault applied, and the owner's watchdog heals the stack anyway.

Everything is real: the owner is the CLI in a subprocess, each runner is a Python subprocess
driving a :class:`RemoteStack` over the control API, and "healthy" means the API is ready and a
Telegram update posted to the webhook reaches ``extracted``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from chaos_model._wait import wait_until
from chaos_model.faults import ArmFailpoint, Fault, KillService, PauseService
from chaos_model.telegram import SECRET_HEADER, message_update

pytestmark = pytest.mark.slow

HEAL_BUDGET = 10.0  # seconds from the runner's death to a healthy, processing stack
WEBHOOK_PATH = "/api/v1/telegram/webhook"

RUNNER = """
import json, sys, threading
from chaos_model.faults import fault_from_json
from chaos_model.lease import RemoteStack

stack = RemoteStack.from_state_file(sys.argv[1])
stack.start_heartbeat()
fault = fault_from_json(json.loads(sys.argv[2]))
stack.fault_applied(fault.to_json(), float(sys.argv[3]))
fault.apply(stack)
print("applied", flush=True)
threading.Event().wait()
"""

FAULTS: list[Fault] = [
    PauseService("nats"),
    PauseService("postgres"),
    KillService("worker"),
    PauseService("worker"),
    ArmFailpoint("worker.score.after_llm_before_commit", "crash"),
    KillService("nats"),
]

_update_ids = itertools.count(int(time.time()) % 10**6 * 1000)


class Owner:
    """``chaos-model stack up --state-file`` in a subprocess, and a client of its control API."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_file = tmp_path / "stack.json"
        self.log_path = tmp_path / "owner.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos_model.cli",
                    "stack",
                    "up",
                    "--state-file",
                    str(self.state_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.descriptor: dict[str, Any] = wait_until(
            self._read_descriptor, timeout=90, what="the owner's state file", on_timeout=self.log
        )
        self.http = httpx.Client(base_url=self.descriptor["control_url"], timeout=5.0)
        self.endpoints: dict[str, str] = self.descriptor["endpoints"]

    def _read_descriptor(self) -> dict[str, Any] | None:
        assert self.process.poll() is None, f"the owner exited early:\n{self.log()}"
        if not self.state_file.exists():
            return None
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def heals(self) -> int:
        count: int = self.http.get("/leases").json()["watchdog_heals"]
        return count

    def wait_heal(self, *, after: int, what: str) -> None:
        wait_until(
            lambda: self.heals() > after,
            timeout=HEAL_BUDGET,
            what=f"the watchdog to heal {what}",
            on_timeout=self.log,
        )

    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self.http.get("/services").json()["services"]
        return services

    def healthy(self, deadline: float) -> None:
        """Assert, before ``deadline``, that the API is ready and a fresh update is extracted."""
        api = self.endpoints["api_url"]

        def ready() -> bool:
            return httpx.get(f"{api}/health/ready", timeout=1.0).status_code == 200

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        wait_until(ready, timeout=left(), what="/health/ready to be 200")
        update_id = next(_update_ids)
        update = message_update(update_id, 4242, f"dead-man check {update_id}")
        headers = {SECRET_HEADER: self.endpoints["webhook_secret"]}

        def accepted() -> bool:
            url = f"{api}{WEBHOOK_PATH}"
            return httpx.post(url, json=update, headers=headers, timeout=2.0).is_success

        wait_until(accepted, timeout=left(), what="the webhook to accept")

        def extracted() -> bool:
            response = httpx.get(
                f"{api}/api/v1/messages", params={"after_id": 0, "limit": 1000}, timeout=1.0
            )
            return any(
                m["update_id"] == update_id and m["stage"] == "extracted"
                for m in response.json()["messages"]
            )

        wait_until(
            extracted,
            timeout=left(),
            what=f"update {update_id} to reach extracted",
            on_timeout=lambda: f"services: {self.services()}\n{self.log()}",
        )


@contextlib.contextmanager
def runner(owner: Owner, fault: Fault, tmp_path: Path, max_seconds: float) -> Iterator[Any]:
    """A runner subprocess that applied ``fault`` (it printed "applied") and now just blocks."""
    out = tmp_path / f"runner-{time.monotonic_ns()}.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUNNER,
                str(owner.state_file),
                json.dumps(fault.to_json()),
                str(max_seconds),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def applied() -> bool:
            assert process.poll() is None, out.read_text()
            return "applied" in out.read_text()

        wait_until(applied, timeout=30, what=f"the runner to apply {fault.describe()}")
        yield process
    finally:
        process.kill()
        process.wait()


def _stack_processes(stack_dir: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose command line or environment names the stack folder."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(stack_dir in part for part in proc.cmdline()) or any(
                stack_dir in value for value in proc.environ().values()
            ):
                found.append(proc)
    return found


def test_the_watchdog_heals_what_a_dead_runner_left(tmp_path: Path) -> None:
    owner = Owner(tmp_path)
    stack_dir = owner.descriptor["stack_dir"]
    try:
        assert owner.descriptor["started_by"] == "chaos-model"
        owner.healthy(time.monotonic() + HEAL_BUDGET)

        for round_ in range(10):
            fault = FAULTS[round_ % len(FAULTS)]
            heals = owner.heals()
            with runner(owner, fault, tmp_path, max_seconds=60) as process:
                process.send_signal(signal.SIGKILL)
                process.wait()
                died = time.monotonic()
            owner.wait_heal(after=heals, what=f"{fault.describe()} (round {round_})")
            owner.healthy(died + HEAL_BUDGET)
            print(f"{fault.describe()}: healthy {time.monotonic() - died:.1f}s after the SIGKILL")
            assert not any(s["paused"] for s in owner.services().values())

        # A fault outliving its max_seconds is healed while its runner is still alive.
        heals = owner.heals()
        with runner(owner, PauseService("nats"), tmp_path, max_seconds=1) as process:
            applied = time.monotonic()
            wait_until(
                lambda: owner.heals() > heals and not owner.services()["nats"]["paused"],
                timeout=HEAL_BUDGET,
                what="the watchdog to heal the NATS pause that outlived 1 s",
                on_timeout=owner.log,
            )
            assert process.poll() is None, "the runner died: this heal proves nothing"
            owner.healthy(applied + HEAL_BUDGET)
            assert "outlived its 1s" in owner.http.get("/leases").json()["last_heal"]
            lease = owner.http.get("/leases").json()["leases"]
            assert [entry["runner_pid"] for entry in lease] == [process.pid]
    finally:
        pids = [s["pid"] for s in owner.services().values() if s.get("pid")]
        owner.http.close()
        owner.process.send_signal(signal.SIGINT)
        try:
            owner.process.wait(timeout=60)
        finally:
            if owner.process.poll() is None:
                owner.process.kill()
    assert owner.process.returncode == 0, owner.log()
    assert not owner.state_file.exists()
    assert "watchdog healed" in owner.log()

    def gone() -> bool:
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        zombies_only = all(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in alive)
        return zombies_only and not _stack_processes(stack_dir)

    wait_until(gone, timeout=10, what="every process of the stack to be gone")
    assert not Path(stack_dir).exists()
