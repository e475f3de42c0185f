"""The bake driver: builds the stage's worker AMI on a temporary builder instance.

1. Pack this checkout's worker sources and upload them to the stage's output bucket.
2. Launch a builder from the base image (Amazon Linux 2023 by default) with user data
   that downloads the sources, runs ``ami_build/provision.sh`` and reports its outcome
   by a presigned PUT of ``bake/{id}/status.json`` (the builder needs no IAM role).
3. Wait for that report; stop the builder; create the image
   ``skyclass-{stage}-worker-{timestamp}``, tagged with the stage in the same call (the
   image and its snapshots: tags set afterwards can meet ``InvalidAMIID.NotFound`` and
   leave an image teardown cannot recognise); wait until it is available.
4. Terminate the builder and delete the bake's objects, whatever happened.

Every wait goes through a ``Waiter`` (skyclass.operations.waiting): it reports progress
and gives up after its stated limit, which for the image is far above the ten minutes
of boto3's ``image_available`` waiter (a first snapshot of a TensorFlow volume can take
longer). A builder can only boot on AWS: against an emulator the bake says so at once.
The in-process emulator cannot boot one either, so tests play the builder's part by
writing the status object; everything else is the same code as on AWS.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from skyclass.operations.provision.stage import wait_for_instances
from skyclass.operations.waiting import Waiter, error_code
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
# Where instances really boot: AWS's own endpoints.
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
IMAGE_FAILED_STATES = ("failed", "error", "invalid", "deregistered")
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
    def __init__(self, aws: AwsClients, resources: StageResources,
                 waiter: Waiter | None = None) -> None:
        self._aws = aws
        self._resources = resources
        self._store = JsonStore(aws.s3, resources.output_bucket)
        self._waiter = waiter or Waiter(log.info)
        self._waits = self._waiter.waits

    def bake(self, source_dir: Path, *, instance_type: str = "c7i.xlarge",
             base_ami: str | None = None, gpu: str = "auto") -> BakeResult:
        stage = self._resources.stage
        refuse_where_nothing_boots(self._aws.ec2.meta.endpoint_url, stage)
        bake_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        prefix = f"bake/{bake_id}/"
        bucket = self._resources.output_bucket
        s3 = self._aws.s3
        s3.put_object(Bucket=bucket, Key=prefix + "source.tar.gz", Body=pack_sources(source_dir))
        # The builder reports at the latest when its wait gives up.
        expires = int(self._waits.builder.limit_s) + 600
        source_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": prefix + "source.tar.gz"},
            ExpiresIn=expires)
        status_url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": prefix + "status.json"},
            ExpiresIn=expires)
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
        self._waiter.report(f"builder {builder_id} launched from {base_ami}; it installs "
                            "TensorFlow and the weights (provision.sh)")
        started = self._waiter.now()
        try:
            status = self._waiter.until(
                f"builder {builder_id} to report", lambda: self._store.get(prefix + "status.json"),
                self._waits.builder)
            boot_to_ready = self._waiter.now() - started
            if status.get("status") != "ready":
                raise BakeError(f"provisioning failed on {builder_id}: "
                                f"{status.get('log_tail') or status}")
            ec2 = self._aws.ec2
            ec2.stop_instances(InstanceIds=[builder_id])
            wait_for_instances(self._aws, self._waiter, [builder_id], "stopped", "builder")
            name = f"{worker_ami_name(stage)}-{bake_id}"
            tags = tag_list({**stage_tags(stage), c.TAG_ROLE: ROLE_WORKER_AMI})
            ami_id = ec2.create_image(
                InstanceId=builder_id, Name=name, Description=f"skyclass worker for stage {stage}",
                TagSpecifications=[{"ResourceType": "image", "Tags": tags},
                                   {"ResourceType": "snapshot", "Tags": tags}])["ImageId"]
            self._waiter.report(f"AMI {ami_id} ({name}): snapshotting the builder's volume")
            self._waiter.until(f"AMI {ami_id} to become available",
                               lambda: self._image_available(ami_id), self._waits.image_available)
            log.info("AMI %s (%s) ready; builder took %.0f s from launch to ready",
                     ami_id, name, boot_to_ready)
            return BakeResult(ami_id, name, builder_id, boot_to_ready)
        finally:
            self._aws.ec2.terminate_instances(InstanceIds=[builder_id])
            for key in ("source.tar.gz", "status.json"):
                s3.delete_object(Bucket=bucket, Key=prefix + key)

    def _image_available(self, ami_id: str) -> bool | None:
        """True once available; None while pending or not yet visible (a new image id
        can answer NotFound for a while); raises if it failed."""
        try:
            images = self._aws.ec2.describe_images(ImageIds=[ami_id])["Images"]
        except ClientError as exc:
            if error_code(exc) == "InvalidAMIID.NotFound":
                return None
            raise
        state = images[0]["State"] if images else "pending"
        if state in IMAGE_FAILED_STATES:
            reason = images[0].get("StateReason", {}).get("Message", "no reason given")
            raise BakeError(f"AMI {ami_id} is {state}: {reason}; it and its snapshot are "
                            "tagged with the stage, so `skyclass teardown` removes them")
        return True if state == "available" else None


def refuse_where_nothing_boots(endpoint_url: str, stage: str) -> None:
    """A builder boots only on AWS; an emulator would leave the bake waiting for a report
    that never comes, so say at once what to do instead."""
    host = urlparse(endpoint_url).hostname or ""
    if not host.endswith(AWS_DOMAINS):
        raise BakeError(
            f"cannot bake the worker AMI at {endpoint_url}: no builder instance boots on an "
            f"emulator. Register a stand-in image named {worker_ami_name(stage)}-<anything> "
            f"tagged {c.TAG_STAGE}={stage} (docs/deploy.md, \"Rehearse it locally\"), "
            "or deploy to AWS")


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
