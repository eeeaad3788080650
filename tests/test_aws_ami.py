"""``batchpipes aws build-ami`` with moto, both flavours (gpu: the default, cpu): SSM lookup, launch
parameters (IMDSv2, encrypted EBS), image and tags, and the build instance terminated at the end, also
when provisioning or image creation fails. The user-data script is checked with shellcheck in both
renderings, its GPU-only parts are checked to be guarded by the flavour, and its fetch_and_run.sh is
run for its error paths."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from batchpipes import cli
from batchpipes.aws import ami
from batchpipes.aws.session import session
from batchpipes.errors import UserError
from botocore.awsrequest import AWSResponse
from moto import mock_aws

REGION = "eu-west-1"




def _network(ec2) -> tuple[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="bp-ami", Description="ami build", VpcId=vpc)["GroupId"]
    return subnet, sg


def _stop_build_instance_when_launched(ec2, stop_event: threading.Event) -> threading.Thread:
    """Play the part of the user-data script's final poweroff: stop the build instance once it runs."""

    def run() -> None:
        while not stop_event.is_set():
            found = ec2.describe_instances(Filters=[
                {"Name": "tag:batchpipes:role", "Values": ["ami-build"]},
                {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
            for r in found:
                ec2.stop_instances(InstanceIds=[i["InstanceId"] for i in r["Instances"]])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _build_instances(ec2) -> list[dict]:
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:batchpipes:role", "Values": ["ami-build"]}])
    return [i for r in reservations["Reservations"] for i in r["Instances"]]


@mock_aws
def test_base_image_from_ssm(fake_aws: str) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    image = ami.base_image(ssm)
    assert re.fullmatch(r"ami-[0-9a-f]+", image)
    with pytest.raises(UserError, match="cannot read SSM parameter /nope"):
        ami.base_image(ssm, "/nope")


@mock_aws
def test_build_flow(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    stop = threading.Event()
    _stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, scratch_gb=300, name="bp-test-ami",
                         poll_seconds=0.05, provision_timeout=30)
    try:
        ami_id = ami.build_ami(session(REGION), build, wait_available=True)
    finally:
        stop.set()
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    assert image["Name"] == "bp-test-ami"
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    base = boto3.client("ssm", region_name=REGION).get_parameter(Name=ami.SSM_GPU_AMI)["Parameter"]["Value"]
    assert tags["batchpipes:base-ami"] == base and tags["project"] == "batchpipes"
    assert tags["batchpipes:role"] == "ecs-gpu-host" and tags["Name"] == "bp-test-ami"

    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["ImageId"] == base
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["InstanceType"] == "g4dn.xlarge"
    assert instance["SubnetId"] == subnet
    assert "ECS GPU host" in image["Description"]
    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    sent = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert sent == ami.render_userdata("gpu") == ami.USERDATA.read_text()  # the gpu flavour is the file as is
    assert re.search(r"^BP_FLAVOR=gpu$", sent, re.M)


@mock_aws
def test_cpu_build_flow(fake_aws: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    sess = session(REGION)
    launched: list[dict] = []
    sess.events.register("provide-client-params.ec2.RunInstances",
                         lambda params, **kwargs: launched.append(dict(params)))
    stop = threading.Event()
    _stop_build_instance_when_launched(ec2, stop)
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
    assert image["Description"] == f"batchpipes ECS CPU host for Cromwell on AWS Batch, from {cpu_base}"
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["batchpipes:role"] == "ecs-cpu-host" and tags["batchpipes:flavor"] == "cpu"
    assert tags["batchpipes:base-ami"] == cpu_base and tags["Name"] == image["Name"]

    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["ImageId"] == cpu_base and instance["InstanceType"] == "c5.xlarge"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    [request] = launched
    assert request["MetadataOptions"]["HttpTokens"] == "required"
    devices = {m["DeviceName"]: m["Ebs"] for m in request["BlockDeviceMappings"]}
    assert set(devices) == {"/dev/xvda", ami.SCRATCH_DEVICE}
    assert all(ebs["Encrypted"] is True for ebs in devices.values())
    assert devices[ami.SCRATCH_DEVICE]["VolumeSize"] == 500

    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    sent = base64.b64decode(user_data["UserData"]["Value"]).decode()
    assert sent == ami.render_userdata("cpu")
    assert re.findall(r"^BP_FLAVOR=.*$", sent, re.M) == ["BP_FLAVOR=cpu"]
    for needed in ('--install-dir "${AWSCLI_DIR}"', "awscli-exe-linux-", "/usr/local/bin/fetch_and_run.sh",
                   "BATCH_FILE_S3_URL", "/cromwell_root", ami.READY_MARK):
        assert needed in sent, needed


def test_launch_request_encrypts_every_volume() -> None:
    build = ami.AmiBuild(subnet_id="subnet-0123abcd", security_group_id="sg-0123abcd", scratch_gb=750,
                         name="n", kms_key_id="alias/ebs")
    req = ami.run_instances_request(build, "ami-12345678", "/dev/xvda", "#!/bin/bash\n")
    assert req["MetadataOptions"]["HttpTokens"] == "required"
    devices = {m["DeviceName"]: m["Ebs"] for m in req["BlockDeviceMappings"]}
    assert devices["/dev/xvda"]["Encrypted"] is True and devices["/dev/xvdb"]["Encrypted"] is True
    assert devices["/dev/xvdb"]["VolumeSize"] == 750 and devices["/dev/xvdb"]["KmsKeyId"] == "alias/ebs"
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
    _stop_build_instance_when_launched(ec2, stop)
    build = ami.AmiBuild(subnet_id=subnet, security_group_id=sg, flavor=flavor, name="bp-dup", poll_seconds=0.05,
                         provision_timeout=30)
    try:
        with pytest.raises(UserError, match="InvalidAMIName.Duplicate"):
            ami.build_ami(sess, build)
    finally:
        stop.set()
    [instance] = _build_instances(ec2)
    assert instance["State"]["Name"] == "terminated"
    assert instance["InstanceType"] == {"gpu": "g4dn.xlarge", "cpu": "c5.xlarge"}[flavor]
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
    _stop_build_instance_when_launched(ec2, stop)
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
    (["--subnet-id", "subnet-0123abcd", "--security-group-id", "sg-0123abcd", "--scratch-gb", "5"], "--scratch-gb"),
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
    (["--flavor", "cpu"], "c5.xlarge", "ecs-cpu-host"),
    (["--flavor", "cpu", "--instance-type", "m5.large"], "m5.large", "ecs-cpu-host"),
], ids=["default-gpu", "cpu", "cpu-instance-type"])
def test_cli_end_to_end_against_moto_server(aws_env: str, capsys: pytest.CaptureFixture[str], extra: list[str],
                                            instance_type: str, role: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet, sg = _network(ec2)
    stop = threading.Event()
    _stop_build_instance_when_launched(ec2, stop)
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


# -- the user-data script -------------------------------------------------------------------------


def test_userdata_is_shellcheck_clean(tmp_path: Path) -> None:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (scripts/bootstrap.sh installs it)"
    text = ami.USERDATA.read_text()
    fetch = tmp_path / "fetch_and_run.sh"
    fetch.write_text(re.search(r"<< 'SCRIPT'\n(.*?)\nSCRIPT\n", text, re.S)[1] + "\n")
    paths = [ami.USERDATA, fetch]
    for flavor in ami.FLAVORS:
        rendered = ami.render_userdata(flavor)
        assert rendered.startswith("#!/bin/bash\n") and len(rendered.encode()) < 16384  # EC2 user-data limit
        paths.append(tmp_path / f"userdata-{flavor}.sh")
        paths[-1].write_text(rendered)
    for path in paths:
        proc = subprocess.run([exe, str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (path.name, proc.stdout)


def test_rendering_changes_only_the_flavor_line() -> None:
    original = ami.USERDATA.read_text().splitlines()
    for flavor in ami.FLAVORS:
        rendered = ami.render_userdata(flavor).splitlines()
        assert len(rendered) == len(original)
        changed = [(a, b) for a, b in zip(original, rendered, strict=True) if a != b]
        assert changed == ([] if flavor == "gpu" else [("BP_FLAVOR=gpu", f"BP_FLAVOR={flavor}")])
        # the flavour is set before anything runs (only comments and blank lines above it)
        index = rendered.index(f"BP_FLAVOR={flavor}")
        assert all(not line.strip() or line.startswith("#") for line in rendered[:index])


_GPU_GUARD = 'if [ "${BP_FLAVOR}" = gpu ]; then'


def _gpu_guarded_lines(lines: list[str]) -> set[int]:
    """Indices of the lines inside ``if [ "${BP_FLAVOR}" = gpu ]; then ... fi`` blocks."""
    guarded: set[int] = set()
    depth = 0
    for i, line in enumerate(lines):
        word = line.strip()
        if depth == 0:
            if word == _GPU_GUARD:
                depth = 1
            continue
        if word.startswith("if ") and word.endswith("; then"):
            depth += 1
        elif word == "fi":
            depth -= 1
        if depth:
            guarded.add(i)
    assert depth == 0, "unterminated gpu block"
    return guarded


def test_gpu_parts_run_only_on_the_gpu_flavor() -> None:
    lines = ami.USERDATA.read_text().splitlines()
    guarded = _gpu_guarded_lines(lines)
    code = [(i, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    gpu_code = [line for i, line in code if re.search(r"nvidia|GPU", line)]
    assert any("nvidia-container-runtime" in line for line in gpu_code)
    assert any('default-runtime\\"] = \\"nvidia' in line for line in gpu_code)
    assert any("set_ecs ECS_ENABLE_GPU_SUPPORT true" in line for line in gpu_code)
    for i, line in code:
        if re.search(r"nvidia|GPU", line):
            assert i in guarded, f"line {i + 1} is GPU-specific but runs on cpu hosts too: {line.strip()}"
    # and nothing a CPU host needs hides in the gpu blocks
    inside = "\n".join(lines[i] for i in sorted(guarded))
    for shared in ("aws-cli", "fetch_and_run", "jq --arg", "data-root", "set_ecs ECS_ENABLE_TASK_IAM_ROLE",
                   "mkfs", "ECS_IMAGE_PULL_BEHAVIOR", "say \"ready\""):
        assert shared not in inside, shared


def test_userdata_provides_what_cromwell_mounts() -> None:
    for flavor in ami.FLAVORS:
        text = ami.render_userdata(flavor)
        for needed in ("/usr/local/aws-cli", '--install-dir "${AWSCLI_DIR}"', "/usr/local/bin/fetch_and_run.sh",
                       "/cromwell_root", "ECS_ENABLE_TASK_IAM_ROLE", "ECS_DISABLE_PRIVILEGED true",
                       "rm -rf /var/lib/ecs/data/*", ami.READY_MARK, "poweroff", "trap 'on_error $LINENO' ERR",
                       'gpu | cpu) ;;'):
            assert needed in text, (flavor, needed)
        assert not re.search(r"set_ecs ECS_CLUSTER|^ECS_CLUSTER=", text, re.M)  # AWS Batch sets it at launch


@pytest.mark.parametrize("env, message", [
    ({}, "BATCH_FILE_TYPE=script only"),
    ({"BATCH_FILE_TYPE": "zip", "BATCH_FILE_S3_URL": "s3://b/k"}, "got 'zip'"),
    ({"BATCH_FILE_TYPE": "script", "BATCH_FILE_S3_URL": "https://b/k"}, "must be an s3:// URL"),
])
def test_fetch_and_run_rejects_bad_environment(tmp_path: Path, env: dict[str, str], message: str) -> None:
    text = ami.USERDATA.read_text()
    fetch = tmp_path / "fetch_and_run.sh"
    fetch.write_text(re.search(r"<< 'SCRIPT'\n(.*?)\nSCRIPT\n", text, re.S)[1] + "\n")
    proc = subprocess.run(["bash", str(fetch)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and message in proc.stderr
