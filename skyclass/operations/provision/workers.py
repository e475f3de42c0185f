"""What a stage's worker instances launch with on AWS: an instance profile whose role may
only consume this stage's queue and buckets, a security group with no inbound rules,
and a launch template (the baked AMI, encrypted disk, IMDSv2 only, and the stage's
settings as user data, which ``ami_build/fetch-settings`` turns into the worker's
environment at every start). Each ``ensure_*`` creates what is missing and leaves what
is already right alone, so bootstrap can run any number of times.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from skyclass.operations.provision.iam import EC2_TRUST, StageArns, worker_policy
from skyclass.operations.waiting import error_code
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.errors import SkyclassError
from skyclass.runtime.names import (
    StageResources,
    launch_template_name,
    security_group_name,
    stage_filter,
    stage_tags,
    tag_list,
    worker_instance_name,
    worker_role_name,
    worker_tags,
)
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

WORKER_POLICY_NAME = "skyclass-worker"
ROOT_DEVICE = "/dev/xvda"
# The bake's builder disk (ami_build/bake.py): a worker's root volume is at least its AMI's.
ROOT_VOLUME_GIB = 30
# User data is no place for a secret: anyone who may describe the instance or the launch
# template reads it, and it stays in every template version. So no setting whose name
# says it is a key, secret, token or password goes there, whatever it holds; a worker
# that needs one must fetch it with its role. A worker's id is its instance's own.
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL")
NOT_FOR_WORKERS = frozenset({c.WORKER_ID})


# EC2 tags every instance launched from a template with the template and its version.
TEMPLATE_ID_TAG = "aws:ec2launchtemplate:id"
TEMPLATE_VERSION_TAG = "aws:ec2launchtemplate:version"


class NoDefaultVpcError(SkyclassError):
    """The region has no default VPC for the workers."""

    code = "NoDefaultVpc"


@dataclass(frozen=True)
class WorkerLaunch:
    """How the pool's instances are launched: the template's default version is what a
    pool member must have been launched from to be current."""

    launch_template_id: str
    instance_profile_arn: str
    security_group_id: str
    template_version: int = 1

    def launched_from_current(self, instance: dict[str, Any]) -> bool:
        """Whether ``instance`` (as DescribeInstances answers) came from the current
        version of the template: the AMI, settings and disk the stage has now."""
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        return (tags.get(TEMPLATE_ID_TAG) == self.launch_template_id
                and tags.get(TEMPLATE_VERSION_TAG) == str(self.template_version))


def ensure_worker_launch(aws: AwsClients, settings: Settings, resources: StageResources,
                         account: str, ami_id: str) -> WorkerLaunch:
    profile_arn = ensure_instance_profile(aws, StageArns.of(resources, aws.region, account))
    group_id = ensure_security_group(aws, settings.stage)
    template_id, version = ensure_launch_template(
        aws, settings, ami_id, profile_arn, group_id, worker_user_data(settings, resources))
    return WorkerLaunch(template_id, profile_arn, group_id, version)


def worker_user_data(settings: Settings, resources: StageResources) -> str:
    """``NAME=value`` lines for ``fetch-settings``: the stage's settings with the
    provisioned names, so a worker needs nothing from the image but the code; never a
    secret (``SECRET_NAME``)."""
    env = settings.replace(
        input_bucket=resources.input_bucket, output_bucket=resources.output_bucket,
        queue_url=resources.queue_url, dlq_url=resources.dlq_url,
    ).as_env()
    return "".join(f"{name}={value}\n" for name, value in sorted(env.items())
                   if name not in NOT_FOR_WORKERS and not SECRET_NAME.search(name))


# ---- instance profile -------------------------------------------------------------

def ensure_instance_profile(aws: AwsClients, arns: StageArns) -> str:
    """The worker role (its policy rewritten each time, so it follows the names) inside an
    instance profile of the same name; returns the profile's ARN."""
    iam = aws.client("iam")
    name = worker_role_name(arns.stage)
    tags = tag_list(stage_tags(arns.stage))
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                        Description=f"skyclass {arns.stage} worker instances", Tags=tags)
        log.info("created role %s", name)
    except ClientError as exc:
        _unless(exc, "EntityAlreadyExists")
    iam.put_role_policy(RoleName=name, PolicyName=WORKER_POLICY_NAME,
                        PolicyDocument=json.dumps(worker_policy(arns)))
    try:
        profile = iam.create_instance_profile(InstanceProfileName=name, Tags=tags)
        log.info("created instance profile %s", name)
    except ClientError as exc:
        _unless(exc, "EntityAlreadyExists")
        profile = iam.get_instance_profile(InstanceProfileName=name)
    if not any(r["RoleName"] == name for r in profile["InstanceProfile"].get("Roles", [])):
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return profile["InstanceProfile"]["Arn"]


# ---- security group ---------------------------------------------------------------

def ensure_security_group(aws: AwsClients, stage: str) -> str:
    """A group in the default VPC with no inbound rules: workers only call out (SQS, S3,
    CloudWatch); nothing may connect to them."""
    ec2 = aws.ec2
    name = security_group_name(stage)
    found = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [name]},
        stage_filter(stage),
    ])["SecurityGroups"]
    if found:
        group = found[0]
    else:
        _require_default_vpc(aws)
        group_id = ec2.create_security_group(
            GroupName=name, Description=f"skyclass {stage} workers: no inbound",
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": tag_list(stage_tags(stage))}],
        )["GroupId"]
        log.info("created security group %s", group_id)
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group["GroupId"],
                                          IpPermissions=group["IpPermissions"])
    return group["GroupId"]


def _require_default_vpc(aws: AwsClients) -> None:
    """Workers go into the default VPC's public subnets (no NAT gateway to pay for); an
    account can delete it, and then EC2 answers VPCIdNotSpecified deep in a launch."""
    vpcs = aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise NoDefaultVpcError(
            f"no default VPC in {aws.region}: the workers need one (its public subnets reach "
            "SQS and S3 without a NAT gateway). Create it with `aws ec2 create-default-vpc "
            f"--region {aws.region}`, then run this again (docs/deploy.md, \"Default VPC\")")


# ---- launch template --------------------------------------------------------------

def launch_template_data(settings: Settings, ami_id: str, profile_arn: str, group_id: str,
                         user_data: str) -> dict[str, Any]:
    return {
        "ImageId": ami_id,
        "InstanceType": settings.instance_type,
        "IamInstanceProfile": {"Arn": profile_arn},
        "SecurityGroupIds": [group_id],
        "UserData": base64.b64encode(user_data.encode()).decode(),
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        "BlockDeviceMappings": [{"DeviceName": ROOT_DEVICE,
                                 "Ebs": {"VolumeSize": ROOT_VOLUME_GIB,
                                         "Encrypted": True, "VolumeType": "gp3",
                                         "DeleteOnTermination": True}}],
        "TagSpecifications": [
            {"ResourceType": "instance",
             "Tags": tag_list({**worker_tags(settings.stage),
                                "Name": worker_instance_name(settings.stage)})},
            {"ResourceType": "volume", "Tags": tag_list(stage_tags(settings.stage))},
        ],
    }


def ensure_launch_template(aws: AwsClients, settings: Settings, ami_id: str,
                           profile_arn: str, group_id: str, user_data: str) -> tuple[str, int]:
    """The stage's launch template, with a new default version only when what the
    workers launch with has changed (a new AMI, other settings); returns its id and
    its default version."""
    ec2 = aws.ec2
    name = launch_template_name(settings.stage)
    data = launch_template_data(settings, ami_id, profile_arn, group_id, user_data)
    # The version's description carries a digest of its data: comparing it is exact
    # where comparing the data AWS echoes back (normalised, defaults filled) is not.
    description = "skyclass " + hashlib.sha256(
        json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    found = ec2.describe_launch_templates(Filters=[
        {"Name": "launch-template-name", "Values": [name]},
        stage_filter(settings.stage),
    ])["LaunchTemplates"]
    if not found:
        template = ec2.create_launch_template(
            LaunchTemplateName=name, VersionDescription=description, LaunchTemplateData=data,
            TagSpecifications=[{"ResourceType": "launch-template",
                                "Tags": tag_list(stage_tags(settings.stage))}],
        )["LaunchTemplate"]
        log.info("created launch template %s", template["LaunchTemplateId"])
        return template["LaunchTemplateId"], int(template.get("DefaultVersionNumber", 1))
    template_id = found[0]["LaunchTemplateId"]
    current = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["$Default"])["LaunchTemplateVersions"][0]
    version = int(current["VersionNumber"])
    if current.get("VersionDescription") != description:
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template_id, VersionDescription=description,
            LaunchTemplateData=data)["LaunchTemplateVersion"]["VersionNumber"]
        ec2.modify_launch_template(LaunchTemplateId=template_id,
                                   DefaultVersion=str(version))
        log.info("launch template %s: version %s is now the default", template_id, version)
    return template_id, int(version)


def not_yet_visible_to_ec2(exc: ClientError) -> bool:
    """Whether RunInstances refused only because EC2 does not see a new thing yet: an
    instance profile IAM just created (it propagates within a minute or two), or an
    image just made available."""
    message = exc.response.get("Error", {}).get("Message", "")
    return ((error_code(exc) == "InvalidParameterValue" and "iamInstanceProfile" in message)
            or error_code(exc) == "InvalidAMIID.NotFound")


def _unless(exc: ClientError, code: str) -> None:
    if exc.response["Error"]["Code"] != code:
        raise exc

