"""A warm standby of a Python service: started ahead of need, it imports what the service
imported last time and waits; told to go, it becomes the service, its imports already done.

chaos-model starts one per Python service (``CHAOS_MODEL_STANDBY`` names a FIFO, and
``CHAOS_MODEL_STANDBY_MODULES`` the list of modules); after a crash it writes ``go`` into the
FIFO instead of starting a cold process, which saves the second or so a service spends importing.
Standard library only, like :mod:`chaos_points`.
"""

import importlib
import os

STANDBY = "CHAOS_MODEL_STANDBY"
MODULES = "CHAOS_MODEL_STANDBY_MODULES"


def _preload(path: str) -> int:
    try:
        with open(path) as handle:
            names = handle.read().split()
    except OSError:
        return 0
    loaded = 0
    for name in names:
        try:
            importlib.import_module(name)
            loaded += 1
        except BaseException:  # noqa: BLE001 - a module that will not import early is imported later
            continue
    return loaded


def wait() -> None:
    """Preload, then block until the FIFO says ``go`` (continue as the service) or anything
    else (exit)."""
    fifo = os.environ.pop(STANDBY)
    modules = os.environ.pop(MODULES, "")
    if modules:
        _preload(modules)
    with open(fifo) as handle:
        word = handle.read().strip()
    if word != "go":
        os._exit(0)
