"""The nightly chaos fuzz: the chaos model as a pytest test, one lane per xdist worker.

    pytest nightly -p xdist -n 2 --chaos-lanes 2 --chaos-profile nightly --chaos-seed 7

Each lane runs the state machine on its worker's own stack with its own seed (the shard's
``--chaos-seed`` times 1000 plus the lane). A failing example is saved under
``chaos-failures/<worker>/`` (steps.json, program.py, history.json, logs) and fails the test;
each lane's invariant statistics go to ``chaos-failures/<worker>/runs/``.

For HypoFuzz (continuous fuzzing on many machines sharing one example database), set
``CHAOS_MODEL_HYPOFUZZ=1``: the module then also exposes ``TestChaosFuzz``, the state machine's
``TestCase`` on a stack started on first use in each fuzzing process (see docs/nightly.md).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Any, cast

import pytest
from hypothesis import seed
from hypothesis.stateful import run_state_machine_as_test

from chaos_model.adapter import INFRASTRUCTURE, load_target
from chaos_model.config import ChaosConfig
from chaos_model.guard import ensure_injectable
from chaos_model.machine import ChaosMachine, bind
from chaos_model.recorder import BudgetSpent, RunRecorder
from chaos_model.run_stats import write_recorder_stats
from chaos_model.stack import LocalStack, Stack


@pytest.mark.chaos
def test_pipeline_survives_chaos(
    chaos_machine: type[ChaosMachine], chaos_lane: int, request: pytest.FixtureRequest
) -> None:
    machine = chaos_machine
    base = request.config.getoption("--chaos-seed")
    if base is not None:
        machine = seed(base * 1000 + chaos_lane)(machine)
    machine.recorder.max_time = request.config.getoption("--chaos-max-time")
    try:
        with contextlib.suppress(BudgetSpent):  # the lane's time is spent: report what it found
            run_state_machine_as_test(machine, settings=machine.TestCase.settings)
    except AssertionError as error:
        error.add_note(_saved(machine.recorder))
        raise
    finally:
        _write_stats(machine, chaos_lane, base)
    if machine.recorder.last_failure is not None:
        pytest.fail(
            "; ".join(machine.recorder.last_failure.violations) + "\n" + _saved(machine.recorder),
            pytrace=False,
        )


def _write_stats(machine: type[ChaosMachine], lane: int, base: int | None) -> None:
    """The lane's invariant statistics, like a ``chaos-model run``'s (docs/invariants.md)."""
    bugs = list(getattr(machine.stack, "bugs", ()))
    seed = None if base is None else base * 1000 + lane
    write_recorder_stats(
        machine.config.failures_dir / "runs", machine.recorder, seed=seed, bugs=bugs
    )


def _saved(recorder: RunRecorder) -> str:
    failure = recorder.last_failure
    if failure is None or failure.directory is None:
        return "no failing example was saved"
    return f"saved to {failure.directory}; replay it: chaos-model replay {failure.directory}"


class _StackOnFirstUse:
    """A LocalStack started the first time a process asks it for something; stopped at exit.

    HypoFuzz collects tests in one process and fuzzes in others: each process that uses the
    stack starts its own (a stack inherited through fork belongs to the parent, which alone can
    watch and restart its processes), and introspection (private and dunder names) starts nothing.
    """

    def __init__(self) -> None:
        self._stack: LocalStack | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "unsupported_faults":
            raise AttributeError(name)  # introspection (pytest looks for _mock_name and the like)
        if self._stack is None and name in ("target", "services", "links", "points"):
            return self._described(name)  # what binding the machine reads: known unstarted
        with self._lock:
            if self._stack is None or self._pid != os.getpid():
                stack = LocalStack()
                stack.start()
                atexit.register(stack.stop)
                ensure_injectable(stack)
                self._stack, self._pid = stack, os.getpid()
        return getattr(self._stack, name)

    @staticmethod
    def _described(name: str) -> Any:
        target = load_target(None)
        if name == "target":
            return target
        if name == "links":
            return target.links()
        if name == "points":
            return True  # a local stack always has fault points (its control exists once started)
        return dict.fromkeys(("proxy", *INFRASTRUCTURE, *target.services))


if os.environ.get("CHAOS_MODEL_HYPOFUZZ"):
    _fuzz_stack = cast(Stack, _StackOnFirstUse())
    TestChaosFuzz = bind(
        _fuzz_stack, ChaosConfig(progress=False), RunRecorder(progress=False)
    ).TestCase
