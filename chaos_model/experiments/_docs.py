"""``docs/chaos-experiments.md``: each experiment's runbook with the actual behaviour of its last
run next to it."""

from __future__ import annotations

from chaos_model.adapter import TargetSpec
from chaos_model.experiments._model import AWAIT, Experiment, describe_step
from chaos_model.experiments._run import ExperimentResult

HEADER = """# Chaos experiments

Each experiment is a fixed scenario run against a fresh local stack with one command:

    chaos-model experiment list
    chaos-model experiment run NAME            # one; --bug NAME to run it with a planted bug
    chaos-model experiment run --all --markdown docs/chaos-experiments.md   # this file

(`--target FILE` names the adapter of the system under test; the default is
`./chaos-target.toml`.) Its steps are the chaos model's own rules (the vocabulary of a saved
failure's `steps.json`), plus `await` steps that hold a fault until its effect has been observed.
After the last step, as after every example, every fault is healed, the system is given until it
quiesces, a fresh update is sent as a recovery probe and every safety and liveness invariant is
checked (`docs/invariants.md`). An experiment behaves as expected when every invariant holds and
every awaited observation was made. Each run writes `NAME.json` and `NAME.txt` (expected next to
actual) into `.chaos-model/experiments/`; the actual behaviour ends with what was measured:
webhook latency (p50, p95, max), the webhook's answers per status class (2xx, 4xx, 5xx, errors),
the peak of pending work and the time from the final heal to quiescence (`NAME.txt` adds a
sparkline of the pending work over the run).

A shrunk failure becomes an experiment with
`chaos-model replay chaos-failures/<run>/latest --save-as NAME` (saved in `./chaos-experiments/`,
listed and run like the built-in ones).

Hypothesis, steps, expected behaviour and remediation come from the experiment definitions:
a target's built-in experiments are the catalogue its adapter names (`[experiments] catalogue`),
the others the files saved in `./chaos-experiments/`. "Actual behaviour" is what the last run
observed.
"""


def render_definition(experiment: Experiment) -> str:
    """The part of an experiment's section that comes from its definition alone."""
    lines = [
        f"## {experiment.name}",
        "",
        f"**Hypothesis.** {experiment.hypothesis}",
        "",
        f"**Blast radius.** {experiment.blast_radius}",
        "",
        "**Steps.**",
        "",
    ]
    for index, item in enumerate(experiment.steps, 1):
        marker = " (wait)" if item["rule"] == AWAIT else ""
        lines.append(f"{index}. `{describe_step(item)}`{marker}")
    lines += ["", "**What to observe.**", ""]
    lines += [f"- {item}" for item in experiment.observe]
    lines += [
        "",
        f"**Expected behaviour.** {experiment.expected}",
        "",
        f"**Rollback.** {experiment.rollback}",
        "",
    ]
    if experiment.remediation:
        lines += [f"**Remediation.** {experiment.remediation}", ""]
    if experiment.found:
        lines += ["**Found.** " + "; ".join(f"`{item}`" for item in experiment.found), ""]
    lines.append(f"Run it: `chaos-model experiment run {experiment.name}`")
    return "\n".join(lines) + "\n"


def render_actual(result: ExperimentResult | None) -> str:
    if result is None:
        return "**Actual behaviour.** Not run yet.\n"
    target = f"target {result.target}" if result.target else "the target"
    bugs = f"bug{'s' if len(result.bugs) > 1 else ''} {', '.join(result.bugs)}"
    where = f"{target} with {bugs}" if result.bugs else f"{target}, no planted bug"
    return (
        f"**Actual behaviour** (last run {result.started}, {where}, {result.seconds:.1f} s:"
        f" {result.verdict}). {result.actual()}\n"
    )


def render_source(target: TargetSpec) -> str:
    """Where ``target``'s experiments are defined, as a paragraph of the header."""
    catalogue = f"`{target.experiments}`" if target.experiments else "no catalogue"
    return (
        f"The experiments below are those of target `{target.name}` (adapter"
        f" `{target.source.name}`: {catalogue}).\n"
    )


def render_markdown(
    experiments: list[Experiment],
    results: dict[str, ExperimentResult],
    target: TargetSpec | None = None,
) -> str:
    header = HEADER if target is None else HEADER + "\n" + render_source(target)
    rows = ["| experiment | last run | verdict |", "|---|---|---|"]
    for experiment in experiments:
        result = results.get(experiment.name)
        if result is None:
            rows.append(f"| [{experiment.name}](#{experiment.name}) | not run | |")
        else:
            rows.append(
                f"| [{experiment.name}](#{experiment.name}) | {result.started}"
                f" ({result.seconds:.1f} s) | {result.verdict} |"
            )
    sections = [
        render_definition(experiment) + "\n" + render_actual(results.get(experiment.name))
        for experiment in experiments
    ]
    return header + "\n" + "\n".join(rows) + "\n\n" + "\n".join(sections)
