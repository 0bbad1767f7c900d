"""The command line's usage errors (exit 2, one line, no traceback) and ``invariants``.

No test here starts a stack: every ``run``/``replay`` invocation fails before that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos_model.cli import EXIT_USAGE, main, parse_duration
from chaos_model.invariants import ALL

ArgvFactory = Callable[[Path], list[str]]


def _bad_json(tmp_path: Path) -> list[str]:
    path = tmp_path / "steps.json"
    path.write_text("{not json")
    return ["replay", str(path)]


def _descriptor(tmp_path: Path, **changes: object) -> str:
    """A stack descriptor whose owner is not running: the guard must refuse it first."""
    data = {
        "started_by": "chaos-model",
        "control_url": "http://127.0.0.1:9",
        "failpoints_file": str(tmp_path / "failpoints.json"),
        "endpoints": {
            "database_url": "postgresql://postgres@127.0.0.1:1/postgres",
            "nats_url": "nats://127.0.0.1:2",
            "nats_monitor_url": "http://127.0.0.1:3",
            "api_url": "http://127.0.0.1:4",
            "llm_url": "http://127.0.0.1:5",
            "webhook_secret": "s",
        },
        **changes,
    }
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(data))
    return str(path)


REFERENCE = str(Path(__file__).parents[2] / "chaos-target.toml")


def _adapter(tmp_path: Path, text: str) -> str:
    path = tmp_path / "chaos-target.toml"
    path.write_text(text)
    return str(path)


def _foreign_stack(tmp_path: Path) -> list[str]:
    return ["run", "--attach", _descriptor(tmp_path, started_by="ops")]


def _remote_control(tmp_path: Path) -> list[str]:
    return [
        "replay",
        str(_steps(tmp_path)),
        "--attach",
        _descriptor(tmp_path, control_url="http://10.9.8.7:80"),
    ]


def _steps_on(tmp_path: Path, target: str) -> str:
    path = tmp_path / "steps.json"
    path.write_text(json.dumps({"steps": [{"rule": "deliver", "args": {}}], "target": target}))
    return str(path)


def _steps(tmp_path: Path) -> Path:
    path = tmp_path / "steps.json"
    path.write_text(json.dumps({"steps": [{"rule": "read_back", "args": {}}]}))
    return path


USAGE_ERRORS: list[tuple[str, ArgvFactory, str]] = [
    (
        "attach-missing",
        lambda _: ["run", "--attach", "/nonexistent"],
        "/nonexistent: no such stack descriptor",
    ),
    ("attach-not-chaos-model", _foreign_stack, "refusing to inject faults: the remote stack"),
    ("attach-remote-control", _remote_control, "the control endpoint '10.9.8.7'"),
    (
        "attach-with-bug",
        lambda p: ["run", "--attach", _descriptor(p), "--bug", "ack_before_work"],
        "--bug cannot be combined with --attach",
    ),
    (
        "max-fault-duration-0",
        lambda _: ["run", "--max-fault-duration", "0"],
        "the max fault duration must be positive",
    ),
    ("no-command", lambda _: [], "required: command"),
    ("unknown-command", lambda _: ["explode"], "invalid choice: 'explode'"),
    ("examples-0", lambda _: ["run", "--examples", "0"], "--examples: must be at least 1"),
    ("faults-bogus", lambda _: ["run", "--faults", "bogus"], "unknown fault kind(s) bogus"),
    ("max-time-banana", lambda _: ["run", "--max-time", "banana"], "not a duration: 'banana'"),
    ("forbid-unknown", lambda _: ["run", "--forbid", "bogus"], "unknown fault kind(s) bogus"),
    (
        "forbid-everything",
        lambda _: ["run", "--faults", "kill", "--forbid", "kill"],
        "no fault kind left to use",
    ),
    (
        "bug-not-a-bug",
        lambda _: ["run", "--target", REFERENCE, "--bug", "not_a_bug"],
        "--bug: unknown bug(s) not_a_bug for target pipeline; known: ack_before_work",
    ),
    (
        "target-missing",
        lambda _: ["run", "--target", "/nonexistent/chaos-target.toml"],
        "/nonexistent/chaos-target.toml: no such adapter file",
    ),
    (
        "target-bad-key",
        lambda p: ["run", "--target", _adapter(p, "[target]\nname = 'x'\nnmae = 'y'\n")],
        "target.nmae: unknown key (known here: description, driver, name, python)",
    ),
    (
        "failpoint-not-of-target",
        lambda _: ["run", "--target", REFERENCE, "--failpoints", "nowhere"],
        "unknown failpoint(s) nowhere for target pipeline",
    ),
    (
        "skip-unknown-invariant",
        lambda _: [
            "run",
            "--target",
            REFERENCE,
            "--skip-invariants",
            "one_message_per_update,nope",
        ],
        "unknown invariant(s) nope; list them with: chaos-model invariants",
    ),
    (
        "replay-missing",
        lambda _: ["replay", "/nonexistent/steps.json"],
        "/nonexistent/steps.json: no such file",
    ),
    ("replay-bad-json", _bad_json, "not a chaos-model program"),
    (
        "replay-target-gone",
        lambda p: ["replay", _steps_on(p, "/gone/chaos-target.toml")],
        "it failed on /gone/chaos-target.toml, which is gone; pass --target FILE",
    ),
]

PARAMS = [pytest.param(argv, expected, id=name) for name, argv, expected in USAGE_ERRORS]


def _assert_one_line_error(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("chaos-model: error: "), stderr
    assert expected in lines[0]


def test_no_adapter_in_the_working_directory(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", "run"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "CHAOS_MODEL_TARGET"},
    )
    assert completed.returncode == 2, completed.stderr
    _assert_one_line_error(
        completed.stderr, "no target adapter: chaos-target.toml does not exist; pass --target"
    )


@pytest.mark.parametrize(("argv", "expected"), PARAMS)
def test_usage_error_in_process(
    argv: ArgvFactory, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv(tmp_path)) == EXIT_USAGE == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_line_error(captured.err, expected)


@pytest.mark.parametrize(("argv", "expected"), PARAMS)
def test_usage_error_in_a_subprocess(argv: ArgvFactory, expected: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", *argv(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    _assert_one_line_error(completed.stderr, expected)


def test_console_script_reports_usage_errors() -> None:
    script = Path(sys.executable).with_name("chaos-model")
    if not script.exists():
        pytest.skip("the chaos-model console script is not installed beside this interpreter")
    completed = subprocess.run(
        [str(script), "run", "--examples", "0"], capture_output=True, text=True, timeout=30
    )
    assert completed.returncode == 2
    _assert_one_line_error(completed.stderr, "--examples: must be at least 1")


def test_replay_of_a_json_file_that_is_not_a_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "steps.json"
    path.write_text('{"history": []}')
    assert main(["replay", str(path)]) == 2
    _assert_one_line_error(capsys.readouterr().err, "not a chaos-model program")


def test_replay_of_a_folder_without_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path)]) == 2
    _assert_one_line_error(capsys.readouterr().err, "steps.json: no such file")


def test_invariants_prints_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invariants"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    for invariant in ALL:
        assert f"{invariant.name} ({invariant.kind})" in captured.out
        first_line = invariant.statement().splitlines()[0]
        assert f"    {first_line}" in captured.out


def test_invariants_in_a_subprocess() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos_model.cli", "invariants"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    for invariant in ALL:
        assert invariant.name in completed.stdout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), ("1.5m", 90.0), (" 2m ", 120.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["x", "", "10d", "m", "-5s", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)
