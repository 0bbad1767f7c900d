"""The subset of Telegram Bot API types the webhook accepts, validated as the Bot API defines them.

Field names and types follow https://core.telegram.org/bots/api#update. Unknown fields are
allowed (Telegram adds fields over time); an update that carries no ``message`` is valid and
acknowledged without being stored, since a webhook that rejects it would be retried for 24 h.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Telegram identifiers fit in 64 bits (the Bot API promises at most 52 significant bits); they are
# stored in ``bigint`` columns, so a larger number must be rejected here, not fail in PostgreSQL.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


class _TelegramObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)


class User(_TelegramObject):
    id: Int64
    is_bot: bool
    first_name: str


class Chat(_TelegramObject):
    id: Int64
    type: str


class Message(_TelegramObject):
    message_id: Int64
    date: Int64
    chat: Chat
    from_user: User | None = Field(default=None, alias="from")
    text: str | None = Field(default=None, max_length=4096)


class Update(_TelegramObject):
    update_id: int = Field(ge=0, le=INT64_MAX)
    message: Message | None = None
