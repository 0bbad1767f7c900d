"""What an experiment observes: webhook answers, faults, stages, attempts, quiescence, and the
target's counts of pending work.

Stages and attempts are read through the stack's target driver (model stage names); a count of
pending work runs the SQL the adapter names for it (``[observe] pending.NAME``)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import asyncpg

from chaos_model.experiments._model import BadExperiment
from chaos_model.history import History
from chaos_model.machine import PROBE_CHAT
from chaos_model.observe import Snapshot

if TYPE_CHECKING:
    from chaos_model.machine import ChaosMachine
    from chaos_model.stack import Stack

RECOVERY_PROBE_CHAT = PROBE_CHAT


def webhook_outcome(op: dict[str, Any]) -> str:
    """A completed Telegram delivery attempt as 2xx, 4xx, 5xx, timeout or refused."""
    if op["type"] == "ok":
        return "2xx"
    error = str(op.get("error") or "")
    if error.startswith("HTTP "):
        return f"{error[5]}xx"
    if op["type"] == "fail":
        return "refused"
    return "timeout"


def webhook_answers(history: History) -> dict[str, int]:
    """Telegram's delivery attempts by outcome (the recovery probe not counted)."""
    counts: Counter[str] = Counter()
    for op in history.to_json():
        if op["f"] != "deliver" or op["type"] == "invoke":
            continue
        if not str(op["process"]).startswith("telegram-chat-"):
            continue
        if op["process"] == f"telegram-chat-{RECOVERY_PROBE_CHAT}":
            continue
        counts[webhook_outcome(op)] += 1
    return dict(sorted(counts.items()))


def faults(history: History) -> list[dict[str, Any]]:
    """Every fault applied: when, whether it took, and how long it was in force."""
    applied: list[dict[str, Any]] = []
    in_force: dict[str, dict[str, Any]] = {}
    invoked: dict[str, Any] | None = None
    for op in history.to_json():
        if op["process"] != "nemesis" or op["f"] not in ("fault", "heal"):
            continue
        if op["type"] == "invoke":
            invoked = op
            continue
        if invoked is None:
            continue
        key = json.dumps(invoked["value"], sort_keys=True, default=str)
        if op["f"] == "fault":
            entry: dict[str, Any] = {
                "fault": invoked["value"],
                "at": round(invoked["time"], 2),
                "outcome": "applied" if op["type"] == "ok" else op["type"],
            }
            if op.get("error"):
                entry["error"] = op["error"]
            applied.append(entry)
            in_force[key] = entry
        elif key in in_force:
            entry = in_force.pop(key)
            entry["healed_after"] = round(op["time"] - entry["at"], 2)
        invoked = None
    return applied


def stages(snapshot: Snapshot | None, exclude: set[int]) -> dict[str, int]:
    """Messages by stage, leaving out the updates in ``exclude`` (the recovery probe)."""
    if snapshot is None:
        return {}
    counts = Counter(row.stage for row in snapshot.messages if row.update_id not in exclude)
    return dict(sorted(counts.items()))


def max_attempts(snapshot: Snapshot | None) -> dict[str, int]:
    if snapshot is None:
        return {}
    most: dict[str, int] = {}
    for stage, _key, count in snapshot.attempts:
        most[stage] = max(most.get(stage, 0), count)
    return dict(sorted(most.items()))


def pending_count(stack: Stack, name: str) -> int:
    """The target's count of pending work ``name`` now, by the SQL its adapter gives for it
    (``[observe] pending.NAME``, e.g. the reference pipeline's unsent outbox rows)."""
    spec = stack.target
    sql = spec.observe.pending.get(name)
    if sql is None:
        known = ", ".join(sorted(spec.observe.pending)) or "none"
        raise BadExperiment(f"target {spec.name} counts no pending {name!r} (known: {known})")

    async def count() -> int:
        conn = await asyncpg.connect(stack.endpoints.database_url, timeout=1)
        try:
            return int(await conn.fetchval(sql, timeout=1) or 0)
        finally:
            await conn.close(timeout=1)

    return asyncio.run(count())


def condition_met(machine: ChaosMachine, args: dict[str, Any]) -> bool:
    """Whether the ``await`` step's condition holds now."""
    condition = args["condition"]
    count = int(args.get("count", 1))
    if condition == "webhook":
        return webhook_answers(machine.history).get(str(args["outcome"]), 0) >= count
    if condition == "stage":
        snapshot = machine.target.snapshot(timeout=1.0)
        at_stage = sum(1 for row in snapshot.messages if row.stage == args["stage"])
        return at_stage >= count
    if condition == "failpoint_hit":
        failpoints = getattr(machine.stack, "failpoints", None)
        return failpoints is not None and bool(failpoints.hits().get(args["name"]))
    if condition == "pending":
        return pending_count(machine.stack, str(args["name"])) >= count
    raise ValueError(f"unknown await condition {condition!r}")


def describe_condition(args: dict[str, Any]) -> str:
    condition = args["condition"]
    count = int(args.get("count", 1))
    if condition == "webhook":
        return f"{count} webhook answer(s) {args['outcome']}"
    if condition == "stage":
        return f"{count} message(s) at {args['stage']}"
    if condition == "pending":
        return f"pending {args['name']} at least {count}"
    return f"failpoint {args['name']} hit"
