"""The one exception handlers raise: it carries its status and a message for a developer."""

from __future__ import annotations


class ApiError(Exception):
    """Rendered by the error middleware as ``{"Error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)
