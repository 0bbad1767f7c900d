"""The driver an adapter names is the one the machine gets; a bad name is a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chaos_model.adapter import TargetSpec, load_adapter
from chaos_model.errors import AdapterError
from chaos_model.history import History
from chaos_model.stack import Endpoints
from chaos_model.target import SqlTarget, make_target

TOY = load_adapter(Path(__file__).parents[2] / "tests" / "toy_target" / "chaos-target.toml")


NOWHERE = Endpoints(
    database_url="postgresql://postgres@127.0.0.1:1/postgres",
    nats_url="nats://127.0.0.1:2",
    nats_monitor_url="http://127.0.0.1:3",
    api_url="http://127.0.0.1:4",
    llm_url="http://127.0.0.1:5",
    webhook_secret="s",
)


@dataclasses.dataclass
class _Unstarted:
    """Enough of a stack to build a driver: nothing is contacted until it is used."""

    target: TargetSpec
    backend: str = "none"
    endpoints: Endpoints = NOWHERE


def test_the_sql_driver_by_default() -> None:
    target = make_target(_Unstarted(TOY), History())  # type: ignore[arg-type]
    try:
        assert type(target) is SqlTarget
    finally:
        target.close()


def test_the_named_python_driver() -> None:
    from tests.toy_target.driver import CountingTarget

    spec = dataclasses.replace(TOY, driver="tests.toy_target.driver:CountingTarget")
    target = make_target(_Unstarted(spec), History())  # type: ignore[arg-type]
    try:
        assert isinstance(target, CountingTarget)
    finally:
        target.close()


def test_a_driver_that_cannot_be_loaded() -> None:
    spec = dataclasses.replace(TOY, driver="tests.toy_target.driver:Missing")
    with pytest.raises(AdapterError, match=r"target\.driver: cannot load 'tests.toy_target"):
        make_target(_Unstarted(spec), History())  # type: ignore[arg-type]
