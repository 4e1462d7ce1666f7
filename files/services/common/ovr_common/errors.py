"""JSON errors for the Flask APIs: every answer that is not a success is {"error": "..."} with a
message a human can act on. A client's mistake is a 4xx (ApiError, a werkzeug HTTPException, an
id too large for SQLite), never a 500; a 500 is a bug, logged with its traceback for the
service log and answered without details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


class ApiError(Exception):
    """An answer to the client: status, message, and extra JSON fields. The base of every
    error a service's logic raises for a client (EventError, ControlError, ...), so the handler
    answers them all and no HTTP handler translates them by hand. Importing it needs no Flask.

    `retry_after` in the extra fields also becomes a Retry-After header."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def register_error_handlers(
    app: Flask,
    log: logging.Logger,
    *,
    http_messages: Callable[[], Mapping[int, str]],
    internal_message: str,
    www_authenticate: str | None = None,
) -> None:
    """The JSON error handlers of `app`.

    http_messages: called inside the failing request, the texts for werkzeug's errors by code
    (e.g. 404, 405, 413); others answer with werkzeug's description.
    www_authenticate: the WWW-Authenticate header of a 401 ApiError."""
    from flask import Response, jsonify, request
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        resp = jsonify({"error": exc.message, **exc.extra})
        resp.status_code = exc.status
        if exc.status == 401 and www_authenticate:
            resp.headers["WWW-Authenticate"] = www_authenticate
        if "retry_after" in exc.extra:
            resp.headers["Retry-After"] = str(exc.extra["retry_after"])
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        resp = jsonify({"error": http_messages().get(code, exc.description or exc.name)})
        resp.status_code = code
        allow = exc.get_response().headers.get("Allow") if code == 405 else None
        if allow:
            resp.headers["Allow"] = allow
        return resp

    @app.errorhandler(OverflowError)
    def out_of_range(exc: OverflowError) -> Response:
        # SQLite integers are 64-bit: a larger id in a URL names nothing.
        resp = jsonify({"error": "no such item: the id is out of range"})
        resp.status_code = 404
        return resp

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = jsonify({"error": internal_message})
        resp.status_code = 500
        return resp
