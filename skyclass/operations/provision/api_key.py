"""The stage's secrets: random SecureStrings in SSM Parameter Store, made once by
bootstrap and never written to a file. The API's key is read by the API Lambda
(chalice_app/auth.py), the callback key by the function that signs job callbacks; the
Lambdas get only the parameters' names (``SKYCLASS_API_KEY_PARAMETER`` and the like)."""

from __future__ import annotations

import secrets

from botocore.exceptions import ClientError

from skyclass.runtime.aws import AwsClients
from skyclass.runtime.names import (
    api_key_parameter_name,
    callback_secret_parameter_name,
    stage_tags,
    tag_list,
)


def ensure_api_key(aws: AwsClients, stage: str) -> str:
    """Create the stage's key if it has none (an existing key is kept, so clients keep
    working across deploys); returns the parameter's name."""
    return _ensure_secret(aws, stage, api_key_parameter_name(stage),
                          "the API key clients send in x-api-key")


def ensure_callback_secret(aws: AwsClients, stage: str) -> str:
    """The key that signs job callbacks, made once and kept (callback receivers keep
    verifying across deploys); returns the parameter's name."""
    return _ensure_secret(aws, stage, callback_secret_parameter_name(stage),
                          "the key that signs job callbacks (HMAC-SHA256)")


def _ensure_secret(aws: AwsClients, stage: str, name: str, what: str) -> str:
    try:
        aws.client("ssm").put_parameter(
            Name=name, Value=secrets.token_urlsafe(32), Type="SecureString",
            Description=f"skyclass {stage}: {what}", Tags=tag_list(stage_tags(stage)),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterAlreadyExists":
            raise
    return name
