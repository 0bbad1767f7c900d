"""Faults as data: JSON round trip, validation, immutability and the unsupported-fault error."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chaos_model.errors import ChaosModelError, UnsupportedFault
from chaos_model.faults import (
    REGISTRY,
    ArmFailpoint,
    Fault,
    KillService,
    LatencyRamp,
    LLMFault,
    NetworkToxic,
    NoFault,
    Partition,
    PauseService,
    PointFault,
    RefuseConnections,
    StopService,
    TerminateConnections,
    fault_from_json,
)
from chaos_model.faults.llm import MODES

#: at least one example per registered kind, with non-default values where there are fields
EXAMPLES: list[Fault] = [
    NoFault(),
    PauseService("postgres"),
    KillService("nats"),
    TerminateConnections(),
    LLMFault("rate_limit"),
    LLMFault("hang", seconds=None, calls=3, retry_after=2.5, delay=0.1),
    ArmFailpoint("worker.score.after_llm_before_commit"),
    ArmFailpoint("api.webhook.after_commit_before_response", action="hang", count=2),
    StopService("postgres"),
    PointFault("worker", "score_message_task > run_stage > work: asyncpg.execute COMMIT"),
    PointFault("api", "handle: nats.js.publish pipeline.tasks", "before", "raise", 2, "tasks"),
    RefuseConnections(),
    Partition("api->postgres"),
    LatencyRamp("worker->llm", latency_ms=500, ramp_seconds=1.5),
    NetworkToxic(
        "worker->llm",
        {"type": "latency", "stream": "downstream", "toxicity": 0.5, "attributes": {"latency": 10}},
    ),
]


def _id(fault: Fault) -> str:
    return fault.describe()


def test_every_registered_kind_has_an_example() -> None:
    assert {type(fault).kind for fault in EXAMPLES} == set(REGISTRY)
    for kind, cls in REGISTRY.items():
        assert cls.kind == kind
        assert issubclass(cls, Fault)


@pytest.mark.parametrize("fault", EXAMPLES, ids=_id)
def test_json_round_trip(fault: Fault) -> None:
    data = fault.to_json()
    assert data["kind"] == fault.kind
    text = json.dumps(data)
    again = fault_from_json(json.loads(text))
    assert again == fault
    assert type(again) is type(fault)
    assert again.to_json() == data


@pytest.mark.parametrize("fault", EXAMPLES, ids=_id)
def test_fault_from_json_does_not_mutate_its_input(fault: Fault) -> None:
    data = fault.to_json()
    copy = dict(data)
    fault_from_json(data)
    assert data == copy


@pytest.mark.parametrize("fault", EXAMPLES, ids=_id)
def test_faults_are_frozen(fault: Fault) -> None:
    names = [field.name for field in dataclasses.fields(fault)] or ["anything"]
    for name in names:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fault, name, "changed")


def test_to_json_shapes() -> None:
    assert NoFault().to_json() == {"kind": "noop"}
    assert PauseService("api").to_json() == {"kind": "pause", "service": "api"}
    assert ArmFailpoint("x").to_json() == {
        "kind": "failpoint",
        "name": "x",
        "action": "crash",
        "count": 1,
    }
    assert LLMFault("slow").to_json() == {
        "kind": "llm",
        "mode": "slow",
        "seconds": 2.0,
        "calls": None,
        "retry_after": 1.0,
        "delay": 0.5,
    }
    narrowed = LLMFault("overloaded", calls=2, provider="anthropic", tool="record_facts")
    assert narrowed.to_json() == {
        "kind": "llm",
        "mode": "overloaded",
        "seconds": 2.0,
        "calls": 2,
        "retry_after": 1.0,
        "delay": 0.5,
        "tool": "record_facts",
        "provider": "anthropic",
    }
    assert fault_from_json(narrowed.to_json()) == narrowed


def test_describe() -> None:
    assert PauseService("api").describe() == "pause(service='api')"
    assert NoFault().describe() == "noop()"


def test_instant_faults() -> None:
    instant = {kind for kind, cls in REGISTRY.items() if cls.instant}
    assert instant == {"noop", "terminate_connections"}


@pytest.mark.parametrize(
    "data",
    [{"kind": "meteor"}, {"kind": None}, {}, {"kind": "Pause", "service": "api"}],
    ids=["unknown", "none", "missing", "wrong-case"],
)
def test_fault_from_json_rejects_unknown_kind(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown fault kind") as raised:
        fault_from_json(data)
    message = str(raised.value)
    for kind in REGISTRY:
        assert kind in message


@pytest.mark.parametrize("mode", MODES)
def test_llm_fault_accepts_every_mode(mode: str) -> None:
    assert LLMFault(mode).mode == mode


@pytest.mark.parametrize("mode", ["bogus", "", "RATE_LIMIT"])
def test_llm_fault_rejects_unknown_mode(mode: str) -> None:
    with pytest.raises(ValueError, match="LLM fault mode must be one of") as raised:
        LLMFault(mode)
    assert repr(mode) in str(raised.value)
    with pytest.raises(ValueError, match="LLM fault mode"):
        fault_from_json({"kind": "llm", "mode": mode})


class _Untouchable:
    """Fails the test on any attribute access: proves a fault never looks at the stack."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__"):  # pytest itself inspects parameters
            return object.__getattribute__(self, name)
        raise AssertionError(f"the stack was touched: {name}")


@pytest.mark.parametrize(
    "stack",
    [None, object(), 42, "stack", _Untouchable()],
    ids=["none", "object", "int", "str", "untouchable"],
)
def test_no_fault_does_nothing_on_anything(stack: Any) -> None:
    fault = NoFault()
    fault.apply(stack)
    fault.heal(stack)


class _StackWithoutFailpoints:
    """Stand-in for the error path only: a backend that exposes no failpoint file."""

    backend = "fake"


def test_arm_failpoint_on_a_stack_without_failpoints_is_unsupported() -> None:
    fault = ArmFailpoint("worker.score.after_llm_before_commit")
    with pytest.raises(UnsupportedFault) as raised:
        fault.apply(_StackWithoutFailpoints())  # type: ignore[arg-type]
    error = raised.value
    assert isinstance(error, ChaosModelError)
    assert (error.fault, error.backend) == ("failpoint", "fake")
    assert "failpoint" in str(error) and "fake" in str(error)
    with pytest.raises(UnsupportedFault, match="fake"):
        fault.heal(_StackWithoutFailpoints())  # type: ignore[arg-type]


def test_arm_failpoint_rejects_a_bad_action_before_touching_the_stack() -> None:
    with pytest.raises(ValueError, match="crash, hang or error"):
        ArmFailpoint("x", action="explode").apply(_StackWithoutFailpoints())  # type: ignore[arg-type]
