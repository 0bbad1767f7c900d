"""The chaos model end to end on a real stack: a short run on the correct pipeline finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos_model.config import ChaosConfig
from chaos_model.runner import run
from chaos_model.stack import LocalStack

pytestmark = pytest.mark.slow

def test_short_run_on_the_correct_pipeline_finds_nothing(stack: LocalStack, tmp_path: Path) -> None:
    config = ChaosConfig(
        examples=8,
        steps=10,
        seed=7,
        max_time=120,
        database=False,
        progress=False,
        failures_dir=tmp_path,
    )
    report = run(stack, config, log_dirs=stack.log_paths())
    assert report.failure is None, report.failure
    assert report.examples >= 1
    assert report.steps > 0
