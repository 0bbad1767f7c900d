"""Access to a stack's fault proxy, for the network faults."""

from __future__ import annotations

from chaos_model.errors import UnsupportedFault
from chaos_model.proxy import ProxyClient
from chaos_model.stack import Stack


def proxy_of(stack: Stack, fault: str, link: str) -> ProxyClient:
    proxy: ProxyClient | None = getattr(stack, "proxy", None)
    if proxy is None:
        raise UnsupportedFault(fault, stack.backend, "it routes no link through a fault proxy")
    links = stack.target.links()
    if link not in links:
        raise ValueError(f"unknown link {link!r}; links: {', '.join(links)}")
    return proxy
