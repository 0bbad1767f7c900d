"""The compose stack's guardian: brings the project down when its owner dies without stopping it.

Like :mod:`chaos_model.stack._guardian` (whose helpers it uses), it runs in a session of its own
and polls its parent. When the owner is gone, even after SIGKILL, it kills the host processes the
owner recorded (the fault proxy), unpauses the project's containers and runs ``compose down``
(containers, networks and volumes), then removes the stack folder. A normal
:meth:`ComposeStack.stop` dismisses it by deleting the state file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaos_model._wait import wait_until
from chaos_model.stack._guardian import (
    POLL_SECONDS,
    _owner_alive,
    _read_state,
    dismiss,
    kill_recorded,
)

STATE_FILE = "compose-guardian.json"
DOWN_SECONDS = 120
DOWN_ARGS = ("down", "-v", "--remove-orphans", "-t", "2")


def bring_down(
    project: str, command: Sequence[str], env: Mapping[str, str], file: str, cwd: str
) -> None:
    """Unpause every container of ``project``, run ``compose down -v`` (compose file ``file``,
    in folder ``cwd``), then remove whatever is still labelled with the project (a failed
    ``down`` must not leave anything running)."""
    from chaos_model.stack._docker import docker_client, project_containers

    client: Any = None
    with contextlib.suppress(Exception):
        client = docker_client()
        for container in project_containers(client, project):
            if container.status == "paused":
                container.unpause()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [*command, "-p", project, "-f", file, *DOWN_ARGS],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DOWN_SECONDS,
            check=False,
        )
    if client is None:
        return
    label = {"label": f"com.docker.compose.project={project}"}
    with contextlib.suppress(Exception):
        for container in project_containers(client, project):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=label):
            network.remove()
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
    client.close()


def guard(owner: int, state_path: Path) -> int:
    wait_until(
        lambda: not _owner_alive(owner) or not state_path.exists(),
        timeout=math.inf,
        what="the owner to exit or dismiss the guardian",
        interval=POLL_SECONDS,
        max_interval=POLL_SECONDS,
    )
    state = _read_state(state_path)
    if state is None:
        return 0
    killed = kill_recorded(state)
    bring_down(state["project"], state["command"], state["env"], state["file"], state["cwd"])
    print(
        f"guardian: owner {owner} is gone; killed {len(killed)} process(es),"
        f" brought compose project {state['project']} down",
        flush=True,
    )
    if state.get("dir") and not state.get("keep", False):
        shutil.rmtree(state["dir"], ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_model.stack._compose_guardian")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return guard(args.owner, args.state)


class ComposeGuardian:
    """The owner's handle: spawn the guardian, record what it must clean up, dismiss it."""

    def __init__(self, stack_dir: Path, state: Mapping[str, Any]) -> None:
        self.state_path = stack_dir / STATE_FILE
        self._state = {"owner": os.getpid(), "dir": str(stack_dir), **state, "services": {}}
        self._write()
        with (stack_dir / "logs" / "guardian.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos_model.stack._compose_guardian",
                    "--owner",
                    str(os.getpid()),
                    "--state",
                    str(self.state_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def record(self, pids: Mapping[str, int | None]) -> None:
        import psutil

        services: dict[str, dict[str, Any]] = {}
        for name, pid in pids.items():
            if pid is None:
                continue
            create_time: float | None = None
            with contextlib.suppress(psutil.Error):
                create_time = psutil.Process(pid).create_time()
            services[name] = {"pid": pid, "create_time": create_time}
        self._state["services"] = services
        self._write()

    def _write(self) -> None:
        tmp = self.state_path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(self._state))
        tmp.replace(self.state_path)

    def close(self) -> None:
        dismiss(self.process, self.state_path)


if __name__ == "__main__":
    raise SystemExit(main())
