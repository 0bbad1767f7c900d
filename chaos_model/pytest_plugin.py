"""The pytest plugin (entry point ``pytest11``): fixtures, options, profiles and the marker.

Fixtures: ``chaos_stack`` (session scope, started once, stopped at the end) and
``chaos_machine`` (the ChaosMachine class bound to that stack and to the command-line options).
Options: ``--chaos-backend``, ``--chaos-examples``, ``--chaos-steps``, ``--chaos-seed``,
``--chaos-profile``. Marker: ``chaos``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from chaos_model.machine import ChaosMachine
    from chaos_model.stack import Stack

PROFILES: dict[str, dict[str, int]] = {
    "dev": {"max_examples": 10, "stateful_step_count": 10},
    "ci": {"max_examples": 30, "stateful_step_count": 20},
    "nightly": {"max_examples": 500, "stateful_step_count": 40},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos-model", "chaos-model: stateful chaos testing")
    group.addoption(
        "--chaos-backend",
        default="local",
        choices=["local", "compose"],
        help="stack backend: local processes (default) or compose.test.yml under Docker",
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


@pytest.fixture(scope="session")
def chaos_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    from chaos_model.stack import ComposeStack, LocalStack

    if request.config.getoption("--chaos-backend") == "compose":
        with ComposeStack() as compose:
            yield compose
        return
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def chaos_machine(request: pytest.FixtureRequest, chaos_stack: Stack) -> type[ChaosMachine]:
    """A ChaosMachine class bound to ``chaos_stack``; run it with
    ``run_state_machine_as_test(chaos_machine, settings=chaos_machine.settings)``."""
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
    config = ChaosConfig(progress=False)
    machine = bind(chaos_stack, config, RunRecorder(progress=False))
    if option("--chaos-seed") is not None:
        machine = seed(option("--chaos-seed"))(machine)
    machine.settings = settings(profile, **overrides)
    return machine
