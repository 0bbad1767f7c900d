"""A fake of Telegram's side of a webhook: updates as the Bot API sends them, delivered as
Telegram delivers them (per chat in order, retried until a 2xx)."""

from chaos_model.telegram._simulator import (
    SECRET_HEADER,
    Delivery,
    SimulatorConfig,
    TelegramSimulator,
)
from chaos_model.telegram._updates import (
    BotApi,
    chat_for,
    chat_id_of,
    message_update,
    run_chat_id,
)

__all__ = [
    "SECRET_HEADER",
    "BotApi",
    "Delivery",
    "SimulatorConfig",
    "TelegramSimulator",
    "chat_for",
    "chat_id_of",
    "message_update",
    "run_chat_id",
]
