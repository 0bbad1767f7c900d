"""The reference pipeline's convention: a score for a system prompt that mentions "score", knowledge
items for one that mentions "extract", each a stable function of the user message."""

from __future__ import annotations

import hashlib


def expected_score(text: str) -> float:
    """The score the stub gives ``text``: a stable function of its bytes, in [0, 1]."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 0xFFFFFFFF


def expected_knowledge(text: str) -> list[str]:
    """The knowledge items the stub extracts from ``text``: one to three, stable."""
    words = text.split() or ["(empty)"]
    count = 1 + int.from_bytes(hashlib.sha256(text.encode()).digest()[4:5], "big") % 3
    return [f"fact {n}: {' '.join(words[n::count])[:200]}" for n in range(count)]
