"""Saved programs: the Hypothesis-style rendering and loading steps.json back for replay."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from chaos_model.errors import ChaosModelError
from chaos_model.recorder import FailureRecord, render_program, write_failure
from chaos_model.replay import RULES, BadProgram, load_steps

STEPS: list[dict[str, Any]] = [
    {"rule": "deliver", "args": {"chat": 0, "text": "hi"}},
    {"rule": "deliver", "args": {"chat": 1, "text": "it's"}},
    {"rule": "redeliver", "args": {"update": 0}},
    {"rule": "pause", "args": {"service": "postgres"}},
    {"rule": "llm_fault", "args": {"mode": "hang", "seconds": 1.0}},
    {"rule": "read_back", "args": {}},
    {"rule": "redeliver", "args": {"update": 1}},
    {"rule": "heal_all", "args": {}},
]

EXPECTED = """\
state = ChaosMachine()
updates_0 = state.deliver(chat=0, text='hi')
updates_1 = state.deliver(chat=1, text="it's")
state.redeliver(update=updates_0)
state.pause(service='postgres')
state.llm_fault(mode='hang', seconds=1.0)
state.read_back()
state.redeliver(update=updates_1)
state.heal_all()
state.teardown()"""


def test_render_program() -> None:
    assert render_program(STEPS) == EXPECTED


def test_render_empty_program() -> None:
    assert render_program([]) == "state = ChaosMachine()\nstate.teardown()"


def test_rendered_program_is_python() -> None:
    ast.parse(render_program(STEPS))


def test_render_does_not_mutate_the_steps() -> None:
    steps = json.loads(json.dumps(STEPS))
    render_program(steps)
    assert steps == STEPS


def test_render_escapes_awkward_text() -> None:
    text = "line\nbreak ' \" \\ é"
    program = render_program([{"rule": "deliver", "args": {"chat": 2, "text": text}}])
    assert program.splitlines()[1] == f"updates_0 = state.deliver(chat=2, text={text!r})"
    ast.parse(program)


def test_sample_steps_use_real_rules() -> None:
    assert {step["rule"] for step in STEPS} <= RULES


# ---------------------------------------------------------------------------- load_steps


def _write(directory: Path, content: str | bytes) -> Path:
    path = directory / "steps.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_load_steps_from_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps({"steps": STEPS, "violations": ["x"], "invariants": []}))
    assert load_steps(path) == STEPS


def test_load_steps_from_the_folder(tmp_path: Path) -> None:
    _write(tmp_path, json.dumps({"steps": STEPS}))
    assert load_steps(tmp_path) == STEPS


def test_load_steps_accepts_a_bare_list(tmp_path: Path) -> None:
    assert load_steps(_write(tmp_path, json.dumps(STEPS))) == STEPS


def test_load_steps_reads_what_write_failure_saved(tmp_path: Path) -> None:
    record = FailureRecord(
        steps=STEPS,
        violations=["[safety] one_message_per_update invalid: x"],
        invariants=["one_message_per_update"],
        kinds=["safety"],
    )
    write_failure(tmp_path, record, [], {"api": tmp_path / "no-such.log"})
    assert load_steps(tmp_path) == STEPS
    assert (tmp_path / "program.py").read_text() == EXPECTED + "\n"
    assert (tmp_path / "test_replay.py").exists()
    assert json.loads((tmp_path / "history.json").read_text()) == []
    assert list((tmp_path / "logs").iterdir()) == []


BAD_FILES = [
    pytest.param("{not json", "not a chaos-model program", id="invalid-json"),
    pytest.param("", "not a chaos-model program", id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", "not a chaos-model program", id="not-utf8"),
    pytest.param('{"history": []}', "not a chaos-model program", id="no-steps-key"),
    pytest.param('{"steps": 5}', "expected a list", id="steps-not-a-list"),
    pytest.param("null", "expected a list", id="null"),
    pytest.param('"steps"', "expected a list", id="a-string"),
    pytest.param("[1, 2]", "expected a list", id="list-of-ints"),
    pytest.param('[{"args": {}}]', "expected a list", id="step-without-rule"),
    pytest.param('[{"rule": 3, "args": {}}]', "expected a list", id="rule-not-a-string"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_load_steps_rejects_bad_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(BadProgram, match=message) as raised:
        load_steps(path)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, ChaosModelError)


def test_load_steps_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadProgram, match="no such file"):
        load_steps(tmp_path / "nope.json")


def test_load_steps_rejects_a_folder_without_steps(tmp_path: Path) -> None:
    with pytest.raises(BadProgram, match=r"steps\.json: no such file"):
        load_steps(tmp_path)


def test_load_steps_rejects_a_steps_json_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "steps.json").mkdir()
    with pytest.raises(BadProgram):
        load_steps(tmp_path)


# ------------------------------------------------------------------ timeline lanes
ROOT = Path(__file__).parents[2]


def _capture(ops: list[dict[str, Any]], log_tails: dict[str, list[str]]) -> Any:
    from chaos_model.reporting.capture import ExampleCapture

    return ExampleCapture(False, [], ops, [], [], [], 1.0, log_tails=log_tails)


def _fault(value: dict[str, Any], time: float = 0.1) -> dict[str, Any]:
    return {"process": "nemesis", "type": "ok", "f": "fault", "time": time, "value": value}


def test_timeline_lanes_are_the_targets_services_in_the_order_a_request_travels() -> None:
    from chaos_model.adapter import load_adapter
    from chaos_model.reporting.timeline import build_timeline, lanes

    reference = load_adapter(ROOT / "chaos-target.toml")
    assert lanes(reference) == ("telegram", "api", "postgres", "nats", "worker", "llm", "dashboard")
    toy = load_adapter(ROOT / "tests" / "toy_target" / "chaos-target.toml")
    assert lanes(toy) == ("telegram", "web", "postgres", "nats", "worker", "llm")

    capture = _capture([_fault({"kind": "failpoint", "name": "relay.after_publish"})], {})
    timeline = build_timeline(capture, reference)
    assert timeline.services == lanes(reference)
    # a failpoint not named after a service hits every service of the target's own
    assert timeline.bands[0].services == ("api", "worker")
    partition = _capture([_fault({"kind": "partition", "link": "web->nats"})], {})
    assert build_timeline(partition, toy).bands[0].services == ("web", "nats")


def test_without_a_target_the_lanes_are_those_the_capture_shows() -> None:
    from chaos_model.reporting.timeline import build_timeline, fault_services

    ops = [
        _fault({"kind": "network", "link": "telegram->web", "toxic": {}}),
        _fault({"kind": "kill", "service": "indexer"}, 0.2),
        {"process": "dashboard-a", "type": "invoke", "f": "feed", "time": 0.3, "value": None},
    ]
    timeline = build_timeline(_capture(ops, {"worker": [], "web": []}))
    assert timeline.services == (
        "telegram",
        "web",
        "postgres",
        "nats",
        "indexer",
        "worker",
        "llm",
        "dashboard",
    )
    assert build_timeline(_capture([], {})).services == ("telegram", "postgres", "nats", "llm")
    assert fault_services({"kind": "failpoint", "name": "relay.x"}) == ("relay",)
    assert fault_services({"kind": "noop"}) == ()
