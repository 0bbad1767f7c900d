"""Finding experiments: the target's built-in ones (the catalogue its adapter names) and those
saved in a user folder as ``NAME.json``."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from chaos_model.adapter import TargetSpec, load_target
from chaos_model.errors import AdapterError
from chaos_model.experiments._model import BadExperiment, Experiment, describe_step
from chaos_model.run_stats import FAULT_RULES

#: a target, the path of its adapter file, or None for the default adapter
TargetRef: TypeAlias = TargetSpec | str | os.PathLike[str] | None

#: the folder saved experiments live in, unless ``--experiments-dir`` or the variable says
DEFAULT_DIR = Path("chaos-experiments")
ENV_DIR = "CHAOS_MODEL_EXPERIMENTS_DIR"
FAULT_STEPS = FAULT_RULES - {"heal_one", "heal_all"}


def user_dir(directory: Path | None = None) -> Path:
    if directory is not None:
        return directory
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def _spec(target: TargetRef) -> TargetSpec:
    return target if isinstance(target, TargetSpec) else load_target(target)


def catalogue(target: TargetRef = None) -> tuple[Experiment, ...]:
    """The built-in experiments of ``target``: the sequence its adapter names as
    ``[experiments] catalogue = "module:NAME"`` (none when it names none), of Experiment or of
    plain mappings of its fields (a catalogue that imports nothing of chaos-model)."""
    spec = _spec(target)
    reference = spec.experiments
    if not reference:
        return ()
    where = f"{spec.source}: experiments.catalogue"
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise AdapterError(f"{where}: expected 'module:NAME', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure to import is the adapter's problem
        detail = f"{type(error).__name__}: {error}".splitlines()[0]
        raise AdapterError(f"{where}: cannot import {module_name!r} ({detail})") from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise AdapterError(f"{where}: module {module_name} has no {attribute!r}") from None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise AdapterError(
            f"{where}: {reference} is {type(value).__name__}, not a sequence of Experiment"
        )
    experiments: list[Experiment] = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping):
            item = Experiment.from_json({"origin": "built-in", **item}, f"{reference}[{index}]")
        if not isinstance(item, Experiment):
            raise AdapterError(
                f"{where}: {reference} holds a {type(item).__name__}, not only Experiment"
            )
        experiments.append(item)
    names = [experiment.name for experiment in experiments]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AdapterError(f"{where}: {reference} names {', '.join(twice)} more than once")
    return tuple(experiments)


def load_file(path: Path) -> Experiment:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise BadExperiment(f"{path}: no such file") from error
    except OSError as error:
        raise BadExperiment(f"{path}: cannot read it ({error.strerror})") from error
    except ValueError as error:
        raise BadExperiment(f"{path}: not JSON ({error})") from error
    experiment = Experiment.from_json(data, str(path))
    if experiment.name != path.stem:
        raise BadExperiment(f"{path}: names the experiment {experiment.name!r}, not {path.stem!r}")
    return experiment


def saved(directory: Path | None = None) -> list[Experiment]:
    """The experiments saved in ``directory`` (default ``./chaos-experiments``), by name."""
    folder = user_dir(directory)
    if not folder.is_dir():
        return []
    return [load_file(path) for path in sorted(folder.glob("*.json"))]


def all_experiments(directory: Path | None = None, target: TargetRef = None) -> list[Experiment]:
    """The built-in experiments of ``target`` (default: the default adapter's), then the saved
    ones."""
    return [*catalogue(target), *saved(directory)]


def find(name: str, directory: Path | None = None, target: TargetRef = None) -> Experiment:
    for experiment in catalogue(target):
        if experiment.name == name:
            return experiment
    path = user_dir(directory) / f"{name}.json"
    if path.is_file():
        return load_file(path)
    known = ", ".join(experiment.name for experiment in all_experiments(directory, target))
    raise BadExperiment(
        f"no experiment named {name!r} (see `chaos-model experiment list`;"
        f" known: {known or 'none'})"
    )


def save(
    experiment: Experiment,
    directory: Path | None = None,
    *,
    force: bool = False,
    target: TargetRef = None,
) -> Path:
    """Write ``experiment`` as ``NAME.json`` in the user folder; refuse to shadow another (one of
    ``target``'s built-in experiments, or a file already saved)."""
    if any(built_in.name == experiment.name for built_in in catalogue(target)):
        raise BadExperiment(f"{experiment.name!r} is a built-in experiment: choose another name")
    folder = user_dir(directory)
    path = folder / f"{experiment.name}.json"
    if path.exists() and not force:
        raise BadExperiment(f"{path} exists: choose another name or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(experiment.to_json(), indent=1, ensure_ascii=False) + "\n")
    return path


def from_failure(name: str, steps_file: Path, steps: list[dict[str, Any]]) -> Experiment:
    """A saved failure's program as a named regression experiment."""
    violations: list[str] = []
    invariants: list[str] = []
    source = steps_file / "steps.json" if steps_file.is_dir() else steps_file
    try:
        data = json.loads(source.read_text())
        if isinstance(data, dict):
            violations = [str(item) for item in data.get("violations", [])]
            invariants = [str(item) for item in data.get("invariants", [])]
    except (OSError, ValueError):
        pass
    broke = ", ".join(invariants) or "an invariant"
    faults = [describe_step(step) for step in steps if step["rule"] in FAULT_STEPS]
    return Experiment(
        name=name,
        hypothesis=(
            f"This program once broke {broke} (saved from {source}). On a correct system "
            "it passes: every invariant holds."
        ),
        blast_radius=(
            "what its faults touch: " + ", ".join(faults) if faults else "no fault: operations only"
        ),
        steps=tuple(dict(step) for step in steps),
        observe=("the invariants it once violated", "messages by final stage"),
        expected="Every invariant holds.",
        remediation="",
        origin=str(source),
        found=tuple(violations),
    )
