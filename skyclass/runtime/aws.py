"""The one factory for boto3 clients in a process.

Clients are created lazily, once, and shared (boto3 clients are thread-safe; sessions
are not, so creation is locked). botocore itself honours ``AWS_ENDPOINT_URL``, which is
how the local stack points every client at the emulator: nothing else in the code knows
it is local. All clients share one region: the one given (``Settings.region``, found by
``settings.standard_region``), else the session's own (``AWS_DEFAULT_REGION``, the
profile); with none at all, it says so rather than letting each client guess.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from skyclass.runtime import constants as c
from skyclass.runtime.errors import ConfigurationError

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)
NO_REGION = (f"no AWS region: set {c.REGION} (or {c.DEFAULT_REGION}), or give your profile "
             "one (aws configure set region eu-west-1)")


class AwsClients:
    def __init__(self, region: str | None = None,
                 session: boto3.session.Session | None = None) -> None:
        """Raises ConfigurationError if no region is given and the session has none."""
        self._session = session or boto3.session.Session(region_name=region)
        self._region = region or self._session.region_name
        if not self._region:
            raise ConfigurationError(NO_REGION)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def region(self) -> str:
        """The region every client of this factory talks to."""
        return self._region

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, region_name=self._region, config=_RETRIES
                )
            return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def ec2(self) -> Any:
        return self.client("ec2")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")

    @property
    def sts(self) -> Any:
        return self.client("sts")
