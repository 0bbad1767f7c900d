"""The Bot API methods the fake answers, each a function of the call to its ``result``.

Method names are case-insensitive, as the Bot API's are. A call that lacks what the method
needs is answered as Telegram answers it: 400 with a ``Bad Request: ...`` description.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos_model.bot_api import _objects as objects
from chaos_model.bot_api._params import Upload

MAX_TEXT = 4096


class CallError(Exception):
    """The Bot API's error answer: ``{"ok": false, "error_code", "description",
    "parameters"?}``."""

    def __init__(self, code: int, description: str, parameters: Mapping[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = dict(parameters or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code}
        body["description"] = self.description
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class Bots:
    """What the fake remembers between calls, per bot token: message ids and the webhook."""

    message_ids: Counter[tuple[str, str]] = field(default_factory=Counter)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def next_message_id(self, token: str, chat: Mapping[str, Any]) -> int:
        self.message_ids[token, str(chat["id"])] += 1
        return self.message_ids[token, str(chat["id"])]


@dataclass(frozen=True)
class Call:
    token: str
    params: Mapping[str, Any]
    bots: Bots

    def text(self, key: str, missing: str = "") -> str:
        value = self.params.get(key)
        if value is None or value == "":
            raise CallError(400, missing or f'Bad Request: parameter "{key}" is required')
        return str(value)

    def number(self, key: str, default: int | None = None) -> int:
        if self.params.get(key) in (None, "") and default is not None:
            return default
        value = self.text(key)
        try:
            return int(value)
        except ValueError:
            raise CallError(400, f"Bad Request: invalid {key} specified") from None

    def chat_id(self) -> int | str:
        value = self.text("chat_id", "Bad Request: chat_id is empty")
        if value.startswith("@"):
            return value
        try:
            return int(value)
        except ValueError:
            raise CallError(400, "Bad Request: chat not found") from None

    def structure(self, key: str) -> Any:
        """An object parameter: JSON in a form, itself in a JSON body."""
        value = self.params.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise CallError(400, f"Bad Request: can't parse {key} JSON object") from None
        return value


def _message(call: Call, **content: Any) -> dict[str, Any]:
    chat = objects.chat(call.chat_id())
    message: dict[str, Any] = {
        "message_id": call.bots.next_message_id(call.token, chat),
        "date": int(time.time()),
        "chat": chat,
    }
    if chat["type"] == "channel":
        message["sender_chat"] = chat
    else:
        message["from"] = objects.bot_user(call.token)
    markup = call.structure("reply_markup")
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    return {**message, **content}


def _text(call: Call) -> str:
    text = call.text("text", "Bad Request: message text is empty")
    if len(text) > MAX_TEXT:
        raise CallError(400, "Bad Request: message is too long")
    return text


def get_me(call: Call) -> Any:
    return {
        **objects.bot_user(call.token),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def send_message(call: Call) -> Any:
    return _message(call, text=_text(call))


def send_photo(call: Call) -> Any:
    photo = call.params.get("photo")
    if photo is None or photo == "":
        raise CallError(400, "Bad Request: there is no photo in the request")
    seed = f"{photo.filename}/{photo.size}" if isinstance(photo, Upload) else str(photo)
    content: dict[str, Any] = {"photo": objects.photo_sizes(seed)}
    if call.params.get("caption"):
        content["caption"] = str(call.params["caption"])
    return _message(call, **content)


def edit_message_text(call: Call) -> Any:
    text = _text(call)
    if call.params.get("inline_message_id"):
        return True
    chat = objects.chat(call.chat_id())
    message_id = call.number("message_id")
    message = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": text}
    return {**message, "from": objects.bot_user(call.token), "edit_date": int(time.time())}


def delete_message(call: Call) -> Any:
    call.chat_id()
    call.number("message_id")
    return True


def send_chat_action(call: Call) -> Any:
    call.chat_id()
    call.text("action", "Bad Request: wrong parameter action in request")
    return True


def answer_callback_query(call: Call) -> Any:
    call.text("callback_query_id")
    return True


def get_user_profile_photos(call: Call) -> Any:
    user_id = call.number("user_id")
    offset, limit = call.number("offset", 0), call.number("limit", 100)
    photos = [objects.photo_sizes(f"profile/{user_id}")]
    return {"total_count": len(photos), "photos": photos[offset : offset + limit]}


def get_chat(call: Call) -> Any:
    return objects.full_chat(call.chat_id())


def get_chat_member(call: Call) -> Any:
    call.chat_id()
    user_id = call.number("user_id")
    if user_id == objects.bot_id(call.token):
        return {"status": "member", "user": objects.bot_user(call.token)}
    return {"status": "member", "user": objects.user(user_id)}


def get_file(call: Call) -> Any:
    return objects.file(call.text("file_id", "Bad Request: invalid file_id"))


def set_webhook(call: Call) -> Any:
    url = str(call.params.get("url") or "")
    if url and not url.startswith("https://"):
        raise CallError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    webhook: dict[str, Any] = {"url": url, "max_connections": call.number("max_connections", 40)}
    allowed = call.structure("allowed_updates")
    if isinstance(allowed, list):
        webhook["allowed_updates"] = allowed
    call.bots.webhooks[call.token] = webhook
    return True


def delete_webhook(call: Call) -> Any:
    call.bots.webhooks.pop(call.token, None)
    return True


def get_webhook_info(call: Call) -> Any:
    webhook = call.bots.webhooks.get(call.token, {"url": ""})
    info = {"has_custom_certificate": False, "pending_update_count": 0, **webhook}
    if not info["url"]:
        info.pop("max_connections", None)
    return info


def set_my_commands(call: Call) -> Any:
    if not isinstance(call.structure("commands"), list):
        raise CallError(400, 'Bad Request: parameter "commands" is required')
    return True


Method = Callable[[Call], Any]
METHODS: dict[str, Method] = {
    "getMe": get_me,
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "editMessageText": edit_message_text,
    "deleteMessage": delete_message,
    "sendChatAction": send_chat_action,
    "answerCallbackQuery": answer_callback_query,
    "getUserProfilePhotos": get_user_profile_photos,
    "getChat": get_chat,
    "getChatMember": get_chat_member,
    "getFile": get_file,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "setMyCommands": set_my_commands,
}
#: each method by its name in lower case: the Bot API ignores the case of a method's name
BY_LOWER_NAME = {name.lower(): (name, method) for name, method in METHODS.items()}
#: the answers that carry a ``description`` besides the result, as Telegram's do
DESCRIPTIONS = {"setWebhook": "Webhook was set", "deleteWebhook": "Webhook was deleted"}


def answer(method_name: str, call: Call) -> tuple[str, Any]:
    """The method's canonical name and its result; a :class:`CallError` for the Bot API's error
    answer."""
    found = BY_LOWER_NAME.get(method_name.lower())
    if found is None:
        raise CallError(404, "Not Found: method not found")
    name, method = found
    return name, method(call)
