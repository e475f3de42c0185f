"""The bake driver: builds the stage's worker AMI on a temporary builder instance.

1. Pack this checkout's worker sources and upload them to the stage's output bucket.
2. Launch a builder from the base image (Amazon Linux 2023 by default) with user data
   that downloads the sources, runs ``ami_build/provision.sh`` and reports its outcome
   by a presigned PUT of ``bake/{id}/status.json`` (the builder needs no IAM role).
3. Wait for that report; stop the builder; create and tag the image
   ``skyclass-{stage}-worker-{timestamp}``; wait until it is available.
4. Terminate the builder and delete the bake's objects, whatever happened.

The emulator cannot boot an image, so its tests play the builder's part by writing the
status object; everything else is the same code as on AWS.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.errors import SkyclassError
from skyclass.runtime.names import (
    ROLE_BUILDER,
    ROLE_WORKER_AMI,
    StageResources,
    builder_name,
    stage_tags,
    tag_list,
    worker_ami_name,
)
from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)

BASE_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
SOURCES = ("skyclass", "ec2_worker", "ami_build", "pyproject.toml", "constraints.txt",
           "README.md")


class BakeError(SkyclassError):
    code = "BakeFailed"


@dataclass(frozen=True)
class BakeResult:
    ami_id: str
    name: str
    builder_id: str
    boot_to_ready_s: float


class AmiBaker:
    def __init__(self, aws: AwsClients, resources: StageResources, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 10.0, timeout: float = 3600.0) -> None:
        self._aws = aws
        self._resources = resources
        self._store = JsonStore(aws.s3, resources.output_bucket)
        self._clock = clock
        self._sleep = sleep
        self._poll = poll_interval
        self._timeout = timeout

    def bake(self, source_dir: Path, *, instance_type: str = "c7i.xlarge",
             base_ami: str | None = None, gpu: str = "auto") -> BakeResult:
        stage = self._resources.stage
        bake_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        prefix = f"bake/{bake_id}/"
        bucket = self._resources.output_bucket
        s3 = self._aws.s3
        s3.put_object(Bucket=bucket, Key=prefix + "source.tar.gz", Body=pack_sources(source_dir))
        source_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": prefix + "source.tar.gz"},
            ExpiresIn=int(self._timeout))
        status_url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": prefix + "status.json"},
            ExpiresIn=int(self._timeout) + 600)
        base_ami = base_ami or self._aws.client("ssm").get_parameter(
            Name=BASE_IMAGE_PARAMETER)["Parameter"]["Value"]
        builder_id = self._aws.ec2.run_instances(
            ImageId=base_ami,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            UserData=builder_user_data(source_url, status_url, gpu),
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                  "Ebs": {"VolumeSize": 30, "VolumeType": "gp3",
                                          "Encrypted": True}}],
            MetadataOptions={"HttpTokens": "required"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list(
                {**stage_tags(stage), c.TAG_ROLE: ROLE_BUILDER, "Name": builder_name(stage)})}],
        )["Instances"][0]["InstanceId"]
        log.info("builder %s launched from %s; waiting for provision.sh", builder_id, base_ami)
        started = self._clock()
        try:
            status = self._wait_for_status(prefix + "status.json")
            boot_to_ready = self._clock() - started
            if status.get("status") != "ready":
                raise BakeError(f"provisioning failed on {builder_id}: "
                                f"{status.get('log_tail') or status}")
            ec2 = self._aws.ec2
            ec2.stop_instances(InstanceIds=[builder_id])
            ec2.get_waiter("instance_stopped").wait(InstanceIds=[builder_id])
            name = f"{worker_ami_name(stage)}-{bake_id}"
            ami_id = ec2.create_image(InstanceId=builder_id, Name=name,
                                      Description=f"skyclass worker for stage {stage}")["ImageId"]
            ec2.create_tags(Resources=[ami_id], Tags=tag_list(
                {**stage_tags(stage), c.TAG_ROLE: ROLE_WORKER_AMI}))
            ec2.get_waiter("image_available").wait(ImageIds=[ami_id])
            log.info("AMI %s (%s) ready; builder took %.0f s from launch to ready",
                     ami_id, name, boot_to_ready)
            return BakeResult(ami_id, name, builder_id, boot_to_ready)
        finally:
            self._aws.ec2.terminate_instances(InstanceIds=[builder_id])
            for key in ("source.tar.gz", "status.json"):
                s3.delete_object(Bucket=bucket, Key=prefix + key)

    def _wait_for_status(self, key: str) -> dict[str, Any]:
        deadline = self._clock() + self._timeout
        while self._clock() < deadline:
            status = self._store.get(key)
            if status is not None:
                return status
            self._sleep(self._poll)
        raise BakeError(f"the builder did not report within {self._timeout:.0f} s")


def pack_sources(source_dir: Path) -> bytes:
    """A gzipped tarball of what the worker image needs from this checkout."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in SOURCES:
            path = source_dir / name
            if path.exists():
                tar.add(path, arcname=f"skyclass/{name}", filter=_skip_caches)
    return buffer.getvalue()


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info


def builder_user_data(source_url: str, status_url: str, gpu: str = "auto") -> str:
    """cloud-init user data for the builder: fetch, provision, report."""
    return f"""#!/bin/bash
set -uo pipefail
started=$(date +%s)
report() {{
  python3 - "$1" "$(( $(date +%s) - started ))" >/tmp/status.json <<'PY'
import json, pathlib, sys
log = pathlib.Path("/var/log/skyclass-provision.log")
tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
print(json.dumps({{"status": sys.argv[1], "seconds": int(sys.argv[2]), "log_tail": tail}}))
PY
  curl -fsS -X PUT -T /tmp/status.json '{status_url}'
}}
trap 'report failed' ERR
set -e
mkdir -p /opt/skyclass-src
curl -fsS '{source_url}' | tar -xz -C /opt/skyclass-src
/opt/skyclass-src/skyclass/ami_build/provision.sh --source /opt/skyclass-src/skyclass \\
  --gpu {gpu} >/var/log/skyclass-provision.log 2>&1
trap - ERR
report ready
"""



def status_document(status: str, seconds: int, log_tail: str = "") -> bytes:
    """What the builder writes (the tests write the same to play the builder)."""
    return json.dumps({"status": status, "seconds": seconds, "log_tail": log_tail}).encode()
