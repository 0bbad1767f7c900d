"""Running the chaos model against a stack: Hypothesis settings, shrinking, reproduction rate."""

from __future__ import annotations

import statistics
import traceback
from pathlib import Path
from typing import TextIO

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky, Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test

from chaos_model.config import ChaosConfig
from chaos_model.errors import StackError
from chaos_model.guard import ensure_injectable
from chaos_model.machine import bind
from chaos_model.minimise import ShrinkStopped, minimise
from chaos_model.points import PointCatalogue
from chaos_model.recorder import (
    BudgetSpent,
    FailureRecord,
    RunRecorder,
    RunReport,
    render_program,
    rewrite_steps,
)
from chaos_model.replay import replay
from chaos_model.run_stats import write_recorder_stats
from chaos_model.stack import Stack
from chaos_model.sweep import run_sweep

__all__ = ["EXAMPLE_DATABASE", "RunReport", "hypothesis_settings", "run"]

EXAMPLE_DATABASE = Path(".hypothesis") / "chaos-model"


def hypothesis_settings(config: ChaosConfig) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if config.shrink:
        phases.append(Phase.shrink)
    return settings(
        max_examples=config.examples,
        stateful_step_count=config.steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=DirectoryBasedExampleDatabase(EXAMPLE_DATABASE) if config.database else None,
        phases=phases,
        report_multiple_bugs=False,
        print_blob=False,
        verbosity=Verbosity.normal,
    )


def _raised_at(error: BaseException) -> str:
    """Where the innermost frame of chaos-model's own code raised ``error``, if it did."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "chaos_model" in frame.filename]
    if not ours:
        return ""
    frame = ours[-1]
    return f" (raised in {frame.name} at {Path(frame.filename).name}:{frame.lineno})"


def run(
    stack: Stack,
    config: ChaosConfig,
    *,
    out: TextIO | None = None,
    log_dirs: dict[str, Path] | None = None,
    capture_passing: bool = False,
) -> RunReport:
    ensure_injectable(stack)
    recorder = RunRecorder(
        max_time=config.max_time,
        shrink_budget=config.shrink_budget,
        progress=config.progress,
        failures_dir=config.failures_dir,
        log_dirs=log_dirs or {},
        capture_passing=capture_passing,
    )
    if out is not None:
        recorder.out = out
    catalogue = PointCatalogue()
    machine_class = bind(stack, config, recorder, catalogue)
    if config.seed is not None:
        machine_class = seed(config.seed)(machine_class)
    error: BaseException | None = None
    found_by_sweep = False
    try:
        found_by_sweep = config.sweep and run_sweep(stack, config, recorder, catalogue)
        if not found_by_sweep:
            run_state_machine_as_test(machine_class, settings=hypothesis_settings(config))
    except BudgetSpent:
        pass  # the time budget, or the shrink budget, is spent: report what was found
    except Unsatisfiable:
        pass
    except (AssertionError, Flaky, Exception) as caught:  # noqa: BLE001 - reported below
        error = caught
    finally:
        recorder.finish_progress()
    report = RunReport(
        examples=recorder.examples,
        steps=recorder.steps,
        steps_per_second=recorder.steps_per_second(),
        faults=recorder.faults,
        faults_by_kind=dict(recorder.faults_by_kind),
        elapsed=recorder.elapsed(),
        reset_p50=statistics.median(recorder.reset_times) if recorder.reset_times else 0.0,
        violations=recorder.violations,
        failure=recorder.last_failure,
        first_failure=recorder.first_failure,
        first_failure_seconds=recorder.first_failure_at,
        first_failure_examples=recorder.first_failure_examples,
        first_failure_steps=recorder.first_failure_steps,
        apply_seconds=recorder.apply_seconds,
        heal_seconds=recorder.heal_seconds,
        passing_example=recorder.last_passing,
        coverage=recorder.coverage,
        found_by_sweep=found_by_sweep,
    )
    if error is not None:
        report.flaky = isinstance(error, Flaky)
        report.hypothesis_error = f"{type(error).__name__}: {error}"
        if isinstance(error, BaseExceptionGroup):
            inner = "; ".join(f"{type(e).__name__}: {e}{_raised_at(e)}" for e in error.exceptions)
            report.hypothesis_error += f" [{inner}]"
        if recorder.last_failure is None:
            report.failure = FailureRecord(
                steps=[],
                violations=[report.hypothesis_error],
                invariants=["error"],
                kinds=["error"],
            )
    if report.failure is not None and report.failure.steps:
        _shrink_and_replay(report, report.failure, stack, config, recorder)
    bugs = list(getattr(stack, "bugs", ()))
    write_recorder_stats(config.failures_dir / "runs", recorder, seed=config.seed, bugs=bugs)
    return report


def _shrink_and_replay(
    report: RunReport,
    failure: FailureRecord,
    stack: Stack,
    config: ChaosConfig,
    recorder: RunRecorder,
) -> None:
    """Shrink the failure and count its reproductions; a stack that stops answering on the way
    ends this early, with the finding kept as far as it got and a note of why."""
    if config.shrink:
        try:
            shrunk = minimise(
                failure.steps,
                stack,
                runs=config.replays,
                budget=config.shrink_budget,
                invariants=failure.invariants,
            )
        except ShrinkStopped as stopped:
            shrunk = stopped.steps
            report.notes.append(str(stopped))
        if shrunk != failure.steps:
            failure.steps = shrunk
            if failure.directory is not None:
                rewrite_steps(failure.directory, failure)
    report.program = render_program(failure.steps)
    if report.first_failure_seconds is not None:
        report.shrink_seconds = recorder.elapsed() - report.first_failure_seconds
    try:
        for _ in range(config.replays):
            outcome = replay(failure.steps, stack, ChaosConfig(progress=False))
            report.replays += 1
            report.reproduced += int(outcome.failed)
    except StackError as error:
        report.notes.append(f"reproduction stopped after {report.replays} replays ({error})")
