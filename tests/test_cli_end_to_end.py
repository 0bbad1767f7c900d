"""The chaos-model command end to end: real stacks started by the command itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ACK_BEFORE_WORK_PROGRAM = [
    {
        "rule": "failpoint",
        "args": {"name": "worker.score.after_llm_before_commit", "action": "crash"},
    },
    {"rule": "deliver", "args": {"chat": 0, "text": "hello"}},
]


def chaos_model(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_run_on_the_correct_pipeline_exits_0_with_a_summary(tmp_path: Path) -> None:
    result = chaos_model(
        "run",
        "--examples",
        "3",
        "--steps",
        "6",
        "--max-time",
        "90s",
        "--seed",
        "3",
        "--no-database",
        "--failures-dir",
        str(tmp_path / "failures"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chaos-model run summary" in result.stdout
    assert "steps/s" in result.stdout
    assert "no invariant was violated" in result.stdout
    assert "stack ready in" in result.stderr


def test_replay_exit_codes_follow_the_verdict(tmp_path: Path) -> None:
    program = tmp_path / "steps.json"
    program.write_text(json.dumps({"steps": ACK_BEFORE_WORK_PROGRAM}))

    buggy = chaos_model("replay", str(program), "--bug", "ack_before_work", cwd=tmp_path)
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "accepted_updates_complete" in buggy.stdout
    assert "reproduced 1 of 1" in buggy.stdout

    correct = chaos_model("replay", str(program), cwd=tmp_path)
    assert correct.returncode == 0, correct.stdout + correct.stderr
    assert "reproduced 0 of 1" in correct.stdout
