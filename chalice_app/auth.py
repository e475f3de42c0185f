"""The API key: every route but the page and ``GET /health`` requires it when the stage
has one (deployed stages always do; locally it is optional).

Clients send it in the ``x-api-key`` header, as API Gateway's own API keys are sent.
The key is read once per Lambda container: from the SSM SecureString parameter named
by ``SKYCLASS_API_KEY_PARAMETER`` (what bootstrap creates, so no secret sits in
``.chalice/config.json``), or from ``SKYCLASS_API_KEY`` (local use). Open paths are an
allow-list, so a new route is protected by default.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalice_app.errors import to_response
from chalice_app.wiring import services
from skyclass.runtime.errors import ForbiddenError

bp = Blueprint(__name__)

OPEN_ROUTES = {("GET", "/"), ("GET", "/health")}
HEADER = "x-api-key"


@functools.cache
def expected_key() -> str | None:
    """The stage's key, read once per container through the Lambda's own objects
    (only protected routes ask, and they build those objects anyway)."""
    s = services()
    if s.settings.api_key_parameter:
        ssm = s.aws.client("ssm")
        return ssm.get_parameter(Name=s.settings.api_key_parameter,
                                 WithDecryption=True)["Parameter"]["Value"]
    return s.settings.api_key


def check_api_key(expected: str | None, presented: str | None) -> None:
    """Raise ForbiddenError unless ``presented`` is the key (compared in constant time)."""
    if expected is None:
        return
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ForbiddenError(f"this API needs its key in the {HEADER} header"
                             + (" (the one sent is wrong)" if presented else ""))


@bp.middleware("http")
def require_api_key(event: Request, get_response: Callable[[Request], Response]) -> Any:
    if (event.method, event.path) not in OPEN_ROUTES:
        try:
            check_api_key(expected_key(), event.headers.get(HEADER))
        except Exception as exc:  # noqa: BLE001 - errors.py decides what the client sees
            return to_response(exc)
    return get_response(event)
