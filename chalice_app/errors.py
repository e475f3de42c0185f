"""The one place where errors become HTTP responses.

Every route is wrapped with ``json_errors``: a SkyclassError becomes its status code and
``{"Code", "Message"}``; a ConfigurationError (a bad ``SKYCLASS_*`` value) is logged and
becomes a 500 naming the variable; anything else is logged and becomes a generic 500,
never a traceback. (Chalice's own middleware runs after its view error handling, so it cannot
see these exceptions; a decorator can.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from chalice import Response

from skyclass.runtime.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    ImageNotFoundError,
    InvalidImageError,
    JobNotFoundError,
    PayloadTooLargeError,
    SkyclassError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger(__name__)

STATUS: dict[type[SkyclassError], int] = {
    BadRequestError: 400,
    InvalidImageError: 400,
    ForbiddenError: 403,
    JobNotFoundError: 404,
    ImageNotFoundError: 404,
    ConflictError: 409,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
}


def error_response(code: str, message: str, status: int) -> Response:
    return Response(body={"Code": code, "Message": message}, status_code=status)


def to_response(exc: Exception) -> Response:
    if isinstance(exc, ConfigurationError):
        # The operator's to fix: logged for them; the client learns it is not its fault.
        log.error("misconfigured: %s", exc.message)
        return error_response(exc.code, f"the service is misconfigured: {exc.message}", 500)
    if isinstance(exc, SkyclassError):
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), None)
        if status is not None:
            return error_response(exc.code, exc.message, status)
    log.error("unhandled error", exc_info=exc)
    return error_response("InternalServerError", "An internal server error occurred.", 500)


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the one place errors become responses
            return to_response(exc)

    return wrapper
