"""``chaos-model run --backend compose`` end to end: a short run on the correct pipeline finds
nothing, and a run with a bug of the zoo switched on finds it.

Skipped only when Docker is unavailable and this is not CI (see ``test_stack_contract.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_stack_contract import compose_skip_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(compose_skip_reason() is not None, reason=compose_skip_reason() or ""),
]


REFERENCE_FILE = Path(__file__).resolve().parents[1] / "chaos-target.toml"


def chaos_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", "run", "--backend", "compose", *args],
        cwd=tmp_path,
        env={**os.environ, "CHAOS_MODEL_TARGET": str(REFERENCE_FILE)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"


@pytest.mark.timeout(600)
def test_a_short_run_on_the_correct_pipeline_finds_nothing(tmp_path: Path) -> None:
    done = chaos_run(
        tmp_path,
        *("--examples", "20", "--steps", "10", "--seed", "1", "--max-time", "4m"),
        *("--no-database", "--failures-dir", str(tmp_path / "failures")),
    )
    assert done.returncode == 0, explain(done)


@pytest.mark.timeout(600)
def test_a_run_finds_a_bug_of_the_zoo(tmp_path: Path) -> None:
    done = chaos_run(
        tmp_path,
        *("--bug", "ack_failures", "--examples", "10000", "--steps", "10", "--seed", "1"),
        *("--max-time", "3m", "--no-shrink", "--replays", "1", "--no-database"),
        *("--failures-dir", str(tmp_path / "failures")),
    )
    assert done.returncode == 1, explain(done)
    assert "accepted_updates_complete" in done.stdout, explain(done)
