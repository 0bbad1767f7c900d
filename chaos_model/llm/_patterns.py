"""Strings matching a schema's ``pattern``, drawn by Hypothesis's ``from_regex`` from a seed.

Imported only when a schema has a pattern: Hypothesis takes a fifth of a second to import, and
the stub starts with every stack.
"""

from __future__ import annotations

import re
from functools import lru_cache
from random import Random
from typing import Any

from hypothesis import strategies as st
from hypothesis.control import BuildContext
from hypothesis.errors import HypothesisException, StopTest
from hypothesis.internal.conjecture.data import ConjectureData
from hypothesis.internal.conjecture.providers import HypothesisProvider

#: characters a pattern's strings are drawn from: printable ASCII, as a model would write
_TAME = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


class NoString(Exception):
    """No string could be drawn for the pattern."""


@lru_cache(maxsize=512)
def _strategy(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True, alphabet=_TAME)


class _SourceFreeProvider(HypothesisProvider):
    """Hypothesis's provider, minus the constants it collects from the modules loaded in the
    process: with them, the same seed would draw differently in the stub and in the oracle."""

    def _maybe_draw_constant(self, *args: Any, **kwargs: Any) -> None:
        return None


def pattern_string(pattern: str, seed: int) -> str:
    data = ConjectureData(random=Random(seed), provider=_SourceFreeProvider)
    try:
        with BuildContext(data, wrapped_test=pattern_string):  # as hypothesis.find draws
            return data.draw(_strategy(pattern))
    except (StopTest, HypothesisException, re.error) as error:
        raise NoString(f"no string drawn for the pattern {pattern!r}: {error!r}") from None
