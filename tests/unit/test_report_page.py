"""The run report built from a recorded example, without a stack or a browser.

``fixtures/recorded_timeline.json`` is a capture as a failure folder keeps it: a failpoint hang
armed on the worker, NATS paused then healed, a 503, a timeout, a forged request answered 401,
and message 1 left at ``scored`` (what the ``ack_failures`` bug does).
"""

from __future__ import annotations

import calendar
import json
import re
from pathlib import Path

import pytest

from chaos_model.recorder import FailureRecord
from chaos_model.reporting.answers import classify_answer
from chaos_model.reporting.browser import CHROMIUM_ENV
from chaos_model.reporting.capture import (
    ExampleCapture,
    StoredMessage,
    TimedStep,
    lines_since,
    log_line_time,
)
from chaos_model.reporting.timeline import (
    build_timeline,
    fault_bands,
    fault_services,
    offending_rows,
)
from chaos_model.reporting.writer import NO_CHROMIUM, replay_command, write_run_report
from chaos_model.runner import RunReport

FIXTURE = Path(__file__).with_name("fixtures") / "recorded_timeline.json"
FAILPOINT_LABEL = "failpoint worker.extract.after_llm_before_commit hang"


@pytest.fixture
def capture() -> ExampleCapture:
    return ExampleCapture.from_json(json.loads(FIXTURE.read_text()))


def _run_report(capture: ExampleCapture | None, directory: Path | None) -> RunReport:
    failure = None
    if capture is not None:
        failure = FailureRecord(
            steps=[{"rule": step.rule, "args": step.args} for step in capture.steps],
            violations=["[liveness] accepted_updates_complete invalid: stuck at scored"],
            invariants=["accepted_updates_complete"],
            kinds=["liveness"],
            directory=directory,
            capture=capture,
        )
    return RunReport(
        examples=4,
        steps=30,
        steps_per_second=3.0,
        faults=5,
        faults_by_kind={"failpoint": 2, "pause": 3},
        elapsed=20.0,
        reset_p50=0.1,
        violations=int(failure is not None),
        failure=failure,
        first_failure=failure,
        program="state = ChaosMachine()\nstate.deliver(chat=0, text='x')\nstate.teardown()",
        reproduced=2,
        replays=3,
    )


def test_the_capture_survives_a_json_round_trip(capture: ExampleCapture) -> None:
    assert ExampleCapture.from_json(json.loads(json.dumps(capture.to_json()))) == capture


def test_faults_become_bands_over_the_services_they_hit(capture: ExampleCapture) -> None:
    bands = {band.label: band for band in fault_bands(capture.ops, end=6.0)}
    assert set(bands) == {FAILPOINT_LABEL, "pause nats"}
    assert bands["pause nats"].services == ("nats",)
    assert (bands["pause nats"].start, bands["pause nats"].end) == (0.42, 1.45)
    assert bands["pause nats"].ended_by == "healed"
    assert bands[FAILPOINT_LABEL].services == ("worker",)
    assert bands[FAILPOINT_LABEL].ended_by == "heal-all"
    assert bands[FAILPOINT_LABEL].end == 5.0


@pytest.mark.parametrize(
    ("value", "services"),
    [
        ({"kind": "partition", "link": "api->nats"}, ("api", "nats")),
        ({"kind": "network", "link": "telegram->api", "toxic": {}}, ("telegram", "api")),
        ({"kind": "terminate_connections"}, ("postgres",)),
        ({"kind": "llm", "mode": "error", "seconds": 1.0}, ("llm",)),
        ({"kind": "failpoint", "name": "api.webhook.after_commit_before_response"}, ("api",)),
    ],
)
def test_fault_services(value: dict[str, object], services: tuple[str, ...]) -> None:
    assert fault_services(value) == services


def test_instant_faults_are_bands_of_no_duration() -> None:
    ops = [
        {
            "process": "nemesis",
            "type": "ok",
            "f": "fault",
            "time": 1.0,
            "value": {"kind": "terminate_connections"},
        },
    ]
    (band,) = fault_bands(ops, end=9.0)
    assert (band.instant, band.start, band.end) == (True, 1.0, 1.0)


@pytest.mark.parametrize(
    ("kind", "error", "answer"),
    [
        ("ok", None, "2xx"),
        ("fail", "HTTP 503", "5xx"),
        ("fail", "401", "4xx"),
        ("fail", "422", "4xx"),
        ("info", "ReadTimeout", "timeout"),
        ("fail", "ConnectError", "no connection"),
        ("fail", "ConnectTimeout", "no connection"),
    ],
)
def test_webhook_answers_are_classified(kind: str, error: str | None, answer: str) -> None:
    assert classify_answer({"type": kind, "error": error}) == answer


def test_offending_rows_are_the_messages_a_violation_names() -> None:
    rows = [
        StoredMessage(1, 1_700_000_000_001, "scored", 0.7, None),
        StoredMessage(2, 1_700_000_000_002, "extracted", 0.4, None),
        StoredMessage(7, 1_700_000_000_007, "received", None, None),
    ]
    detail = "update 1700000000001 (message 1) stuck at scored; message 7 went scored -> received"
    assert [row.id for row in offending_rows(detail, rows)] == [1, 7]
    assert offending_rows("after step 2: nothing named", rows) == ()


def test_the_timeline_has_steps_answers_stages_and_the_fired_invariant(
    capture: ExampleCapture,
) -> None:
    timeline = build_timeline(capture)
    assert [step.number for step in timeline.steps] == list(range(1, 8))
    assert [answer.answer for answer in timeline.answers] == [
        "5xx",
        "2xx",
        "4xx",
        "timeout",
        "2xx",
        "2xx",
    ]
    stuck = timeline.messages[0]
    assert [span.stage for span in stuck.spans] == ["received", "scored"]
    assert stuck.spans[-1].end == timeline.duration
    assert [answer.answer for answer in stuck.answers] == ["5xx", "2xx"]
    assert timeline.messages[2].label.endswith("probe")
    (fired,) = timeline.fired
    assert fired.name == "accepted_updates_complete"
    assert "stored exactly once" in fired.explanation
    assert [row.id for row in fired.offending_rows] == [1]


def test_the_report_folder_holds_a_self_contained_page_and_a_summary(
    capture: ExampleCapture, tmp_path: Path
) -> None:
    failure_dir = tmp_path / "chaos-failures" / "run" / "latest"
    written = write_run_report(
        _run_report(capture, failure_dir),
        tmp_path / "reports",
        bugs=["ack_failures"],
        seed=1,
        png=False,
    )
    html = written.html.read_text()
    command = f"chaos-model replay {failure_dir} --bug ack_failures"
    for expected in (
        "FAILED: accepted_updates_complete (liveness)",
        "Every update Telegram considers delivered is stored exactly once",
        FAILPOINT_LABEL,
        "pause nats",
        "webhook 5xx: 1",
        "webhook timeout: 1",
        "1700000000001",
        "Reproduced in 2 of 3 replays",
        command,
        "failpoint worker.extract.after_llm_before_commit: hang",
    ):
        assert expected in html, expected
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "fetches something"
    assert "<link" not in html
    summary = json.loads(written.summary.read_text())
    assert summary["outcome"] == "failed"
    assert summary["failure"]["replay_command"] == command
    assert summary["failure"]["reproduced"] == 2
    assert summary["timelines"][0]["invariants"] == ["accepted_updates_complete"]
    assert set(summary["timelines"][0]["faults"]) == {FAILPOINT_LABEL, "pause nats"}
    assert summary["pngs"] == []
    metrics = summary["timelines"][0]["metrics"]
    assert metrics["answers"] == {"2xx": 3, "4xx": 1, "5xx": 1, "errors": 1}
    assert metrics["latency"]["max"] == 3.0, "the timeout waited 3 s"
    assert metrics["healed_at"] == 5.0
    assert "Measured in this example" in html
    assert "p50 50 ms, p95 3.00 s, max 3.00 s (6 answers)" in html


def test_a_passing_run_still_writes_a_report(tmp_path: Path) -> None:
    written = write_run_report(_run_report(None, None), tmp_path, png=False)
    assert "PASSED: no invariant was violated in 4 examples" in written.html.read_text()
    assert json.loads(written.summary.read_text())["outcome"] == "passed"
    assert written.directory.name.endswith("-passed")


def test_a_passing_example_is_drawn_on_request(capture: ExampleCapture, tmp_path: Path) -> None:
    capture.failed, capture.findings = False, []
    report = _run_report(None, None)
    report.passing_example = capture
    written = write_run_report(report, tmp_path, png=False)
    html = written.html.read_text()
    assert "Passing example (the last one run)" in html
    assert "pause nats" in html and "✖" not in html
    assert json.loads(written.summary.read_text())["timelines"][0]["failed"] is False


def test_an_update_answered_but_never_stored_has_a_lane_of_its_own(
    capture: ExampleCapture,
) -> None:
    lost = 1_700_000_000_001
    capture.messages = [row for row in capture.messages if row.update_id != lost]
    capture.stage_events = [event for event in capture.stage_events if event.update_id != lost]
    timeline = build_timeline(capture)
    lane = timeline.messages[0]
    assert (lane.message_id, lane.label) == (None, "update …0001 never stored")
    assert [answer.answer for answer in lane.answers] == ["5xx", "2xx"]
    assert timeline.fired[0].unstored_updates == (lost,)
    assert timeline.fired[0].offending_rows == ()


def test_without_chromium_the_png_is_skipped_with_a_note(
    capture: ExampleCapture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, "no-such-chromium-here")
    written = write_run_report(_run_report(capture, None), tmp_path)
    assert written.pngs == []
    assert written.notes == [NO_CHROMIUM]
    assert json.loads(written.summary.read_text())["notes"] == [NO_CHROMIUM]
    assert written.html.exists()


def test_log_lines_are_kept_from_the_start_of_the_example() -> None:
    start = calendar.timegm((2026, 11, 28, 11, 11, 50, 0, 0, -1))
    lines = [
        "2026-11-28 11:11:40.000 UTC [1] LOG:  an earlier example",
        "Traceback (most recent call last):",
        "2026-11-28 11:11:53.131 UTC [2] FATAL:  terminating connection",
        "  an untimed continuation",
        "2026-11-28 11:11:54.000 UTC [3] LOG:  database system is ready",
    ]
    assert log_line_time(lines[0]) == start - 10
    assert log_line_time(lines[1]) is None
    assert lines_since(lines, start) == lines[2:]
    nats = "[22376] 2026/11/28 11:11:44.997271 [INF] Server is ready"
    assert log_line_time(nats) is not None


def test_long_step_arguments_are_cut_in_the_step_table(capture: ExampleCapture) -> None:
    capture.steps[2] = TimedStep("deliver", {"chat": 0, "text": "long message " * 300}, 0.09)
    call = build_timeline(capture).steps[2].call
    assert call.startswith("deliver(chat=0, text='long message long")
    assert call.endswith("… (3902 characters))") and len(call) < 120


def test_the_replay_command_can_be_pasted_into_a_shell() -> None:
    command = replay_command(Path("chaos failures/run 1/latest"), ["ack_failures"])
    assert command == "chaos-model replay 'chaos failures/run 1/latest' --bug ack_failures"
