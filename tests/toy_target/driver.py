"""A Python adapter for the toy target: the SQL driver, plus a count of the snapshots taken.

Named in an adapter as ``[target] driver = "tests.toy_target.driver:CountingTarget"``; a real
one would override :meth:`snapshot` to read a REST API instead of the tables.
"""

from __future__ import annotations

from chaos_model.observe import Snapshot
from chaos_model.target import SqlTarget


class CountingTarget(SqlTarget):
    snapshots = 0

    def snapshot(self, timeout: float = 1.0) -> Snapshot:
        CountingTarget.snapshots += 1
        return super().snapshot(timeout)
