"""chaos-model's bootstrap for a Python service: fault points at every I/O call.

chaos-model puts this folder first on the service's ``PYTHONPATH``; Python imports this module at
start-up. With ``CHAOS_MODEL_POINTS`` set it installs the fault points (:mod:`chaos_points`);
with ``CHAOS_TELEGRAM_API`` it sends the Bot API's calls to chaos-model's fake
(:mod:`chaos_redirect`); with ``CHAOS_MODEL_STANDBY`` it is a warm standby: it imports what
the service imported last time, then waits until it is told to become the service. Any
``sitecustomize`` the environment had is still run.
"""

import importlib
import importlib.util
import os
import sys


def _run_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_chaos_next_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


def _boot() -> None:
    if os.environ.get("CHAOS_MODEL_POINTS"):
        importlib.import_module("chaos_points").install()
    if os.environ.get("CHAOS_TELEGRAM_API"):
        importlib.import_module("chaos_redirect").install()
    if os.environ.get("CHAOS_MODEL_STANDBY"):
        importlib.import_module("chaos_standby").wait()


try:
    _run_next_sitecustomize()
finally:
    _boot()
