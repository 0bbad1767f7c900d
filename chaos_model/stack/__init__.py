"""Stack backends: start the system under test and control its services."""

from chaos_model.stack._base import LINKS, SERVICE_ORDER, Endpoints, Service, Stack
from chaos_model.stack._compose import ComposeStack
from chaos_model.stack._compose_service import ComposeService
from chaos_model.stack._local import LocalService, LocalStack
from chaos_model.stack._remote import RemoteService, RemoteStack

__all__ = [
    "LINKS",
    "SERVICE_ORDER",
    "ComposeService",
    "ComposeStack",
    "Endpoints",
    "LocalService",
    "LocalStack",
    "RemoteService",
    "RemoteStack",
    "Service",
    "Stack",
]
