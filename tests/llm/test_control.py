"""The stub's control API: faults by duration and by tool, stats, records per key, the
configuration, and calls in flight while a stream is held back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import RULES, Stub

from chaos_model._wait import wait_until
from chaos_model.llm_stub import expected_score, read_spec

CHAT = "/v1/chat/completions"


def _body(key: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "user": key, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_a_fault_with_a_duration_ends_by_itself(stub: Stub) -> None:
    stub.fault("error", seconds=0.3)
    assert stub.http.post(CHAT, json=_body("a")).status_code == 500
    assert stub.stats()["fault"]["mode"] == "error"
    wait_until(
        lambda: stub.http.post(CHAT, json=_body("a")).status_code == 200,
        timeout=5,
        what="the timed fault to end",
    )
    assert stub.stats()["fault"] is None


def test_a_fault_for_a_tool_spares_calls_without_it(stub: Stub) -> None:
    tool = {"type": "function", "function": {"name": "save", "parameters": {"type": "object"}}}
    stub.fault("error", tool="save", calls=1)
    assert stub.http.post(CHAT, json=_body("a")).status_code == 200
    assert stub.http.post(CHAT, json=_body("a", tools=[tool])).status_code == 500
    assert stub.http.post(CHAT, json=_body("a", tools=[tool])).status_code == 200


def test_stats_and_records_are_per_message_key_and_reset_clears_them(stub: Stub) -> None:
    for key in ("a", "b", "a"):
        stub.http.post(CHAT, json=_body(key)).raise_for_status()
    stats = stub.stats()
    assert (stats["calls"], stats["total"], stats["in_flight"]) == ({"a": 2, "b": 1}, 3, 0)
    assert [record["key"] for record in stub.records("a")] == ["a", "a"]
    stub.reset()
    assert stub.stats()["total"] == 0 and stub.records() == []


def test_a_record_says_what_was_asked_and_which_call_it_was_even_when_a_fault_answered(
    stub: Stub,
) -> None:
    """The oracle tells a message's score call from its extraction by the answer rule, and
    checks the call asked about the message's text: a failed call must say so too."""
    body = _body(
        "k", messages=[{"role": "system", "content": "task: score"}, _body("")["messages"][0]]
    )
    stub.fault("error", calls=1)
    assert stub.http.post(CHAT, json=body).status_code == 500
    assert stub.http.post(CHAT, json=body).status_code == 200
    failed, answered = stub.records("k")
    for record in (failed, answered):
        assert (record["rule"], record["system"], record["prompt"]) == (
            "reference-score",
            "task: score",
            "hi",
        )
    assert (failed["status"], failed["fault"], failed["answer"]) == (500, "error", None)
    assert answered["answer"] == {"score": expected_score("hi")}


def test_the_configuration_is_read_and_replaced_and_checked(stub: Stub) -> None:
    assert stub.http.get("/control/config").json() == RULES
    try:
        changed = {"key": "prompt", "key_pattern": r"order (\d+)", "rules": []}
        assert stub.http.post("/control/config", json=changed).status_code == 200
        body = {"model": "m", "messages": [{"role": "user", "content": "order 17 is late"}]}
        stub.http.post(CHAT, json=body).raise_for_status()
        assert [record["key"] for record in stub.records()] == ["17"]
        wrong = stub.http.post("/control/config", json={"key": "cookie"})
        assert wrong.status_code == 400
        assert "POST /control/config: llm.key: expected one of" in wrong.json()["error"]["message"]
    finally:
        stub.http.post("/control/config", json=RULES).raise_for_status()


def test_a_stream_held_back_counts_as_in_flight(stub: Stub) -> None:
    stub.fault("slow_first_token", calls=1, delay=1.0)
    done = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", stub.url + CHAT, json=_body("s", stream=True), timeout=10) as r:
            r.read()
        done.set()

    reader = threading.Thread(target=stream)
    reader.start()
    try:
        wait_until(lambda: stub.stats()["in_flight"] == 1, timeout=5, what="the stream to start")
        began = time.monotonic()
        wait_until(lambda: done.is_set(), timeout=10, what="the stream to end")
        assert stub.stats()["in_flight"] == 0 and time.monotonic() - began > 0.3
    finally:
        reader.join(timeout=10)
    (record,) = stub.records("s")
    assert record["answered_at"] - record["requested_at"] >= 1.0


def test_a_bad_fault_is_a_400_naming_the_field(stub: Stub) -> None:
    answer = stub.http.post("/control/fault", json={"mode": "error", "status": 418})
    assert answer.status_code == 400
    assert "'status' must be one of (500, 502, 503)" in answer.json()["error"]["message"]


def test_a_bad_config_stops_the_stub_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "llm.json"
    broken.write_text('{"rules": [{"name": "a", "answer": "poem"}]}')
    for argv, problem in (
        (["--config", str(tmp_path / "missing.json")], "cannot read the stub's config"),
        (["--config", str(broken)], "llm.rules[0].answer: expected one of schema"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "chaos_model.llm_stub", "--port", "1", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2 and problem in run.stderr.splitlines()[-1], run.stderr


def test_the_stub_reads_an_adapters_llm_section(tmp_path: Path) -> None:
    adapter = tmp_path / "chaos-target.toml"
    toy = Path(__file__).parents[1] / "toy_target" / "chaos-target.toml"
    adapter.write_text(toy.read_text() + '\n[llm]\nkey = "header"\nkey_header = "X-Id"\n')
    assert read_spec(None, str(adapter)).key_header == "X-Id"
    assert read_spec(None, None).rules == ()
