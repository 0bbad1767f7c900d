"""Deterministic failpoints: named places where a test can make a process crash, hang or fail.

A failpoint is armed by writing ``{"name": {"action": "crash"|"hang"|"error", "count": N}}`` into
the JSON file named by ``PIPELINE_FAILPOINTS_FILE`` (chaos-model does this through
:class:`FailpointFile`). Each hit decrements ``count`` under a file lock and records the hit in
``"hits"``; at zero the failpoint is disarmed. With no file configured, or an unchanged file,
a check costs one ``stat`` call.

Turning timing races ("the worker died after the LLM answered but before it committed") into
reproducible steps is what lets shrinking produce a short, replayable program.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

from chaos_model.failpoints import Action, FailpointFile

KNOWN_FAILPOINTS: dict[str, str] = {
    "api.webhook.after_commit_before_response": "the update is committed, the answer not sent",
    "api.webhook.after_response_before_commit": (
        "the answer is sent, the update not committed (reached only with respond_before_commit)"
    ),
    "relay.after_publish_before_mark": "a task is published to NATS, its outbox row not marked",
    "worker.save.after_commit_before_ack": "the message row is committed, the task not acked",
    "worker.score.after_llm_before_commit": "the LLM answered, the score is not committed",
    "worker.score.after_commit_before_ack": "the score is committed, the task not acked",
    "worker.extract.after_llm_before_commit": "the LLM answered, the knowledge not committed",
    "worker.extract.after_commit_before_ack": "the knowledge is committed, the task not acked",
}

HANG_POLL_SECONDS = 0.05


class FailpointError(RuntimeError):
    """Raised at a failpoint armed with the ``error`` action."""


class _Checker:
    def __init__(self) -> None:
        self._file: FailpointFile | None = None
        self._signature: tuple[int, int] | None = None
        self._maybe_armed = False

    def configure(self, path: str) -> None:
        self._file = FailpointFile(path) if path else None
        self._signature = None
        self._maybe_armed = False

    def _might_be_armed(self, name: str) -> bool:
        if self._file is None:
            return False
        try:
            stat = os.stat(self._file.path)
        except FileNotFoundError:
            return False
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature != self._signature:
            self._signature = signature
            try:
                text = self._file.path.read_text()
                self._maybe_armed = bool(json.loads(text or "{}").get("armed"))
            except ValueError:
                self._maybe_armed = True
        return self._maybe_armed

    def take(self, name: str) -> Action | None:
        assert name in KNOWN_FAILPOINTS, name
        if not self._might_be_armed(name) or self._file is None:
            return None
        return self._file.take(name)

    def still_holding(self, name: str) -> bool:
        return self._file is not None and self._file.is_holding(name)


_checker = _Checker()


def configure(path: str) -> None:
    """Point this process at a failpoint file ('' disables failpoints)."""
    _checker.configure(path)


async def failpoint(name: str) -> None:
    """Crash, hang or raise here if a test armed ``name``; otherwise return at once.

    ``hang`` blocks this coroutine until :meth:`FailpointFile.disarm_all` releases it
    (chaos-model does so on heal), which models a process stuck in a call.
    """
    action = _checker.take(name)
    if action is None:
        return
    logging.getLogger("pipeline_app.failpoints").warning("failpoint %s fired: %s", name, action)
    for handler in logging.getLogger().handlers:
        handler.flush()
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "error":
        raise FailpointError(f"failpoint {name} fired")
    while _checker.still_holding(name):  # noqa: ASYNC110 - the release comes from another process
        await asyncio.sleep(HANG_POLL_SECONDS)
