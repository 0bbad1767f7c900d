"""The detection benchmark's fast subset: four bugs of the zoo, one seed, a small budget.

The general model (the opening sweep, then every fault kind with swarm testing) must find each
bug on its own stack. How
short the shrunk program is and how often it reproduces are benchmark numbers
(`bench/detect.py`, `docs/detection.md`): a bug first found through a timing race can shrink
poorly. The correct pipeline finding nothing is checked in `test_chaos_run.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos_model.config import ChaosConfig
from chaos_model.runner import run
from chaos_model.stack import LocalStack

pytestmark = pytest.mark.slow

SUBSET = {
    "respond_before_commit": "accepted_updates_complete",
    "no_update_dedup": "one_message_per_update",
    "ack_failures": "accepted_updates_complete",
    # found by the opening sweep (a crash between the extraction's commit and its ack)
    "non_idempotent_extract": "one_score_and_extraction_per_message",
}


@pytest.mark.parametrize("bug", sorted(SUBSET))
def test_the_model_finds_the_bug(bug: str, tmp_path: Path) -> None:
    config = ChaosConfig(
        examples=10_000,
        steps=10,
        seed=1,
        max_time=60,
        shrink_budget=30,
        database=False,
        progress=False,
        failures_dir=tmp_path,
    )
    with LocalStack(bugs=(bug,)) as stack:
        report = run(stack, config, log_dirs=stack.log_paths())
    assert report.failure is not None, f"{bug} was not found in 60 s"
    assert SUBSET[bug] in report.failure.invariants, report.failure.violations
    assert report.failure.steps, "a found failure comes with its program"
    assert report.failure.directory is not None and report.failure.directory.is_dir()
