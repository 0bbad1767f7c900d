"""A fake Telegram Bot API that real clients (aiogram, plain HTTP) can talk to:
``/bot<token>/<method>`` with its parameters in the query string, a JSON body, a URL-encoded or
a multipart form; ``/file/bot<token>/<path>`` for downloads.

Every answer is the Bot API's: ``{"ok": true, "result": ...}`` with well-formed objects for the
common methods (:data:`METHODS`), and ``{"ok": false, "error_code", "description",
"parameters"?}`` for a call that lacks a parameter, an unknown method (404 ``Not Found: method
not found``) or a fault. Run it with ``python -m chaos_model.bot_api --port N``. Its control API:

``POST /control/fault`` ``{"mode": "rate_limit"|"error"|"slow"|"hang", "calls": N | null,
"seconds": S | null, "retry_after": 1, "delay": 0.5, "status": 500, "method": GLOB}`` makes the
next N matching calls, or every matching call for S seconds (or, with neither, until cleared)
fail as Telegram's do: flood control (429 with ``parameters.retry_after``), a 5xx, a late answer,
none until cleared. ``DELETE /control/fault`` clears it and releases hung calls;
``POST /control/reset`` also forgets the records, message ids and webhooks; ``GET
/control/stats`` gives calls per method, calls in flight and the fault; ``GET
/control/records[?method=M]`` each call's method, parameters, times, status and result
(downloads are method ``file``).
"""

from chaos_model.bot_api._app import build_app
from chaos_model.bot_api._faults import MODES
from chaos_model.bot_api._methods import METHODS

__all__ = ["METHODS", "MODES", "build_app"]
