"""The opening sweep: every single fault once, with one update in flight, before the search.

Random search meets a particular crash point only by chance: a failpoint is one of several
names, drawn in some examples and not others, and it must be armed before the work reaches it.
Yet "what if this process dies exactly here while a message is in flight" is the first question
to ask of each crash point. So a run starts by asking it, deterministically: one short program
per fault (kill one service, make the LLM fail for a few seconds, arm one crash point, break
the LLM for good), each followed by one delivery; and the two faults of the outside world:
Telegram delivering an update twice, and a dashboard's WebSocket dropping while the teardown's
own traffic flows. A failure found here is already minimal and reproducible; only when the
sweep finds nothing does the search begin.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from chaos_model.adapter import TargetSpec
from chaos_model.config import ChaosConfig
from chaos_model.recorder import BudgetSpent, RunRecorder
from chaos_model.replay import replay
from chaos_model.stack import Stack

Steps = list[dict[str, Any]]

DELIVER: dict[str, Any] = {"rule": "deliver", "args": {"chat": 0, "text": "sweep"}}


def sweep_programs(
    config: ChaosConfig,
    target: TargetSpec,
    services: Collection[str] | None = None,
    unsupported: Collection[str] = (),
) -> Iterator[Steps]:
    """The programs of the sweep, limited to the configured faults and to what the target has;
    the broken LLM last, since a correct pipeline needs its whole retry budget (about 15 s) to
    give up."""
    yield [DELIVER, {"rule": "redeliver", "args": {"update": 0}}]
    if target.has_feed:
        yield [
            {"rule": "open_feed", "args": {"name": "dashboard-a"}},
            {"rule": "drop_feed", "args": {"name": "dashboard-a"}},
        ]
    faults = set(config.faults) - set(unsupported)
    # Kills before crash points: four programs that each stop a whole service, where a crash
    # point in the worker costs a JetStream redelivery (the ack wait) before the work resumes.
    if "kill" in faults:
        for service in target.services_with("kill"):
            if services is not None and service not in services:
                continue  # a service the stack cannot control
            yield [{"rule": "kill", "args": {"service": service}}, DELIVER]
    if "llm" in faults:
        yield [{"rule": "llm_fault", "args": {"mode": "error", "seconds": 3.0}}, DELIVER]
    if "failpoint" in faults and "crash" in config.failpoint_actions:
        for name in config.failpoints or target.failpoints:
            yield [{"rule": "failpoint", "args": {"name": name, "action": "crash"}}, DELIVER]
    if "llm" in faults:
        yield [{"rule": "break_llm", "args": {"mode": "error"}}, DELIVER]


def run_sweep(stack: Stack, config: ChaosConfig, recorder: RunRecorder) -> bool:
    """Run each program of the sweep once, as an example of the run; True once one fails.

    The failure is recorded (and saved) by ``recorder`` like any other example's.
    """
    programs = sweep_programs(
        config, stack.target, set(stack.services), getattr(stack, "unsupported_faults", ())
    )
    for program in programs:
        try:
            outcome = replay(program, stack, config, recorder=recorder)
        except BudgetSpent:
            return False
        if outcome.failed:
            return True
    return False
