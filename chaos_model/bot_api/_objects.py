"""The Bot API's objects as the fake builds them: users, chats, photos, files.

Everything is derived from the call's parameters (a chat from its id, a photo from its user), so
the same call gets the same objects and a test can predict them.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

PHOTO_SIDES = (160, 320, 640)


def bot_id(token: str) -> int:
    return int(token.split(":", 1)[0])


def bot_user(token: str) -> dict[str, Any]:
    number = bot_id(token)
    return {
        "id": number,
        "is_bot": True,
        "first_name": "Chaos Model Bot",
        "username": f"chaos_model_{number}_bot",
    }


def user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}


def chat(chat_id: int | str) -> dict[str, Any]:
    """A chat by its id: a user's private chat (a positive id), a supergroup (``-100...``), a
    group (another negative id), or a channel by its ``@username``."""
    if isinstance(chat_id, str):
        name = chat_id.lstrip("@")
        number = -1_000_000_000_000 - int.from_bytes(_hash(name)[:4]) % 1_000_000_000
        return {"id": number, "type": "channel", "title": name, "username": name}
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}


def full_chat(chat_id: int | str) -> dict[str, Any]:
    """``getChat``'s ChatFullInfo: the chat and the fields it always carries."""
    gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
    return {
        **chat(chat_id),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {name: False for name in (*gifts, "gifts_from_channels")},
    }


def file_ids(seed: str) -> tuple[str, str]:
    """A file's ``file_id`` and ``file_unique_id``, stable for the same seed."""
    digest = _digest(seed)
    return f"AgACAgQ{digest[:40]}", f"AQAD{digest[40:56]}"


def photo_sizes(seed: str) -> list[dict[str, Any]]:
    """One photo in every size Telegram keeps of it, smallest first."""
    sizes = []
    for side in PHOTO_SIDES:
        file_id, unique = file_ids(f"{seed}/{side}")
        sizes.append(
            {
                "file_id": file_id,
                "file_unique_id": unique,
                "width": side,
                "height": side,
                "file_size": len(file_content(file_path(file_id))),
            }
        )
    return sizes


def file(file_id: str) -> dict[str, Any]:
    """``getFile``'s File: downloadable at ``/file/bot<token>/<file_path>``."""
    path = file_path(file_id)
    return {
        "file_id": file_id,
        "file_unique_id": file_ids(file_id)[1],
        "file_size": len(file_content(path)),
        "file_path": path,
    }


def file_path(file_id: str) -> str:
    return f"photos/file_{_digest(file_id)[:12]}.jpg"


def file_content(path: str) -> bytes:
    """What a download of ``path`` gets: a few bytes naming it (not an image)."""
    return f"chaos-model Bot API fake: {path}\n".encode()


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _digest(text: str) -> str:
    return base64.b32encode(_hash(text)).decode().rstrip("=").lower()
