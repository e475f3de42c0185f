"""The deployed API's key: a random SecureString in SSM Parameter Store, made once by
bootstrap, read by the API Lambda (chalice_app/auth.py) and never written to a file.
The Lambdas get only the parameter's name (``SKYCLASS_API_KEY_PARAMETER``)."""

from __future__ import annotations

import secrets

from botocore.exceptions import ClientError

from skyclass.runtime.aws import AwsClients
from skyclass.runtime.names import api_key_parameter_name, stage_tags, tag_list


def ensure_api_key(aws: AwsClients, stage: str) -> str:
    """Create the stage's key if it has none (an existing key is kept, so clients keep
    working across deploys); returns the parameter's name."""
    ssm = aws.client("ssm")
    name = api_key_parameter_name(stage)
    try:
        ssm.put_parameter(
            Name=name, Value=secrets.token_urlsafe(32), Type="SecureString",
            Description=f"skyclass {stage}: the API key clients send in x-api-key",
            Tags=tag_list(stage_tags(stage)),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterAlreadyExists":
            raise
    return name
