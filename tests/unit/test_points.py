"""Fault points: the in-process runtime (events, arming, crash, hang, raise) in real processes,
the control folder, the catalogue, and how the sweep and the printed program use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaos_model._wait import wait_until
from chaos_model.points import (
    BOOT_DIR,
    Arm,
    Point,
    PointCatalogue,
    PointControl,
    Reached,
    boot_environment,
    is_python_command,
)
from chaos_model.recorder import render_program
from chaos_model.sweep import point_modes

sys.path.insert(0, str(BOOT_DIR))
from chaos_points import sql_detail

APP = """
import asyncio, sys, httpx

async def fetch_user(client, n):
    return await client.get(f"{sys.argv[1]}/users/{n}")

async def handler(calls):
    async with httpx.AsyncClient() as client:
        for n in range(calls):
            try:
                answer = await fetch_user(client, n)
                print("got", answer.status_code, flush=True)
            except Exception as error:
                print("error", type(error).__name__, flush=True)

asyncio.run(handler(int(sys.argv[2])))
"""
KEY = "handler > fetch_user: httpx.send GET /users/{n}"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def start_app(tmp_path: Path, server: str, calls: int = 3) -> subprocess.Popen[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {**os.environ, **boot_environment(tmp_path / "points", "web", {})}
    return subprocess.Popen(
        [sys.executable, str(app), server, str(calls)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_app(tmp_path: Path, server: str, calls: int = 3) -> tuple[int, list[str], str]:
    app = start_app(tmp_path, server, calls)
    out, err = app.communicate(timeout=60)
    return app.returncode, out.split("\n")[:-1], err


@pytest.fixture
def control(tmp_path: Path) -> PointControl:
    points = PointControl(tmp_path / "points")
    points.prepare()
    return points


def test_every_call_is_an_event_with_its_call_site(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    code, out, err = run_app(tmp_path, server)
    assert code == 0 and out == ["got 200"] * 3, err
    points = control.points()
    assert list(points) == [("web", KEY)]
    point = points[("web", KEY)]
    assert (point.op, point.detail, point.function, point.module) == (
        "httpx.send",
        "GET /users/{n}",
        "fetch_user",
        "__main__",
    )
    assert point.line == 5 and point.kind == "call" and point.durable
    assert control.reached().counts == {("web", KEY): 3}


def test_an_armed_point_raises_the_librarys_own_error_at_its_occurrence(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    arm = Arm("web", KEY, when="after", occurrence=2, action="raise")
    control.arm(arm)
    code, out, err = run_app(tmp_path, server)
    assert code == 0, err
    assert out == ["got 200", "error ReadTimeout", "got 200"]
    assert arm.id in control.fired()
    assert f"point fault raise after {KEY!r}" in err


def test_before_the_call_the_error_is_a_connection_error(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    control.arm(Arm("web", KEY, when="before", action="raise"))
    _, out, _ = run_app(tmp_path, server)
    assert out == ["error ConnectError", "got 200", "got 200"]


def test_a_crash_kills_the_process_at_once(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    control.arm(Arm("web", KEY, when="after", occurrence=2, action="crash"))
    code, out, _ = run_app(tmp_path, server)
    assert code == -9 and out == ["got 200"]


def test_a_point_fires_once_across_processes(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    control.arm(Arm("web", KEY, when="after", occurrence=3, action="raise"))
    _, first, _ = run_app(tmp_path, server, calls=2)
    _, second, _ = run_app(tmp_path, server, calls=3)
    assert first == ["got 200", "got 200"]
    assert second == ["error ReadTimeout", "got 200", "got 200"]


def test_a_hang_lasts_until_the_point_is_disarmed(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    arm = Arm("web", KEY, when="before", action="hang")
    control.arm(arm)
    app = start_app(tmp_path, server, calls=2)
    wait_until(lambda: arm.id in control.fired(), timeout=30, what="the hang to begin")
    assert app.poll() is None
    control.disarm_all()
    out, _ = app.communicate(timeout=30)
    assert out.split() == ["got", "200", "got", "200"]


def test_a_narrowing_match_and_another_service_leave_calls_alone(
    tmp_path: Path, server: str, control: PointControl
) -> None:
    control.arm(Arm("web", "", action="raise", op="httpx.send", match="/users/2$"))
    control.arm(Arm("worker", KEY, action="raise"))
    _, out, _ = run_app(tmp_path, server)
    assert out == ["got 200", "got 200", "error ReadTimeout"]


def test_a_new_example_counts_afresh(tmp_path: Path, server: str, control: PointControl) -> None:
    run_app(tmp_path, server, calls=2)
    first = control.generation
    control.new_example()
    run_app(tmp_path, server, calls=1)
    assert control.reached(first).counts == {("web", KEY): 2}
    assert control.reached().counts == {("web", KEY): 1}
    at = control.reached().calls[0][0]
    assert control.reached().last_before("web", at + 1) == KEY
    assert control.reached().last_before("web", at - 1) is None


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("INSERT INTO outbox (task) VALUES ($1)", "INSERT INTO outbox"),
        ("  update messages SET stage = $2 WHERE id = $1", "UPDATE messages"),
        ("DELETE FROM knowledge WHERE x", "DELETE FROM knowledge"),
        ("SELECT payload FROM telegram_updates WHERE update_id = $1", "SELECT telegram_updates"),
        ("SELECT min(available_at) FROM outbox", "SELECT outbox"),
        ("COMMIT;", "COMMIT"),
        ("SELECT pg_notify('outbox', $1)", "SELECT pg_notify"),
        ("SELECT EXTRACT(EPOCH FROM min(at) - now()) FROM outbox", "SELECT outbox"),
        ('INSERT INTO "Quoted"(a) VALUES (1)', "INSERT INTO Quoted"),
    ],
)
def test_sql_details_name_the_statement_and_its_table(query: str, detail: str) -> None:
    assert sql_detail(query) == detail


def test_arms_are_checked_and_named_by_their_fields() -> None:
    assert Arm("w", "k").id == Arm("w", "k").id != Arm("w", "k", occurrence=2).id
    for bad in ({"when": "during"}, {"action": "explode"}, {"occurrence": 0}, {"match": "("}):
        with pytest.raises(Exception):  # noqa: B017 - ValueError or re.error
            Arm("w", "k", **bad)  # type: ignore[arg-type]


def _point(op: str, detail: str = "", in_transaction: bool = False) -> Point:
    return Point("worker", f"f: {op} {detail}", op, detail, in_transaction=in_transaction)


def test_what_a_point_changes_decides_the_modes_the_sweep_tries() -> None:
    commit = _point("asyncpg.execute", "COMMIT")
    write_in_tx = _point("asyncpg.execute", "INSERT INTO outbox", in_transaction=True)
    read = _point("asyncpg.fetchval", "SELECT messages")
    ack = _point("nats.ack")
    assert (commit.kind, write_in_tx.kind, read.kind, ack.kind) == (
        "commit",
        "write",
        "read",
        "ack",
    )
    assert point_modes(commit) == [("after", "crash"), ("after", "raise"), ("before", "raise")]
    assert point_modes(write_in_tx) == [("before", "raise")]
    assert point_modes(read) == [("before", "raise")]
    assert _point("asyncpg.execute", "INSERT INTO outbox").durable  # autocommit


def test_the_catalogue_is_append_only_and_orders_the_sweep() -> None:
    catalogue = PointCatalogue()
    read, commit = _point("asyncpg.fetch", "SELECT a"), _point("asyncpg.execute", "COMMIT")
    assert catalogue.learn([read, commit]) == 2 and catalogue.learn([read]) == 0
    assert catalogue.pick(0) == read and catalogue.pick(3) == commit
    assert catalogue.for_sweep() == [commit, read]
    catalogue.frozen = True
    assert catalogue.learn([_point("nats.ack")]) == 0 and len(catalogue) == 2


def _reached(began: float, *points: Point) -> Reached:
    reached = Reached()
    for offset, point in enumerate(points):
        reached.add(point.service, point.key, began + offset)
    return reached


def test_the_sweep_walks_the_last_examples_path_backwards_then_the_other_paths() -> None:
    """The probe's path, deepest call first; then points only a fault's example reached (a
    retry, a restart), the latest found first."""
    read, commit = _point("asyncpg.fetch", "SELECT a"), _point("asyncpg.execute", "COMMIT")
    ack, retry = _point("nats.ack"), _point("asyncpg.execute", "UPDATE attempts")
    startup = _point("nats.js.fetch")
    catalogue = PointCatalogue()
    catalogue.learn([read, commit, ack], _reached(10, read, commit, ack))
    catalogue.learn([read, retry], _reached(20, read, retry))
    catalogue.learn([startup], _reached(30, startup))
    catalogue.learn([read, commit, ack], _reached(40, read, commit, ack))  # the probe
    assert catalogue.for_sweep() == [ack, commit, read, startup, retry]


def test_a_point_fault_prints_as_what_it_does() -> None:
    steps = [
        {
            "rule": "point",
            "args": {
                "service": "worker",
                "point": "w: asyncpg.execute COMMIT",
                "when": "after",
                "action": "crash",
                "occurrence": 1,
            },
        }
    ]
    assert render_program(steps).splitlines()[1] == (
        "state.crash(service='worker', after='w: asyncpg.execute COMMIT', occurrence=1)"
    )


def test_python_commands_are_told_apart(tmp_path: Path) -> None:
    script = tmp_path / "uvicorn"
    script.write_text("#!/srv/venv/bin/python3\nprint()\n")
    node = tmp_path / "server"
    node.write_text("#!/usr/bin/env node\n")
    assert is_python_command(["/usr/bin/python3.11", "-m", "app"])
    assert is_python_command([sys.executable])
    assert is_python_command([str(script), "app:app"])
    assert not is_python_command([str(node)]) and not is_python_command(["nats-server"])


def test_the_bootstrap_goes_first_on_the_python_path() -> None:
    env = boot_environment(Path("/tmp/p"), "api", {"PYTHONPATH": "/srv/app"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOT_DIR), "/srv/app"]
    assert (env["CHAOS_MODEL_POINTS"], env["CHAOS_MODEL_SERVICE"]) == ("/tmp/p", "api")


def test_the_armed_file_is_replaced_whole(control: PointControl) -> None:
    before = os.stat(control.armed_path).st_ino
    control.arm(Arm("web", KEY))
    assert os.stat(control.armed_path).st_ino != before
    assert json.loads(control.armed_path.read_text())["armed"][0]["point"] == KEY
    assert control.disarm_all()[0]["point"] == KEY and control.armed() == []


def _bare_venv(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120
    )
    return folder / "bin" / "python"


@pytest.mark.parametrize("interpreter", ["a venv without chaos-model", "/usr/bin/python3"])
def test_the_bootstrap_runs_under_a_target_interpreter_that_lacks_chaos_model(
    interpreter: str, tmp_path: Path
) -> None:
    """``[target] python`` may name another venv, or another Python: the bootstrap is the
    standard library alone, so it loads there without importing anything of chaos-model."""
    if interpreter.startswith("/"):
        if not Path(interpreter).exists():
            pytest.skip(f"no {interpreter} on this machine")
        python = Path(interpreter)
    else:
        python = _bare_venv(tmp_path / "venv")
    control = PointControl(tmp_path / "points")
    control.prepare()
    env = {"PATH": "/usr/bin:/bin", **boot_environment(control.folder, "svc", {})}
    code = (
        "import sys; print('chaos_points' in sys.modules,"
        " any(name.partition('.')[0] == 'chaos_model' for name in sys.modules))"
    )
    done = subprocess.run(
        [str(python), "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "sitecustomize" not in done.stderr, done.stderr
    assert done.stdout.split() == ["True", "False"], (done.stdout, done.stderr)
