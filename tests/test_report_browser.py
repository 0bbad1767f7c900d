"""The report page as a person sees it: rendered by headless Chromium, read off the screen.

The first tests render the page of a recorded example and of a synthetic twenty-step one (no
stack); the last makes a real failing run with a bug of the zoo through the ``chaos-model``
command and reads its report. Chromium is
Debian's ``chromium`` package, installed by ``scripts/setup.sh``; in CI (``CI=true``) a missing
Chromium fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_timeline import STEPS, twenty_step_capture

from chaos_model.recorder import FailureRecord
from chaos_model.reporting.browser import HeadlessChromium, find_chromium
from chaos_model.reporting.capture import ExampleCapture
from chaos_model.reporting.writer import write_run_report
from chaos_model.runner import RunReport

FIXTURE = Path(__file__).parent / "unit" / "fixtures" / "recorded_timeline.json"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        message = "chromium is not installed (apt-get install chromium, or scripts/setup.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must render the report")
        pytest.skip(message)
    return found


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _on_screen(chromium: str, page: Path) -> list[str]:
    with HeadlessChromium(chromium) as browser:
        browser.open(page)
        return browser.visible_text()


def _recorded_report(failure_dir: Path, capture: ExampleCapture | None = None) -> RunReport:
    capture = capture or ExampleCapture.from_json(json.loads(FIXTURE.read_text()))
    failure = FailureRecord(
        steps=[{"rule": step.rule, "args": step.args} for step in capture.steps],
        violations=["[liveness] accepted_updates_complete invalid: stuck at scored"],
        invariants=["accepted_updates_complete"],
        kinds=["liveness"],
        directory=failure_dir,
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
        violations=1,
        failure=failure,
        first_failure=failure,
        program="state = ChaosMachine()\nstate.teardown()",
        reproduced=3,
        replays=3,
    )


def test_a_recorded_failure_reads_on_screen(chromium: str, tmp_path: Path) -> None:
    failure_dir = tmp_path / "chaos-failures" / "run" / "latest"
    written = write_run_report(
        _recorded_report(failure_dir), tmp_path / "reports", bugs=["ack_failures"]
    )
    screen = _on_screen(chromium, written.html)
    text = "\n".join(screen)
    assert "FAILED: accepted_updates_complete (liveness)" in screen
    assert "accepted_updates_complete" in screen, "the invariant's name is on screen"
    assert "✖ accepted_updates_complete" in screen, "the timeline marks where it fired"
    assert "failpoint worker.extract.after_llm_before_commit hang" in screen
    assert "pause nats" in screen
    assert f"chaos-model replay {failure_dir} --bug ack_failures" in screen
    assert "Reproduced in 3 of 3 replays" in screen
    assert "message 1 (update …0001)" in screen
    assert "scored" in screen and "extracted" in screen
    assert "stored exactly once" in text, "the invariant's explanation is on screen"
    (png,) = written.pngs
    width, height = _png_size(png)
    assert width > 1000 and height > 300, (width, height)


#: each step label's box on screen, and the timeline's
_STEP_LABEL_BOXES = """
(() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const svg = document.querySelector('svg.timeline');
  return {
    svg: box(svg),
    numbers: Array.from(svg.querySelectorAll('.step-number')).map(box),
    labels: Array.from(svg.querySelectorAll('.step-label')).map(box),
  };
})()
"""


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def test_twenty_steps_have_labels_that_do_not_overlap(chromium: str, tmp_path: Path) -> None:
    report = _recorded_report(tmp_path / "failure", twenty_step_capture())
    written = write_run_report(report, tmp_path / "reports", png=False)
    with HeadlessChromium(chromium) as browser:
        browser.open(written.html)
        boxes = browser.evaluate(_STEP_LABEL_BOXES)
    numbers, labels, svg = boxes["numbers"], boxes["labels"], boxes["svg"]
    assert [number["text"] for number in numbers] == [str(n) for n in range(1, STEPS + 1)]
    assert len(labels) == STEPS
    assert labels[11]["text"] == "kill worker at 136 ms"
    shown = numbers + labels
    for box in shown:
        assert box["right"] - box["left"] > 0 and box["bottom"] - box["top"] > 0, box
        assert svg["left"] <= box["left"] and box["right"] <= svg["right"], f"cut off: {box}"
        assert svg["top"] <= box["top"] and box["bottom"] <= svg["bottom"], f"cut off: {box}"
    overlapping = [
        (a["text"], b["text"])
        for i, a in enumerate(shown)
        for b in shown[i + 1 :]
        if _overlap(a, b)
    ]
    assert not overlapping, overlapping
    # the steps are spread over the timeline, not crowded into its first tenth
    spread = (labels[-1]["left"] - labels[0]["left"]) / (svg["right"] - svg["left"])
    assert spread > 0.4, spread


ROOT_ADAPTER = Path(__file__).resolve().parents[1] / "chaos-target.toml"


@pytest.mark.slow
def test_a_failing_run_with_a_bug_of_the_zoo_writes_a_readable_report(
    chromium: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaos_model.cli",
            "run",
            "--bug",
            "respond_before_commit",
            "--faults",
            "kill",
            "--seed",
            "1",
            "--examples",
            "60",
            "--steps",
            "8",
            "--max-time",
            "90s",
            "--no-shrink",
            "--replays",
            "1",
            "--no-database",
            "--report-passing",
            "--failures-dir",
            str(tmp_path / "failures"),
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CHAOS_MODEL_TARGET": str(ROOT_ADAPTER)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    (report_dir,) = (tmp_path / "reports").iterdir()
    assert f"report: {report_dir / 'report.html'}" in result.stdout
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["outcome"] == "failed"
    assert "accepted_updates_complete" in summary["failure"]["invariants"]
    command = summary["failure"]["replay_command"]
    assert command.endswith("--bug respond_before_commit"), command
    timeline = summary["timelines"][0]
    assert timeline["faults"], "the failing example injected faults"
    metrics = timeline["metrics"]
    assert metrics["latency"]["count"] >= 1 and metrics["latency"]["max"] > 0
    assert sum(metrics["answers"].values()) >= metrics["latency"]["count"]
    assert metrics["queue_depth"], "pending work was sampled"
    assert metrics["healed_at"] is not None

    screen = _on_screen(chromium, report_dir / "report.html")
    assert "accepted_updates_complete" in screen
    assert "✖ accepted_updates_complete" in screen
    for label in timeline["faults"]:
        assert label in screen, f"fault band {label!r} is not on screen"
    assert any(label.startswith("kill ") for label in timeline["faults"])
    assert command in screen, "the replay command is on screen"
    assert any(text.startswith("Reproduced in ") for text in screen)
    assert "webhook answers" in screen
    assert any("never stored" in text for text in screen), "the lost update has its lane"
    if summary["examples"] > summary["violations"]:  # some example passed before the failure
        assert "Passing example (the last one run)" in screen, "--report-passing draws one too"
    assert summary["pngs"][0] == "timeline-1.png"
    width, height = _png_size(report_dir / "timeline-1.png")
    assert width > 1000 and height > 300, (width, height)
