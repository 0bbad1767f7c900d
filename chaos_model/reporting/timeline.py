"""From a captured example to a timeline a person reads: steps, fault bands over the services
they hit, webhook answers, each message's stages, and the invariants that fired."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chaos_model.adapter import INFRASTRUCTURE, TargetSpec
from chaos_model.faults import REGISTRY
from chaos_model.invariants import ALL
from chaos_model.message_ids import MessageId, id_order
from chaos_model.message_ids import message_id as canonical_id
from chaos_model.recorder import render_program
from chaos_model.reporting.answers import WebhookAnswer, webhook_answers
from chaos_model.reporting.capture import ExampleCapture, Finding, StoredMessage
from chaos_model.reporting.metrics import ExampleMetrics, example_metrics

PROBE_PROCESS = "telegram-chat-999"
#: the longest argument shown in full in the step table
ARGUMENT_WIDTH = 60

#: the model's own clients of a target: the simulated Telegram and the dashboard readers
TELEGRAM, DASHBOARD = "telegram", "dashboard"

#: findings raised by the model itself rather than by an invariant object
MODEL_CHECKS = {
    "step_raised": "A step of the model raised an unexpected error: a finding of its own.",
    "forged_update_rejected": (
        "A webhook request with a wrong secret token is refused: never answered 2xx."
    ),
    "malformed_body_rejected": (
        "A malformed webhook body is answered 4xx (or 503 while the database is down),"
        " never 2xx or another 5xx."
    ),
}

_STEP_PREFIX = re.compile(r"^after step (\d+): ")
_BIG_NUMBER = re.compile(r"\b\d{7,}\b")
_MESSAGE_ID = re.compile(r"\bmessage ([^\s,;:()']+)")


@dataclass(frozen=True)
class StepMark:
    number: int
    time: float
    call: str
    #: the rule and what it hits (``kill worker``), for the step's column
    name: str = ""


@dataclass(frozen=True)
class FaultBand:
    label: str
    kind: str
    services: tuple[str, ...]
    start: float
    end: float
    instant: bool
    #: how it ended: "healed", "heal-all", "still applied"
    ended_by: str


@dataclass(frozen=True)
class StageSpan:
    stage: str
    start: float
    end: float


@dataclass(frozen=True)
class MessageLane:
    #: None for an update the webhook answered but that was never stored
    message_id: MessageId | None
    update_id: MessageId | None
    label: str
    spans: tuple[StageSpan, ...]
    answers: tuple[WebhookAnswer, ...]


@dataclass(frozen=True)
class FiredInvariant:
    name: str
    kind: str
    detail: str
    explanation: str
    time: float
    offending_rows: tuple[StoredMessage, ...]
    #: update ids the violation names that have no stored message
    unstored_updates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Timeline:
    failed: bool
    duration: float
    steps: tuple[StepMark, ...]
    bands: tuple[FaultBand, ...]
    answers: tuple[WebhookAnswer, ...]
    messages: tuple[MessageLane, ...]
    fired: tuple[FiredInvariant, ...]
    program: str
    log_tails: dict[str, list[str]]
    notes: tuple[str, ...]
    #: the lanes faults are drawn over, in the order a request travels (see :func:`lanes`)
    services: tuple[str, ...] = ()
    #: seconds from the start to the teardown (the final heal and the waits after it)
    teardown_at: float | None = None
    metrics: ExampleMetrics | None = None


def lanes(target: TargetSpec) -> tuple[str, ...]:
    """The lanes of ``target``'s timelines, in the order a request travels: Telegram, the service
    taking the webhook, the database and the broker, the target's other services, the LLM, and
    the dashboard if the target has one."""
    return _in_travel_order(
        (target.webhook.service, *target.services), dashboard=target.dashboard is not None
    )


def lanes_seen(capture: ExampleCapture) -> tuple[str, ...]:
    """The lanes of a timeline whose target is not known: the services whose logs the capture
    kept or that a fault named, with the webhook's service (from a ``telegram->`` link) first."""
    front: list[str] = []
    named: list[str] = []
    dashboard = False
    for op in capture.ops:
        dashboard = dashboard or str(op["process"]).startswith(DASHBOARD)
        value = op["value"] if isinstance(op["value"], dict) else {}
        if op["process"] != "nemesis":
            continue
        if isinstance(value.get("link"), str) and "->" in value["link"]:
            client, server = value["link"].split("->", 1)
            front += [server] if client == TELEGRAM else []
            named += [client, server]
        elif isinstance(value.get("service"), str):
            named.append(value["service"])
    services = [*front, *sorted(set(named) | set(capture.log_tails))]
    return _in_travel_order(services, dashboard=dashboard or DASHBOARD in named)


def _own(names: Iterable[str]) -> list[str]:
    """The target's own services among ``names``: not the model's clients or infrastructure."""
    return [
        name
        for name in dict.fromkeys(names)
        if name not in INFRASTRUCTURE and name not in (TELEGRAM, DASHBOARD)
    ]


def _in_travel_order(services: Iterable[str], *, dashboard: bool) -> tuple[str, ...]:
    own = _own(services)
    front, rest = own[:1], own[1:]
    storage = [name for name in INFRASTRUCTURE if name not in ("llm", TELEGRAM)]
    ordered = [TELEGRAM, *front, *storage, *rest, "llm", *([DASHBOARD] if dashboard else [])]
    return tuple(ordered)


def build_timeline(capture: ExampleCapture, target: TargetSpec | None = None) -> Timeline:
    """The timeline of ``capture``; its lanes are ``target``'s, or those the capture shows."""
    services = lanes(target) if target is not None else lanes_seen(capture)
    steps = tuple(
        StepMark(number, step.time, _call(step.rule, step.args), _name(step.rule, step.args))
        for number, step in enumerate(capture.steps, start=1)
    )
    answers = tuple(webhook_answers(capture.ops))
    latest = max(
        [capture.duration]
        + [op["time"] for op in capture.ops]
        + [event.time for event in capture.stage_events]
        + [sample.time for sample in capture.queue_depth]
    )
    fired = tuple(_fired(finding, capture, latest) for finding in capture.findings)
    return Timeline(
        failed=capture.failed,
        duration=latest,
        steps=steps,
        bands=tuple(fault_bands(capture.ops, latest, services)),
        answers=answers,
        messages=tuple(_message_lanes(capture, answers, latest)),
        fired=fired,
        program=render_program([{"rule": s.rule, "args": s.args} for s in capture.steps]),
        log_tails=capture.log_tails,
        notes=tuple(capture.notes),
        services=services,
        teardown_at=capture.teardown_at,
        metrics=example_metrics(capture.ops, capture.queue_depth, capture.quiescent_at),
    )


def _call(rule: str, args: dict[str, Any]) -> str:
    return f"{rule}({', '.join(f'{key}={_short(value)}' for key, value in args.items())})"


def _name(rule: str, args: dict[str, Any]) -> str:
    hit = args.get("service") or args.get("link")
    return f"{rule} {hit}" if isinstance(hit, str) else rule


def _short(value: Any) -> str:
    """``repr(value)``, cut to a readable length for the step table (the program keeps it all)."""
    text = repr(value)
    if len(text) <= ARGUMENT_WIDTH:
        return text
    return f"{text[: ARGUMENT_WIDTH - 1]}… ({len(text)} characters)"


# ---------------------------------------------------------------------------------- faults
def fault_label(value: dict[str, Any]) -> str:
    """``pause nats``, ``partition CLIENT->SERVER``, ``llm error 3s``, ``failpoint NAME crash``."""
    kind = str(value.get("kind", "fault"))
    if kind == "llm":
        seconds = value.get("seconds")
        duration = "until healed" if seconds is None else f"{seconds:g}s"
        return f"llm {value.get('mode', '?')} {duration}"
    if kind == "network":
        toxic = value.get("toxic") or {}
        return f"network {toxic.get('type', 'toxic')} {value.get('link', '?')}"
    if kind == "failpoint":
        return f"failpoint {value.get('name', '?')} {value.get('action', '')}".strip()
    target = value.get("service") or value.get("link")
    return f"{kind} {target}" if target else kind


def fault_services(value: dict[str, Any], services: Sequence[str] | None = None) -> tuple[str, ...]:
    """The services a fault hits, for drawing its band over their lanes (``services``: the
    timeline's lanes, when known).

    A failpoint is named ``SERVICE.where``; one whose first part is no lane hits every service of
    the target's own.
    """
    known = None if services is None else tuple(services)
    kind = value.get("kind")
    if isinstance(value.get("service"), str):
        return (value["service"],)
    if isinstance(value.get("link"), str):
        parts = value["link"].split("->")
        return tuple(part for part in parts if known is None or part in known)
    if kind in ("terminate_connections", "refuse_connections"):
        return ("postgres",)
    if kind == "llm":
        return ("llm",)
    if kind == "failpoint":
        service = str(value.get("name", "")).split(".")[0]
        return (service,) if known is None or service in known else tuple(_own(known))
    return known or ()


def fault_bands(
    ops: list[dict[str, Any]], end: float, services: Sequence[str] | None = None
) -> list[FaultBand]:
    """Each applied fault, from its application until its own heal, a heal-all or ``end``."""
    nemesis = [op for op in ops if op["process"] == "nemesis" and op["type"] != "invoke"]
    bands: list[FaultBand] = []
    for position, op in enumerate(nemesis):
        if op["f"] != "fault" or not isinstance(op["value"], dict):
            continue
        value: dict[str, Any] = op["value"]
        fault_class = REGISTRY.get(str(value.get("kind")))
        instant = fault_class is not None and fault_class.instant
        finish, ended_by = end, "still applied"
        if instant:
            finish, ended_by = op["time"], "instant"
        else:
            for later in nemesis[position + 1 :]:
                if later["f"] == "heal" and later["value"] == value:
                    finish, ended_by = later["time"], "healed"
                    break
                if later["f"] == "heal-all":
                    finish, ended_by = later["time"], "heal-all"
                    break
        label = fault_label(value) + ("" if op["type"] == "ok" else f" ({op['type']})")
        bands.append(
            FaultBand(
                label,
                str(value.get("kind")),
                fault_services(value, services),
                op["time"],
                finish,
                instant,
                ended_by,
            )
        )
    return bands


# ---------------------------------------------------------------------------------- messages
def _message_lanes(
    capture: ExampleCapture, answers: tuple[WebhookAnswer, ...], end: float
) -> list[MessageLane]:
    """One lane per stored message, and one per update the webhook answered but that was never
    stored (a lost update is a lane with answers and no stages)."""
    update_of = {row.id: row.update_id for row in capture.messages}
    times: dict[MessageId, list[tuple[float, str]]] = {row.id: [] for row in capture.messages}
    for event in capture.stage_events:
        times.setdefault(event.message_id, []).append((event.time, event.stage))
        if event.update_id is not None:
            update_of.setdefault(event.message_id, event.update_id)
    probes = {
        op["value"]["update_id"]
        for op in capture.ops
        if op["process"] == PROBE_PROCESS and isinstance(op["value"], dict)
    }
    by_update: dict[MessageId, list[WebhookAnswer]] = {}
    for answer in answers:
        if answer.update_id is not None:
            by_update.setdefault(answer.update_id, []).append(answer)
    lanes: list[MessageLane] = []
    for message_id in sorted(times, key=id_order):
        marks = sorted(times[message_id])
        spans = tuple(
            StageSpan(stage, at, marks[i + 1][0] if i + 1 < len(marks) else end)
            for i, (at, stage) in enumerate(marks)
        )
        update_id = update_of.get(message_id)
        label = f"message {message_id}"
        if update_id is not None:
            label += f" (update …{str(update_id)[-4:]})"
        if update_id in probes:
            label += " probe"
        own = by_update.get(update_id, []) if update_id is not None else []
        lanes.append(MessageLane(message_id, update_id, label, spans, tuple(own)))
    stored = set(update_of.values())
    for update_id, own in by_update.items():
        if update_id not in stored:
            label = f"update …{str(update_id)[-4:]} never stored"
            lanes.append(MessageLane(None, update_id, label, (), tuple(own)))
    return sorted(lanes, key=_first_seen)


def _first_seen(lane: MessageLane) -> float:
    return min([span.start for span in lane.spans] + [a.sent for a in lane.answers] or [0.0])


# ---------------------------------------------------------------------------------- findings
def explanation(invariant: str) -> str:
    for candidate in ALL:
        if candidate.name == invariant:
            return candidate.statement()
    return MODEL_CHECKS.get(invariant, "")


def offending_rows(detail: str, messages: list[StoredMessage]) -> tuple[StoredMessage, ...]:
    """The stored messages a violation names (by update id or ``message N``)."""
    update_ids = {int(number) for number in _BIG_NUMBER.findall(detail)}
    message_ids = {canonical_id(found) for found in _MESSAGE_ID.findall(detail)}
    return tuple(row for row in messages if row.update_id in update_ids or row.id in message_ids)


def _fired(finding: Finding, capture: ExampleCapture, end: float) -> FiredInvariant:
    match = _STEP_PREFIX.match(finding.detail)
    detail = finding.detail[match.end() :] if match else finding.detail
    at = end
    if match and finding.kind == "safety":
        after = int(match.group(1))
        at = capture.steps[after].time if after < len(capture.steps) else end
    rows = offending_rows(detail, capture.messages)
    named = sorted({int(number) for number in _BIG_NUMBER.findall(detail)})
    stored = {row.update_id for row in capture.messages}
    return FiredInvariant(
        finding.invariant,
        finding.kind,
        finding.detail,
        explanation(finding.invariant),
        at,
        rows,
        tuple(update_id for update_id in named if update_id not in stored),
    )
