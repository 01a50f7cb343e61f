"""The API's errors: a status code and Toxiproxy's exact message.

Clients match on these messages (and toxiproxy-python on the status codes),
so they are spelled exactly as the real server spells them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "bad_request_body",
    "invalid_stream",
    "invalid_toxic_type",
    "missing_field",
    "proxy_exists",
    "proxy_not_found",
    "toxic_exists",
    "toxic_not_found",
]


class ApiError(Exception):
    """An error answered as ``{"error": message, "status": code}``."""

    def __init__(self, status: int, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON error object."""
        return {"error": self.message, "status": self.status, **self.extra}


def bad_request_body(detail: str) -> ApiError:
    """400 ``bad request body: <decoder message>``."""
    return ApiError(400, f"bad request body: {detail}")


def missing_field(detail: str) -> ApiError:
    """400 ``missing required field: name`` (or ``upstream``, ``name at proxy 2``...)."""
    return ApiError(400, f"missing required field: {detail}")


def proxy_not_found() -> ApiError:
    """404 for an unknown proxy name."""
    return ApiError(404, "proxy not found")


def proxy_exists() -> ApiError:
    """409 when creating a proxy whose name is taken."""
    return ApiError(409, "proxy already exists")


def invalid_stream() -> ApiError:
    """400 for a stream other than upstream/downstream (any case)."""
    return ApiError(400, "stream was invalid, can be either upstream or downstream")


def invalid_toxic_type() -> ApiError:
    """400 for an unknown toxic type."""
    return ApiError(400, "invalid toxic type")


def toxic_exists() -> ApiError:
    """409 when adding a toxic whose name is taken on this proxy."""
    return ApiError(409, "toxic already exists")


def toxic_not_found() -> ApiError:
    """404 for an unknown toxic name."""
    return ApiError(404, "toxic not found")
