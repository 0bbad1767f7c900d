"""The chaos-monkey baseline (bench/monkey.py) on the real stack: a short round of load and random
faults on the correct pipeline finds nothing and leaves nothing to heal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chaos_model.stack import LocalStack

# The benchmarks are scripts, not a package: import them as bench/detect.py imports _common.
sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

from monkey import MonkeyConfig, run_monkey

pytestmark = pytest.mark.slow


def test_a_short_monkey_round_on_the_correct_pipeline_finds_nothing_and_heals(
    pipeline: LocalStack,
) -> None:
    # Faults every 0.5 to 1.5 s so that a 6 s round surely injects several.
    config = MonkeyConfig(round_seconds=6, fault_interval=(0.5, 1.5), fault_seconds=(0.3, 2.0))
    result = run_monkey(pipeline, seed=1, budget=6, config=config)
    assert result.error is None, result.error
    assert not result.found, "\n".join(result.violations + result.log)
    assert result.rounds == 1
    assert result.deliveries == 24
    assert result.faults >= 2, result.faults_by_kind
    assert pipeline.proxy is not None
    toxics = {name: link["toxics"] for name, link in pipeline.proxy.links().items()}
    assert not any(toxics.values()), f"a link still has a toxic: {toxics}"
    for name, service in pipeline.services.items():
        assert service.is_running() and not service.is_paused(), f"{name} left down or paused"
    assert pipeline.heal() == [], "the monkey left something to heal"
