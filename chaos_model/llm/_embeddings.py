"""Deterministic embeddings: a unit vector seeded by the model and the text, so equal texts are
equal vectors and the oracle can recompute any of them."""

from __future__ import annotations

import hashlib
import math
from random import Random


def embedding(model: str, text: str, dimensions: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]
