"""Fault points: how long the point sweep takes, and what the bootstrap costs a delivery.

Two measurements on the reference pipeline's correct build, in one run:

1. **The sweep.** The opening sweep on a fresh local stack, each program timed: the programs
   before the probe, the probe, the point sweep over everything one delivery reaches (every
   point in each mode that matters), the crashes that follow a fault into new points, and what
   comes after. Target: the point sweep within 2 minutes.
2. **The overhead.** Two stacks side by side, one with fault points (the default) and one with
   them switched off (``points = false``), each sent the same updates one at a time,
   alternating, end-to-end latency measured from the webhook POST until the message is
   ``extracted``. Target: at most 10 % more at p50.

    python bench/points.py                    # both, 200 deliveries
    python bench/points.py --deliveries 50    # quicker
    python bench/points.py --markdown bench/results/points.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import httpx
from _common import machine_info, percentile, write_json

from chaos_model.adapter import PointsSpec, TargetSpec, default_target
from chaos_model.config import ChaosConfig
from chaos_model.points import PointCatalogue
from chaos_model.recorder import RunRecorder
from chaos_model.stack import LocalStack
from chaos_model.sweep import OPERATIONS, run_sweep
from chaos_model.telegram import SECRET_HEADER, BotApi, run_chat_id

SWEEP_TARGET_SECONDS = 120.0
OVERHEAD_TARGET = 0.10


def phase(program: list[dict[str, Any]], probed: bool) -> str:
    """Which part of the sweep ``program`` belongs to."""
    faults = [step for step in program if step["rule"] not in OPERATIONS]
    if not faults:
        return "probe" if [step["rule"] for step in program] == ["deliver"] else "operations"
    if any(step["rule"] == "point" for step in faults):
        return "point sweep" if len(faults) == 1 else "crashes after a fault"
    return "after the probe" if probed else "before the probe"


def sweep_timing() -> dict[str, Any]:
    """Run the sweep on the correct pipeline (the hand-placed failpoints off), each program
    timed by the part of the sweep it belongs to."""
    seconds: dict[str, list[float]] = {}
    findings = 0
    faults = tuple(kind for kind in ChaosConfig().faults if kind != "failpoint")
    config = ChaosConfig(progress=False, faults=faults)
    probed = False

    def timed(program: list[dict[str, Any]], failed: bool, took: float) -> None:
        nonlocal findings, probed
        part = phase(program, probed)
        probed = probed or part == "probe"
        findings += int(failed)
        seconds.setdefault(part, []).append(took)
        _say(f"{part:22} {took:6.2f} s  ({len(seconds[part])})")

    with LocalStack() as stack:
        catalogue = PointCatalogue()
        recorder = RunRecorder(progress=False, failures_dir=Path(tempfile.mkdtemp()))
        began = time.monotonic()
        run_sweep(stack, config, recorder, catalogue, on_program=timed)
        total = time.monotonic() - began
    return {
        "points": len(catalogue),
        "findings": findings,
        "total_seconds": round(total, 1),
        "phases": {
            part: {"programs": len(values), "seconds": round(sum(values), 1)}
            for part, values in seconds.items()
        },
    }


def _without_points(target: TargetSpec) -> TargetSpec:
    services = {
        name: dataclasses.replace(spec, points=PointsSpec(enabled=False))
        for name, spec in target.services.items()
    }
    return dataclasses.replace(target, services=services)


async def _deliver_and_wait(stack: LocalStack, update: dict[str, Any], conn: Any) -> float:
    url = f"{stack.endpoints.telegram_api_url}{stack.target.webhook.path}"
    headers = {SECRET_HEADER: stack.endpoints.webhook_secret}
    began = time.monotonic()
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=update, headers=headers, timeout=10)
    response.raise_for_status()
    deadline = began + 30
    while time.monotonic() < deadline:
        stage = await conn.fetchval(
            "SELECT stage FROM messages WHERE update_id = $1", update["update_id"]
        )
        if stage == "extracted":
            return time.monotonic() - began
        await asyncio.sleep(0.002)
    raise TimeoutError(f"update {update['update_id']} not extracted within 30 s")


def overhead(deliveries: int) -> dict[str, Any]:
    """The same updates, one at a time, alternating between a stack with fault points and one
    without; end-to-end latency of each."""
    target = default_target()
    bot = BotApi()
    latencies: dict[str, list[float]] = {"points": [], "no points": []}
    with LocalStack(target) as with_points, LocalStack(_without_points(target)) as without:
        stacks = {"points": with_points, "no points": without}
        for stack in stacks.values():
            stack.reset()

        async def measure() -> None:
            conns = {
                name: await asyncpg.connect(stack.endpoints.database_url)
                for name, stack in stacks.items()
            }
            try:
                for number in range(deliveries + 5):  # the first five warm up
                    for name in ("points", "no points") if number % 2 else ("no points", "points"):
                        update = bot.message(run_chat_id(number % 3), f"overhead {number}")
                        seconds = await _deliver_and_wait(stacks[name], update, conns[name])
                        if number >= 5:
                            latencies[name].append(seconds)
            finally:
                for conn in conns.values():
                    await conn.close()

        asyncio.run(measure())
    summary = {
        name: {
            "p50_ms": round((percentile(values, 0.5) or 0) * 1000, 2),
            "p95_ms": round((percentile(values, 0.95) or 0) * 1000, 2),
            "mean_ms": round(statistics.mean(values) * 1000, 2),
        }
        for name, values in latencies.items()
    }
    base = summary["no points"]["p50_ms"]
    added = (summary["points"]["p50_ms"] - base) / base if base else 0.0
    return {"deliveries": deliveries, "latency": summary, "added_at_p50": round(added, 4)}


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    sweep = data.get("sweep")
    if sweep:
        point_sweep = sweep["phases"].get("point sweep", {}).get("seconds", 0.0)
        found.append(
            {
                "target": f"the point sweep within {SWEEP_TARGET_SECONDS:.0f} s",
                "met": point_sweep <= SWEEP_TARGET_SECONDS,
                "measured": f"{point_sweep} s over {sweep['points']} points"
                f" (whole sweep {sweep['total_seconds']} s, {sweep['findings']} findings)",
            }
        )
    cost = data.get("overhead")
    if cost:
        found.append(
            {
                "target": f"added latency per delivery <= {OVERHEAD_TARGET:.0%} at p50",
                "met": cost["added_at_p50"] <= OVERHEAD_TARGET,
                "measured": f"{cost['added_at_p50']:+.1%} (p50"
                f" {cost['latency']['points']['p50_ms']} ms with points,"
                f" {cost['latency']['no points']['p50_ms']} ms without)",
            }
        )
    return found


def markdown(data: dict[str, Any]) -> str:
    lines = []
    sweep = data.get("sweep")
    if sweep:
        lines += ["| sweep phase | programs | seconds |", "|---|---|---|"]
        for phase, values in sweep["phases"].items():
            lines.append(f"| {phase} | {values['programs']} | {values['seconds']} |")
        lines.append(f"| whole sweep | | {sweep['total_seconds']} |")
    cost = data.get("overhead")
    if cost:
        lines += [
            "",
            f"End-to-end latency of one delivery ({cost['deliveries']} each, alternating):",
            "",
            "| | p50 ms | p95 ms | mean ms |",
            "|---|---|---|---|",
        ]
        for name, values in cost["latency"].items():
            lines.append(
                f"| {name} | {values['p50_ms']} | {values['p95_ms']} | {values['mean_ms']} |"
            )
    lines += ["", "| target | status | measured |", "|---|---|---|"]
    for target in data.get("targets", []):
        status = "met" if target["met"] else "**missed**"
        lines.append(f"| {target['target']} | {status} | {target['measured']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--no-sweep", action="store_true", help="only the overhead")
    parser.add_argument("--out", default="points.json", help="file name under bench/results/")
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    data: dict[str, Any] = {"machine": machine_info()}
    if not args.no_sweep:
        data["sweep"] = sweep_timing()
    data["overhead"] = overhead(args.deliveries)
    data["targets"] = targets(data)
    path = write_json(args.out, data)
    print(markdown(data))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
