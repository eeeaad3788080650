"""The ECS host AMIs (GPU or CPU flavour) for Cromwell's AWS Batch backend, on Amazon Linux 2023.

Flow: look up the flavour's ECS-optimised Amazon Linux 2023 AMI (public SSM parameter: the GPU variant
for ``gpu``, the standard one for ``cpu``), launch one instance from it with ``ami_userdata.sh`` as
user-data (its ``BP_FLAVOR=`` line set to the flavour; IMDSv2 only, encrypted EBS root and a small
encrypted EBS volume at /dev/xvdb on which the script self-tests the scratch unit), wait until the script has
powered the instance off, check its verdict on the serial console, create and tag the image *without* the
/dev/xvdb volume (scratch is prepared at every boot on the instance that runs the image: instance-store NVMe
when present, else the launch template's /dev/xvdb volume), and terminate the instance, also when any step
fails.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from ..errors import UserError
from .constants import PROJECT_TAGS
from .session import client, describe_error

log = logging.getLogger(__name__)

# AWS's public parameters for the ECS-optimised Amazon Linux 2023 AMIs (Amazon ECS developer guide, "Retrieving
# Amazon ECS-optimized Linux AMI metadata"); Amazon Linux 2 reached end of support on 2026-06-30.
SSM_GPU_AMI = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
SSM_CPU_AMI = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
OS_TAG = "al2023"
USERDATA = Path(__file__).with_name("ami_userdata.sh")
#: the device name the scratch unit looks for: the launch template maps the scratch EBS volume here
SCRATCH_DEVICE = "/dev/xvdb"
#: the build instance's own scratch volume, only for the self-test; it is left out of the image
BUILD_SCRATCH_GB = 20
#: the AL2023 ECS AMIs' root size; docker's storage is on scratch, so the root needs no more, and launch templates may
#: map any root size from this up (a smaller one than the image's snapshot is refused by EC2)
ROOT_GB = 30
#: EC2's limit on user-data, before base64 (EC2 user guide, "Run commands when you launch an EC2 instance")
USERDATA_LIMIT = 16 * 1024
READY_MARK = "batchpipes-ami: ready"
FAILED_MARK = "batchpipes-ami: FAILED"
BUILD_TAGS = {**PROJECT_TAGS, "batchpipes:role": "ami-build"}

_SUBNET_RE = re.compile(r"subnet-[0-9a-f]{8,17}")
_SG_RE = re.compile(r"sg-[0-9a-f]{8,17}")
_AMI_NAME_RE = re.compile(r"[A-Za-z0-9()\[\] ./'@_-]{3,128}")
_FLAVOR_LINE_RE = re.compile(r"^BP_FLAVOR=.*$", re.M)
#: comment lines the rendering blanks (not shebangs, not shellcheck directives, not inside here-documents)
_COMMENT_RE = re.compile(r"^[ \t]*#(?!!)(?![ \t]*shellcheck ).*$")
_HEREDOC_START_RE = re.compile(r"<< '(\w+)'$")


@dataclass(frozen=True)
class Flavor:
    """What differs between the GPU and the CPU host image; everything else is shared."""

    name: str
    ssm_parameter: str
    instance_type: str
    #: the base AMI as named in the command's help
    base_label: str
    #: what the name of a base AMI of this flavour contains (AWS names them al2023-ami-ecs-[gpu-]hvm-...)
    base_name_prefix: str

    @property
    def role(self) -> str:
        return f"ecs-{self.name}-host"


# Build instance types: g4dn.xlarge is the cheapest NVIDIA (T4) type and has one instance-store NVMe disk, so the
# gpu build self-tests the instance-store path of the scratch unit; c6i.xlarge has none, so the cpu build tests
# the EBS /dev/xvdb path. The images run on any x86_64 type of their flavour (g4dn, g5, g6, c6i, c7i, m7i ...).
FLAVORS: dict[str, Flavor] = {
    "gpu": Flavor("gpu", SSM_GPU_AMI, "g4dn.xlarge", "ECS GPU-optimised Amazon Linux 2023", "al2023-ami-ecs-gpu-"),
    "cpu": Flavor("cpu", SSM_CPU_AMI, "c6i.xlarge", "ECS-optimised Amazon Linux 2023", "al2023-ami-ecs-"),
}
DEFAULT_FLAVOR = "gpu"


@dataclass
class AmiBuild:
    """Settings of one build; see ``build_ami``."""

    subnet_id: str
    security_group_id: str
    flavor: str = DEFAULT_FLAVOR
    #: empty: the flavour's default (g4dn.xlarge for gpu, c6i.xlarge for cpu)
    instance_type: str = ""
    name: str = ""
    base_ami: str | None = None
    kms_key_id: str | None = None
    instance_profile: str | None = None
    #: seconds between state polls and the longest wait for provisioning / the image
    poll_seconds: float = 15.0
    provision_timeout: float = 45 * 60
    image_timeout: float = 60 * 60
    extra_tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.instance_type and self.flavor in FLAVORS:
            self.instance_type = FLAVORS[self.flavor].instance_type

    @property
    def spec(self) -> Flavor:
        try:
            return FLAVORS[self.flavor]
        except KeyError:
            raise UserError(f"unknown AMI flavour '{self.flavor}': use one of {', '.join(FLAVORS)}") from None

    def validate(self) -> None:
        _ = self.spec  # raises UserError for an unknown flavour
        if not self.instance_type:
            raise UserError("--instance-type must not be empty")
        if not _SUBNET_RE.fullmatch(self.subnet_id):
            raise UserError(f"malformed subnet id '{self.subnet_id}': expected subnet-<8 or 17 hex digits>")
        if not _SG_RE.fullmatch(self.security_group_id):
            raise UserError(f"malformed security group id '{self.security_group_id}': expected sg-<hex digits>")
        if self.name and not _AMI_NAME_RE.fullmatch(self.name):
            raise UserError(f"invalid AMI name '{self.name}': 3-128 letters, digits and ()[] ./'@_-")


def default_name(flavor: str = DEFAULT_FLAVOR) -> str:
    return time.strftime(f"batchpipes-ecs-{flavor}-%Y%m%d-%H%M%S", time.gmtime())


def render_userdata(flavor: str) -> str:
    """``ami_userdata.sh`` with its ``BP_FLAVOR=`` line set to the flavour (the file itself says gpu) and its own
    comment lines blanked (the files it installs keep theirs), to stay under EC2's 16 KiB; line numbers (the
    console's "FAILED at line N") still match the file."""
    if flavor not in FLAVORS:
        raise UserError(f"unknown AMI flavour '{flavor}': use one of {', '.join(FLAVORS)}")
    rendered, count = _FLAVOR_LINE_RE.subn(f"BP_FLAVOR={flavor}", USERDATA.read_text())
    if count != 1:
        raise RuntimeError(f"{USERDATA} must have exactly one BP_FLAVOR= line, found {count}")
    rendered = _blank_comments(rendered)
    size = len(rendered.encode())
    if size > USERDATA_LIMIT:
        raise RuntimeError(f"rendered {USERDATA.name} is {size} bytes, above EC2's user-data limit {USERDATA_LIMIT}")
    return rendered


def _blank_comments(script: str) -> str:
    """The script with its own comment lines emptied; the files it writes (here-documents) keep theirs."""
    lines = script.split("\n")
    delimiter = None
    for i, line in enumerate(lines):
        if delimiter is not None:
            if line == delimiter:
                delimiter = None
            continue
        start = _HEREDOC_START_RE.search(line)
        if start:
            delimiter = start[1]
        elif _COMMENT_RE.match(line):
            lines[i] = ""
    return "\n".join(lines)


def _tags(d: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in d.items()]


def base_image(ssm: Any, parameter: str = SSM_GPU_AMI) -> str:
    """The current AMI id that a public SSM parameter names (default: the ECS GPU-optimised AL2023 AMI)."""
    try:
        return str(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"cannot read SSM parameter {parameter}: {describe_error(exc)}") from exc


def run_instances_request(build: AmiBuild, image_id: str, root_device: str, user_data: str) -> dict[str, Any]:
    """The RunInstances parameters (pure, so that tests can read them)."""
    ebs_common: dict[str, Any] = {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    if build.kms_key_id:
        ebs_common["KmsKeyId"] = build.kms_key_id
    tags = {**BUILD_TAGS, **build.extra_tags, "Name": f"{build.name}-build"}
    request: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": build.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": build.subnet_id,
        "SecurityGroupIds": [build.security_group_id],
        "UserData": user_data,
        "InstanceInitiatedShutdownBehavior": "stop",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [
            {"DeviceName": root_device, "Ebs": {**ebs_common, "VolumeSize": ROOT_GB}},
            {"DeviceName": SCRATCH_DEVICE, "Ebs": {**ebs_common, "VolumeSize": BUILD_SCRATCH_GB}},
        ],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": _tags(tags)},
            {"ResourceType": "volume", "Tags": _tags(tags)},
        ],
    }
    if build.instance_profile:
        request["IamInstanceProfile"] = {"Name": build.instance_profile}
    return request


def check_base(build: AmiBuild, image_id: str, image: dict[str, Any]) -> None:
    """Refuse a base AMI that is not an ECS-optimised Amazon Linux 2023 image of the flavour (by its name, which
    AWS sets as al2023-ami-ecs-hvm-... or al2023-ami-ecs-gpu-hvm-...), before anything is launched: the
    user-data needs dnf and, on gpu, the NVIDIA driver and container toolkit of the GPU variant."""
    name = str(image.get("Name") or "")
    if not name.startswith(build.spec.base_name_prefix):
        raise UserError(f"base AMI {image_id} ('{name}') is not the {build.spec.base_label} AMI "
                        f"(name {build.spec.base_name_prefix}...): omit --base-ami to use {build.spec.ssm_parameter}")


def image_tags(build: AmiBuild, base_id: str) -> dict[str, str]:
    """The tags of the image and its snapshots; deploy refuses images without batchpipes:flavor and
    batchpipes:os=al2023."""
    return {**BUILD_TAGS, **build.extra_tags, "Name": build.name, "batchpipes:base-ami": base_id,
            "batchpipes:role": build.spec.role, "batchpipes:flavor": build.flavor, "batchpipes:os": OS_TAG}


def create_image_request(build: AmiBuild, instance_id: str, base_id: str) -> dict[str, Any]:
    """The CreateImage parameters (pure): the build's scratch volume stays out of the image (NoDevice), so no
    scratch snapshot is baked in; instances get theirs from the launch template or instance store."""
    return {
        "InstanceId": instance_id,
        "Name": build.name,
        "Description": f"batchpipes ECS {build.flavor.upper()} host (Amazon Linux 2023) for Cromwell on AWS Batch, "
                       f"from {base_id}",
        "BlockDeviceMappings": [{"DeviceName": SCRATCH_DEVICE, "NoDevice": ""}],
        "TagSpecifications": [{"ResourceType": "image", "Tags": _tags(image_tags(build, base_id))}],
    }


def _wait(describe: Callable[[], str], wanted: str, *, fail_on: tuple[str, ...], timeout: float, poll: float,
          what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = describe()
        if state == wanted:
            return
        if state in fail_on:
            raise UserError(f"{what}: state became '{state}'")
        if time.monotonic() > deadline:
            raise UserError(f"{what}: still '{state}' after {timeout / 60:.0f} minutes")
        time.sleep(poll)


def _instance_state(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def _image_state(ec2: Any, image_id: str) -> str:
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    return str(images[0]["State"]) if images else "missing"


def provisioning_verdict(console: str) -> str | None:
    """The FAILED line of the user-data script, None when it reported ready; raises if it said nothing."""
    for line in console.splitlines():
        if FAILED_MARK in line:
            return line[line.index(FAILED_MARK):].strip()
    if READY_MARK in console:
        return None
    raise LookupError("no verdict on the console")


def build_ami(sess: boto3.session.Session, build: AmiBuild, *, wait_available: bool = False) -> str:
    """Build the AMI and return its id; the build instance is terminated whatever happens."""
    build.validate()
    build.name = build.name or default_name(build.flavor)
    ec2 = client(sess, "ec2")
    ssm = client(sess, "ssm")
    try:
        _check_network(ec2, build)
        if ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [build.name]}])["Images"]:
            raise UserError(f"an AMI named '{build.name}' exists already: pass another --name")
        image_id = build.base_ami or base_image(ssm, build.spec.ssm_parameter)
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
        if not found:
            raise UserError(f"base AMI {image_id} not found in {sess.region_name}")
        check_base(build, image_id, found[0])
        root_device = str(found[0].get("RootDeviceName") or "/dev/xvda")
        request = run_instances_request(build, image_id, root_device, render_userdata(build.flavor))
        instance_id = str(ec2.run_instances(**request)["Instances"][0]["InstanceId"])
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"cannot launch the build instance: {describe_error(exc)}") from exc
    log.info("%s build instance %s (%s, from %s) is provisioning; this takes about 10 minutes",
             build.flavor, instance_id, build.instance_type, image_id)
    try:
        _wait(lambda: _instance_state(ec2, instance_id), "stopped", fail_on=("terminated", "shutting-down"),
              timeout=build.provision_timeout, poll=build.poll_seconds,
              what=f"provisioning of {instance_id}")
        console = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "") or ""
        try:
            failure = provisioning_verdict(console)
        except LookupError:
            log.warning("no verdict from the user-data script on the console of %s; imaging it anyway", instance_id)
            failure = None
        if failure:
            raise UserError(f"provisioning of {instance_id} failed: {failure}")
        ami_id = str(ec2.create_image(**create_image_request(build, instance_id, image_id))["ImageId"])
        log.info("image %s (%s) is being created", ami_id, build.name)
        _tag_snapshots(ec2, ami_id, _tags(image_tags(build, image_id)))
        if wait_available:
            _wait(lambda: _image_state(ec2, ami_id), "available", fail_on=("failed", "error", "deregistered"),
                  timeout=build.image_timeout, poll=build.poll_seconds, what=f"image {ami_id}")
            log.info("image %s is available", ami_id)
        return ami_id
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"AMI build failed: {describe_error(exc)}") from exc
    finally:
        try:
            ec2.terminate_instances(InstanceIds=[instance_id])
            log.info("terminated build instance %s", instance_id)
        except botocore.exceptions.ClientError as exc:
            log.error("could not terminate build instance %s: %s: terminate it by hand",
                      instance_id, describe_error(exc))


def _check_network(ec2: Any, build: AmiBuild) -> None:
    try:
        ec2.describe_subnets(SubnetIds=[build.subnet_id])
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"subnet {build.subnet_id} not found: {describe_error(exc)}") from exc
    try:
        ec2.describe_security_groups(GroupIds=[build.security_group_id])
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"security group {build.security_group_id} not found: {describe_error(exc)}") from exc


def _tag_snapshots(ec2: Any, ami_id: str, tags: list[dict[str, str]]) -> None:
    images = ec2.describe_images(ImageIds=[ami_id])["Images"]
    snapshots = [m["Ebs"]["SnapshotId"] for img in images for m in img.get("BlockDeviceMappings", [])
                 if m.get("Ebs", {}).get("SnapshotId")]
    if snapshots:
        ec2.create_tags(Resources=snapshots, Tags=tags)
