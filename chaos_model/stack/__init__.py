"""Stack backends: start the system under test and control its services."""

from chaos_model.stack._attached import AttachedStack
from chaos_model.stack._base import Endpoints, Service, Stack
from chaos_model.stack._compose import ComposeStack
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._local import LocalStack
from chaos_model.stack._process import LocalService

__all__ = [
    "AttachedStack",
    "ComposeService",
    "ComposeStack",
    "Endpoints",
    "LocalService",
    "LocalStack",
    "Service",
    "Stack",
]
