"""The local stack itself: start/stop hygiene, reset, heal."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx
import psutil
import pytest
from helpers import (
    Api,
    Timer,
    assert_processed_once,
    db_count,
    make_update,
    stack_bugs,
    stored_rows,
)

from chaos_model._wait import wait_until
from chaos_model.stack import LocalStack

SERVICE_ORDER = ("proxy", "postgres", "nats", "llm", "api", "worker")

RESET_BUDGET = 1.0  # seconds; the target is 0.2


def _alive(pid: int, created: float) -> bool:
    """Alive and the same process (not a recycled pid); a zombie counts as dead."""
    try:
        proc = psutil.Process(pid)
        return bool(proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _mentions(proc: psutil.Process, needle: str) -> bool:
    with contextlib.suppress(psutil.Error):
        if any(needle in part for part in proc.cmdline()):
            return True
        if any(needle in value for value in proc.environ().values()):
            return True
    return False


def _processes_mentioning(needle: str) -> list[psutil.Process]:
    """Every live process whose command line or environment names ``needle``."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and _mentions(proc, needle):
                found.append(proc)
    return found


@pytest.mark.slow
def test_start_stop_leaves_no_process_and_no_directory() -> None:
    second = LocalStack(bugs=stack_bugs())
    with Timer() as started:
        second.start()
    try:
        stack_dir = Path(second.dir)
        assert stack_dir.is_dir()
        tree: dict[int, float] = {}
        for name in SERVICE_ORDER:
            process = second.services[name].process
            standby = getattr(process, "standby", None)
            # a Python service's warm standby (the next process of it) belongs to its tree
            for pid in (process.pid, standby.pid if standby is not None else None):
                if pid is None:
                    continue
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    tree[proc.pid] = proc.create_time()
        assert len(tree) >= len(SERVICE_ORDER) + 3, "PostgreSQL alone runs several processes"
        # Everything that names the stack's directory belongs to one of the service trees, or is
        # the stack's guardian (which removes it all should this process die).
        strays = [
            p.pid
            for p in _processes_mentioning(str(stack_dir))
            if p.pid not in tree and "chaos_model.stack._guardian" not in p.cmdline()
        ]
        assert strays == [], f"processes outside the service trees: {strays}"
        # A frozen service must not keep stop() from cleaning up.
        second.services["nats"].pause()
        second.services["worker"].pause()
    finally:
        with Timer() as stopped:
            second.stop()
    print(f"second stack: start {started.seconds:.2f}s, stop {stopped.seconds:.2f}s")

    alive = [pid for pid, created in tree.items() if _alive(pid, created)]
    assert alive == [], f"still alive after stop: {alive}"
    assert _processes_mentioning(str(stack_dir)) == []
    assert not stack_dir.exists(), f"{stack_dir} was not removed"
    assert stopped.seconds < 15


def test_reset_is_fast_and_empties_every_store(stack: LocalStack) -> None:
    stack.reset()
    api = Api(stack)
    try:
        updates = [make_update(chat_id=20 + n % 3) for n in range(20)]
        api.send(updates)
        api.wait_stage([u["update_id"] for u in updates], "extracted")
        api.llm_fault("error", calls=100)
        stack.failpoints.arm("worker.score.after_commit_before_ack", "error", count=5)
        assert db_count(stack, "processed") > 0
        assert _stream_messages(stack) > 0

        with Timer() as timer:
            reported = stack.reset()
        print(f"reset() after 20 updates: {reported * 1000:.0f} ms ({timer.seconds * 1000:.0f} ms)")
        assert reported < RESET_BUDGET
        assert timer.seconds < RESET_BUDGET

        assert all(count == 0 for count in stored_rows(stack).values()), stored_rows(stack)
        assert db_count(stack, "processed") == 0
        assert db_count(stack, "attempts") == 0
        assert _stream_messages(stack) == 0
        stats = api.llm_stats()
        assert stats["calls"] == {}
        assert stats["total"] == 0
        assert stats["fault"] is None
        assert stack.failpoints.hits() == {}

        idle = [stack.reset() for _ in range(5)]
        print("reset() on an idle stack: " + ", ".join(f"{s * 1000:.0f} ms" for s in idle))
        assert max(idle) < RESET_BUDGET

        # Still a working pipeline after all that.
        update = make_update()
        api.send([update])
        api.wait_stage([update["update_id"]], "extracted")
        assert_processed_once(stack, api, [update])
    finally:
        api.close()


def test_heal_resumes_paused_and_restarts_killed_services(pipeline: LocalStack) -> None:
    pipeline.services["nats"].pause()
    pipeline.services["llm"].kill()
    assert pipeline.services["nats"].is_paused()
    assert not pipeline.services["llm"].is_running()

    healed = pipeline.heal()
    assert "resumed nats" in healed
    assert "restarted llm" in healed
    for name in SERVICE_ORDER:
        assert pipeline.services[name].is_running(), name
        assert not pipeline.services[name].is_paused(), name

    api = Api(pipeline)
    try:
        wait_until(
            lambda: api.ready().status_code == 200, timeout=10, what="the API to be ready again"
        )
        update = make_update()
        api.send([update])
        api.wait_stage([update["update_id"]], "extracted")
        assert_processed_once(pipeline, api, [update])
        assert pipeline.heal() == [], "nothing left to heal"
    finally:
        api.close()


def _stream_messages(stack: LocalStack) -> int:
    info = httpx.get(f"{stack.endpoints.nats_monitor_url}/jsz?streams=true", timeout=2).json()
    streams = info["account_details"][0]["stream_detail"]
    messages: int = sum(stream["state"]["messages"] for stream in streams)
    return messages
