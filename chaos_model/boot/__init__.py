"""The bootstrap chaos-model gives a target's Python services.

``site/`` is put first on a Python service's ``PYTHONPATH``: its ``sitecustomize`` installs the
fault points (``chaos_points``: every I/O call of the service is a point chaos-model can arm)
and makes a warm standby wait for its turn (``chaos_standby``). Those modules use the standard
library only: they run in the target's own interpreter, whatever its environment.
"""

from pathlib import Path

SITE_DIR = Path(__file__).resolve().parent / "site"
