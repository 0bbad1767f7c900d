"""A Bot API call's parameters, from wherever the Bot API accepts them: the query string, a JSON
body, a URL-encoded form or a multipart form (files included).

In a form every value is text; objects (``reply_markup``, ``allowed_updates``) come as their
JSON, as the Bot API expects them. A file uploaded in a multipart form is kept as its name, type
and size, not its bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

ATTACH = "attach://"


class BadParams(ValueError):
    """The body cannot be read as the content type it says it is."""


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size}


def parse_params(query: Mapping[str, str], content_type: str, body: bytes) -> dict[str, Any]:
    """Every parameter of the call; the body's win over the query string's."""
    params: dict[str, Any] = dict(query)
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        return params
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError as error:
            raise BadParams(f"can't parse JSON body: {error}") from None
        if not isinstance(data, dict):
            raise BadParams("the JSON body must be an object")
        params.update(data)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        params.update(_attached(_multipart(content_type, body)))
    return params


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadParams("can't parse the multipart body")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
        else:
            fields[name] = Upload(filename, part.get_content_type(), len(data))
    return fields


def _attached(fields: dict[str, Any]) -> dict[str, Any]:
    """``photo=attach://NAME`` with the file in field NAME is the file as ``photo``."""
    for key, value in list(fields.items()):
        if isinstance(value, str) and value.startswith(ATTACH):
            upload = fields.get(value.removeprefix(ATTACH))
            if isinstance(upload, Upload):
                fields[key] = upload
                del fields[value.removeprefix(ATTACH)]
    return fields


def recorded(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as a record keeps them: an upload as its name, type and size."""
    return {k: v.to_json() if isinstance(v, Upload) else v for k, v in params.items()}
