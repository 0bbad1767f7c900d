"""The failpoint file: how chaos-model arms named crash points inside a target's processes.

A target process checks the JSON file named in its environment (``{failpoints_file}`` in the
adapter) at each named point; chaos-model writes ``{"armed": {name: {"action", "count"}}}`` into
it. Each hit decrements ``count`` under a file lock and is recorded in ``"hits"``; a process
hanging at a point stays until its name leaves ``"holding"`` (on heal). The reference
pipeline's reader is ``pipeline_app/failpoints.py``; any language can implement one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

Action = Literal["crash", "hang", "error"]


class FailpointFile:
    """The shared JSON file through which failpoints are armed, hit and disarmed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.touch(exist_ok=True)
        with self.path.open("r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            text = handle.read()
            state: dict[str, Any] = json.loads(text) if text.strip() else {}
            state.setdefault("armed", {})
            state.setdefault("hits", {})
            state.setdefault("holding", [])
            yield state
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state, sort_keys=True))
            handle.flush()

    def arm(self, name: str, action: Action, count: int = 1) -> None:
        with self._locked() as state:
            state["armed"][name] = {"action": action, "count": count}

    def disarm_all(self) -> None:
        """Disarm every failpoint and release every process hanging at one."""
        with self._locked() as state:
            state["armed"] = {}
            state["holding"] = []

    def clear(self) -> None:
        with self._locked() as state:
            state["armed"] = {}
            state["hits"] = {}
            state["holding"] = []

    def take(self, name: str) -> Action | None:
        """Consume one hit of ``name`` if armed; return its action."""
        with self._locked() as state:
            armed = state["armed"].get(name)
            if armed is None:
                return None
            armed["count"] -= 1
            if armed["count"] <= 0:
                del state["armed"][name]
            state["hits"][name] = state["hits"].get(name, 0) + 1
            action: Action = armed["action"]
            if action == "hang" and name not in state["holding"]:
                state["holding"].append(name)
            return action

    def is_holding(self, name: str) -> bool:
        with self._locked() as state:
            return name in state["holding"]

    def hits(self) -> dict[str, int]:
        with self._locked() as state:
            return dict(state["hits"])

    def armed(self) -> dict[str, Any]:
        with self._locked() as state:
            return dict(state["armed"])
