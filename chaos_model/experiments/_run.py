"""Running one experiment on a stack, and what actually happened next to what was expected."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis.stateful import RULE_MARKER

from chaos_model._wait import WaitTimeout, wait_until
from chaos_model.config import ChaosConfig
from chaos_model.experiments import _observe
from chaos_model.experiments._model import (
    AWAIT,
    Experiment,
    check_target,
    describe_step,
)
from chaos_model.guard import ensure_injectable
from chaos_model.history import History
from chaos_model.machine import ChaosMachine, LivenessViolation, SafetyViolation, bind
from chaos_model.recorder import RunRecorder
from chaos_model.replay import _run_step
from chaos_model.reporting.metrics import ExampleMetrics, describe, example_metrics, sparkline
from chaos_model.stack import Stack
from chaos_model.target import make_target


@dataclass
class ExperimentResult:
    name: str
    started: str
    seconds: float
    as_expected: bool
    bugs: list[str] = field(default_factory=list)
    #: the name of the target it ran on (empty in results written before targets had names)
    target: str = ""
    violations: list[str] = field(default_factory=list)
    awaited: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    webhook: dict[str, int] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, int] = field(default_factory=dict)
    max_attempts: dict[str, int] = field(default_factory=dict)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    quiesce_seconds: float | None = None
    pending_at_deadline: dict[str, Any] = field(default_factory=dict)
    failure_dir: str | None = None
    error: str | None = None
    #: webhook latency, answers by status class, pending work over time and time to recover
    #: (``ExampleMetrics.to_json()``; empty in results written before they were measured)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExperimentResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def verdict(self) -> str:
        return "as expected" if self.as_expected else "DIFFERS from the expected behaviour"

    def actual(self) -> str:
        """What happened, in a few sentences."""
        parts: list[str] = []
        if self.error:
            parts.append(f"A step raised {self.error}.")
        if self.violations:
            parts.append("Invariants violated: " + "; ".join(self.violations) + ".")
        elif not self.error:
            parts.append("Every invariant held.")
        seen = [
            f"{item['what']} (after {item['seconds']:.1f} s)"
            for item in self.awaited
            if item["seen"]
        ]
        if seen:
            parts.append("Observed as awaited: " + "; ".join(seen) + ".")
        for item in self.awaited:
            if not item["seen"]:
                parts.append(f"Not observed within {item['timeout']:g} s: {item['what']}.")
        if self.webhook:
            parts.append(f"Webhook answers to Telegram: {_counts(self.webhook)}.")
        applied = [_describe_fault(entry) for entry in self.faults]
        if applied:
            parts.append("Faults: " + "; ".join(applied) + ".")
        if self.stages:
            parts.append(f"Messages by final stage: {_counts(self.stages)}.")
        for name, feed in self.feeds.items():
            resumed = ", resumed after a drop" if feed["resumed"] else ""
            parts.append(f"Feed {name} saw {feed['events']} stage events{resumed}.")
        retried = {stage: n for stage, n in self.max_attempts.items() if n > 1}
        if retried:
            parts.append(f"Most attempts of one task: {_counts(retried)}.")
        if self.quiesce_seconds is not None:
            parts.append(f"Quiescent {self.quiesce_seconds:.1f} s after the final heal.")
        if self.pending_at_deadline:
            parts.append(
                f"Pending at the quiescence deadline: {_counts(self.pending_at_deadline)}."
            )
        if self.skipped:
            parts.append("Steps skipped (not applicable): " + ", ".join(self.skipped) + ".")
        measured = self.measured
        if measured is not None:
            parts.append("Measured: " + "; ".join(f"{k} {v}" for k, v in describe(measured)) + ".")
        return " ".join(parts)

    @property
    def measured(self) -> ExampleMetrics | None:
        return ExampleMetrics.from_json(self.metrics) if self.metrics else None


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())


def _describe_fault(entry: dict[str, Any]) -> str:
    fault = dict(entry["fault"] or {})
    kind = fault.pop("kind", "?")
    args = ", ".join(
        f"{key}={value}" for key, value in fault.items() if value is not None and key != "toxic"
    )
    toxic = fault.get("toxic")
    if isinstance(toxic, dict):
        args += f", toxic={toxic.get('type')} {toxic.get('stream', '')}".rstrip()
    text = f"{kind}({args})"
    if entry["outcome"] != "applied":
        return f"{text} ({entry['outcome']}: {entry.get('error', '')})"
    healed = entry.get("healed_after")
    in_force = f"healed after {healed:.1f} s" if healed is not None else "healed at teardown"
    return f"{text} at {entry['at']:.1f} s, {in_force}"


def run_experiment(
    experiment: Experiment,
    stack: Stack,
    *,
    failures_dir: Path = Path("chaos-failures"),
    log_dirs: dict[str, Path] | None = None,
) -> ExperimentResult:
    """Run ``experiment`` once on ``stack`` (reset first, like every example) and observe it."""
    ensure_injectable(stack)
    config = ChaosConfig(progress=False, failures_dir=failures_dir)
    recorder = RunRecorder(progress=False, failures_dir=failures_dir, log_dirs=log_dirs or {})
    began = time.monotonic()
    result = ExperimentResult(
        name=experiment.name,
        started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=0.0,
        as_expected=False,
        bugs=list(getattr(stack, "bugs", ())),
        target=stack.target.name,
    )
    try:
        check_target(experiment, stack.target)
        machine = bind(stack, config, recorder)()
    except Exception as error:  # noqa: BLE001 - not for this target, or the stack did not reset
        result.error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        result.seconds = round(time.monotonic() - began, 2)
        return result
    try:
        try:
            for item in experiment.steps:
                _step(machine, item, result)
        finally:
            machine.teardown()
    except (SafetyViolation, LivenessViolation):
        pass  # the findings are read below
    except Exception as error:  # noqa: BLE001 - reported as the experiment's outcome
        result.error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    result.violations = [str(finding) for finding in machine.findings]
    result.seconds = round(time.monotonic() - began, 2)
    _observe_after(machine, recorder, stack, result)
    if recorder.last_failure is not None and recorder.last_failure.directory is not None:
        result.failure_dir = str(recorder.last_failure.directory)
    result.as_expected = (
        not result.violations
        and result.error is None
        and all(item["seen"] for item in result.awaited)
    )
    return result


def _step(machine: ChaosMachine, item: dict[str, Any], result: ExperimentResult) -> None:
    if item["rule"] == AWAIT:
        result.awaited.append(_await(machine, dict(item.get("args", {}))))
        return
    rule = getattr(getattr(type(machine), item["rule"]), RULE_MARKER, None)
    preconditions = rule.preconditions if rule is not None else ()
    if not all(precondition(machine) for precondition in preconditions):
        result.skipped.append(describe_step(item))
        return
    _run_step(machine, item)
    machine.safety()


def _await(machine: ChaosMachine, args: dict[str, Any]) -> dict[str, Any]:
    what = _observe.describe_condition(args)
    timeout = float(args.get("timeout", 15.0))
    began = time.monotonic()
    try:
        wait_until(lambda: _observe.condition_met(machine, args), timeout=timeout, what=what)
        seen = True
    except WaitTimeout:
        seen = False
    seconds = round(time.monotonic() - began, 2)
    return {"what": what, "seen": seen, "seconds": seconds, "timeout": timeout}


def _observe_after(
    machine: ChaosMachine, recorder: RunRecorder, stack: Stack, result: ExperimentResult
) -> None:
    result.webhook = _observe.webhook_answers(machine.history)
    result.faults = _observe.faults(machine.history)
    result.pending_at_deadline = dict(machine.pending_at_deadline)
    with contextlib.suppress(Exception):
        result.feeds = {
            feed.name: {"events": len(feed.events), "resumed": feed.resumed}
            for feed in machine.target.feeds()
        }
    if recorder.quiesce_times:
        result.quiesce_seconds = round(recorder.quiesce_times[-1], 2)
    probes = {
        update_id
        for update_id, chat in machine.model.sent.items()
        if chat == _observe.RECOVERY_PROBE_CHAT
    }
    target = make_target(stack, History())
    try:
        snapshot = target.snapshot(timeout=2.0)
    except Exception:  # noqa: BLE001 - no final snapshot: the stages stay unknown
        snapshot = None
    finally:
        with contextlib.suppress(Exception):
            target.close()
    result.stages = _observe.stages(snapshot, probes)
    result.max_attempts = _observe.max_attempts(snapshot)
    ops = machine.history.to_json()
    result.metrics = example_metrics(ops, machine.queue_depth, machine.quiescent_at).to_json()


def render_text(experiment: Experiment, result: ExperimentResult) -> str:
    """The result as a person reads it: expected next to actual, then the details."""
    lines = [
        f"experiment  {experiment.name}",
        f"verdict     {result.verdict} ({result.seconds:.1f} s"
        + (f", bugs: {', '.join(result.bugs)})" if result.bugs else ")"),
        "",
        "hypothesis",
        f"  {experiment.hypothesis}",
        "expected",
        f"  {experiment.expected}",
        "actual",
        f"  {result.actual()}",
        "",
        "steps",
        *(f"  {index}. {describe_step(item)}" for index, item in enumerate(experiment.steps, 1)),
    ]
    if result.awaited:
        lines.append("awaited")
        for item in result.awaited:
            seen = f"seen after {item['seconds']:.1f} s" if item["seen"] else "NOT seen"
            lines.append(f"  {item['what']}: {seen}")
    measured = result.measured
    if measured is not None:
        lines += ["", "measured", *_measured_lines(measured)]
    if result.failure_dir:
        lines += ["", f"saved failure: {result.failure_dir}"]
    return "\n".join(lines) + "\n"


def _measured_lines(metrics: ExampleMetrics) -> list[str]:
    lines = describe(metrics)
    width = max(len(name) for name, _ in lines)
    text = [f"  {name:<{width}}  {value}" for name, value in lines]
    chart = sparkline(metrics)
    if chart:
        text.append(f"  {'':<{width}}  {chart}  (pending work, 0 to {metrics.duration:.1f} s)")
    return text


def write_result(experiment: Experiment, result: ExperimentResult, directory: Path) -> Path:
    """Write ``NAME.json`` and ``NAME.txt`` (expected next to actual) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"experiment": experiment.to_json(), "result": result.to_json()}
    path = directory / f"{experiment.name}.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")
    (directory / f"{experiment.name}.txt").write_text(render_text(experiment, result))
    return path


def read_results(directory: Path) -> dict[str, ExperimentResult]:
    """The last result of each experiment found in ``directory`` (unreadable files skipped)."""
    results: dict[str, ExperimentResult] = {}
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(path.read_text())
            result = ExperimentResult.from_json(data["result"])
            results[result.name] = result
    return results
