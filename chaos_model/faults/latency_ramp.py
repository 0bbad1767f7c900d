from __future__ import annotations

import threading
from dataclasses import dataclass

from chaos_model.faults._base import Fault, register
from chaos_model.faults._proxy import proxy_of
from chaos_model.stack import Stack

RAMP_STEPS = 5
TOXIC_NAME = "chaos-latency-ramp"

_ramps: dict[tuple[int, str], threading.Event] = {}


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
        _ramps[(id(stack), self.link)] = stop
        proxy.add_toxic(self.link, self._toxic(self.latency_ms // RAMP_STEPS))

        def ramp() -> None:
            for step in range(2, RAMP_STEPS + 1):
                if stop.wait(self.ramp_seconds / RAMP_STEPS):
                    return
                # the proxy has no in-place update: swap the toxic for a stronger one
                proxy.remove_toxic(self.link, TOXIC_NAME)
                proxy.add_toxic(self.link, self._toxic(self.latency_ms * step // RAMP_STEPS))

        threading.Thread(target=ramp, name=f"latency-ramp {self.link}", daemon=True).start()

    def heal(self, stack: Stack) -> None:
        stop = _ramps.pop((id(stack), self.link), None)
        if stop is not None:
            stop.set()
        proxy = proxy_of(stack, self.kind, self.link)
        if any(toxic.name == TOXIC_NAME for toxic in proxy.toxics(self.link)):
            proxy.remove_toxic(self.link, TOXIC_NAME)
