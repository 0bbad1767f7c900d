"""The Jepsen-style history: invoke/complete pairs, JSON round trip and filtering."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from chaos_model.history import History, Op


def sample() -> History:
    history = History()
    deliver = history.invoke("client", "deliver", {"update_id": 1})
    fault = history.invoke("nemesis", "fault", {"kind": "pause", "service": "api"})
    history.complete(deliver, "info", error="TimeoutError()")
    history.complete(fault, "ok")
    read = history.invoke("client", "read", None)
    history.complete(read, "fail", error="connection refused")
    return history


def test_invoke_and_complete_produce_ops_with_increasing_indexes() -> None:
    history = sample()
    assert [op.index for op in history.ops] == list(range(6))
    assert [op.type for op in history.ops] == ["invoke", "invoke", "info", "ok", "invoke", "fail"]
    times = [op.time for op in history.ops]
    assert times == sorted(times)
    assert all(t >= 0 for t in times)


def test_complete_copies_process_and_function_from_its_invocation() -> None:
    history = History()
    op = history.invoke("client-3", "deliver", {"update_id": 9})
    done = history.complete(op, "ok")
    assert (done.process, done.f, done.value, done.error) == (
        "client-3",
        "deliver",
        {"update_id": 9},
        None,
    )
    other = history.complete(op, "info", value="maybe", error="timeout")
    assert (other.value, other.error, other.index) == ("maybe", "timeout", 2)


def test_complete_as_invoke_raises() -> None:
    history = History()
    op = history.invoke("client", "deliver")
    with pytest.raises(ValueError, match="ok, fail or info"):
        history.complete(op, "invoke")
    assert len(history.ops) == 1


def test_ops_are_frozen() -> None:
    op = History().invoke("client", "deliver")
    with pytest.raises(AttributeError):
        op.index = 5  # type: ignore[misc]


def test_json_round_trip() -> None:
    history = sample()
    data = json.loads(json.dumps(history.to_json()))
    assert data[0] == {
        "index": 0,
        "process": "client",
        "type": "invoke",
        "f": "deliver",
        "value": {"update_id": 1},
        "time": history.ops[0].time,
        "error": None,
    }
    again = History.from_json(data)
    assert again.ops == history.ops
    assert again.to_json() == history.to_json()


def test_write_then_read_back(tmp_path: Path) -> None:
    history = sample()
    path = tmp_path / "history.json"
    history.write(path)
    assert History.from_json(json.loads(path.read_text())).ops == history.ops


def test_from_json_then_append_continues_the_indexes() -> None:
    again = History.from_json(sample().to_json())
    op = again.invoke("client", "deliver")
    assert op.index == 6


def test_of_filters_by_function_and_type() -> None:
    history = sample()
    assert [op.index for op in history.of("deliver")] == [0, 2]
    assert [op.index for op in history.of("deliver", "invoke")] == [0]
    assert [op.index for op in history.of("deliver", "info")] == [2]
    assert [op.index for op in history.of("fault", "ok")] == [3]
    assert history.of("read", "ok") == []
    assert history.of("nothing") == []
    assert all(isinstance(op, Op) for op in history.of("read"))


def test_concurrent_invokes_get_unique_indexes() -> None:
    history = History()

    def work() -> None:
        for _ in range(200):
            history.complete(history.invoke("client", "deliver"), "ok")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [op.index for op in history.ops] == list(range(1600))
