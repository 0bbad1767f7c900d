"""docs/invariants.md is in sync with the invariants in the code, and the counts it is generated
from come from the statistics a real run writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaos_model.cli import main
from chaos_model.config import ChaosConfig
from chaos_model.invariant_docs import render_markdown, render_statement
from chaos_model.invariants import ALL
from chaos_model.run_stats import read_run_stats
from chaos_model.runner import run
from chaos_model.stack import LocalStack

DOC = Path(__file__).resolve().parent.parent / "docs" / "invariants.md"
REGENERATE = "regenerate: chaos-model invariants --markdown > docs/invariants.md"


def test_every_invariant_is_documented_with_its_statement_and_kind() -> None:
    text = DOC.read_text()
    for invariant in ALL:
        assert render_statement(invariant) in text, f"{invariant.name} is stale; {REGENERATE}"


def test_no_section_for_an_invariant_that_does_not_exist() -> None:
    sections = re.findall(r"^## (\S+)$", DOC.read_text(), flags=re.MULTILINE)
    assert sections == [invariant.name for invariant in ALL], REGENERATE


def test_markdown_names_the_last_violation_and_its_replay_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "chaos-failures"
    (runs / "gw0" / "runs").mkdir(parents=True)
    counts = {"faults": {"kill": 3}, "operations": {"deliver": 4, "redeliver": 1}}
    invariants = {inv.name: {"kind": inv.kind, "checked_examples": 4, **counts} for inv in ALL}
    failure = {
        "invariants": ["one_message_per_update"],
        "violations": ["[safety] one_message_per_update invalid: after step 3: stored twice"],
        "directory": "chaos-failures/20261128-120000-one_message_per_update/latest",
    }
    stats = {"finished": "2026-11-28T12:00:00Z", "examples": 4, "steps": 20}
    (runs / "gw0" / "runs" / "20261128-120000.json").write_text(
        json.dumps({**stats, "invariants": invariants, "failures": [failure]})
    )
    assert main(["invariants", "--markdown", "--runs", str(runs)]) == 0
    text = capsys.readouterr().out
    assert text == render_markdown(runs)
    assert "last 1 recorded run(s)" in text
    assert "- exercised by faults: kill 3" in text
    assert "- exercised by operations: deliver 4, redeliver 1" in text
    assert "(../chaos-failures/20261128-120000-one_message_per_update/latest/steps.json)" in text
    assert "`chaos-model replay chaos-failures/20261128-120000-one_message_per_update/latest`" in (
        text
    )
    assert text.count("- last violation: none in the recorded runs") == len(ALL) - 1


@pytest.mark.slow
def test_a_run_writes_the_statistics_the_docs_count(stack: LocalStack, tmp_path: Path) -> None:
    config = ChaosConfig(
        examples=2,
        steps=4,
        seed=3,
        max_time=60,
        faults=("pause",),
        database=False,
        progress=False,
        failures_dir=tmp_path,
    )
    report = run(stack, config)
    [stats] = read_run_stats(tmp_path / "runs")
    assert stats["examples"] == report.examples
    assert stats["bugs"] == [] and stats["seed"] == 3
    assert stats["examples_checked"] >= 1
    safety = stats["invariants"]["one_message_per_update"]
    assert safety["kind"] == "safety"
    assert safety["checked_examples"] == stats["examples_checked"]
    assert sum(safety["operations"].values()) + sum(safety["faults"].values()) > 0
    liveness = stats["invariants"]["accepted_updates_complete"]
    assert liveness["checked_examples"] == stats["liveness_examples"]
    text = render_markdown(tmp_path / "runs")
    assert f"{report.examples} examples, {report.steps} steps" in text
