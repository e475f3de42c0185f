"""The one factory for boto3 clients in a process.

Clients are created lazily, once, and shared (boto3 clients are thread-safe; sessions
are not, so creation is locked). botocore itself honours ``AWS_ENDPOINT_URL``, which is
how the local stack points every client at the emulator: nothing else in the code knows
it is local.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)


class AwsClients:
    def __init__(self, region: str = "us-east-1", session: boto3.session.Session | None = None):
        self._session = session or boto3.session.Session(region_name=region)
        self._region = region
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

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
