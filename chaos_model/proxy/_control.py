"""HTTP/JSON control API (server on asyncio streams) and its synchronous client.

Endpoints (modelled on Toxiproxy's):

=======  ===========================  ===============================================
GET      /health                      ``{"status": "ok", "links": N}``
GET      /links                       ``{name: link}``
POST     /links                       body ``{name, listen, upstream}`` -> 201 link
GET      /links/{name}                link
DELETE   /links/{name}                204
GET      /links/{name}/toxics         ``[toxic, ...]``
POST     /links/{name}/toxics         body toxic JSON -> 201 toxic
DELETE   /links/{name}/toxics/{tox}   204
POST     /reset                       remove all toxics, enable all links -> 204
=======  ===========================  ===============================================

A link is ``{name, listen, upstream, enabled, toxics, connections}``. Errors are
``{"error": message}`` with 400 (invalid input), 404 (unknown name) or 409 (exists /
port busy). Names in paths are percent-encoded (``api->postgres``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from ._link import ConflictError, NotFoundError, check_loopback, format_address
from ._server import ProxyServer
from .toxics import Toxic, toxic_from_dict

if TYPE_CHECKING:
    import http.client

_MAX_BODY = 1 << 20
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    """Minimal HTTP/1.1 (keep-alive) JSON server exposing a :class:`ProxyServer`."""

    def __init__(self, proxy: ProxyServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.proxy = proxy
        self.host = check_loopback(host, what="control")
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8474`` (real port once started)."""
        return f"http://{format_address((self.host, self.port))}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                keep_alive = await self._handle(head, reader, writer)
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    async def _handle(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            _respond(writer, 400, {"error": "malformed request line"}, keep_alive=False)
            return False
        headers = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            if "transfer-encoding" in headers:
                raise _HTTPError(400, "chunked bodies are not supported: send Content-Length")
            length = int(headers.get("content-length", "0"))
            if length < 0 or length > _MAX_BODY:
                raise _HTTPError(413, "body too large")
            body = await reader.readexactly(length) if length else b""
            status, payload = await self._route(method, urlsplit(target).path, body)
        except asyncio.IncompleteReadError:
            return False  # client went away mid-body
        except _HTTPError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": str(exc)}
        except NotFoundError as exc:
            status, payload = 404, {"error": str(exc)}
        except (ConflictError, OSError) as exc:
            status, payload = 409, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - answer 500 rather than drop the client
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"control API error on {method} {target}", "exception": exc}
            )
            status, payload, keep_alive = 500, {"error": repr(exc)}, False
        _respond(writer, status, payload, keep_alive=keep_alive)
        return keep_alive

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        proxy = self.proxy
        match method, parts:
            case "GET", ["health"]:
                return 200, {"status": "ok", "links": len(proxy.links)}
            case "GET", ["links"]:
                return 200, proxy.to_dict()
            case "POST", ["links"]:
                data = _json_object(body)
                link = await proxy.add_link(
                    _field(data, "name"), _field(data, "listen"), _field(data, "upstream")
                )
                return 201, link.to_dict()
            case "GET", ["links", name]:
                return 200, proxy.link(name).to_dict()
            case "DELETE", ["links", name]:
                await proxy.remove_link(name)
                return 204, None
            case "GET", ["links", name, "toxics"]:
                return 200, [t.to_dict() for t in proxy.link(name).toxics]
            case "POST", ["links", name, "toxics"]:
                proxy.link(name)  # 404 before 400 for an unknown link
                toxic = await proxy.add_toxic(name, toxic_from_dict(_json_object(body)))
                return 201, toxic.to_dict()
            case "DELETE", ["links", name, "toxics", toxic_name]:
                await proxy.remove_toxic(name, toxic_name)
                return 204, None
            case "POST", ["reset"]:
                await proxy.reset()
                return 204, None
            case _, ["health" | "links" | "reset", *_]:
                raise _HTTPError(405, f"method {method} not allowed on {path}")
        raise _HTTPError(404, f"no route for {path}")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _field(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {key!r} must be a non-empty string")
    return value


def _respond(writer: asyncio.StreamWriter, status: int, payload: Any, *, keep_alive: bool) -> None:
    body = b"" if status == 204 else json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)


class ProxyAPIError(Exception):
    """The control API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class ProxyClient:
    """Synchronous client of the control API (``http.client``, one kept-alive socket).

    Not thread-safe: use one client per thread. ``base_url`` is e.g. the ``control``
    value of the ready file (``http://127.0.0.1:8474``).
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"base_url must be http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def links(self) -> dict[str, dict[str, Any]]:
        """All links keyed by name: ``{name, listen, upstream, enabled, toxics, connections}``."""
        result: dict[str, dict[str, Any]] = self._call("GET", "/links")
        return result

    def add_link(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        """Create a link; ``listen="127.0.0.1:0"`` picks a port (read it from ``listen``)."""
        body = {"name": name, "listen": listen, "upstream": upstream}
        result: dict[str, Any] = self._call("POST", "/links", body)
        return result

    def remove_link(self, name: str) -> None:
        self._call("DELETE", f"/links/{_q(name)}")

    def toxics(self, link: str) -> list[Toxic]:
        return [toxic_from_dict(t) for t in self._call("GET", f"/links/{_q(link)}/toxics")]

    def add_toxic(self, link: str, toxic: Toxic | Mapping[str, Any]) -> Toxic:
        """Add a toxic (object or JSON dict); returns it as stored (name filled in)."""
        data = toxic.to_dict() if isinstance(toxic, Toxic) else dict(toxic)
        return toxic_from_dict(self._call("POST", f"/links/{_q(link)}/toxics", data))

    def remove_toxic(self, link: str, toxic: str) -> None:
        self._call("DELETE", f"/links/{_q(link)}/toxics/{_q(toxic)}")

    @contextlib.contextmanager
    def toxic(self, link: str, toxic: Toxic | Mapping[str, Any]) -> Iterator[Toxic]:
        """Context manager: the toxic is active inside the ``with`` block."""
        added = self.add_toxic(link, toxic)
        try:
            yield added
        finally:
            with contextlib.suppress(ProxyAPIError):
                self.remove_toxic(link, added.name)

    def reset(self) -> None:
        """Remove every toxic and re-enable every link."""
        self._call("POST", "/reset")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ProxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import http.client

        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.BadStatusLine):
                # a kept-alive socket closed by the server: retry once on a fresh one
                self.close()
                if attempt == 2:
                    raise
        if response.will_close:
            self.close()
        decoded = json.loads(data) if data else None
        if response.status >= 400:
            message = decoded.get("error", "") if isinstance(decoded, dict) else str(decoded)
            raise ProxyAPIError(response.status, message)
        return decoded


def _q(name: str) -> str:
    return quote(name, safe="")
