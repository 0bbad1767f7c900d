"""Named chaos experiments: fixed scenarios in a runbook's format, run with one command.

``chaos-model experiment list`` / ``chaos-model experiment run NAME``; a shrunk failure becomes
one with ``chaos-model replay FILE --save-as NAME``. A target's built-in experiments are a
sequence of :class:`Experiment` its adapter names (``[experiments] catalogue = "module:NAME"``),
built with :func:`step` and :func:`wait_for`.
"""

from pathlib import Path

from chaos_model.experiments._docs import render_definition, render_markdown
from chaos_model.experiments._model import (
    CONDITIONS,
    BadExperiment,
    Experiment,
    check_target,
    step,
    wait_for,
)
from chaos_model.experiments._run import (
    ExperimentResult,
    read_results,
    render_text,
    run_experiment,
    write_result,
)
from chaos_model.experiments._store import (
    all_experiments,
    catalogue,
    find,
    from_failure,
    save,
    saved,
)

#: where ``experiment run`` writes each experiment's last result (NAME.json, NAME.txt)
RESULTS_DIR = Path(".chaos-model") / "experiments"

__all__ = [
    "CONDITIONS",
    "RESULTS_DIR",
    "BadExperiment",
    "Experiment",
    "ExperimentResult",
    "all_experiments",
    "catalogue",
    "check_target",
    "find",
    "from_failure",
    "read_results",
    "render_definition",
    "render_markdown",
    "render_text",
    "run_experiment",
    "save",
    "saved",
    "step",
    "wait_for",
    "write_result",
]
