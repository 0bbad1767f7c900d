"""``python -m chaos_model.proxy`` as a subprocess, driven through ProxyClient (HTTP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import chaos_model.proxy
from chaos_model.proxy import Down, Latency, ProxyAPIError, ProxyClient

REPO_ROOT = Path(chaos_model.proxy.__file__).resolve().parents[2]


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionError:
            pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[bytes]
    control: str
    links: dict[str, int]
    startup: float

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"proxy did not exit within 5 s of {sig.name}") from None
        return self.proc.returncode, err.decode(errors="replace")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def start_proxy(tmp_path: Path, *links: str) -> ProxyProcess:
    ready = tmp_path / "proxy-ready.json"
    cmd = [sys.executable, "-m", "chaos_model.proxy", "--control", "127.0.0.1:0"]
    cmd += [f"--link={spec}" for spec in links] + ["--ready-file", str(ready)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = start + 10
    while not ready.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"proxy exited with {proc.returncode} before ready:\n{err}")
        if time.perf_counter() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"timed out after 10 s waiting for ready file {ready}")
        time.sleep(0.005)  # polling interval of the deadline loop above
    startup = time.perf_counter() - start
    data = json.loads(ready.read_text())
    return ProxyProcess(proc, data["control"], data["links"], startup)


def round_trip(sock: socket.socket, payload: bytes) -> float:
    start = time.perf_counter()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(received)}/{len(payload)} echoed bytes"
        received += chunk
    assert received == payload
    return time.perf_counter() - start


def timed(fn: object, *args: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_cli_ready_file_and_control_api(tmp_path: Path, echo_port: int) -> None:
    proxy = start_proxy(tmp_path, f"app->echo=0:127.0.0.1:{echo_port}")
    try:
        print(f"\nproxy start-up to ready file: {proxy.startup * 1000:.0f} ms")
        assert proxy.startup < 3.0
        assert proxy.control.startswith("http://127.0.0.1:")
        port = proxy.links["app->echo"]
        assert port > 0
        with ProxyClient(proxy.control) as client:
            assert client.health()["status"] == "ok"
            info = client.links()["app->echo"]
            assert info["listen"] == f"127.0.0.1:{port}"
            assert info["upstream"] == f"127.0.0.1:{echo_port}"
            assert info["enabled"] is True

            with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
                round_trip(sock, b"hello")
                add = timed(client.add_toxic, "app->echo", Latency(latency=200))
                assert round_trip(sock, b"slow") >= 0.19
                remove = timed(client.remove_toxic, "app->echo", "latency_downstream")
                print(f"toggle via HTTP: add {add * 1000:.2f} ms, remove {remove * 1000:.2f} ms")
                assert add < 0.05 and remove < 0.05
                assert round_trip(sock, b"fast") < 0.15
                with client.toxic("app->echo", Latency(latency=150, stream="upstream")) as tox:
                    assert tox.name == "latency_upstream"
                    assert [t.name for t in client.toxics("app->echo")] == ["latency_upstream"]
                    assert round_trip(sock, b"slow again") >= 0.14
                assert client.toxics("app->echo") == []

            second = client.add_link("second", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
            second_port = int(second["listen"].rsplit(":", 1)[1])
            open_sock = socket.create_connection(("127.0.0.1", second_port), timeout=3)
            round_trip(open_sock, b"pooled")
            client.add_toxic("second", {"type": "down"})
            assert open_sock.recv(10) == b"", "open connection not cut by down"
            open_sock.close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", second_port), timeout=3)
            assert client.links()["second"]["enabled"] is False
            client.reset()
            assert client.links()["second"]["enabled"] is True
            with socket.create_connection(("127.0.0.1", second_port), timeout=3) as sock:
                round_trip(sock, b"back")

            with pytest.raises(ProxyAPIError) as not_found:
                client.remove_toxic("no-such-link", "x")
            assert not_found.value.status == 404
            client.add_toxic("second", Down(name="partition"))
            with pytest.raises(ProxyAPIError) as conflict:
                client.add_toxic("second", Down(name="partition"))
            assert conflict.value.status == 409
            with pytest.raises(ProxyAPIError) as invalid:
                client.add_toxic("second", {"type": "latency", "attributes": {}})
            assert invalid.value.status == 400
            with pytest.raises(ProxyAPIError, match="loopback") as lan:
                client.add_link("lan", "127.0.0.1:0", "10.0.0.1:5432")
            assert lan.value.status == 400
            client.remove_link("second")
            assert set(client.links()) == {"app->echo"}
    finally:
        code, err = proxy.stop(signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err, err


def test_cli_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    proxy = start_proxy(tmp_path)
    assert proxy.links == {}
    with ProxyClient(proxy.control) as client:
        assert client.health() == {"status": "ok", "links": 0}
    code, err = proxy.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["--link", "db=0:10.0.0.7:5432"],
        ["--control", "0.0.0.0:0"],
        ["--link", "missing-port"],
    ],
)
def test_cli_rejects_bad_arguments(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chaos_model.proxy", *args],
        env=_env(),
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert b"usage" in result.stderr
