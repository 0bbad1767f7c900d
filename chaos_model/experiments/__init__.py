"""Named chaos experiments: fixed scenarios in a runbook's format, run with one command.

``chaos-model experiment list`` / ``chaos-model experiment run NAME``; a shrunk failure becomes
one with ``chaos-model replay FILE --save-as NAME``.
"""

from pathlib import Path

from chaos_model.experiments._catalogue import BUILT_IN
from chaos_model.experiments._docs import render_definition, render_markdown
from chaos_model.experiments._model import BadExperiment, Experiment
from chaos_model.experiments._run import (
    ExperimentResult,
    read_results,
    render_text,
    run_experiment,
    write_result,
)
from chaos_model.experiments._store import all_experiments, find, from_failure, save, saved

#: where ``experiment run`` writes each experiment's last result (NAME.json, NAME.txt)
RESULTS_DIR = Path(".chaos-model") / "experiments"

__all__ = [
    "BUILT_IN",
    "RESULTS_DIR",
    "BadExperiment",
    "Experiment",
    "ExperimentResult",
    "all_experiments",
    "find",
    "from_failure",
    "read_results",
    "render_definition",
    "render_markdown",
    "render_text",
    "run_experiment",
    "save",
    "saved",
    "write_result",
]
