"""Toxic types; each module registers its class under its JSON ``type`` name."""

from ._base import (
    STREAMS,
    CloseMode,
    ConnectionHandle,
    Emit,
    Stream,
    Toxic,
    ToxicRun,
    toxic_from_dict,
    toxic_types,
)
from .bandwidth import Bandwidth
from .down import Down
from .latency import Latency
from .limit_data import LimitData
from .reset_peer import ResetPeer
from .slicer import Slicer
from .slow_close import SlowClose
from .timeout import Timeout

__all__ = [
    "STREAMS",
    "Bandwidth",
    "CloseMode",
    "ConnectionHandle",
    "Down",
    "Emit",
    "Latency",
    "LimitData",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stream",
    "Timeout",
    "Toxic",
    "ToxicRun",
    "toxic_from_dict",
    "toxic_types",
]
