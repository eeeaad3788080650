"""The contract between the host AMI and the CloudFormation template that launches it: the scratch volume the
template maps is the one bp-scratch looks for (device name, encrypted gp3, sized by ScratchGiB), the template's
root size can hold the image's root snapshot, and an image from ``build-ami`` (moto) passes the deploy's AMI
check while an Amazon Linux 2 build (no ``batchpipes:os``) does not."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from batchpipes import settings
from batchpipes.aws import ami, stack
from batchpipes.aws.session import session
from batchpipes.errors import UserError
from conftest import stop_build_instance_when_launched
from moto import mock_aws

TEMPLATE = Path(settings.REPO_ROOT) / "cloudformation" / "batchpipes.yaml"
REGION = "eu-west-1"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !Sub, ...) read as {"Fn": value}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    assert TEMPLATE.is_file(), f"{TEMPLATE} is missing"
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def _launch_templates(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {name: r["Properties"]["LaunchTemplateData"] for name, r in template["Resources"].items()
             if r["Type"] == "AWS::EC2::LaunchTemplate"}
    assert found, "no launch template in the CloudFormation template"
    return found


def test_every_launch_template_maps_the_scratch_volume_bp_scratch_looks_for(template: dict[str, Any]) -> None:
    scratch_name = re.search(r"^BP_EBS_NAME=(\w+)$", ami.USERDATA.read_text(), re.M)
    assert scratch_name and f"/dev/{scratch_name[1]}" == ami.SCRATCH_DEVICE == "/dev/xvdb"
    for name, data in _launch_templates(template).items():
        devices = {m["DeviceName"]: m.get("Ebs", {}) for m in data["BlockDeviceMappings"]}
        scratch = devices.get(ami.SCRATCH_DEVICE)
        assert scratch is not None, f"{name} does not map {ami.SCRATCH_DEVICE}: bp-scratch would refuse to start"
        assert scratch["Encrypted"] is True and scratch["VolumeType"] == "gp3", name
        assert scratch["VolumeSize"] == {"Ref": "ScratchGiB"} and scratch["DeleteOnTermination"] is True, name
        assert "SnapshotId" not in scratch, f"{name}: scratch must be blank, bp-scratch refuses a file system"


def test_the_template_root_size_fits_the_image_root(template: dict[str, Any]) -> None:
    root_params = set()
    for name, data in _launch_templates(template).items():
        devices = {m["DeviceName"]: m.get("Ebs", {}) for m in data["BlockDeviceMappings"]}
        assert "/dev/xvda" in devices, f"{name} does not size the root volume (/dev/xvda on the AL2023 ECS AMIs)"
        size = devices["/dev/xvda"]["VolumeSize"]
        assert isinstance(size, dict) and "Ref" in size, name
        root_params.add(size["Ref"])
    for param in root_params:
        # EC2 refuses a root volume smaller than the image's root snapshot (ami.ROOT_GB)
        assert int(template["Parameters"][param]["MinValue"]) >= ami.ROOT_GB, param
    assert int(template["Parameters"]["ScratchGiB"]["MinValue"]) >= 1


def test_the_tags_build_ami_sets_are_the_ones_deploy_checks() -> None:
    build = ami.AmiBuild(subnet_id="subnet-0123abcd", security_group_id="sg-0123abcd", flavor="cpu", name="n")
    tags = ami.image_tags(build, "ami-0fac451d91e95f35c")
    assert tags[stack.FLAVOR_TAG] == "cpu" and tags[stack.OS_TAG] == stack.HOST_OS == ami.OS_TAG




@mock_aws
def test_deploy_accepts_a_built_image_and_refuses_an_al2_one(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="bp-ami", Description="ami build", VpcId=vpc)["GroupId"]
    built = {}
    for flavor in ami.FLAVORS:
        stop = threading.Event()
        stop_build_instance_when_launched(ec2, stop)
        try:
            built[flavor] = ami.build_ami(session(REGION), ami.AmiBuild(
                subnet_id=subnet, security_group_id=sg, flavor=flavor, name=f"bp-contract-{flavor}",
                poll_seconds=0.05, provision_timeout=30))
        finally:
            stop.set()
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    stack.check_ami(ec2, built["gpu"], "gpu", account)
    stack.check_ami(ec2, built["cpu"], "cpu", account)
    with pytest.raises(UserError, match="is a gpu host image, not cpu"):
        stack.check_ami(ec2, built["gpu"], "cpu", account)
    # an image from the Amazon Linux 2 build: the same tags without batchpipes:os
    instance = ec2.run_instances(ImageId=ami.base_image(boto3.client("ssm", region_name=REGION), ami.SSM_CPU_AMI),
                                 MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    old = ec2.create_image(InstanceId=instance, Name="batchpipes-ecs-cpu-20250101-000000", TagSpecifications=[
        {"ResourceType": "image", "Tags": [{"Key": "batchpipes:flavor", "Value": "cpu"},
                                           {"Key": "batchpipes:role", "Value": "ecs-cpu-host"}]}])["ImageId"]
    with pytest.raises(UserError, match="is not an Amazon Linux 2023 host"):
        stack.check_ami(ec2, old, "cpu", account)
