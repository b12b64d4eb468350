"""OpenAI-shaped errors shared by the router, the bridge and the inference server:
``{"error": {message, type, code, param}}``.

``ApiError``, ``error_body`` and ``invalid_value`` import no web framework. ``HANDLERS`` render them
(and Starlette's 404/405) in any Starlette app: the inference server is one, and never imports
FastAPI (ADR 0054). ``install(app)`` adds them to a FastAPI app (the router, the bridge), with
FastAPI's request validation errors in the same shape; only that function imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from fastapi import FastAPI


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_body(message: str, code: str, param: str | None = None, status: int = 400) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    elif status == 429:
        kind = "rate_limit_error"
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def invalid_value(loc: Sequence[object], msg: str) -> ApiError:
    """A request body's schema error as a 400: the field's path is ``param`` and leads the message."""
    param = ".".join(str(p) for p in loc) or None
    return ApiError(400, f"{param}: {msg}" if param else msg, "invalid_value", param)


def error_response(exc: ApiError) -> JSONResponse:
    """The response an ``ApiError`` is answered with; an ASGI app too (the router's speech relay sends it so)."""
    return JSONResponse(error_body(exc.message, exc.code, exc.param, exc.status), exc.status, headers=exc.headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(str(exc.detail), code, None, exc.status_code), exc.status_code)


#: Starlette's ``exception_handlers``: ApiError, and Starlette's own HTTP errors (404, 405, …)
HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    ApiError: _api_error,
    HTTPException: _http,
}


def install(app: FastAPI) -> None:
    """``HANDLERS`` on a FastAPI app, and its body validation errors as ``invalid_value`` (the first one)."""
    from fastapi.exceptions import RequestValidationError

    async def _validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        return error_response(invalid_value([p for p in first.get("loc", ()) if p != "body"], str(first["msg"])))

    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(RequestValidationError, _validation)
