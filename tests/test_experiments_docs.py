"""docs/chaos-experiments.md is in sync with the experiment definitions, and every experiment
in it has the actual behaviour of a run."""

from __future__ import annotations

import re
from pathlib import Path

from chaos_model.experiments import catalogue, render_definition

#: the reference pipeline's built-in experiments, as its adapter's catalogue gives them
BUILT_IN = catalogue()

DOC = Path(__file__).resolve().parent.parent / "docs" / "chaos-experiments.md"
REGENERATE = "regenerate: chaos-model experiment run --all --markdown docs/chaos-experiments.md"


def test_every_built_in_experiment_is_documented_as_defined() -> None:
    text = DOC.read_text()
    for experiment in BUILT_IN:
        assert render_definition(experiment) in text, f"{experiment.name} is stale; {REGENERATE}"


def test_no_section_for_an_experiment_that_does_not_exist() -> None:
    sections = re.findall(r"^## (\S+)$", DOC.read_text(), flags=re.MULTILINE)
    assert sections == [experiment.name for experiment in BUILT_IN], REGENERATE


def test_every_experiment_has_an_actual_behaviour_from_a_run() -> None:
    text = DOC.read_text()
    actual = re.findall(r"^\*\*Actual behaviour\*\* \(last run [^)]*\)", text, flags=re.MULTILINE)
    assert len(actual) == len(BUILT_IN), REGENERATE
    assert "Not run yet" not in text, REGENERATE
