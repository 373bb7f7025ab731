"""Errors a client can act on, shaped as OpenAI's: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """A request the server refuses: HTTP ``status``, a message, and the request field at fault.

    Args:
        status: 400 (bad field), 401 (key), 404 (unknown model or route), 413 (too large), ...
        message: what was wrong, naming the field.
        param: the field's path in the request (``messages[0].content[1].image_url.url``).
        kind: OpenAI's error ``type`` (``invalid_request_error``, ``authentication_error``).
        code: OpenAI's machine-readable ``code`` (``model_not_found``), if any.
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as the OpenAI API returns it."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def bad_field(param: str, message: str) -> APIError:
    """A 400 about one request field: ``"<param>: <message>"``."""
    return APIError(400, f"{param}: {message}", param)
