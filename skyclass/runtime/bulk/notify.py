"""Telling the world a job ended: the EventBridge event and the signed callback.

The event goes to the stage's bus with detail-type ``skyclass Job Completed`` (source
``skyclass``); its detail is the job's summary (``summary``). A job created with a
``callback_url`` also gets that summary POSTed there as JSON, signed so the receiver
can tell it came from this stage and was not replayed: the header
``X-Skyclass-Signature: t=UNIX_SECONDS,v1=HEX`` carries HMAC-SHA256 over
``"{t}." + body`` with the stage's callback secret (an SSM SecureString only the
finisher may read). ``verify_signature`` is what a receiver does.

A callback answered 2xx is delivered; connection errors, timeouts, 408, 429 and 5xx are
tried again (a few times at once, then later: finisher.py), any other answer is final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from skyclass.runtime.errors import BadRequestError

DETAIL_TYPE = "skyclass Job Completed"
EVENT_SOURCE = "skyclass"
SIGNATURE_HEADER = "X-Skyclass-Signature"
MAX_URL_CHARS = 2048
CALL_TIMEOUT_S = 10.0
RETRYABLE_STATUS = frozenset({408, 429})


def check_callback_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS:
        raise BadRequestError(f"'callback_url' must be an http(s) URL of at most "
                              f"{MAX_URL_CHARS} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BadRequestError("'callback_url' must be an http:// or https:// URL")
    return value


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Skyclass-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None,
                     tolerance_s: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass(frozen=True)
class CallOutcome:
    delivered: bool
    retry: bool  # worth trying again later
    detail: str


def post_callback(url: str, summary: dict[str, Any], secret: str, *, attempts: int = 3,
                  pause_s: float = 1.0, clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> CallOutcome:
    """POST the signed summary, trying up to ``attempts`` times (pausing ``pause_s``,
    then twice that...) while the failure is one worth retrying."""
    body = json.dumps(summary, separators=(",", ":"), sort_keys=True).encode()
    outcome = CallOutcome(False, True, "not tried")
    for attempt in range(attempts):
        if attempt:
            sleep(pause_s * 2 ** (attempt - 1))
        outcome = _post_once(url, body, sign(secret, int(clock()), body),
                             summary.get("job_id", ""))
        if outcome.delivered or not outcome.retry:
            break
    return outcome


def _post_once(url: str, body: bytes, signature: str, job_id: str) -> CallOutcome:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "skyclass-callback/1",
        SIGNATURE_HEADER: signature,
        "X-Skyclass-Event": DETAIL_TYPE,
        "X-Skyclass-Job": job_id,
    })
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
            return CallOutcome(True, False, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code in RETRYABLE_STATUS
        return CallOutcome(False, retry, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CallOutcome(False, True, f"could not connect: {reason}")


def publish_event(events: Any, bus: str, summary: dict[str, Any]) -> None:
    response = events.put_events(Entries=[{
        "Source": EVENT_SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(summary, separators=(",", ":")),
        "EventBusName": bus,
        "Resources": [],
    }])
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise RuntimeError(f"EventBridge refused the event: {entry.get('ErrorCode')}: "
                           f"{entry.get('ErrorMessage')}")
