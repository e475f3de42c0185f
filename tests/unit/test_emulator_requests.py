"""The emulator counts the requests it serves, by service, for the benchmarks."""

from __future__ import annotations

import json

from skyclass.operations.local.emulator import RequestCounter


def _call(app, path: str, authorization: str = "", method: str = "POST") -> tuple[str, bytes]:
    answers = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method,
               "HTTP_AUTHORIZATION": authorization}
    body = b"".join(app(environ, lambda status, headers: answers.append(status)))
    return answers[0], body


def signed(service: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=abc")


def test_requests_are_counted_by_service_and_the_counts_are_served():
    app = RequestCounter(lambda environ, start_response: (start_response("200 OK", []), [b""])[1])

    _call(app, "/", signed("sqs"))
    _call(app, "/", signed("sqs"))
    _call(app, "/bucket/key", signed("s3"))
    _call(app, "/bucket")  # a presigned POST: its credential is in the form

    status, body = _call(app, RequestCounter.PATH, method="GET")
    assert status == "200 OK"
    assert json.loads(body) == {"total": 4, "by_service": {"sqs": 2, "s3": 2}}
