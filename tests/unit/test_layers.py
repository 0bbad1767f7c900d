"""The layers of chaos_model are kept by import-linter (``[tool.importlinter]`` in
pyproject.toml, run by .ci/run): the real tree keeps them, and a lower layer importing a higher
one breaks the contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    for package in ("chaos_model", "pipeline_app"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_layers() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    base = root / "chaos_model" / "stack" / "_base.py"
    base.write_text(base.read_text() + "\nfrom chaos_model.machine import ChaosMachine\n")
    result = lint(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "chaos_model.stack._base -> chaos_model.machine" in result.stdout


def test_a_module_in_no_layer_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    (root / "chaos_model" / "unplaced.py").write_text('"""A module the layers do not name."""\n')
    result = lint(root)
    assert result.returncode != 0
    assert "chaos_model.unplaced" in result.stdout


def test_the_system_under_test_importing_chaos_model_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    tasks = root / "pipeline_app" / "tasks.py"
    tasks.write_text(tasks.read_text() + "\nimport chaos_model.stack\n")
    result = lint(root)
    assert result.returncode != 0
    assert "pipeline_app.tasks -> chaos_model.stack" in result.stdout
