"""Options of the nightly chaos fuzz (``pytest nightly/``): lanes and a time budget."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos-model nightly")
    group.addoption(
        "--chaos-lanes",
        type=int,
        default=1,
        help="independent chaos runs (seeds) in this session: give each xdist worker one",
    )
    group.addoption(
        "--chaos-max-time",
        type=float,
        default=None,
        help="seconds each lane may generate examples for (shrinking a failure may add more)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_lane" in metafunc.fixturenames:
        lanes = max(1, int(metafunc.config.getoption("--chaos-lanes")))
        metafunc.parametrize("chaos_lane", range(lanes), ids=[f"lane{n}" for n in range(lanes)])
