"""How a service of the target is launched: its command, environment and folder, built in one
place for every backend.

:func:`service_launch` renders a service's command and the environment its adapter gives it; a
backend adds only what is its own (the stack folder a local stack marks its processes with). A
:class:`Launch` is data: an attached stack hands it to its guardian, which starts the service
again the same way should the runner die mid-fault.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos_model.adapter import ServiceSpec, TargetSpec
from chaos_model.adapter._probes import LAUNCH_HEADER
from chaos_model.errors import StackError
from chaos_model.points import boot_environment, is_python_command, telegram_environment
from chaos_model.stack._guardian import replace_text


@dataclass(frozen=True)
class Launch:
    """One service's start: ``argv`` run in ``cwd`` with ``env`` added to the caller's
    environment, its output appended to ``log``; with ``pid_file``, detached, its pid written
    there (a service of a system chaos-model attached to)."""

    name: str
    argv: tuple[str, ...]
    cwd: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    log: str = ""
    pid_file: str = ""

    @property
    def booted(self) -> bool:
        """It starts with the fault-point bootstrap."""
        return "CHAOS_MODEL_POINTS" in self.env

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    @property
    def log_path(self) -> Path:
        return Path(self.log or os.devnull)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "argv": list(self.argv), "env": dict(self.env)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Launch:
        return cls(**{**data, "argv": tuple(data["argv"]), "env": dict(data.get("env") or {})})

    def start(self, user: str | None = None) -> subprocess.Popen[bytes]:
        """Start the service in a session of its own (signals to the runner's process group do
        not reach it), as ``user`` if given; write its pid file if it has one."""
        with self.log_path.open("ab") as log:
            log.write(f"{LAUNCH_HEADER}{self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.cwd or None,
                start_new_session=True,
                user=user,
                group=user,
            )
        if self.pid_file:
            replace_text(Path(self.pid_file), f"{popen.pid}\n")
        return popen


def service_launch(
    target: TargetSpec,
    name: str | None,
    render: Callable[[str, str], str],
    *,
    command: Sequence[str] | None = None,
    command_key: str = "command",
    extra_env: Mapping[str, str] | None = None,
    log: str = "",
    pid_file: str = "",
    points: Path | None = None,
) -> Launch:
    """The launch of service ``name`` (the migration when None): ``command`` (default: the
    service's own) and the environment the adapter gives it, rendered by ``render(key,
    template)`` (the key names where it comes from, for an error), plus ``extra_env``.

    With ``points`` (a stack's point control folder), a Python service gets the bootstrap that
    makes every I/O call of it a fault point (unless its adapter says ``points = false``)."""
    spec = target.services[name] if name is not None else None
    where = f"services.{name}" if name is not None else "database.migrate"
    if command is None:
        command = spec.command if spec is not None else target.migrate
    if command is None:
        raise StackError(
            f"{target.source}: {where}.{command_key}: missing; a local stack starts every"
            " service (or attach to a running system with --attach-target)"
        )
    env = {key: render(f"env.{key} (for {where})", v) for key, v in target.env.items()}
    if spec is not None:
        env.update({key: render(f"{where}.env.{key}", v) for key, v in spec.env.items()})
    env.update(extra_env or {})
    argv = tuple(render(f"{where}.{command_key}", arg) for arg in command)
    if points is not None and spec is not None and booted(spec, argv):
        packages, functions = spec.points.packages, spec.points.functions
        env.update(
            boot_environment(points, spec.name, env, app_packages=packages, functions=functions)
        )
    if spec is not None and "telegram" in spec.uses and is_python_command(argv):
        env.update(telegram_environment(env, render(f"{where}.uses", "{bot_api_url}")))
    cwd = str(target.root.resolve())
    return Launch(name or "migrate", argv, cwd=cwd, env=env, log=log, pid_file=pid_file)


def booted(spec: ServiceSpec, argv: Sequence[str]) -> bool:
    """Whether a service gets fault points: as its adapter says, else when it runs Python."""
    enabled = spec.points.enabled
    return is_python_command(argv) if enabled is None else enabled
