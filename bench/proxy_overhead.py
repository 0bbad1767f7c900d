"""Overhead of the chaos_model fault proxy on PostgreSQL round trips.

Starts a throw-away PostgreSQL cluster (initdb in a temp dir, trust auth, loopback
port), runs ``python -m chaos_model.proxy`` as a subprocess with one link to it, and
times asyncpg ``select 1`` on one connection directly and through the proxy with no
toxic active (blocks of queries alternate between the two to cancel drift). Also
times adding/removing a toxic through the HTTP control API. Prints a table and
writes ``bench/results/proxy_overhead.json``.

    python bench/proxy_overhead.py [--queries 2000] [--warmup 300] [--loops asyncio uvloop]

Run as root (initdb/postgres then run as the ``postgres`` user) or as a normal user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from chaos_model.proxy import Latency, ProxyClient  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "proxy_overhead.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_bin() -> Path:
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SystemExit("PostgreSQL binaries not found: set PG_BIN to the directory of initdb")


def _wait(condition: Any, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.02)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[int]:
    """A temporary cluster on a free loopback port; removed on exit, even on errors."""
    pg_bin = _pg_bin()
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else None
    tmp = Path(tempfile.mkdtemp(prefix="chaos-pg-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if as_root:
            shutil.chown(tmp, user="postgres")
        data, log = tmp / "data", tmp / "postgres.log"
        subprocess.run(
            [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8"],
            user=user, check=True, capture_output=True, cwd=tmp,
        )  # fmt: skip
        port = _free_port()
        with open(log, "wb") as log_fh:
            proc = subprocess.Popen(
                [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={tmp}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off"],
                user=user, stdout=log_fh, stderr=subprocess.STDOUT, cwd=tmp,
            )  # fmt: skip

        def accepting() -> bool:
            assert proc is not None
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {proc.returncode}: {log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return "ready to accept connections" in log.read_text(errors="replace")
            return False

        _wait(accepting, timeout=30, what=f"postgres on 127.0.0.1:{port}", log=log)
        yield port
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class ProxyProcess:
    control: str
    port: int
    startup_ms: float


@contextlib.contextmanager
def proxy_process(upstream_port: int, loop: str) -> Iterator[ProxyProcess]:
    with tempfile.TemporaryDirectory(prefix="chaos-proxy-bench-") as tmp:
        ready = Path(tmp) / "ready.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "chaos_model.proxy", "--control", "127.0.0.1:0",
             "--link", f"bench->postgres=0:127.0.0.1:{upstream_port}",
             "--ready-file", str(ready), "--loop", loop],
            env=env, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:

            def is_ready() -> bool:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"proxy exited with {proc.returncode}: {err}")
                return ready.exists()

            _wait(is_ready, timeout=10, what="proxy ready file")
            startup_ms = (time.perf_counter() - start) * 1000
            info = json.loads(ready.read_text())
            yield ProxyProcess(info["control"], info["links"]["bench->postgres"], startup_ms)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _time_block(conn: Any, count: int, out: list[float]) -> None:
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        await conn.fetchval("select 1")
        out.append((clock() - start) / 1000.0)  # microseconds


async def measure(
    ports: dict[str, int], queries: int, warmup: int, block: int
) -> dict[str, list[float]]:
    """``select 1`` latencies (us) per target; blocks rotate over targets to cancel drift."""
    conns = {
        label: await asyncpg.connect(host="127.0.0.1", port=port, user="postgres")
        for label, port in ports.items()
    }
    try:
        scratch: list[float] = []
        for conn in conns.values():
            await _time_block(conn, warmup, scratch)
        samples: dict[str, list[float]] = {label: [] for label in conns}
        done = 0
        while done < queries:
            n = min(block, queries - done)
            for label, conn in conns.items():
                await _time_block(conn, n, samples[label])
            done += n
        return samples
    finally:
        for conn in conns.values():
            await conn.close()


async def check_toxic_effect(proxy_port: int, client: ProxyClient) -> float:
    """Median ``select 1`` latency (ms) with a 5 ms downstream latency toxic on."""
    conn = await asyncpg.connect(host="127.0.0.1", port=proxy_port, user="postgres")
    try:
        await asyncio.to_thread(client.add_toxic, "bench->postgres", Latency(latency=5))
        samples: list[float] = []
        await _time_block(conn, 20, samples)
        await asyncio.to_thread(client.remove_toxic, "bench->postgres", "latency_downstream")
        return statistics.median(samples) / 1000.0
    finally:
        await conn.close()


def measure_toggle(client: ProxyClient, repeats: int) -> dict[str, list[float]]:
    add: list[float] = []
    remove: list[float] = []
    toxic = Latency(latency=50, name="toggle")
    client.health()  # open the kept-alive control connection outside the timings
    for _ in range(repeats):
        start = time.perf_counter()
        client.add_toxic("bench->postgres", toxic)
        add.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        client.remove_toxic("bench->postgres", "toggle")
        remove.append((time.perf_counter() - start) * 1000)
    return {"add_ms": add, "remove_ms": remove}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "p50": statistics.median(ordered),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
    }


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def available_loops() -> list[str]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--block", type=int, default=200, help="queries per rotating block")
    parser.add_argument("--toggles", type=int, default=50)
    parser.add_argument("--loops", nargs="+", default=available_loops())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up paths

    runs: list[dict[str, Any]] = []
    with postgres_cluster() as pg_port, contextlib.ExitStack() as stack:
        proxies = {loop: stack.enter_context(proxy_process(pg_port, loop)) for loop in args.loops}
        ports = {"direct": pg_port} | {f"proxy/{loop}": p.port for loop, p in proxies.items()}
        samples = asyncio.run(measure(ports, args.queries, args.warmup, args.block))
        direct = summary(samples["direct"])
        for loop, proxy in proxies.items():
            with ProxyClient(proxy.control) as client:
                toggle = measure_toggle(client, args.toggles)
                toxic_ms = asyncio.run(check_toxic_effect(proxy.port, client))
            proxied = summary(samples[f"proxy/{loop}"])
            runs.append(
                {
                    "proxy_loop": loop,
                    "proxy_startup_ms": proxy.startup_ms,
                    "queries": args.queries,
                    "direct_us": direct,
                    "proxy_us": proxied,
                    "overhead_mean_pct": 100 * (proxied["mean"] / direct["mean"] - 1),
                    "overhead_p50_pct": 100 * (proxied["p50"] / direct["p50"] - 1),
                    "added_mean_us": proxied["mean"] - direct["mean"],
                    "added_p50_us": proxied["p50"] - direct["p50"],
                    "toggle_add_ms": summary(toggle["add_ms"]),
                    "toggle_remove_ms": summary(toggle["remove_ms"]),
                    "latency_5ms_toxic_median_ms": toxic_ms,
                }
            )

    report = {
        "benchmark": "proxy_overhead",
        "description": "asyncpg select 1 on one connection, direct vs via chaos_model.proxy "
        "(subprocess, no toxic); toggle = HTTP control call time",
        "git_revision": git_revision(),
        "machine": machine_info(),
        "client_loop": "asyncio",
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(runs)
    print(f"\nwritten {args.output}")
    return 0


def print_table(runs: list[dict[str, Any]]) -> None:
    header = f"{'path':<16}{'p50 us':>10}{'p95 us':>10}{'mean us':>10}{'added':>10}{'overhead':>10}"
    print(header)
    print("-" * len(header))
    d = runs[0]["direct_us"]
    print(f"{'direct':<16}{d['p50']:>10.1f}{d['p95']:>10.1f}{d['mean']:>10.1f}")
    for run in runs:
        p = run["proxy_us"]
        label = f"proxy/{run['proxy_loop']}"
        added = f"{run['added_mean_us']:+.1f}"
        overhead = f"{run['overhead_mean_pct']:+.1f}%"
        print(
            f"{label:<16}{p['p50']:>10.1f}{p['p95']:>10.1f}{p['mean']:>10.1f}"
            f"{added:>10}{overhead:>10}"
        )
    print("(overhead and added are on the mean)\n")
    for run in runs:
        add, rem = run["toggle_add_ms"], run["toggle_remove_ms"]
        print(
            f"proxy/{run['proxy_loop']}: start-up {run['proxy_startup_ms']:.0f} ms; toggle add "
            f"p50 {add['p50']:.2f} ms (max {add['max']:.2f}), remove p50 {rem['p50']:.2f} ms "
            f"(max {rem['max']:.2f}); select 1 with 5 ms latency toxic: "
            f"{run['latency_5ms_toxic_median_ms']:.2f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
