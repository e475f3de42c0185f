"""POST /classify's body limit fits what API Gateway can hand a Lambda: a binary body
travels base64-encoded inside a JSON event, and a synchronous invocation takes 6 MB at
most, envelope included."""

from __future__ import annotations

import base64
import json

from skyclass.runtime.input_policy import CLASSIFY_MAX_BODY_BYTES

# Lambda's synchronous payload limit, read as decimal megabytes to be on the safe side.
LAMBDA_PAYLOAD_BYTES = 6_000_000
# API Gateway (REST): the request line and headers together at most 10,240 bytes.
HEADER_BYTES = 10_240


def proxy_event(body: bytes) -> dict:
    """An API Gateway REST proxy event at its largest: headers and query string as long
    as API Gateway lets through, each twice (single and multi-value), and made of the
    one character JSON doubles (a quote)."""
    quote = '"'
    headers = {f"x-h{i}": quote * 1000 for i in range(HEADER_BYTES // 1000)}
    query = {"name": quote * (HEADER_BYTES - 20)}
    return {
        "resource": "/classify", "path": "/classify", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": "/classify", "httpMethod": "POST",
                           "identity": {"sourceIp": "203.0.113.9",
                                        "userAgent": quote * 1000},
                           "requestId": "x" * 36, "stage": "api",
                           "domainName": "abcdefghij.execute-api.eu-west-1.amazonaws.com"},
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
    }


def test_the_largest_classify_body_fits_a_lambda_event_with_the_largest_envelope():
    # GIVEN the largest body /classify accepts, in the largest envelope API Gateway makes
    event = proxy_event(b"\xff" * CLASSIFY_MAX_BODY_BYTES)
    # THEN the event Lambda receives is within its payload limit
    assert len(json.dumps(event).encode()) <= LAMBDA_PAYLOAD_BYTES


def test_the_limit_is_not_needlessly_small():
    # A body a tenth larger would no longer fit: the limit is the payload's, not a guess.
    event = proxy_event(b"\xff" * int(CLASSIFY_MAX_BODY_BYTES * 1.1))
    assert len(json.dumps(event).encode()) > LAMBDA_PAYLOAD_BYTES
