"""Calls to Telegram's Bot API, sent to chaos-model's fake instead: no change to the service.

With ``CHAOS_TELEGRAM_API`` set (``http://127.0.0.1:PORT``, the fake's address through the
service's own link of the fault proxy), every httpx and aiohttp request to ``api.telegram.org``
goes there: its scheme, host and port are replaced, its path (``/bot<token>/<method>``,
``/file/bot<token>/<path>``) and query kept. The request is still a fault point, and the link
can be cut like any other. Other hosts are untouched.

Standard library only: this runs inside the target's interpreter, whatever its environment.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_TELEGRAM = "CHAOS_TELEGRAM_API"
TELEGRAM_HOST = "api.telegram.org"

Call = tuple[tuple[Any, ...], dict[str, Any]]


def redirected(url: str, fake: str) -> str | None:
    """``url`` on the fake at ``fake`` when it is the Bot API's; None when it is not."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() != TELEGRAM_HOST:
        return None
    base = urlsplit(fake)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


def _rewriting(prepare: Callable[[tuple[Any, ...], dict[str, Any]], Call]) -> Any:
    """Wrap a request method so that ``prepare`` rewrites its arguments first."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(function, "__chaos_redirect__", False):
            return function
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                args, kwargs = prepare(args, kwargs)
                return await function(*args, **kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(function)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                args, kwargs = prepare(args, kwargs)
                return function(*args, **kwargs)

            wrapper = sync_wrapper
        wrapper.__chaos_redirect__ = True
        rewritten: Callable[..., Any] = wrapper
        return rewritten

    return decorate


def _patch_httpx(fake: str) -> Callable[[Any], None]:
    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        request = args[1] if len(args) > 1 else kwargs.get("request")
        url = getattr(request, "url", None)
        new = redirected(str(url), fake) if url is not None else None
        if request is not None and url is not None and new is not None:
            request.url = type(url)(new)
            request.headers["Host"] = request.url.netloc.decode("ascii")
        return args, kwargs

    def patch(module: Any) -> None:
        for client in ("Client", "AsyncClient"):
            owner = getattr(module, client, None)
            if owner is not None and "send" in owner.__dict__:
                owner.send = _rewriting(prepare)(owner.__dict__["send"])

    return patch


def _patch_aiohttp(fake: str) -> Callable[[Any], None]:
    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        positional = len(args) > 2
        url = args[2] if positional else kwargs.get("str_or_url")
        if url is None:
            return args, kwargs
        build = getattr(args[0], "_build_url", None)
        full = build(url) if build is not None else url  # a path relative to its base_url
        new = redirected(str(full), fake)
        if new is None:
            return args, kwargs
        fresh = new if isinstance(full, str) else type(full)(new)
        if positional:
            return (*args[:2], fresh, *args[3:]), kwargs
        return args, {**kwargs, "str_or_url": fresh}

    def patch(module: Any) -> None:
        session = getattr(module, "ClientSession", None)
        if session is not None and "_request" in session.__dict__:
            session._request = _rewriting(prepare)(session.__dict__["_request"])

    return patch


def install(fake: str | None = None) -> bool:
    """Send the Bot API's calls to ``fake`` (default ``$CHAOS_TELEGRAM_API``); True when set."""
    fake = fake or os.environ.get(ENV_TELEGRAM, "")
    if not fake:
        return False
    patches = {"httpx": _patch_httpx(fake), "aiohttp": _patch_aiohttp(fake)}
    # the fault points' import hook (one per process); patched after them, so that a point
    # sees the URL the request goes to
    importlib.import_module("chaos_points").on_import(patches)
    return True


__all__ = ["ENV_TELEGRAM", "install", "redirected"]
