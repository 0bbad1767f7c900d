"""The compose backend measured against the local one, in one run on this machine.

    python bench/compose_bench.py                 # cached images; writes bench/results/compose.json
    python bench/compose_bench.py --cold          # first rebuild every image from nothing
    python bench/compose_bench.py --detect-budget 60 --bug ack_failures

Prints and records: the image build (cached, or cold with ``--cold``), the stack start and stop
on each backend, per-fault latency on each backend (docker pause vs SIGSTOP, docker kill vs
SIGKILL, start until ready, clean stop, a proxy partition, and on compose a network disconnect),
and the time the model takes to find the same bug on each backend (same seed and budget).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import machine_info, write_json  # noqa: E402

from chaos_model.adapter import load_adapter  # noqa: E402
from chaos_model.config import ChaosConfig  # noqa: E402
from chaos_model.faults import Partition  # noqa: E402
from chaos_model.runner import run  # noqa: E402
from chaos_model.stack import ComposeStack, LocalStack  # noqa: E402

AnyStack = LocalStack | ComposeStack
#: the reference pipeline's adapter, whatever folder the bench runs from
TARGET = load_adapter(ROOT / "chaos-target.toml")


def new_stack(backend: str, bugs: tuple[str, ...] = ()) -> AnyStack:
    if backend == "compose":
        return ComposeStack(TARGET, bugs=bugs)
    return LocalStack(TARGET, bugs=bugs)


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "min_ms": round(min(samples) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "n": len(samples),
    }


def build_images(cold: bool) -> dict[str, float]:
    if cold:
        listed = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "chaos-model/*"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if listed:
            subprocess.run(["docker", "rmi", "-f", *listed], capture_output=True, check=True)
    began = time.perf_counter()
    subprocess.run([str(ROOT / "scripts" / "build-images")], check=True, capture_output=True)
    return {"cold" if cold else "cached": round(time.perf_counter() - began, 1)}


def fault_latencies(stack: AnyStack, rounds: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {}

    def sample(name: str, action: Callable[[], object]) -> None:
        samples.setdefault(name, []).append(timed(action))

    for _ in range(rounds):
        for service in ("postgres", "nats", "worker"):
            one_service(stack, service, sample)
        one_round(stack, sample)
        stack.heal()
    return {name: summary(values) for name, values in samples.items()}


Sampler = Callable[[str, Callable[[], object]], None]


def one_service(stack: AnyStack, name: str, sample: Sampler) -> None:
    target = stack.services[name]
    sample(f"pause {name}", target.pause)
    sample(f"resume {name}", target.resume)
    sample(f"kill {name}", target.kill)
    sample(f"start {name} until ready", lambda: (target.start(), target.wait_ready()))


def one_round(stack: AnyStack, sample: Sampler) -> None:
    postgres = stack.services["postgres"]
    sample("stop postgres (clean)", postgres.stop)
    sample("start postgres until ready", lambda: (postgres.start(), postgres.wait_ready()))
    sample("restart worker until ready", stack.services["worker"].restart)
    link = Partition("worker->postgres")
    sample("partition a link (proxy)", lambda: link.apply(stack))
    sample("heal the partition", lambda: link.heal(stack))
    if isinstance(stack, ComposeStack):
        sample("disconnect postgres (network)", lambda: stack.partition("postgres"))
        sample("reconnect postgres until ready", stack.heal)


def detection(backend: str, bug: str, budget: float) -> dict[str, Any]:
    config = ChaosConfig(
        examples=10_000,
        steps=10,
        seed=1,
        max_time=budget,
        shrink=False,
        replays=1,
        database=False,
        progress=False,
        failures_dir=Path(tempfile.mkdtemp(prefix="compose-bench-")),
    )
    stack = new_stack(backend, (bug,))
    with stack:
        report = run(stack, config, log_dirs=stack.log_paths())
    return {
        "found": report.first_failure is not None,
        "seconds_to_first_violation": report.first_failure_seconds,
        "examples_to_first_violation": report.first_failure_examples,
        "examples": report.examples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="rebuild every image from nothing")
    parser.add_argument("--rounds", type=int, default=5, help="samples per fault (default 5)")
    parser.add_argument("--starts", type=int, default=3, help="stack starts per backend")
    parser.add_argument("--bug", default="ack_failures", help="bug to detect on both backends")
    parser.add_argument("--detect-budget", type=float, default=60.0, help="seconds per backend")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": machine_info(), "images": build_images(args.cold)}
    print(f"images: {results['images']}", flush=True)
    for backend in ("local", "compose"):
        starts, stops = [], []
        latencies: dict[str, dict[str, float]] = {}
        for attempt in range(args.starts):
            stack = new_stack(backend)
            starts.append(timed(stack.start))
            if attempt == 0:
                latencies = fault_latencies(stack, args.rounds)
            stops.append(timed(stack.stop))
        detect = detection(backend, args.bug, args.detect_budget)
        results[backend] = {
            "start": summary(starts),
            "first_start_s": round(starts[0], 2),
            "stop": summary(stops),
            "faults": latencies,
            "detect": {"bug": args.bug, "budget_s": args.detect_budget, **detect},
        }
        print(f"\n{backend}: start {summary(starts)}  stop {summary(stops)}")
        for name, value in latencies.items():
            print(f"  {name:34} median {value['median_ms']:8.1f} ms  (max {value['max_ms']})")
        print(f"  detect {args.bug}: {detect}", flush=True)
    path = write_json("compose.json", results)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
