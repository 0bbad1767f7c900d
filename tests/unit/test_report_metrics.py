"""An example's metrics and the timeline's scale, from synthetic histories and captures (no stack,
no browser)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthetic_timeline import HEALED_AT, QUIESCENT_AT, STEPS, TEARDOWN_AT, twenty_step_capture

from chaos_model.experiments import Experiment, ExperimentResult, render_text, step
from chaos_model.observe import PendingSample, pending_depth
from chaos_model.reporting.capture import ExampleCapture
from chaos_model.reporting.metrics import (
    ExampleMetrics,
    describe,
    example_metrics,
    percentile,
    sparkline,
)
from chaos_model.reporting.scale import estimated_teardown, step_scale
from chaos_model.reporting.svg import COLUMN_MIN_WIDTH, LABEL_WIDTH, render_svg, timeline_scale
from chaos_model.reporting.timeline import build_timeline


def _call(
    process: str, f: str, sent: float, answered: float, kind: str, error: str | None = None
) -> list[dict[str, Any]]:
    value = {"update_id": 1_700_000_000_000 + int(sent * 1000)}
    return [
        {"process": process, "type": "invoke", "f": f, "value": value, "time": sent},
        {
            "process": process,
            "type": kind,
            "f": f,
            "value": value,
            "time": answered,
            "error": error,
        },
    ]


def _history() -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for number in range(18):  # 18 answers of 10..180 ms
        ops += _call("telegram-chat-1000", "deliver", number, number + 0.01 * (number + 1), "ok")
    ops += _call("telegram-chat-1001", "deliver", 20.0, 20.05, "fail", "HTTP 503")
    ops += _call("attacker", "forged", 21.0, 21.002, "fail", "401")
    ops += _call("telegram-chat-1002", "deliver", 22.0, 32.0, "info", "ReadTimeout")
    ops += _call("telegram-chat-1002", "deliver", 33.0, 33.001, "fail", "ConnectError")
    ops += [
        {"process": "nemesis", "type": "invoke", "f": "heal-all", "value": None, "time": 34.0},
        {"process": "nemesis", "type": "ok", "f": "heal-all", "value": [], "time": 34.5},
    ]
    return ops


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 21)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        10.0,
        19.0,
        20.0,
    )
    assert percentile([7.0], 95) == 7.0


def test_webhook_latency_and_answers_by_status_class() -> None:
    metrics = example_metrics(_history())
    assert metrics.answers == {"2xx": 18, "4xx": 1, "5xx": 1, "errors": 2}
    latency = metrics.latency
    assert latency is not None
    # the refused connection has no latency; the timeout counts at the 10 s it was waited for
    assert latency.count == 21
    assert latency.max == pytest.approx(10.0)
    assert latency.p50 == pytest.approx(0.09)
    assert latency.p95 == pytest.approx(0.18)


def test_time_to_recover_runs_from_the_final_heal_to_quiescence() -> None:
    ops = _history()
    early_heal: list[dict[str, Any]] = [
        {"process": "nemesis", "type": "invoke", "f": "heal-all", "value": None, "time": 5.0},
        {"process": "nemesis", "type": "ok", "f": "heal-all", "value": [], "time": 5.2},
    ]
    metrics = example_metrics(early_heal + ops, quiescent_at=36.0)
    assert metrics.healed_at == 34.5
    assert metrics.recovery_seconds == pytest.approx(1.5)
    assert example_metrics(ops).recovery_seconds is None
    assert dict(describe(example_metrics(ops)))["time to recover"] == (
        "no quiescence seen after the final heal"
    )


def test_queue_depth_peak_and_what_it_was_made_of() -> None:
    samples = [
        PendingSample(0.1, {"outbox_unsent": 1}),
        PendingSample(0.3, {"outbox_unsent": 2, "jetstream_pending": 3}),
        PendingSample(0.9, {}),
    ]
    metrics = example_metrics([], samples, quiescent_at=0.9)
    assert (metrics.peak_depth, metrics.peak_at) == (5, 0.3)
    assert metrics.peak_pending == {"outbox_unsent": 2, "jetstream_pending": 3}
    assert dict(describe(metrics))["pending work"] == (
        "peak 5 (jetstream_pending 3, outbox_unsent 2) at 0.30 s"
    )
    assert metrics.duration == 0.9


def test_pending_work_counts_only_what_is_waiting_or_running() -> None:
    pending = {"outbox_unsent": 2, "worker_busy": True, "database_changed_seconds_ago": 0.4}
    assert pending_depth(pending) == {"outbox_unsent": 2, "worker_busy": 1}
    assert pending_depth({"jetstream_pending": 0}) == {}


def test_the_sparkline_rises_where_work_waits() -> None:
    samples = [PendingSample(1.0, {"outbox_unsent": 4}), PendingSample(2.0, {})]
    chart = sparkline(example_metrics([], samples, quiescent_at=4.0), width=4)
    assert chart == "▁█▁▁"
    assert sparkline(example_metrics([])) == ""


def test_metrics_survive_a_json_round_trip() -> None:
    samples = [PendingSample(0.5, {"outbox_unsent": 1}), PendingSample(0.8, {})]
    metrics = example_metrics(_history(), samples, quiescent_at=35.0)
    data = json.loads(json.dumps(metrics.to_json()))
    assert data["recovery_seconds"] == 0.5
    assert ExampleMetrics.from_json(data) == metrics


def test_a_capture_keeps_its_queue_depth_and_teardown() -> None:
    capture = twenty_step_capture()
    again = ExampleCapture.from_json(json.loads(json.dumps(capture.to_json())))
    assert again == capture
    assert (again.teardown_at, again.quiescent_at) == (TEARDOWN_AT, QUIESCENT_AT)
    metrics = build_timeline(again).metrics
    assert metrics is not None
    assert metrics.recovery_seconds == pytest.approx(QUIESCENT_AT - HEALED_AT)


# ---------------------------------------------------------------------------------- the scale
def test_each_step_gets_a_column_of_its_own_however_short() -> None:
    times = [0.001, 0.002, 0.010, 0.4]
    scale = step_scale(times, 0.41, 8.0, left=100, steps_width=400, teardown_width=300)
    assert [column.left for column in scale.columns] == [100, 200, 300, 400]
    assert [scale.x(t) for t in times] == [100, 200, 300, 400]
    assert scale.x(0.0015) == pytest.approx(150), "inside a step: in proportion"
    assert scale.x(0.41) == scale.teardown_left == 500
    assert scale.x(8.0) == scale.right == 800
    assert scale.x(4.205) == pytest.approx(650), "the teardown runs on a linear clock"
    assert all(0.41 <= tick <= 8.0 for tick in scale.ticks())


def test_without_steps_the_whole_timeline_is_one_clock() -> None:
    scale = step_scale([], None, 5.0, left=0, steps_width=0, teardown_width=500)
    assert (scale.x(0), scale.x(2.5), scale.x(5)) == (0, 250, 500)
    assert scale.ticks()[0] == 0


def test_a_capture_without_its_teardown_time_gets_one_typical_step() -> None:
    assert estimated_teardown([0.1, 0.2, 0.3, 1.3], 9.0) == pytest.approx(1.4)
    assert estimated_teardown([0.1], 9.0) == 0.1


def test_faults_answers_and_stages_line_up_with_their_steps() -> None:
    timeline = build_timeline(twenty_step_capture())
    scale = timeline_scale(timeline)
    columns = {column.number: column for column in scale.columns}
    pause = next(band for band in timeline.bands if band.label == "pause nats")
    assert columns[4].left < scale.x(pause.start) < columns[4].right
    assert columns[9].left < scale.x(pause.end) < columns[9].right
    first_answer = timeline.answers[0]
    assert columns[2].left < scale.x(first_answer.time) < columns[2].right
    received = timeline.messages[0].spans[0]
    assert columns[2].left < scale.x(received.start) < columns[2].right
    assert scale.x(HEALED_AT) > scale.teardown_left


def test_twenty_steps_fill_more_than_half_the_plot() -> None:
    """On one clock, twenty steps within 0.46 s of a 6 s example would take 8 % of the width."""
    timeline = build_timeline(twenty_step_capture())
    scale = timeline_scale(timeline)
    assert len(scale.columns) == STEPS
    widths = {round(column.right - column.left, 6) for column in scale.columns}
    assert len(widths) == 1 and widths.pop() >= COLUMN_MIN_WIDTH
    assert (scale.teardown_left - LABEL_WIDTH) / (scale.right - LABEL_WIDTH) > 0.5


def test_many_steps_widen_the_timeline_rather_than_narrow_the_columns() -> None:
    capture = twenty_step_capture()
    capture.steps = capture.steps * 5
    timeline = build_timeline(capture)
    scale = timeline_scale(timeline)
    assert all(column.right - column.left >= COLUMN_MIN_WIDTH for column in scale.columns)
    svg = render_svg(timeline, "many")
    assert f'width="{round(scale.right + 30)}"' in svg


def test_the_timeline_draws_pending_work_and_the_recovery() -> None:
    svg = render_svg(build_timeline(twenty_step_capture()), "t")
    assert "pending work (peak 5)" in svg
    assert f"recovered in {QUIESCENT_AT - HEALED_AT:.2f} s" in svg
    assert svg.count('class="step-label"') == STEPS
    assert svg.count('class="step-number"') == STEPS
    assert "kill worker at 136 ms" in svg


# ---------------------------------------------------------------------------------- experiments
def test_an_experiment_shows_its_metrics_next_to_the_expected_behaviour() -> None:
    experiment = Experiment(
        name="metrics-demo",
        hypothesis="A paused broker delays work but loses none.",
        blast_radius="nats",
        steps=(step("deliver", chat=0, text="x"),),
        observe=(),
        expected="Every invariant holds.",
    )
    samples = [PendingSample(0.2, {"outbox_unsent": 2}), PendingSample(35.0, {})]
    metrics = example_metrics(_history(), samples, quiescent_at=35.0)
    result = ExperimentResult(
        "metrics-demo", "2026-01-01T00:00:00", 36.0, True, metrics=metrics.to_json()
    )
    again = ExperimentResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.measured == metrics
    text = render_text(experiment, again)
    measured = text.split("\nmeasured\n", 1)[1]
    assert "webhook latency  p50 90 ms, p95 180 ms, max 10.00 s (21 answers)" in measured
    assert "webhook answers  2xx 18, 4xx 1, 5xx 1, errors 2" in measured
    assert "time to recover  500 ms from the final heal to quiescence" in measured
    assert "█" in measured, "the pending work's sparkline"
    assert "Measured: webhook latency p50 90 ms" in again.actual()
    assert ExperimentResult.from_json({**result.to_json(), "metrics": {}}).measured is None
