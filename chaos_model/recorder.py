"""Run bookkeeping: counts, the live progress line, and failure artefacts on disk.

A failure is never lost: the first failing example's steps, history and service logs are saved
as soon as it fails, and every later failing example (Hypothesis shrinks towards the minimal one
and replays it last) is saved beside it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hypothesis.control import current_build_context

from chaos_model.invariants import Result, Verdict
from chaos_model.points import CoverageTable
from chaos_model.reporting.capture import ExampleCapture, capture_example
from chaos_model.run_stats import InvariantExercise

if TYPE_CHECKING:
    from chaos_model.example import ExampleView


class BudgetSpent(KeyboardInterrupt):
    """Stops a Hypothesis run at once when a time budget is spent.

    Hypothesis lets a KeyboardInterrupt through untouched. Any other way of ending examples
    early (rejecting them, raising) makes it see a choice sequence it already knows draw less
    than before, and it gives up with FlakyStrategyDefinition.
    """


@dataclass
class FailureRecord:
    steps: list[dict[str, Any]]
    violations: list[str]
    invariants: list[str]
    kinds: list[str]
    directory: Path | None = None
    error: str | None = None
    #: what the example did, timed, for the run report's timeline
    capture: ExampleCapture | None = None
    #: the adapter file of the target it failed on
    target: str = ""


@dataclass
class RunReport:
    examples: int
    steps: int
    steps_per_second: float
    faults: int
    faults_by_kind: dict[str, int]
    elapsed: float
    reset_p50: float
    violations: int
    failure: FailureRecord | None = None
    first_failure: FailureRecord | None = None
    program: str | None = None
    reproduced: int = 0
    replays: int = 0
    hypothesis_error: str | None = None
    flaky: bool = False
    notes: list[str] = field(default_factory=list)
    first_failure_seconds: float | None = None
    first_failure_examples: int = 0
    first_failure_steps: int = 0
    shrink_seconds: float = 0.0
    apply_seconds: dict[str, list[float]] = field(default_factory=dict)
    heal_seconds: dict[str, list[float]] = field(default_factory=dict)
    #: the last passing example, when the run was asked to keep one for its report
    passing_example: ExampleCapture | None = None
    #: the fault x point table of the run
    coverage: CoverageTable = field(default_factory=CoverageTable)
    #: the failure was found by the opening sweep (not by the search)
    found_by_sweep: bool = False

    @property
    def failed(self) -> bool:
        return self.failure is not None


@dataclass
class RunRecorder:
    max_time: float | None = None
    shrink_budget: float = 120.0
    progress: bool = True
    out: TextIO = field(default_factory=lambda: sys.stderr)
    failures_dir: Path = field(default_factory=lambda: Path("chaos-failures"))
    log_dirs: dict[str, Path] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    examples: int = 0
    steps: int = 0
    faults: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    violations: int = 0
    reset_times: list[float] = field(default_factory=list)
    quiesce_times: list[float] = field(default_factory=list)
    run_dir: Path | None = None
    first_failure_at: float | None = None
    first_failure_examples: int = 0
    first_failure_steps: int = 0
    #: seconds each fault took to apply and to heal, by fault kind
    apply_seconds: dict[str, list[float]] = field(default_factory=dict)
    heal_seconds: dict[str, list[float]] = field(default_factory=dict)
    first_failure: FailureRecord | None = None
    last_failure: FailureRecord | None = None
    #: which faults and operations exercised each invariant (for docs/invariants.md)
    exercise: InvariantExercise = field(default_factory=InvariantExercise)
    #: the fault x point table: every point reached, faulted, fired, and what it found
    coverage: CoverageTable = field(default_factory=CoverageTable)
    #: keep a capture of the last passing example too (the report's --report-passing)
    capture_passing: bool = False
    last_passing: ExampleCapture | None = None
    _step_started_at: list[float] = field(default_factory=list)
    _pending: list[Result] = field(default_factory=list)
    _last_print: float = 0.0
    _step_time: float = 0.0
    _step_started: float = 0.0

    # ------------------------------------------------------------------ hooks from the machine
    def before_example(self) -> None:
        out_of_time = self.max_time is not None and self.elapsed() > self.max_time
        if out_of_time and self.first_failure is None:
            raise BudgetSpent(f"the run's {self.max_time:.0f} s are spent")
        # Each shrink candidate costs seconds on a real stack: past the shrink budget, stop
        # Hypothesis; the smallest failure so far is the last one recorded.
        if (
            self.first_failure_at is not None
            and self.elapsed() - self.first_failure_at > self.shrink_budget
            and not current_build_context().is_final
        ):
            raise BudgetSpent(f"the shrink budget of {self.shrink_budget:.0f} s is spent")

    def example_started(self, reset_seconds: float) -> None:
        self.examples += 1
        self.reset_times.append(reset_seconds)
        self._pending = []
        self._step_started_at = []
        self._step_started = time.monotonic()
        self._print_progress()

    def step(self) -> None:
        self.steps += 1
        self._step_started_at.append(time.monotonic())
        self._print_progress()

    def fault_applied(self, kind: str) -> None:
        self.faults += 1
        self.faults_by_kind[kind] = self.faults_by_kind.get(kind, 0) + 1

    def violation(self, failed: Sequence[Result]) -> None:
        self._pending = list(failed)

    def error(self, error: BaseException) -> None:
        """A step raised something other than a violation: a finding too, reported as such."""
        detail = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        self._pending = [Result("step_raised", "error", Verdict.INVALID, detail)]

    def quiesced(self, seconds: float) -> None:
        self.quiesce_times.append(seconds)

    def example_finished(self, machine: ExampleView) -> None:
        self._step_time += time.monotonic() - self._step_started
        self._collect_fault_latency(machine.history.to_json())
        self.exercise.record(machine, len(self.quiesce_times))
        self._note_coverage(machine)
        if not self._pending:
            if self.capture_passing:
                self.last_passing = self._capture(machine)
            return
        self.violations += 1
        record = FailureRecord(
            steps=list(machine.steps),
            violations=[str(result) for result in self._pending],
            invariants=[result.invariant for result in self._pending],
            kinds=sorted({result.kind for result in self._pending}),
            capture=self._capture(machine),
            target=str(machine.spec.source),
        )
        label = "first" if self.first_failure is None else "last"
        record.directory = self._save(record, machine, label)
        if self.first_failure is None:
            self.first_failure = record
            self.first_failure_at = self.elapsed()
            self.first_failure_examples = self.examples
            self.first_failure_steps = self.steps
        self.last_failure = record
        self._pending = []

    def _note_coverage(self, machine: ExampleView) -> None:
        points = getattr(machine.stack, "points", None)
        known = points.points() if points is not None else {}
        violated = [result.invariant for result in self._pending]
        self.coverage.add(machine.coverage, known, violated)

    def _capture(self, machine: ExampleView) -> ExampleCapture:
        return capture_example(machine, self._step_started_at, self._pending, self.log_dirs)

    def _collect_fault_latency(self, ops: list[dict[str, Any]]) -> None:
        """Pair each nemesis invoke with its completion (the nemesis is sequential)."""
        pending: dict[str, Any] | None = None
        for op in ops:
            if op["process"] != "nemesis" or op["f"] not in ("fault", "heal"):
                continue
            if op["type"] == "invoke":
                pending = op
                continue
            if pending is None or op["type"] != "ok":
                pending = None
                continue
            kind = str((pending["value"] or {}).get("kind", "?"))
            table = self.apply_seconds if op["f"] == "fault" else self.heal_seconds
            table.setdefault(kind, []).append(op["time"] - pending["time"])
            pending = None

    # ------------------------------------------------------------------ reporting
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def steps_per_second(self) -> float:
        return self.steps / self._step_time if self._step_time > 0 else 0.0

    def _print_progress(self, force: bool = False) -> None:
        if not self.progress:
            return
        now = time.monotonic()
        if not force and now - self._last_print < 0.5:
            return
        self._last_print = now
        self.out.write(
            f"\rexamples {self.examples} | steps {self.steps}"
            f" ({self.steps / max(self.elapsed(), 1e-9):.1f}/s)"
            f" | faults {self.faults} | violations {self.violations}"
            f" | {self.elapsed():.0f}s   "
        )
        self.out.flush()

    def finish_progress(self) -> None:
        if self.progress:
            self._print_progress(force=True)
            self.out.write("\n")
            self.out.flush()

    def _save(self, record: FailureRecord, machine: ExampleView, label: str) -> Path:
        if self.run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.run_dir = self.failures_dir / f"{stamp}-{record.invariants[0]}"
        directory = self.run_dir / ("first" if label == "first" else "latest")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        write_failure(directory, record, machine.history.to_json(), self.log_dirs)
        return directory


def rewrite_steps(directory: Path, record: FailureRecord) -> None:
    """Replace a saved failure's program (after further shrinking); history and logs stay."""
    _write_program(directory, record)


def _write_program(directory: Path, record: FailureRecord) -> None:
    (directory / "steps.json").write_text(
        json.dumps(
            {
                "steps": record.steps,
                "violations": record.violations,
                "invariants": record.invariants,
                "target": record.target,
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    (directory / "program.py").write_text(render_program(record.steps) + "\n")


def write_failure(
    directory: Path,
    record: FailureRecord,
    history: list[dict[str, Any]],
    logs: dict[str, Path],
) -> None:
    _write_program(directory, record)
    (directory / "history.json").write_text(json.dumps(history, indent=1, default=str))
    (directory / "test_replay.py").write_text(REPLAY_TEST)
    if record.capture is not None:
        (directory / "timeline.json").write_text(
            json.dumps(record.capture.to_json(), indent=1, default=str, ensure_ascii=False)
        )
    log_dir = directory / "logs"
    log_dir.mkdir(exist_ok=True)
    for name, path in logs.items():
        if path.exists():
            shutil.copyfile(path, log_dir / f"{name}.log")


def render_program(steps: list[dict[str, Any]]) -> str:
    """The steps in Hypothesis's stateful style: ``state = ChaosMachine()`` ... teardown."""
    lines = ["state = ChaosMachine()"]
    bundle = 0
    for step in steps:
        args = dict(step["args"])
        rule = step["rule"]
        if rule == "redeliver":
            rendered = f"update=updates_{args['update']}"
        elif rule == "point":  # crash(service='worker', after='...: asyncpg.execute COMMIT')
            rule = {"raise": "error"}.get(args.get("action", "crash"), args.get("action", "crash"))
            args.pop("action", None)
            when = args.pop("when", "after")
            args = {"service": args.pop("service"), when: args.pop("point"), **args}
            rendered = ", ".join(f"{key}={value!r}" for key, value in args.items())
        else:
            rendered = ", ".join(f"{key}={value!r}" for key, value in args.items())
        call = f"state.{rule}({rendered})"
        if step["rule"] == "deliver":
            call = f"updates_{bundle} = {call}"
            bundle += 1
        lines.append(call)
    lines.append("state.teardown()")
    return "\n".join(lines)


REPLAY_TEST = '''"""A failing program saved by chaos-model: replay it with pytest or chaos-model."""

from pathlib import Path

from chaos_model.replay import assert_replay_passes

STEPS = Path(__file__).with_name("steps.json")


def test_replay(chaos_stack):
    assert_replay_passes(STEPS, chaos_stack)
'''
