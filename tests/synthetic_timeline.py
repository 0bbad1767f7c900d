"""A synthetic capture shaped like a real failing example: twenty steps within half a second,
then a teardown of several seconds (the final heal, the recovery probe, the wait for quiescence).

On one clock, its steps would take the first few percent of the timeline's width.
"""

from __future__ import annotations

from typing import Any

from chaos_model.observe import PendingSample
from chaos_model.reporting.capture import (
    ExampleCapture,
    Finding,
    StageEvent,
    StoredMessage,
    TimedStep,
)

STEPS = 20
TEARDOWN_AT = 0.46
HEALED_AT = 4.2
QUIESCENT_AT = 5.35
DURATION = 6.0
#: (step number, rule, arguments): the faults of the example; every other step delivers
FAULT_STEPS: dict[int, tuple[str, dict[str, Any]]] = {
    1: ("choose_faults", {"kinds": ["kill", "pause", "terminate_connections"]}),
    4: ("pause", {"service": "nats"}),
    9: ("heal_one", {"index": 0}),
    12: ("kill", {"service": "worker"}),
    15: ("terminate_connections", {}),
    18: ("partition", {"link": "api->postgres"}),
}
FIRST_UPDATE = 1_700_000_100_000


def step_times() -> list[float]:
    """Steps a few milliseconds apart, a kill and a partition taking longer."""
    times, at = [], 0.004
    for number in range(1, STEPS + 1):
        times.append(round(at, 4))
        at += 0.09 if number in (12, 18) else 0.012
    return times


def _op(
    index: int, process: str, kind: str, f: str, value: Any, at: float, error: str | None = None
) -> dict[str, Any]:
    return {
        "index": index,
        "process": process,
        "type": kind,
        "f": f,
        "value": value,
        "time": round(at, 4),
        "error": error,
    }


def twenty_step_capture() -> ExampleCapture:
    times = step_times()
    steps: list[TimedStep] = []
    ops: list[dict[str, Any]] = []
    events: list[StageEvent] = []
    messages: list[StoredMessage] = []
    applied: dict[str, Any] = {}

    def add(
        process: str, kind: str, f: str, value: Any, at: float, error: str | None = None
    ) -> None:
        ops.append(_op(len(ops), process, kind, f, value, at, error))

    for number, at in enumerate(times, start=1):
        rule, args = FAULT_STEPS.get(number, ("deliver", {"chat": number % 3, "text": "x"}))
        steps.append(TimedStep(rule, args, at))
        if rule == "deliver":
            update_id = FIRST_UPDATE + number
            process = f"telegram-chat-{1000 + number % 3}"
            add(process, "invoke", "deliver", {"update_id": update_id}, at + 0.001)
            nats_paused = 4 <= number < 9
            if nats_paused:
                add(process, "fail", "deliver", {"update_id": update_id}, at + 0.006, "HTTP 503")
                continue
            add(process, "ok", "deliver", {"update_id": update_id}, at + 0.004)
            message_id = len(messages) + 1
            messages.append(StoredMessage(message_id, update_id, "extracted", 0.5, None))
            events.append(StageEvent(message_id, update_id, "received", at + 0.003))
            events.append(StageEvent(message_id, update_id, "scored", at + 0.2 + number * 0.1))
            events.append(StageEvent(message_id, update_id, "extracted", at + 0.4 + number * 0.2))
        elif rule in ("pause", "kill", "terminate_connections", "partition"):
            fault = {"kind": rule, **args}
            add("nemesis", "invoke", "fault", fault, at + 0.001)
            add("nemesis", "ok", "fault", fault, at + 0.002)
            applied[rule] = fault
        elif rule == "heal_one":
            fault = applied.pop("pause")
            add("nemesis", "invoke", "heal", fault, at + 0.001)
            add("nemesis", "ok", "heal", fault, at + 0.008)
    add("nemesis", "invoke", "heal-all", None, TEARDOWN_AT + 0.1)
    add("nemesis", "ok", "heal-all", ["restarted worker"], HEALED_AT)
    add(
        "telegram-chat-999",
        "invoke",
        "deliver",
        {"update_id": FIRST_UPDATE + 999},
        HEALED_AT + 0.01,
    )
    add("telegram-chat-999", "ok", "deliver", {"update_id": FIRST_UPDATE + 999}, HEALED_AT + 0.03)
    depth = [
        PendingSample(times[3] + 0.003, {"outbox_unsent": 1}),
        PendingSample(times[6] + 0.003, {"outbox_unsent": 3, "telegram_deliveries": 2}),
        PendingSample(times[9] + 0.003, {"telegram_deliveries": 1}),
        PendingSample(TEARDOWN_AT + 0.02, {"jetstream_pending": 4, "worker_busy": 1}),
        PendingSample(HEALED_AT + 0.4, {"jetstream_unacknowledged": 1}),
        PendingSample(QUIESCENT_AT, {}),
    ]
    return ExampleCapture(
        failed=True,
        steps=steps,
        ops=ops,
        stage_events=events,
        messages=messages,
        findings=[
            Finding(
                "accepted_updates_complete",
                "liveness",
                f"update {FIRST_UPDATE + 5} was accepted but never stored",
            )
        ],
        duration=DURATION,
        queue_depth=depth,
        teardown_at=TEARDOWN_AT,
        quiescent_at=QUIESCENT_AT,
    )
