"""The subset of Telegram Bot API types the webhook accepts, validated as the Bot API defines them.

Field names and types follow https://core.telegram.org/bots/api#update. Unknown fields are
allowed (Telegram adds fields over time); an update that carries no ``message`` is valid and
acknowledged without being stored, since a webhook that rejects it would be retried for 24 h.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _TelegramObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)


class User(_TelegramObject):
    id: int
    is_bot: bool
    first_name: str


class Chat(_TelegramObject):
    id: int
    type: str


class Message(_TelegramObject):
    message_id: int
    date: int
    chat: Chat
    from_user: User | None = Field(default=None, alias="from")
    text: str | None = Field(default=None, max_length=4096)


class Update(_TelegramObject):
    update_id: int = Field(ge=0)
    message: Message | None = None
