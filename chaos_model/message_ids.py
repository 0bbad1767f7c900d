"""Message ids as the model compares them, whatever type the target's SQL returns.

A target may key its messages by an integer, a UUID or text, and the same id comes back as text
in the LLM stub's message keys and in a dashboard feed's JSON. :func:`message_id` gives all of
them one form, so that an id read from SQL equals the same id read from a key, and
:func:`id_order` sorts ids of mixed kinds.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

MessageId = int | str

_INTEGER = re.compile(r"-?[1-9][0-9]*|0")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def message_id(value: object) -> MessageId:
    """``value`` as the model compares ids: an integer (also from integral text or a
    ``numeric``), a UUID in its lower-case hyphenated text, any other value as its text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    text = str(value)
    if _INTEGER.fullmatch(text):
        return int(text)
    if _UUID.fullmatch(text):
        return text.lower()
    return text


def id_order(value: MessageId) -> tuple[int, int, str]:
    """A sort key for ids of mixed kinds: integers in order, then texts in order."""
    return (0, value, "") if isinstance(value, int) else (1, 0, value)
