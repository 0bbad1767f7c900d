from __future__ import annotations

import threading
from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.faults._proxy import proxy_of
from chaos_model.proxy import ProxyClient
from chaos_model.stack import Stack

RAMP_STEPS = 5
TOXIC_NAME = "chaos-latency-ramp"

#: the ramp running on each (stack, link): its stop signal and its thread
_ramps: dict[tuple[int, str], tuple[threading.Event, threading.Thread]] = {}
RAMP_JOIN_SECONDS = 5.0


@register
@dataclass(frozen=True)
class LatencyRamp(Fault):
    """Gradual onset: raise a link's latency to ``latency_ms`` in five even steps over
    ``ramp_seconds`` (a network that degrades instead of failing at once). Heal stops the ramp
    and removes the latency."""

    kind = "latency_ramp"
    link: str
    latency_ms: int = 1000
    ramp_seconds: float = 2.0

    def _toxic(self, latency: int) -> dict[str, object]:
        return {
            "name": TOXIC_NAME,
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": latency},
        }

    def apply(self, stack: Stack) -> None:
        proxy = proxy_of(stack, self.kind, self.link)
        stop = threading.Event()
        proxy.add_toxic(self.link, self._toxic(self.latency_ms // RAMP_STEPS))

        def ramp() -> None:
            # a client of its own: the stack's is not thread-safe, and heal uses it meanwhile
            own = ProxyClient(proxy.base_url, timeout=2.0)
            try:
                for step in range(2, RAMP_STEPS + 1):
                    if stop.wait(self.ramp_seconds / RAMP_STEPS):
                        return
                    # the proxy has no in-place update: swap the toxic for a stronger one
                    own.remove_toxic(self.link, TOXIC_NAME)
                    own.add_toxic(self.link, self._toxic(self.latency_ms * step // RAMP_STEPS))
            finally:
                own.close()

        thread = threading.Thread(target=ramp, name=f"latency-ramp {self.link}", daemon=True)
        _ramps[(id(stack), self.link)] = (stop, thread)
        thread.start()

    def heal(self, stack: Stack) -> None:
        running = _ramps.pop((id(stack), self.link), None)
        if running is not None:
            stop, thread = running
            stop.set()
            # a swap in progress must finish first, or it would put the toxic back after heal
            thread.join(timeout=RAMP_JOIN_SECONDS)
        proxy = proxy_of(stack, self.kind, self.link)
        if any(toxic.name == TOXIC_NAME for toxic in proxy.toxics(self.link)):
            proxy.remove_toxic(self.link, TOXIC_NAME)
