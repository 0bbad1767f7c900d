"""The chaos-model command end to end: real stacks started by the command itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from chaos_model._wait import wait_until

pytestmark = pytest.mark.slow

#: the commands run in a fresh folder, as a user's would, with the reference adapter named
ENV = {
    **os.environ,
    "CHAOS_MODEL_TARGET": str(Path(__file__).resolve().parents[1] / "chaos-target.toml"),
}

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
        env=ENV,
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


def _stack_processes(stack_dir: str) -> list[psutil.Process]:
    """Processes that belong to the stack in ``stack_dir`` (by command line or environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(proc.cmdline()) + " ".join(proc.environ().values())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if stack_dir in text:
            found.append(proc)
    return found


def test_sigterm_heals_and_stops_a_run(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaos_model.cli",
            "run",
            "--examples",
            "200",
            "--steps",
            "20",
            "--no-database",
            "--failures-dir",
            str(tmp_path / "failures"),
        ],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    stack_dir = ""
    try:
        for line in proc.stderr:
            if line.startswith("stack folder: "):
                stack_dir = line.removeprefix("stack folder: ").strip()
                break
        assert stack_dir, "the run never printed its stack folder"
        wait_until(
            lambda: len(_stack_processes(stack_dir)) >= 6,
            timeout=30,
            what="the stack's processes to be visible",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(
        lambda: not _stack_processes(stack_dir),
        timeout=10,
        what=f"every process of {stack_dir} to exit",
    )
    assert not Path(stack_dir).exists()
