"""docs/your-own-system.md stays true: its adapter is the toy's file, its snippets load, and
its commands parse."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from chaos_model.adapter import load_adapter, parse_adapter
from chaos_model.cli import build_parser

ROOT = Path(__file__).parents[2]
GUIDE = (ROOT / "docs" / "your-own-system.md").read_text()
TOY = ROOT / "tests" / "toy_target" / "chaos-target.toml"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.S)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def test_the_worked_example_is_the_toy_targets_adapter_file() -> None:
    whole = [block for block in _blocks("toml") if "[target]" in block]
    assert whole == [TOY.read_text()]


def test_the_attach_snippet_completes_the_toy_adapter() -> None:
    (snippet,) = [block for block in _blocks("toml") if "[attach]" in block]
    data = _merge(tomllib.loads(TOY.read_text()), tomllib.loads(snippet))
    spec = parse_adapter(data, TOY)
    assert spec.attach is not None and spec.attach.test_environment
    assert spec.services["worker"].pid_file == "/run/app/worker.pid"
    load_adapter(TOY)  # and the file itself loads as it is


def test_the_llm_snippet_completes_the_toy_adapter() -> None:
    (snippet,) = [block for block in _blocks("toml") if "[llm]" in block]
    data = _merge(tomllib.loads(TOY.read_text()), tomllib.loads(snippet))
    llm = parse_adapter(data, TOY).llm
    assert [rule.name for rule in llm.rules] == ["weather", "sentiment", "facts"]
    assert (llm.key, llm.key_header) == ("header", "X-Message-Id")


def test_every_command_in_the_guide_parses() -> None:
    commands = [
        line.split("chaos-model", 1)[1]
        for block in _blocks("sh")
        for line in block.splitlines()
        if "chaos-model " in line and not line.lstrip().startswith("#")
    ]
    assert len(commands) >= 3
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command.replace("<run>", "RUN"))
        parser.parse_args(argv)
