"""The pytest plugin (entry point ``pytest11``): fixtures, options, profiles and the marker.

Fixtures: ``chaos_stack`` (session scope, started once, stopped at the end) and
``chaos_machine`` (the ChaosMachine class bound to that stack and to the command-line options).
Options: ``--chaos-backend``, ``--chaos-examples``, ``--chaos-steps``, ``--chaos-seed``,
``--chaos-profile``, ``--chaos-failures-dir``, ``--chaos-shared-db``. Marker: ``chaos``.

Under pytest-xdist every worker is its own process with its own session stack; each worker
starts its stacks on its own slice of the port range, so stacks never race for a port, and
saves failures under ``<failures dir>/<worker id>/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hypothesis.database import ExampleDatabase

    from chaos_model.machine import ChaosMachine
    from chaos_model.stack import Stack

PROFILES: dict[str, dict[str, int]] = {
    "dev": {"max_examples": 10, "stateful_step_count": 10},
    "ci": {"max_examples": 30, "stateful_step_count": 20},
    "nightly": {"max_examples": 500, "stateful_step_count": 40},
}
#: the artifact the nightly workflow publishes its merged example database as
SHARED_DB_ARTIFACT = "chaos-model-example-db"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos-model", "chaos-model: stateful chaos testing")
    group.addoption(
        "--chaos-backend",
        default="local",
        choices=["local", "compose"],
        help="stack backend: local processes (default) or compose.test.yml under Docker",
    )
    group.addoption(
        "--chaos-target",
        default=None,
        metavar="FILE",
        help="the adapter of the system under test (default $CHAOS_MODEL_TARGET, else"
        " ./chaos-target.toml)",
    )
    group.addoption("--chaos-examples", type=int, default=None, help="examples per chaos test")
    group.addoption("--chaos-steps", type=int, default=None, help="steps per example")
    group.addoption("--chaos-seed", type=int, default=None, help="seed for reproducible runs")
    group.addoption(
        "--chaos-profile",
        default="dev",
        choices=sorted(PROFILES),
        help="Hypothesis settings profile for chaos tests (default dev)",
    )
    group.addoption(
        "--chaos-failures-dir",
        default="chaos-failures",
        help="where failing examples are saved (default chaos-failures; per xdist worker below)",
    )
    group.addoption(
        "--chaos-shared-db",
        default=None,
        metavar="OWNER/REPO",
        help="also read (never write) the example database the nightly workflow of OWNER/REPO"
        f" publishes as the {SHARED_DB_ARTIFACT} artifact (needs GITHUB_TOKEN if private)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a chaos test against a real stack")
    from hypothesis import HealthCheck, settings

    for name, values in PROFILES.items():
        settings.register_profile(
            f"chaos-{name}",
            deadline=None,
            suppress_health_check=list(HealthCheck),
            **values,  # type: ignore[arg-type]
        )
    _shared_database(config.getoption("--chaos-shared-db"))  # a bad value is a usage error now
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        _reserve_port_band(worker, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def _reserve_port_band(worker: str, workers: int) -> None:
    """Let this xdist worker's stacks take ports only from its own slice of the range."""
    from chaos_model.stack import _ports

    low, _ = _ports.ephemeral_range()
    floor = _ports.PORT_FLOOR
    span = max(1, (low - floor) // max(1, workers))
    index = int(worker.removeprefix("gw") or 0) % max(1, workers)
    start = floor + index * span
    _ports.handed_out.update(
        port for port in range(floor, max(low, floor + 1001)) if not start <= port < start + span
    )


def _shared_database(spec: str | None) -> ExampleDatabase | None:
    """Local examples plus, read-only, those the nightly workflow published on GitHub."""
    if spec is None:
        return None
    owner, _, repo = spec.partition("/")
    if not owner or not repo or "/" in repo:
        raise pytest.UsageError(f"--chaos-shared-db takes OWNER/REPO, not {spec!r}")
    from hypothesis import settings
    from hypothesis.database import (
        GitHubArtifactDatabase,
        MultiplexedDatabase,
        ReadOnlyDatabase,
    )

    local = settings().database
    shared = ReadOnlyDatabase(GitHubArtifactDatabase(owner, repo, artifact_name=SHARED_DB_ARTIFACT))
    return MultiplexedDatabase(local, shared) if local is not None else shared


@pytest.fixture(scope="session")
def chaos_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    from chaos_model.adapter import load_target
    from chaos_model.stack import ComposeStack, LocalStack

    target = load_target(request.config.getoption("--chaos-target"))
    if request.config.getoption("--chaos-backend") == "compose":
        with ComposeStack(target) as compose:
            yield compose
        return
    with LocalStack(target) as stack:
        yield stack


@pytest.fixture
def chaos_machine(request: pytest.FixtureRequest, chaos_stack: Stack) -> type[ChaosMachine]:
    """A ChaosMachine class bound to ``chaos_stack``; run it with
    ``run_state_machine_as_test(chaos_machine, settings=chaos_machine.TestCase.settings)``."""
    from hypothesis import seed, settings

    from chaos_model.config import ChaosConfig
    from chaos_model.guard import ensure_injectable
    from chaos_model.machine import bind
    from chaos_model.recorder import RunRecorder

    ensure_injectable(chaos_stack)
    option = request.config.getoption
    profile = settings.get_profile(f"chaos-{option('--chaos-profile')}")
    overrides: dict[str, Any] = {}
    if option("--chaos-examples") is not None:
        overrides["max_examples"] = option("--chaos-examples")
    if option("--chaos-steps") is not None:
        overrides["stateful_step_count"] = option("--chaos-steps")
    failures_dir = Path(option("--chaos-failures-dir"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        failures_dir = failures_dir / worker
    database = _shared_database(option("--chaos-shared-db"))
    if database is not None:
        overrides["database"] = database
    config = ChaosConfig(progress=False, failures_dir=failures_dir)
    machine = bind(chaos_stack, config, RunRecorder(progress=False, failures_dir=failures_dir))
    if option("--chaos-seed") is not None:
        machine = seed(option("--chaos-seed"))(machine)
    # Hypothesis refuses ``machine.settings = ...`` on a state machine class: its settings
    # live on ``machine.TestCase.settings``, which the decorator form sets.
    decorated: type[ChaosMachine] = settings(profile, **overrides)(machine)
    return decorated
