"""What one example did, kept for its report: timed steps, the history, the stage transitions the
database recorded, the stored messages, the invariants that fired and each service's log tail.

A capture is plain JSON data (``timeline.json`` in a failure folder), so a report page can be
built from it later without a stack.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from chaos_model.adapter import TargetSpec
from chaos_model.invariants import Result
from chaos_model.message_ids import MessageId, message_id
from chaos_model.observe import PendingSample
from chaos_model.target import CorrelationKeys, message_row, update_keys

if TYPE_CHECKING:
    from chaos_model.example import ExampleView

LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 64 * 1024
#: a line's time as the services log it: Python logging, PostgreSQL (UTC) and nats-server
_LOG_TIME = re.compile(r"(\d{4})[-/](\d\d)[-/](\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?( UTC)?")
_DATABASE_TIMEOUT = 3.0


@dataclass(frozen=True)
class TimedStep:
    rule: str
    args: dict[str, Any]
    #: seconds since the example started, when the step began
    time: float


@dataclass(frozen=True)
class StageEvent:
    message_id: MessageId
    update_id: MessageId | None
    stage: str
    time: float


@dataclass(frozen=True)
class StoredMessage:
    id: MessageId
    update_id: MessageId
    stage: str
    score: float | None
    failure_reason: str | None


@dataclass(frozen=True)
class Finding:
    invariant: str
    kind: str
    detail: str


@dataclass
class ExampleCapture:
    failed: bool
    steps: list[TimedStep]
    ops: list[dict[str, Any]]
    stage_events: list[StageEvent]
    messages: list[StoredMessage]
    findings: list[Finding]
    #: seconds from the example's start to the moment it was captured
    duration: float
    log_tails: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: pending work over time, by kind (a sample where the counts changed)
    queue_depth: list[PendingSample] = field(default_factory=list)
    #: seconds from the start to the teardown, and to the first quiescence after the final heal
    teardown_at: float | None = None
    quiescent_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExampleCapture:
        return cls(
            failed=bool(data["failed"]),
            steps=[TimedStep(**item) for item in data["steps"]],
            ops=list(data["ops"]),
            stage_events=[StageEvent(**item) for item in data["stage_events"]],
            messages=[StoredMessage(**item) for item in data["messages"]],
            findings=[Finding(**item) for item in data["findings"]],
            duration=float(data["duration"]),
            log_tails={name: list(lines) for name, lines in data.get("log_tails", {}).items()},
            notes=list(data.get("notes", [])),
            queue_depth=[PendingSample(**item) for item in data.get("queue_depth", [])],
            teardown_at=data.get("teardown_at"),
            quiescent_at=data.get("quiescent_at"),
        )


def capture_example(
    machine: ExampleView,
    step_started: list[float],
    findings: list[Result],
    log_paths: dict[str, Path],
) -> ExampleCapture:
    """Capture ``machine``'s example; ``step_started`` holds each step's ``time.monotonic()``.

    Never raises for an unreachable database: the capture then says so in its notes.
    """
    started = machine.history.started
    duration = time.monotonic() - started
    epoch_at_start = time.time() - duration
    steps = [
        TimedStep(step["rule"], dict(step.get("args", {})), max(0.0, at - started))
        for step, at in zip(machine.steps, step_started, strict=False)
    ]
    notes: list[str] = []
    stage_events: list[StageEvent] = []
    messages: list[StoredMessage] = []
    try:
        stage_events, messages = asyncio.run(
            _read_database(
                machine.spec,
                machine.stack.endpoints.database_url,
                epoch_at_start,
                update_keys(machine.bodies.values()),
            )
        )
    except Exception as error:  # noqa: BLE001 - a report without stages beats no report
        notes.append(f"stage transitions not read from the database: {type(error).__name__}")
    return ExampleCapture(
        failed=bool(findings),
        steps=steps,
        ops=machine.history.to_json(),
        stage_events=stage_events,
        messages=messages,
        findings=[Finding(r.invariant, r.kind, r.detail) for r in findings],
        duration=duration,
        log_tails={
            name: lines_since(tail_lines(path, LOG_TAIL_LINES * 4), epoch_at_start)[
                -LOG_TAIL_LINES:
            ]
            for name, path in log_paths.items()
        },
        notes=notes,
        queue_depth=list(machine.queue_depth),
        teardown_at=machine.teardown_at,
        quiescent_at=machine.quiescent_at,
    )


async def _read_database(
    spec: TargetSpec,
    database_url: str,
    epoch_at_start: float,
    keys: CorrelationKeys,
) -> tuple[list[StageEvent], list[StoredMessage]]:
    """The messages and, when the adapter's events query gives a fourth column (the epoch
    seconds of each event), the timed stage transitions."""
    conn = await asyncpg.connect(database_url, timeout=_DATABASE_TIMEOUT)
    try:
        rows = await conn.fetch(spec.observe.messages, timeout=_DATABASE_TIMEOUT)
        events = (
            await conn.fetch(spec.observe.events, timeout=_DATABASE_TIMEOUT)
            if spec.observe.events
            else []
        )
    finally:
        await conn.close(timeout=_DATABASE_TIMEOUT)
    messages = [message_row(spec, keys, row) for row in rows]
    update_of = {message.id: message.update_id for message in messages}
    timed = [
        StageEvent(
            message_id(row[1]),
            update_of.get(message_id(row[1])),
            spec.to_model_stage(row[2]),
            max(0.0, float(row[3]) - epoch_at_start),
        )
        for row in events
        if len(row) > 3 and row[3] is not None
    ]
    return timed, [StoredMessage(*dataclasses.astuple(message)) for message in messages]


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file (empty if it cannot be read)."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - _LOG_TAIL_BYTES))
            data = file.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > _LOG_TAIL_BYTES:
        lines = lines[1:]  # the first line read is probably cut
    return lines[-count:]


def log_line_time(line: str) -> float | None:
    """The epoch time a log line carries near its start (local time unless marked UTC)."""
    match = _LOG_TIME.search(line[:64])
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = float(f"0.{match.group(7)}") if match.group(7) else 0.0
    moment = (year, month, day, hour, minute, second, 0, 0, -1)
    if match.group(8):
        return calendar.timegm(moment) + fraction
    return time.mktime(moment) + fraction


def lines_since(lines: list[str], epoch: float, margin: float = 1.0) -> list[str]:
    """The lines logged from ``epoch - margin`` on; an untimed line (a traceback, a banner)
    goes with the timed line before it."""
    kept: list[str] = []
    keeping = False
    for line in lines:
        at = log_line_time(line)
        if at is not None:
            keeping = at >= epoch - margin
        if keeping:
            kept.append(line)
    return kept
