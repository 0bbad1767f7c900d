"""Fault points: every I/O call of a target's Python services, armed from chaos-model.

The in-process side lives in ``chaos_model/boot/site`` (standard library only, on the service's
``PYTHONPATH``); this package is chaos-model's side of the control folder: which points exist,
which were reached in an example, arming and disarming them, which fired.
"""

from chaos_model.points._control import (
    BOOT_DIR,
    Arm,
    Point,
    PointControl,
    Reached,
    boot_environment,
    is_python_command,
    telegram_environment,
)
from chaos_model.points._coverage import (
    CoverageTable,
    ExampleCoverage,
    FaultedPoint,
    PointCatalogue,
)

__all__ = [
    "BOOT_DIR",
    "Arm",
    "CoverageTable",
    "ExampleCoverage",
    "FaultedPoint",
    "Point",
    "PointCatalogue",
    "PointControl",
    "Reached",
    "boot_environment",
    "is_python_command",
    "telegram_environment",
]
