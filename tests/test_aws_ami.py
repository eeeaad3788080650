"""``batchpipes aws build-ami`` with moto, both flavours (gpu: the default, cpu): the Amazon Linux 2023 SSM
lookup (moto's own copies of AWS's public parameters and images), launch parameters (IMDSv2, encrypted EBS),
image without a scratch volume and its tags (batchpipes:os=al2023), requests checked against botocore's EC2
model, and the build instance terminated at the end, also when provisioning or image creation fails. The
user-data script itself is tested in test_aws_ami_host.py."""

from __future__ import annotations

import base64
import re
import threading

import boto3
import botocore.exceptions
import pytest
from batchpipes import cli
from batchpipes.aws import ami
from batchpipes.aws.session import session
from batchpipes.errors import UserError
from botocore.awsrequest import AWSResponse
from botocore.model import ServiceModel
from botocore.validate import ParamValidator
from conftest import stop_build_instance_when_launched
from moto import mock_aws

REGION = "eu-west-1"


def _assert_valid(operation: str, params: dict) -> None:
    """The request passes botocore's validation against the EC2 service model (what boto3 checks before sending)."""
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    model: ServiceModel = ec2.meta.service_model
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def _network(ec2) -> tuple[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="bp-ami", Description="ami build", VpcId=vpc)["GroupId"]
    return subnet, sg




def _build_instances(ec2) -> list[dict]:
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:batchpipes:role", "Values": ["ami-build"]}])
    return [i for r in reservations["Reservations"] for i in r["Instances"]]


@mock_aws
def test_base_image_from_ssm(fake_aws: str) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    names = {}
    for flavor, spec in ami.FLAVORS.items():
        image = ami.base_image(ssm, spec.ssm_parameter)
        assert re.fullmatch(r"ami-[0-9a-f]+", image)
        names[flavor] = ec2.describe_images(ImageIds=[image])["Images"][0]["Name"]
    # AWS's names for the AL2023 ECS images, as moto copies them from AWS
    assert re.fullmatch(r"al2023-ami-ecs-gpu-hvm-2023\.\d\.\d{8}-kernel-[\d.]+-x86_64-ebs", names["gpu"]), names
    assert re.fullmatch(r"al2023-ami-ecs-hvm-2023\.\d\.\d{8}-kernel-[\d.]+-x86_64", names["cpu"]), names
    assert ami.base_image(ssm) == ami.base_image(ssm, ami.SSM_GPU_AMI)
    # a parameter of the account's own (as a user may keep a vetted base image) works the same way
    ssm.put_parameter(Name="/bp/base/gpu", Value="ami-0123456789abcdef0", Type="String")
    assert ami.base_image(ssm, "/bp/base/gpu") == "ami-0123456789abcdef0"
    with pytest.raises(UserError, match="cannot read SSM parameter /nope"):
        ami.base_image(ssm, "/nope")


def test_ssm_parameters_are_the_al2023_ones() -> None:
    assert ami.SSM_CPU_AMI == "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    assert ami.SSM_GPU_AMI == "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    assert {f.ssm_parameter for f in ami.FLAVORS.values()} == {ami.SSM_CPU_AMI, ami.SSM_GPU_AMI}


def _capture(sess, operation: str) -> list[dict]:
    """The parameters of every ``operation`` call made through ``sess``, as the caller passed them."""
    calls: list[dict] = []
    sess.events.register(f"provide-client-params.ec2.{operation}", lambda params, **kwargs: calls.append(dict(params)))
    return calls


@mock_aws
def test_build_flow(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)
    launched, imaged = _capture(sess, "RunInstances"), _capture(sess, "CreateImage")
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, name="bp-test-ami",
                         poll_seconds=0.05, provision_timeout=30)
    try:
        ami_id = ami.build_ami(sess, build, wait_available=True)
    finally:
        stop.set()
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    assert image["Name"] == "bp-test-ami"
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    base = boto3.client("ssm", region_name=REGION).get_parameter(Name=ami.SSM_GPU_AMI)["Parameter"]["Value"]
    assert tags["batchpipes:base-ami"] == base and tags["project"] == "batchpipes"
    assert tags["batchpipes:role"] == "ecs-gpu-host" and tags["Name"] == "bp-test-ami"
    # what the CloudFormation deploy checks before it accepts an image
    assert tags["batchpipes:flavor"] == "gpu" and tags["batchpipes:os"] == "al2023"
    # no scratch snapshot in the image: the build's /dev/xvdb is left out, only the root volume is imaged
    [create] = imaged
    assert create["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvdb", "NoDevice": ""}]
    _assert_valid("CreateImage", create)
    [launch] = launched
    _assert_valid("RunInstances", launch)
    assert ami.SCRATCH_DEVICE not in [m["DeviceName"] for m in image.get("BlockDeviceMappings", [])]

    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["ImageId"] == base
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["InstanceType"] == "g4dn.xlarge"
    assert instance["SubnetId"] == subnet
    assert "ECS GPU host (Amazon Linux 2023)" in image["Description"]
    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    sent = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert sent == ami.render_userdata("gpu")
    assert re.search(r"^BP_FLAVOR=gpu$", sent, re.M)


@mock_aws
def test_cpu_build_flow(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)
    launched = _capture(sess, "RunInstances")
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, flavor="cpu", poll_seconds=0.05,
                         provision_timeout=30)
    try:
        ami_id = ami.build_ami(sess, build, wait_available=True)
    finally:
        stop.set()
    ssm = boto3.client("ssm", region_name=REGION)
    cpu_base = ssm.get_parameter(Name=ami.SSM_CPU_AMI)["Parameter"]["Value"]
    assert cpu_base != ssm.get_parameter(Name=ami.SSM_GPU_AMI)["Parameter"]["Value"]

    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    assert re.fullmatch(r"batchpipes-ecs-cpu-\d{8}-\d{6}", image["Name"]), image["Name"]
    assert image["Description"] == (f"batchpipes ECS CPU host (Amazon Linux 2023) for Cromwell on AWS Batch, "
                                    f"from {cpu_base}")
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["batchpipes:role"] == "ecs-cpu-host" and tags["batchpipes:flavor"] == "cpu"
    assert tags["batchpipes:os"] == "al2023"
    assert tags["batchpipes:base-ami"] == cpu_base and tags["Name"] == image["Name"]

    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["ImageId"] == cpu_base and instance["InstanceType"] == "c6i.xlarge"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    [request] = launched
    assert request["MetadataOptions"]["HttpTokens"] == "required"
    devices = {m["DeviceName"]: m["Ebs"] for m in request["BlockDeviceMappings"]}
    assert set(devices) == {"/dev/xvda", ami.SCRATCH_DEVICE}
    assert all(ebs["Encrypted"] is True for ebs in devices.values())
    # the build's own scratch volume, only for the self-test of bp-scratch.service (c6i has no instance store)
    assert devices[ami.SCRATCH_DEVICE]["VolumeSize"] == ami.BUILD_SCRATCH_GB == 20
    _assert_valid("RunInstances", request)

    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    sent = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert sent == ami.render_userdata("cpu")
    assert re.findall(r"^BP_FLAVOR=.*$", sent, re.M) == ["BP_FLAVOR=cpu"]
    for needed in ('--install-dir "${AWSCLI_DIR}"', "awscli-exe-linux-", "/usr/local/bin/fetch_and_run.sh",
                   "BATCH_FILE_S3_URL", "/cromwell_root", 'say "ready"', 'echo "batchpipes-ami: $*"'):
        assert needed in sent, needed


def test_launch_request_encrypts_every_volume() -> None:
    build = ami.AmiBuild(subnet_id="subnet-0123abcd", security_group_id="sg-0123abcd",
                         name="n", kms_key_id="alias/ebs")
    req = ami.run_instances_request(build, "ami-12345678", "/dev/xvda", ami.render_userdata("gpu"))
    _assert_valid("RunInstances", req)
    assert req["MetadataOptions"]["HttpTokens"] == "required"
    devices = {m["DeviceName"]: m["Ebs"] for m in req["BlockDeviceMappings"]}
    assert devices["/dev/xvda"]["Encrypted"] is True and devices["/dev/xvdb"]["Encrypted"] is True
    assert devices["/dev/xvdb"]["VolumeSize"] == 20 and devices["/dev/xvdb"]["KmsKeyId"] == "alias/ebs"
    assert all(ebs["VolumeType"] == "gp3" for ebs in devices.values())
    assert req["InstanceInitiatedShutdownBehavior"] == "stop"
    # botocore validates the request shape against the real EC2 model
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    ec2.meta.events.register("before-send.ec2.RunInstances", lambda **kw: _Abort())
    with pytest.raises(_Abort.Error):
        ec2.run_instances(**req)


class _Abort:
    """Stops a request after botocore has validated and serialised it (nothing is sent)."""

    class Error(Exception):
        pass

    def __init__(self) -> None:
        raise _Abort.Error()


@pytest.mark.parametrize("flavor", ["gpu", "cpu"])
@mock_aws
def test_instance_is_terminated_when_image_creation_fails(fake_aws: str, flavor: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)

    def refuse(**kwargs) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "InvalidAMIName.Duplicate", "Message": "AMI name bp-dup is already in use"}},
            "CreateImage")

    sess.events.register("before-call.ec2.CreateImage", refuse)
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, flavor=flavor, name="bp-dup", poll_seconds=0.05,
                         provision_timeout=30)
    try:
        with pytest.raises(UserError, match="InvalidAMIName.Duplicate"):
            ami.build_ami(sess, build)
    finally:
        stop.set()
    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["InstanceType"] == {"gpu": "g4dn.xlarge", "cpu": "c6i.xlarge"}[flavor]
    assert ec2.describe_images(Owners=["self"])["Images"] == []


def _console_says(text: str):
    """A before-call handler answering GetConsoleOutput with ``text`` as EC2 sends it (base64; botocore's own
    after-call handler decodes it, as it does for real answers)."""

    def answer(**kwargs):
        output = base64.b64encode(text.encode()).decode()
        return AWSResponse("https://ec2.example", 200, {}, None), {"InstanceId": "i-x", "Output": output}

    return answer


@mock_aws
def test_failed_verdict_on_the_console_stops_a_cpu_build(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)
    console = ("[   8.1] cloud-init[1234]: batchpipes-ami: provisioning started (cpu host)\n"
               "[  95.7] cloud-init[1234]: batchpipes-ami: FAILED at line 52 (exit 6): see "
               "/var/log/cloud-init-output.log\n")
    sess.events.register("before-call.ec2.GetConsoleOutput", _console_says(console))
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, flavor="cpu", name="bp-cpu-failed",
                         poll_seconds=0.05, provision_timeout=30)
    try:
        with pytest.raises(UserError, match=r"failed: batchpipes-ami: FAILED at line 52 \(exit 6\)"):
            ami.build_ami(sess, build)
    finally:
        stop.set()
    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert ec2.describe_images(Owners=["self"])["Images"] == []  # a failed host is never imaged


@mock_aws
def test_instance_is_terminated_when_provisioning_times_out(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, name="bp-slow", poll_seconds=0.05,
                         provision_timeout=0.2)
    with pytest.raises(UserError, match="still 'running'"):
        ami.build_ami(session(REGION), build)
    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"


@mock_aws
def test_bad_network_and_duplicate_name(fake_aws: str, expect_user_error) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)
    msg = expect_user_error(ami.build_ami, sess, ami.AmiBuild(subnet_id="subnet-0000000000000000a",
                                                              security_group_id=sg))
    assert "subnet subnet-0000000000000000a not found" in msg
    msg = expect_user_error(ami.build_ami, sess, ami.AmiBuild(subnet_id=subnet,
                                                              security_group_id="sg-0000000000000000a"))
    assert "security group sg-0000000000000000a not found" in msg
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.create_image(InstanceId=instance, Name="bp-taken")
    msg = expect_user_error(ami.build_ami, sess, ami.AmiBuild(subnet_id=subnet, security_group_id=sg,
                                                              name="bp-taken"))
    assert "named 'bp-taken' exists already" in msg
    assert _build_instances(ec2) == []  # nothing launched


@pytest.mark.parametrize("argv, message", [
    (["--subnet-id", "subnet-xyz", "--security-group-id", "sg-0123abcd"], "malformed subnet id 'subnet-xyz'"),
    (["--subnet-id", "subnet-0123abcd", "--security-group-id", "group"], "malformed security group id 'group'"),
    (["--subnet-id", "subnet-0123abcd", "--security-group-id", "sg-0123abcd", "--region", "mars-north-1"],
     "unknown AWS region 'mars-north-1'"),
])
def test_cli_bad_input(aws_env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert cli.main(["aws", "build-ami", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_cli_unknown_flavor_is_refused(capsys: pytest.CaptureFixture[str], expect_user_error) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["aws", "build-ami", "--flavor", "tpu", "--subnet-id", "subnet-0123abcd",
                  "--security-group-id", "sg-0123abcd"])
    assert exit_info.value.code == 2
    assert "argument --flavor: invalid choice: 'tpu'" in capsys.readouterr().err
    msg = expect_user_error(ami.AmiBuild(subnet_id="subnet-0123abcd", security_group_id="sg-0123abcd",
                                         flavor="tpu").validate)
    assert "unknown AMI flavour 'tpu'" in msg


@pytest.mark.parametrize("extra, instance_type, role", [
    ([], "g4dn.xlarge", "ecs-gpu-host"),
    (["--flavor", "cpu"], "c6i.xlarge", "ecs-cpu-host"),
    (["--flavor", "cpu", "--instance-type", "m5.large"], "m5.large", "ecs-cpu-host"),
], ids=["default-gpu", "cpu", "cpu-instance-type"])
def test_cli_end_to_end_against_moto_server(aws_env: str, capsys: pytest.CaptureFixture[str], extra: list[str],
                                            instance_type: str, role: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    try:
        rc = cli.main(["aws", "build-ami", "--subnet-id", subnet, "--security-group-id", sg, "--name", "bp-e2e",
                       "--poll-seconds", "0.1", "--wait", *extra])
    finally:
        stop.set()
    out, err = capsys.readouterr()
    assert rc == 0, err
    ami_id = out.strip()
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    assert image["Name"] == "bp-e2e"
    assert {t["Key"]: t["Value"] for t in image["Tags"]}["batchpipes:role"] == role
    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated" and instance["InstanceType"] == instance_type


def test_provisioning_verdict() -> None:
    assert ami.provisioning_verdict("boot\nbatchpipes-ami: provisioning started\nbatchpipes-ami: ready\n") is None
    failed = "x\n[  12.3] cloud-init: batchpipes-ami: FAILED at line 40 (exit 6): see log\n"
    assert ami.provisioning_verdict(failed) == "batchpipes-ami: FAILED at line 40 (exit 6): see log"
    with pytest.raises(LookupError):
        ami.provisioning_verdict("nothing here")


def test_create_image_request_is_valid_and_leaves_scratch_out() -> None:
    build = ami.AmiBuild(subnet_id="subnet-0123abcd", security_group_id="sg-0123abcd", flavor="cpu",
                         name="batchpipes-ecs-cpu-20261202-230000", extra_tags={"team": "md"})
    req = ami.create_image_request(build, "i-0123456789abcdef0", "ami-0fac451d91e95f35c")
    _assert_valid("CreateImage", req)
    assert req["BlockDeviceMappings"] == [{"DeviceName": ami.SCRATCH_DEVICE, "NoDevice": ""}]
    [spec] = req["TagSpecifications"]
    tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
    assert spec["ResourceType"] == "image"
    assert tags == {**tags, "batchpipes:os": "al2023", "batchpipes:flavor": "cpu", "team": "md",
                    "batchpipes:base-ami": "ami-0fac451d91e95f35c", "batchpipes:role": "ecs-cpu-host"}


@pytest.mark.parametrize("flavor, base_parameter, message", [
    ("gpu", "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id",
     r"\('amzn2-ami-ecs-gpu-hvm-[^']+'\) is not the ECS GPU-optimised Amazon Linux 2023 AMI"),
    ("cpu", "/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id",
     r"\('amzn2-ami-ecs-hvm-[^']+'\) is not the ECS-optimised Amazon Linux 2023 AMI"),
    ("gpu", ami.SSM_CPU_AMI, r"\('al2023-ami-ecs-hvm-[^']+'\) is not the ECS GPU-optimised Amazon Linux 2023 AMI"),
], ids=["gpu-on-al2", "cpu-on-al2", "gpu-on-cpu-base"])
@mock_aws
def test_wrong_base_ami_is_refused_before_launch(fake_aws: str, flavor: str, base_parameter: str,
                                                 message: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    base = boto3.client("ssm", region_name=REGION).get_parameter(Name=base_parameter)["Parameter"]["Value"]
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, flavor=flavor, base_ami=base, name="bp-wrong")
    with pytest.raises(UserError, match=message):
        ami.build_ami(session(REGION), build)
    assert _build_instances(ec2) == []  # nothing launched


@mock_aws
def test_registered_al2023_base_ami_is_accepted(fake_aws: str) -> None:
    """An account's own copy of the AL2023 GPU AMI (same name scheme) passed as --base-ami."""
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    source = boto3.client("ssm", region_name=REGION).get_parameter(Name=ami.SSM_GPU_AMI)["Parameter"]["Value"]
    donor = ec2.run_instances(ImageId=source, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    copy = ec2.create_image(InstanceId=donor, Name="al2023-ami-ecs-gpu-hvm-2023.0.20261101-kernel-6.12-x86_64-ebs")
    ec2.terminate_instances(InstanceIds=[donor])
    stop = threading.Event()
    stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, base_ami=copy["ImageId"], name="bp-own-base",
                         poll_seconds=0.05, provision_timeout=30)
    try:
        ami_id = ami.build_ami(session(REGION), build)
    finally:
        stop.set()
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[ami_id])["Images"][0]["Tags"]}
    assert tags["batchpipes:base-ami"] == copy["ImageId"]
