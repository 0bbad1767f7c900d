"""Does chaos-model find the bugs it should? The detection benchmark.

For each bug of the bug zoo, K runs with different seeds on the local backend, each with a time
budget; the same budget on the correct pipeline (must find nothing), throughput numbers, and
optionally a soak. Prints a table and writes ``bench/results/detect.json``.

    python bench/detect.py                          # every bug, 5 seeds, 120 s each
    python bench/detect.py --bugs ack_before_work --seeds 1 --budget 60
    python bench/detect.py --soak 30m               # only the soak on the correct pipeline
    python bench/detect.py --markdown bench/results/detect.json   # tables for docs/detection.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, percentile, write_json

from chaos_model.cli import parse_duration
from chaos_model.config import ALL_FAULT_KINDS, ChaosConfig
from chaos_model.runner import RunReport, run
from chaos_model.stack import LocalStack
from pipeline_app.bugs import KNOWN_BUGS

EXAMPLE_CAP = 100_000  # the time budget, not the example count, ends a run

#: Steps of the known-minimal failing program of each bug (docs/bugs.md).
KNOWN_MINIMUM = {
    "ack_before_work": 2,
    "publish_outside_txn": 2,
    "respond_before_commit": 2,
    "no_update_dedup": 2,
    "non_idempotent_extract": 2,
    "ack_failures": 2,
    "no_pool_recovery": 1,
    "ws_no_resume": 2,
    "infinite_redelivery": 2,
    "core_nats": 2,
    # the deep zoo (docs/bugs.md): between two I/O calls, found through fault points
    "webhook_two_transactions": 2,
    "dual_write_score": 2,
    "dedup_marker_first": 2,
    "relay_mark_before_publish": 2,
    "extract_items_before_marker": 2,
    "in_memory_retry": 3,
    # only the oracle sees these (docs/bugs.md): wrong content, cost, latency or outcome
    "http_errors_final": 2,
    "events_first_attempt_only": 2,
    "score_rounded": 1,
    "llm_client_retries": 2,
    "inline_spam_check": 2,
}
#: the deep zoo's targets: found within 5 minutes each, median <= 60 s
DEEP = frozenset(
    {
        "webhook_two_transactions",
        "dual_write_score",
        "dedup_marker_first",
        "relay_mark_before_publish",
        "extract_items_before_marker",
        "in_memory_retry",
    }
)
DEEP_MEDIAN_TARGET = 60.0
REPRODUCTION_TARGET = 2 / 3
MEDIAN_DETECT_TARGET = 30.0
STEPS_PER_SECOND_TARGET = 20.0
RESET_TARGET_MS = 100.0


SHRINK_BUDGET = 60.0


#: the fault kinds of a run: everything but the hand-placed failpoints, which a user's service
#: does not have (``--with-failpoints`` adds them back)
FAULTS = tuple(kind for kind in ALL_FAULT_KINDS if kind != "failpoint")


def _config(seed: int, budget: float, failures: Path, steps: int, shrink: float) -> ChaosConfig:
    return ChaosConfig(
        faults=FAULTS,
        shrink_budget=shrink,
        examples=EXAMPLE_CAP,
        steps=steps,
        seed=seed,
        max_time=budget,
        database=False,
        progress=False,
        failures_dir=failures,
    )


def _bug_result(bug: str, seed: int, report: RunReport) -> dict[str, Any]:
    failure = report.failure
    return {
        "bug": bug,
        "seed": seed,
        "found": failure is not None and failure.kinds != ["error"],
        "seconds_to_first_violation": report.first_failure_seconds,
        "examples_until": report.first_failure_examples,
        "by_sweep": report.found_by_sweep,
        "steps_until": report.first_failure_steps,
        "invariants": failure.invariants if failure else [],
        "shrink_seconds": round(report.shrink_seconds, 2),
        "shrunk_length": len(failure.steps) if failure else None,
        "program": report.program,
        "reproduced": report.reproduced,
        "replays": report.replays,
        "elapsed": round(report.elapsed, 2),
        "error": report.hypothesis_error if failure is None or failure.kinds == ["error"] else None,
    }


def _throughput(report: RunReport, stack: LocalStack) -> dict[str, Any]:
    minutes = max(report.elapsed, 1e-9) / 60
    kinds = sorted(set(report.apply_seconds) | set(report.heal_seconds))
    return {
        "steps_per_second": round(report.steps_per_second, 2),
        "examples_per_minute": round(report.examples / minutes, 2),
        "faults_per_minute": round(report.faults / minutes, 2),
        "reset_p50_ms": round(report.reset_p50 * 1000, 1),
        "cold_start_seconds": round(stack.start_seconds, 2),
        "fault_latency_ms": {
            kind: {
                "apply_p50": _ms(percentile(report.apply_seconds.get(kind, []), 0.5)),
                "apply_p95": _ms(percentile(report.apply_seconds.get(kind, []), 0.95)),
                "heal_p50": _ms(percentile(report.heal_seconds.get(kind, []), 0.5)),
                "heal_p95": _ms(percentile(report.heal_seconds.get(kind, []), 0.95)),
            }
            for kind in kinds
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def detect(
    bugs: list[str], seeds: int, budget: float, steps: int, out: Path, shrink: float
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for bug in bugs:
        with LocalStack(bugs=(bug,)) as stack:
            for seed in range(1, seeds + 1):
                config = _config(seed, budget, out, steps, shrink)
                report = run(stack, config, log_dirs=stack.log_paths())
                result = _bug_result(bug, seed, report)
                results.append(result)
                _say(
                    f"{bug} seed {seed}: "
                    + (
                        f"found in {result['seconds_to_first_violation']:.1f}s"
                        f" ({', '.join(result['invariants'])}), shrunk to"
                        f" {result['shrunk_length']} steps, reproduced"
                        f" {result['reproduced']}/{result['replays']}"
                        if result["found"]
                        else "NOT found"
                    )
                )
    return {"bugs": results}


def correct(seeds: int, budget: float, steps: int, out: Path, shrink: float) -> dict[str, Any]:
    """The correct pipeline: each seed as the detection runs do (sweep, then search), and once
    more for throughput, as a default ``chaos-model run`` searches (no sweep, default steps):
    the sweep's two-step programs with their teardowns say little about the search's pace."""
    runs: list[dict[str, Any]] = []
    modes = [(seed, True, steps) for seed in range(1, seeds + 1)]
    modes.append((seeds + 1, False, ChaosConfig().steps))
    with LocalStack() as stack:
        for seed, sweep, mode_steps in modes:
            config = _config(seed, budget, out, mode_steps, shrink)
            config.sweep = sweep
            report = run(stack, config, log_dirs=stack.log_paths())
            mode = f"{'sweep and search' if sweep else 'search only'}, {mode_steps} steps"
            runs.append(
                {
                    "seed": seed,
                    "mode": mode,
                    "throughput_run": not sweep,
                    "violations": report.violations,
                    "failure": report.failure.violations if report.failure else None,
                    "examples": report.examples,
                    "faults": report.faults,
                    **_throughput(report, stack),
                }
            )
            _say(
                f"correct pipeline seed {seed} ({mode}): {report.violations} violations, "
                f"{report.steps_per_second:.1f} steps/s"
            )
    return {"correct": runs}


def soak(seconds: float, steps: int, out: Path, shrink: float) -> dict[str, Any]:
    with LocalStack() as stack:
        config = _config(int(time.time()), seconds, out, steps, shrink)
        report = run(stack, config, log_dirs=stack.log_paths())
        return {
            "soak": {
                "seconds": seconds,
                "examples": report.examples,
                "faults": report.faults,
                "faults_by_kind": report.faults_by_kind,
                "violations": report.violations,
                "failure": report.failure.violations if report.failure else None,
                **_throughput(report, stack),
            }
        }


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def print_table(data: dict[str, Any]) -> None:
    by_bug: dict[str, list[dict[str, Any]]] = {}
    for result in data.get("bugs", []):
        by_bug.setdefault(result["bug"], []).append(result)
    if by_bug:
        print(f"\n{'bug':24} {'found':>7} {'median s':>9} {'shrunk':>7} {'repro':>7}  invariant")
        for bug, results in by_bug.items():
            found = [r for r in results if r["found"]]
            times = [r["seconds_to_first_violation"] for r in found]
            median = f"{statistics.median(times):.1f}" if times else "-"
            lengths = [r["shrunk_length"] for r in found]
            shrunk = str(max(lengths)) if lengths else "-"
            repro = f"{sum(r['reproduced'] for r in found)}/{sum(r['replays'] for r in found)}"
            invariant = found[0]["invariants"][0] if found else "-"
            print(
                f"{bug:24} {len(found):>3}/{len(results):<3} {median:>9} {shrunk:>7} {repro:>7}"
                f"  {invariant}"
            )
    for run_ in data.get("correct", []):
        print(
            f"\ncorrect pipeline (seed {run_['seed']}, {run_.get('mode', '')}):"
            f" {run_['violations']} violations,"
            f" {run_['steps_per_second']} steps/s, {run_['examples_per_minute']} examples/min,"
            f" {run_['faults_per_minute']} faults/min, reset p50 {run_['reset_p50_ms']} ms,"
            f" cold start {run_['cold_start_seconds']} s"
        )
        for kind, latency in run_["fault_latency_ms"].items():
            print(
                f"  {kind:22} apply p50/p95 {latency['apply_p50']}/{latency['apply_p95']} ms"
                f"  heal p50/p95 {latency['heal_p50']}/{latency['heal_p95']} ms"
            )
    if "soak" in data:
        s = data["soak"]
        print(
            f"\nsoak {s['seconds']:.0f}s: {s['examples']} examples, {s['faults']} faults,"
            f" {s['violations']} violations"
        )


def assess(data: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Each target of the benchmark: (target, met, what was measured)."""
    verdicts: list[tuple[str, bool, str]] = []
    by_bug: dict[str, list[dict[str, Any]]] = {}
    for result in data.get("bugs", []):
        by_bug.setdefault(result["bug"], []).append(result)
    if by_bug:
        missed = {
            bug: f"{sum(r['found'] for r in runs)}/{len(runs)}"
            for bug, runs in by_bug.items()
            if not all(r["found"] for r in runs)
        }
        verdicts.append(
            (
                "every bug found with every seed",
                not missed,
                ", ".join(f"{bug} {rate}" for bug, rate in missed.items()) or "all found",
            )
        )
        for group, target in (("old zoo", MEDIAN_DETECT_TARGET), ("deep zoo", DEEP_MEDIAN_TARGET)):
            slow = {}
            for bug, runs in by_bug.items():
                if (bug in DEEP) != (group == "deep zoo"):
                    continue
                times = [r["seconds_to_first_violation"] for r in runs if r["found"]]
                if not times or statistics.median(times) > target:
                    slow[bug] = f"{statistics.median(times):.1f}s" if times else "never"
            verdicts.append(
                (
                    f"{group}: median time to detect <= {target:.0f}s per bug",
                    not slow,
                    ", ".join(f"{bug} {t}" for bug, t in slow.items()) or "all within",
                )
            )
        weak = {}
        for bug, runs in by_bug.items():
            found = [r for r in runs if r["found"]]
            reproduced = sum(r["reproduced"] for r in found)
            replays = sum(r["replays"] for r in found)
            if not replays or reproduced / replays < REPRODUCTION_TARGET:
                weak[bug] = f"{reproduced}/{replays}"
        verdicts.append(
            (
                "reproduction >= 2/3",
                not weak,
                ", ".join(f"{bug} {rate}" for bug, rate in weak.items()) or "all within",
            )
        )
        long = {}
        for bug, runs in by_bug.items():
            allowed = KNOWN_MINIMUM[bug] + 1
            lengths = [r["shrunk_length"] for r in runs if r["found"]]
            if not lengths or max(lengths) > allowed:
                long[bug] = f"{max(lengths) if lengths else '-'} (allowed {allowed})"
        verdicts.append(
            (
                "shrunk program <= known minimum + 1",
                not long,
                ", ".join(f"{bug} {n}" for bug, n in long.items()) or "all within",
            )
        )
    correct_runs = data.get("correct", [])
    violations = sum(run_["violations"] for run_ in correct_runs)
    if correct_runs:
        verdicts.append(
            (
                "0 violations on the correct pipeline",
                not violations,
                f"{violations} in {len(correct_runs)} runs",
            )
        )
    throughput_runs = [r for r in correct_runs if r.get("throughput_run")] or correct_runs
    for run_ in throughput_runs:
        verdicts.append(
            (
                f">= {STEPS_PER_SECOND_TARGET:.0f} steps/s on the correct pipeline",
                run_["steps_per_second"] >= STEPS_PER_SECOND_TARGET,
                f"{run_['steps_per_second']} steps/s",
            )
        )
        verdicts.append(
            (
                f"reset <= {RESET_TARGET_MS:.0f} ms",
                run_["reset_p50_ms"] <= RESET_TARGET_MS,
                f"p50 {run_['reset_p50_ms']} ms",
            )
        )
    if "soak" in data:
        violations = data["soak"]["violations"]
        verdicts.append(("0 violations in the soak", not violations, str(violations)))
    return verdicts


def print_targets(verdicts: list[tuple[str, bool, str]]) -> None:
    print("\ntargets:")
    for target, met, measured in verdicts:
        print(f"  {'met   ' if met else 'MISSED'}  {target}: {measured}")


def _compact(program: str | None) -> str:
    """``state.kill(service='postgres')`` lines as ``kill(service='postgres')``, joined."""
    steps = [
        line.strip().split("state.", 1)[1]
        for line in (program or "").splitlines()
        if "state." in line and "teardown()" not in line
    ]
    return f"`{'; '.join(steps)}`" if steps else "-"


def markdown(data: dict[str, Any]) -> str:
    """The results as the Markdown tables of docs/detection.md."""
    lines = [
        "| bug | found | median s to first violation | found by | invariant"
        " | shrunk steps (known minimum) | reproduced | program (first seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_bug: dict[str, list[dict[str, Any]]] = {}
    for result in data.get("bugs", []):
        by_bug.setdefault(result["bug"], []).append(result)
    for bug, runs in by_bug.items():
        found = [r for r in runs if r["found"]]
        times = [r["seconds_to_first_violation"] for r in found]
        median = f"{statistics.median(times):.1f}" if times else "-"
        how = sorted({"sweep" if r.get("by_sweep") else "search" for r in found})
        lengths = sorted({r["shrunk_length"] for r in found})
        repro = f"{sum(r['reproduced'] for r in found)}/{sum(r['replays'] for r in found)}"
        invariants = sorted({i for r in found for i in r["invariants"]})
        lines.append(
            f"| `{bug}` | {len(found)}/{len(runs)} | {median} | {', '.join(how) or '-'}"
            f" | {', '.join(invariants) or '-'}"
            f" | {', '.join(map(str, lengths)) or '-'} ({KNOWN_MINIMUM.get(bug, '?')}) | {repro}"
            f" | {_compact(found[0]['program']) if found else '-'} |"
        )
    for run_ in data.get("correct", []):
        lines += [
            "",
            f"Correct pipeline ({run_.get('mode', 'same settings')}), same budget:"
            f" **{run_['violations']} violations** in"
            f" {run_['examples']} examples with {run_['faults']} faults;"
            f" {run_['steps_per_second']} steps/s, {run_['examples_per_minute']} examples/min,"
            f" {run_['faults_per_minute']} faults/min, reset p50 {run_['reset_p50_ms']} ms,"
            f" cold stack start {run_['cold_start_seconds']} s.",
            "",
            "| fault kind | apply p50 ms | apply p95 ms | heal p50 ms | heal p95 ms |",
            "|---|---|---|---|---|",
        ]
        for kind, latency in run_["fault_latency_ms"].items():
            lines.append(
                f"| {kind} | {latency['apply_p50']} | {latency['apply_p95']}"
                f" | {latency['heal_p50']} | {latency['heal_p95']} |"
            )
    if "targets" in data:
        lines += ["", "| target | status | measured |", "|---|---|---|"]
        for target in data["targets"]:
            status = "met" if target["met"] else "**missed**"
            lines.append(f"| {target['target']} | {status} | {target['measured']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bugs", default=",".join(KNOWN_BUGS), help="comma-separated bug names")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=parse_duration, default=120.0, help="per run, e.g. 120s")
    parser.add_argument("--steps", type=int, default=10, help="steps per example")
    parser.add_argument("--soak", type=parse_duration, default=None, help="e.g. 30m")
    parser.add_argument("--out", default="detect.json", help="file name under bench/results/")
    parser.add_argument(
        "--shrink-budget", type=parse_duration, default=SHRINK_BUDGET, help="per found bug"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the tables of an earlier result file as Markdown, run nothing",
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        try:
            earlier = json.loads(args.markdown.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"cannot read {args.markdown}: {error}")
        if "targets" not in earlier:
            earlier["targets"] = [
                {"target": target, "met": met, "measured": measured}
                for target, met, measured in assess(earlier)
            ]
        print(markdown(earlier))
        return 0
    bugs = [name.strip() for name in args.bugs.split(",") if name.strip()]
    unknown = sorted(set(bugs) - set(KNOWN_BUGS))
    if unknown:
        parser.error(f"unknown bug(s): {', '.join(unknown)}")
    failures = Path(tempfile.mkdtemp(prefix="chaos-detect-"))
    data: dict[str, Any] = {"machine": machine_info(), "budget_seconds": args.budget}
    if args.soak is not None:
        data.update(soak(args.soak, args.steps, failures, args.shrink_budget))
    else:
        data.update(detect(bugs, args.seeds, args.budget, args.steps, failures, args.shrink_budget))
        data.update(correct(1, args.budget, args.steps, failures, args.shrink_budget))
    verdicts = assess(data)
    data["targets"] = [
        {"target": target, "met": met, "measured": measured} for target, met, measured in verdicts
    ]
    path = write_json(args.out, data)
    print_table(data)
    print_targets(verdicts)
    print(f"\nwritten to {path}")
    missed = [r for r in data.get("bugs", []) if not r["found"]]
    violations = sum(r["violations"] for r in data.get("correct", []))
    violations += data.get("soak", {}).get("violations", 0)
    return 1 if missed or violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
