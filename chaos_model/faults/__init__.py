"""Faults as data. Each module holds one fault and registers it by ``kind``."""

from chaos_model.faults._base import REGISTRY, Fault, fault_from_json
from chaos_model.faults.failpoint import ArmFailpoint
from chaos_model.faults.kill import KillService
from chaos_model.faults.latency_ramp import LatencyRamp
from chaos_model.faults.llm import LLMFault
from chaos_model.faults.network import NetworkToxic
from chaos_model.faults.noop import NoFault
from chaos_model.faults.partition import Partition
from chaos_model.faults.pause import PauseService
from chaos_model.faults.point import PointFault
from chaos_model.faults.refuse_connections import RefuseConnections
from chaos_model.faults.stop import StopService
from chaos_model.faults.terminate_connections import TerminateConnections

__all__ = [
    "REGISTRY",
    "ArmFailpoint",
    "Fault",
    "KillService",
    "LLMFault",
    "LatencyRamp",
    "NetworkToxic",
    "NoFault",
    "Partition",
    "PauseService",
    "PointFault",
    "RefuseConnections",
    "StopService",
    "TerminateConnections",
    "fault_from_json",
]
