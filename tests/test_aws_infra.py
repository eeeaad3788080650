"""Batch infrastructure against moto: idempotent deploy, least-privilege IAM, IMDSv2/encryption, MNP, teardown.

moto implements Batch, IAM, EC2 launch templates and STS, but not EC2 placement groups. Those three calls
(Describe/Create/DeletePlacementGroup) are answered by ``PlacementGroupsAPI`` below, which keeps botocore's
validation on both sides: our requests are checked against the EC2 input shapes and the answers against the
output shapes, as botocore's Stubber does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batchpipes import containers
from batchpipes.aws import iam, infra
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters
from moto import mock_aws

REGION = "eu-west-1"
BUCKETS = ["bp-data", "bp-scripts"]


class PlacementGroupsAPI:
    OPS = ("DescribePlacementGroups", "CreatePlacementGroup", "DeletePlacementGroup")

    def __init__(self, sess: boto3.session.Session) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        for op in self.OPS:
            sess.events.register(f"before-parameter-build.ec2.{op}", self._params)
            sess.events.register(f"before-call.ec2.{op}", self._call)

    def _params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        validate_parameters(params, model.input_shape)
        context["pg_params"] = dict(params)

    def _call(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        p = context["pg_params"]
        out: dict[str, Any]
        if model.name == "CreatePlacementGroup":
            g = {"GroupName": p["GroupName"], "State": "available", "Strategy": p["Strategy"],
                 "GroupId": f"pg-{len(self.groups):017x}",
                 "Tags": [t for spec in p.get("TagSpecifications", []) for t in spec["Tags"]]}
            self.groups[p["GroupName"]] = g
            out = {"PlacementGroup": g}
        elif model.name == "DeletePlacementGroup":
            del self.groups[p["GroupName"]]
            out = {}
        else:
            names = {v for f in p.get("Filters", []) if f["Name"] == "group-name" for v in f["Values"]}
            out = {"PlacementGroups": [g for n, g in self.groups.items() if not names or n in names]}
        if model.output_shape is not None:
            validate_parameters(out, model.output_shape)
        out["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": "pg", "HTTPHeaders": {}, "RetryAttempts": 0}
        return AWSResponse("https://ec2", 200, {}, None), out


class Env:
    def __init__(self, sess: boto3.session.Session, subnet: str, group: str, pgs: PlacementGroupsAPI) -> None:
        self.sess, self.subnet, self.group, self.pgs = sess, subnet, group, pgs

    def spec(self, **kw: Any) -> infra.Spec:
        args: dict[str, Any] = {"gpu_ami_id": "ami-0123456789abcdef0", **kw}
        return infra.Spec("bp", list(BUCKETS), [self.subnet], [self.group], **args)

    def deploy(self, tmp: Path, **kw: Any) -> infra.Deployment:
        return infra.deploy(self.sess, self.spec(**kw), state_path=tmp / "state.json", sleep=lambda _: None)


@pytest.fixture()
def env(fake_aws: str) -> Iterator[Env]:
    with mock_aws(config={"batch": {"use_docker": False}}):  # no Docker here: jobs finish without running
        sess = boto3.session.Session(region_name=REGION)
        pgs = PlacementGroupsAPI(sess)
        s3 = sess.client("s3")
        for b in BUCKETS:
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
        ec2 = sess.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="bp", Description="batch", VpcId=vpc)["GroupId"]
        yield Env(sess, subnet, group, pgs)


def inventory(e: Env) -> dict[str, Any]:
    """Everything of deployment 'bp' that exists, by kind (names and counts)."""
    batch, ec2, iam_c = (e.sess.client(s) for s in ("batch", "ec2", "iam"))
    ces = [c["computeEnvironmentName"] for c in batch.describe_compute_environments()["computeEnvironments"]]
    queues = [q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]]
    jds = [f"{d['jobDefinitionName']}:{d['revision']}"
           for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]]
    lts = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    lt_versions = sum(len(ec2.describe_launch_template_versions(LaunchTemplateName=n)["LaunchTemplateVersions"])
                      for n in lts)
    roles = [r["RoleName"] for r in iam_c.list_roles()["Roles"] if r["RoleName"].startswith("bp-")]
    profiles = [p["InstanceProfileName"] for p in iam_c.list_instance_profiles()["InstanceProfiles"]]
    policies = [p["PolicyName"] for p in iam_c.list_policies(Scope="Local")["Policies"]]
    return {"ce": sorted(ces), "queue": sorted(queues), "jobdef": sorted(jds), "lt": sorted(lts),
            "lt_versions": lt_versions, "role": sorted(roles), "profile": sorted(profiles),
            "policy": sorted(policies), "pg": sorted(e.pgs.groups)}


def test_deploy_twice_changes_nothing_and_duplicates_nothing(env: Env, tmp_path: Path) -> None:
    first = env.deploy(tmp_path)
    after_first = inventory(env)
    n_images = len([i for i in containers.discover() if not i.endswith("-cuda")])
    assert after_first["ce"] == ["bp-cpu-spot", "bp-gpu", "bp-mnp"]
    assert after_first["queue"] == ["bp-cpu", "bp-gpu", "bp-mnp"]
    assert len(after_first["jobdef"]) == n_images + 2
    assert after_first["lt"] == ["bp-cpu", "bp-gpu"] and after_first["lt_versions"] == 2
    assert after_first["role"] == ["bp-batch-instance", "bp-batch-job"]
    assert after_first["profile"] == ["bp-batch-instance"] and after_first["policy"] == ["bp-cromwell"]
    assert after_first["pg"] == ["bp-mnp"]

    second = env.deploy(tmp_path)
    assert second.changes == []
    assert inventory(env) == after_first
    assert second.queues == first.queues and second.job_definitions == first.job_definitions
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["queues"] == first.queues
    for kind, arn in state["queues"].items():
        assert arn.endswith(f":job-queue/bp-{kind}") and f":batch:{REGION}:" in arn


def test_changed_spec_updates_in_place(env: Env, tmp_path: Path) -> None:
    env.deploy(tmp_path)
    before = inventory(env)
    changed = env.deploy(tmp_path, max_vcpus=512, volume_gb=200)
    assert "updated compute environment bp-cpu-spot (launchTemplate, maxvCpus)" in changed.changes
    assert "new version 2 of launch template bp-cpu" in changed.changes
    after = inventory(env)
    assert after["ce"] == before["ce"] and after["queue"] == before["queue"] and after["jobdef"] == before["jobdef"]
    assert "new version 2 of launch template bp-gpu" in changed.changes
    assert after["lt_versions"] == before["lt_versions"] + 2
    data = env.sess.client("ec2").describe_launch_template_versions(
        LaunchTemplateName="bp-cpu", Versions=["$Latest"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 200


def s3_statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(a.startswith("s3:") or a == "*" for a in actions):
            out.append(st)
    return out


def test_iam_policies_are_scoped_to_the_named_buckets(env: Env, tmp_path: Path) -> None:
    dep = env.deploy(tmp_path)
    client = env.sess.client("iam")
    docs = [client.get_role_policy(RoleName=r, PolicyName=f"{r}-policy")["PolicyDocument"]
            for r in ("bp-batch-instance", "bp-batch-job")]
    pol = client.get_policy(PolicyArn=dep.roles["cromwell_policy_arn"])["Policy"]
    docs.append(client.get_policy_version(PolicyArn=pol["Arn"], VersionId=pol["DefaultVersionId"])
                ["PolicyVersion"]["Document"])
    allowed = {f"arn:aws:s3:::{b}" for b in BUCKETS} | {f"arn:aws:s3:::{b}/*" for b in BUCKETS}
    for raw in docs:
        doc = iam._policy_doc(raw)
        statements = s3_statements(doc)
        assert statements, "every role gets to the buckets"
        for st in statements:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert "s3:*" not in actions and "*" not in actions
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            assert set(resources) <= allowed, resources
        granted = {a for st in statements for a in st["Action"]}
        assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= granted
        for st in doc["Statement"]:
            if st.get("Resource") == "*":  # only calls that have no resource-level permissions
                assert all(a.split(":")[0] in ("ecs", "ecr", "batch") for a in st["Action"]), st
    trust = {r: iam._policy_doc(client.get_role(RoleName=r)["Role"]["AssumeRolePolicyDocument"])
             for r in ("bp-batch-instance", "bp-batch-job")}
    assert trust["bp-batch-instance"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert trust["bp-batch-job"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_bucket_list_change_rewrites_policies(env: Env, tmp_path: Path) -> None:
    env.deploy(tmp_path)
    env.sess.client("s3").create_bucket(Bucket="bp-more", CreateBucketConfiguration={"LocationConstraint": REGION})
    spec = infra.Spec("bp", ["bp-more"], [env.subnet], [env.group])
    dep = infra.deploy(env.sess, spec, state_path=tmp_path / "s.json", sleep=lambda _: None)
    assert "updated policy bp-batch-job-policy" in dep.changes
    doc = iam._policy_doc(env.sess.client("iam").get_role_policy(
        RoleName="bp-batch-job", PolicyName="bp-batch-job-policy")["PolicyDocument"])
    assert {r for st in doc["Statement"] for r in st["Resource"]} == {"arn:aws:s3:::bp-more",
                                                                      "arn:aws:s3:::bp-more/*"}


def test_launch_templates_require_imdsv2_and_encrypt_ebs(env: Env, tmp_path: Path) -> None:
    env.deploy(tmp_path)
    ec2 = env.sess.client("ec2")
    for name in ("bp-cpu", "bp-gpu"):
        data = ec2.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Latest"])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        # 1, not 2: Batch jobs use host networking, so a higher limit gives Cromwell nothing (infra.IMDS_HOP_LIMIT)
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        assert all(m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"])
        assert ("ImageId" in data) == (name == "bp-gpu")
    gpu = ec2.describe_launch_template_versions(LaunchTemplateName="bp-gpu", Versions=["$Latest"])
    assert gpu["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"] == "ami-0123456789abcdef0"


def test_compute_environments_queues_and_job_definitions(env: Env, tmp_path: Path) -> None:
    dep = env.deploy(tmp_path)
    batch = env.sess.client("batch")
    ces = {c["computeEnvironmentName"]: c for c in batch.describe_compute_environments()["computeEnvironments"]}
    cpu, gpu, mnp = (ces[n]["computeResources"] for n in ("bp-cpu-spot", "bp-gpu", "bp-mnp"))
    assert cpu["type"] == "SPOT" and cpu["allocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert len(cpu["instanceTypes"]) >= 3, "Spot capacity needs diversified families"
    assert gpu["type"] == "SPOT" and set(gpu["instanceTypes"]) <= {"g4dn", "g5", "g6"}
    assert gpu["ec2Configuration"] == [{"imageType": "ECS_AL2_NVIDIA"}]
    assert mnp["type"] == "EC2" and mnp["placementGroup"] == "bp-mnp"
    assert env.pgs.groups["bp-mnp"]["Strategy"] == "cluster"
    assert all(c["serviceRole"].endswith("AWSServiceRoleForBatch") or "aws-service-role/batch" in c["serviceRole"]
               for c in ces.values())
    for kind in ("cpu", "gpu", "mnp"):
        q = batch.describe_job_queues(jobQueues=[f"bp-{kind}"])["jobQueues"][0]
        assert [o["computeEnvironment"] for o in q["computeEnvironmentOrder"]] == [dep.compute_environments[kind]]

    account = env.sess.client("sts").get_caller_identity()["Account"]
    images = containers.discover()
    defs = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    genomics = defs["bp-genomics"]
    assert genomics["containerProperties"]["image"] == \
        f"{account}.dkr.ecr.{REGION}.amazonaws.com/batchpipes/genomics:{images['genomics'].tag}"
    first_rule = genomics["retryStrategy"]["evaluateOnExit"][0]  # action is case-insensitive; moto lowercases it
    assert first_rule["onStatusReason"] == "Host EC2*" and first_rule["action"].upper() == "RETRY"
    assert genomics["containerProperties"]["jobRoleArn"] == dep.roles["job_role_arn"]

    encode = defs["bp-gpu-encode"]["containerProperties"]
    assert {"type": "GPU", "value": "1"} in encode["resourceRequirements"]
    assert {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility,video"} in encode["environment"]

    mnp_def = defs["bp-gromacs-mnp"]
    assert mnp_def["type"] == "multinode"
    mnp_rule = mnp_def["retryStrategy"]["evaluateOnExit"][0]
    assert mnp_rule["onStatusReason"] == "Host EC2*" and mnp_rule["action"].upper() == "RETRY"
    # moto's DescribeJobDefinitions leaves nodeProperties out; a job submitted with the definition carries
    # them back as registered.
    job = batch.submit_job(jobName="md", jobQueue=dep.queues["mnp"], jobDefinition=mnp_def["jobDefinitionArn"])
    described = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    nodes = described["nodeProperties"]
    assert nodes["numNodes"] == 2 and nodes["mainNode"] == 0
    container = nodes["nodeRangeProperties"][0]["container"]
    assert container["image"].endswith(f"/batchpipes/gromacs:{images['gromacs'].tag}")
    assert container["jobRoleArn"] == dep.roles["job_role_arn"]
    assert {"type": "VCPU", "value": "72"} in container["resourceRequirements"]


def test_every_job_definition_retries_spot_reclaims_only() -> None:
    spec = infra.Spec("bp", ["bp-bucket"], ["subnet-1"], ["sg-1"])
    defs = {d["jobDefinitionName"]: d
            for d in infra.job_definitions(spec, "123456789012", REGION, "arn:aws:iam::123456789012:role/j")}
    assert {"bp-gpu-encode", "bp-gromacs-mnp", "bp-genomics"} <= set(defs)
    for name, d in defs.items():
        assert d["retryStrategy"]["evaluateOnExit"] == [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                        {"onReason": "*", "action": "EXIT"}], name
        assert d["retryStrategy"]["attempts"] >= 2, name


def test_job_definition_images_use_the_regions_ecr_host() -> None:
    spec = infra.Spec("bp", ["bp-bucket"], ["subnet-1"], ["sg-1"])
    gromacs = containers.get("gromacs")
    china = {d["jobDefinitionName"]: d for d in infra.job_definitions(
        spec, "123456789012", "cn-north-1", "arn:aws-cn:iam::123456789012:role/j")}
    node = china["bp-gromacs-mnp"]["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert node["image"] == f"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/{gromacs.pinned}"
    assert china["bp-genomics"]["containerProperties"]["image"] == \
        f"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/batchpipes/genomics:{containers.get('genomics').tag}"


def test_teardown_leaves_nothing(env: Env, tmp_path: Path) -> None:
    env.deploy(tmp_path)
    removed = infra.teardown(env.sess, "bp", state_path=tmp_path / "state.json", sleep=lambda _: None)
    assert "job queue bp-cpu" in removed and "role bp-batch-job" in removed
    left = inventory(env)
    assert left == {"ce": [], "queue": [], "jobdef": [], "lt": [], "lt_versions": 0, "role": [], "profile": [],
                    "policy": [], "pg": []}
    assert not (tmp_path / "state.json").exists()
    assert infra.teardown(env.sess, "bp", sleep=lambda _: None) == []
    # the shared service-linked role stays for other Batch users of the account
    slr = env.sess.client("iam").list_roles(PathPrefix=iam.BATCH_SLR_PATH)["Roles"]
    assert len(slr) == 1


def test_teardown_spares_other_deployments(env: Env, tmp_path: Path) -> None:
    env.deploy(tmp_path)
    other = infra.Spec("other", list(BUCKETS), [env.subnet], [env.group])
    infra.deploy(env.sess, other, state_path=tmp_path / "o.json", sleep=lambda _: None)
    infra.teardown(env.sess, "bp", sleep=lambda _: None)
    left = inventory(env)
    assert left["queue"] == ["other-cpu", "other-gpu", "other-mnp"]
    assert all(j.startswith("other-") for j in left["jobdef"]) and left["jobdef"]


def test_missing_bucket_and_bad_subnet_are_one_line_errors(env: Env, tmp_path: Path, expect_user_error) -> None:
    spec = infra.Spec("bp", ["bp-absent"], [env.subnet], [env.group])
    msg = expect_user_error(infra.deploy, env.sess, spec, state_path=tmp_path / "s.json", sleep=lambda _: None)
    assert msg == "bucket 'bp-absent' does not exist: create it (aws s3 mb s3://bp-absent) or pass an existing --bucket"
    spec = infra.Spec("bp", list(BUCKETS), ["subnet-0000000000000dead"], [env.group])
    msg = expect_user_error(infra.deploy, env.sess, spec, state_path=tmp_path / "s.json", sleep=lambda _: None)
    assert msg.startswith("subnet not found") and "--subnets" in msg
    assert inventory(env)["ce"] == []


def test_wait_for_backs_off_with_jitter_then_times_out(expect_user_error) -> None:
    pauses: list[float] = []
    msg = expect_user_error(infra.wait_for, lambda: False, "queue bp-cpu to become VALID", timeout=100,
                            sleep=pauses.append)
    assert "timed out" in msg and "queue bp-cpu" in msg
    assert all(0.5 * min(2 ** i, 30) <= p <= min(2 ** i, 30) for i, p in enumerate(pauses))
    assert sum(pauses[:-1]) < 100 <= sum(pauses)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("batchpipes")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


@pytest.mark.parametrize("extra, fragment", [
    (["--bucket", "nope-bkt"], "bucket 'nope-bkt' does not exist: create it"),
    (["--bucket", "b", "--gpu-ami-id", "my-ami"], "'my-ami' is not an AMI id"),
])
def test_cli_deploy_bad_input(aws_env: str, extra: list[str], fragment: str) -> None:
    r = cli("aws", "deploy", "--name", "bp", "--subnets", "subnet-1", "--security-groups", "sg-1", *extra)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ") and fragment in r.stderr, r.stderr


# -- issue 8: IAM scoped to the deployment, PassRole and trust conditions, request shapes ----------------------

def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def check_policy_grammar(doc: dict[str, Any]) -> None:
    """The IAM policy grammar we rely on: version, statements, effects, action and ARN forms, operators."""
    import re

    assert doc["Version"] == "2012-10-17" and isinstance(doc["Statement"], list) and doc["Statement"]
    sids = [st["Sid"] for st in doc["Statement"] if "Sid" in st]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
    for st in doc["Statement"]:
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Principal", "Condition"}, st
        assert st["Effect"] in ("Allow", "Deny")
        for a in as_list(st["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z*]+", a), a
        for r in as_list(st.get("Resource", [])):
            assert r == "*" or re.fullmatch(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:\S+", r), r
        for op, keys in st.get("Condition", {}).items():
            assert op in ("StringEquals", "StringLike", "ArnLike", "ArnEquals", "Bool"), op
            for key, value in keys.items():
                assert re.fullmatch(r"(aws|iam|batch):[A-Za-z]+", key), key
                assert all(isinstance(v, str) and v for v in as_list(value)), value


def allowed(doc: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """A small evaluator for our Allow-only documents: action and resource wildcards, StringEquals/StringLike/Bool."""
    from fnmatch import fnmatchcase

    for st in doc["Statement"]:
        if not any(fnmatchcase(action, a) for a in as_list(st["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in as_list(st["Resource"])):
            continue
        ok = True
        for op, keys in st.get("Condition", {}).items():
            for key, want in keys.items():
                got = context.get(key)
                if got is None:
                    ok = False
                elif op == "StringLike":
                    ok = ok and any(fnmatchcase(got, w) for w in as_list(want))
                else:
                    ok = ok and got in as_list(want)
        if ok:
            return True
    return False


def cromwell_definition_name(image: str, props: str = "props", retry: str = "1[]") -> str:
    """Cromwell's own naming of a job definition (AwsBatchJobDefinition.scala buildName + package.sanitize)."""
    import hashlib
    import re

    sha1 = hashlib.sha1(f"{image}:{props}:{retry}".encode()).hexdigest()
    return re.sub(r"[^A-Za-z0-9_\-]", "_", f"cromwell_{image}_"[:88] + sha1)[:128]


def test_cromwell_batch_rights_are_scoped_to_the_deployment(env: Env, tmp_path: Path) -> None:
    dep = env.deploy(tmp_path)
    client = env.sess.client("iam")
    pol = client.get_policy(PolicyArn=dep.roles["cromwell_policy_arn"])["Policy"]
    doc = iam._policy_doc(client.get_policy_version(PolicyArn=pol["Arn"], VersionId=pol["DefaultVersionId"])
                          ["PolicyVersion"]["Document"])
    check_policy_grammar(doc)
    acct, batch = dep.account, f"arn:aws:batch:{REGION}:{dep.account}"
    # only the calls that take no resource-level permission are on "*"
    star = {a for st in doc["Statement"] if st["Resource"] == "*" for a in as_list(st["Action"])}
    assert star == {"batch:DescribeJobs", "batch:DescribeJobDefinitions", "batch:DescribeJobQueues", "batch:ListJobs"}

    ours = f"{acct}.dkr.ecr.{REGION}.amazonaws.com/batchpipes/genomics:0123456789ab"
    our_def = f"{batch}:job-definition/{cromwell_definition_name(ours)}:3"
    foreign = "docker.io/library/ubuntu:22.04"
    foreign_def = f"{batch}:job-definition/{cromwell_definition_name(foreign)}:1"
    lookalike = f"{acct}_dkr_ecr_{REGION}_amazonaws_com_batchpipes_evil:1"  # sanitizes to our prefix
    image_ok = {"batch:Image": ours, "batch:Privileged": "false"}
    assert allowed(doc, "batch:RegisterJobDefinition", our_def, image_ok)
    assert not allowed(doc, "batch:RegisterJobDefinition", our_def, {**image_ok, "batch:Privileged": "true"})
    assert not allowed(doc, "batch:RegisterJobDefinition", foreign_def, {**image_ok, "batch:Image": foreign})
    assert not allowed(doc, "batch:RegisterJobDefinition", f"{batch}:job-definition/"
                       f"{cromwell_definition_name(lookalike)}:1", {**image_ok, "batch:Image": lookalike}), \
        "a look-alike image name maps to our prefix, but batch:Image refuses it"
    assert not allowed(doc, "batch:RegisterJobDefinition", f"{batch}:job-definition/bp-genomics:1", image_ok), \
        "deploy's own definitions are not Cromwell's to change"
    for kind in ("cpu", "gpu"):
        assert allowed(doc, "batch:SubmitJob", dep.queues[kind], {})
    for queue in (dep.queues["mnp"], f"{batch}:job-queue/bp-test-cpu", f"{batch}:job-queue/other-cpu"):
        assert not allowed(doc, "batch:SubmitJob", queue, {}), queue
    assert allowed(doc, "batch:SubmitJob", our_def, {}) and not allowed(doc, "batch:SubmitJob", foreign_def, {})
    assert allowed(doc, "batch:TerminateJob", f"{batch}:job/0f1e2d3c-aaaa-bbbb-cccc-123456789012", {})
    assert not allowed(doc, "batch:TerminateJob", f"arn:aws:batch:us-east-1:{acct}:job/x", {})


def test_every_passrole_is_conditioned_and_trusts_are_scoped(env: Env, tmp_path: Path) -> None:
    dep = env.deploy(tmp_path)
    client = env.sess.client("iam")
    pol = client.get_policy(PolicyArn=dep.roles["cromwell_policy_arn"])["Policy"]
    docs = [iam._policy_doc(client.get_policy_version(PolicyArn=pol["Arn"], VersionId=pol["DefaultVersionId"])
                            ["PolicyVersion"]["Document"])]
    docs += [iam._policy_doc(client.get_role_policy(RoleName=r, PolicyName=f"{r}-policy")["PolicyDocument"])
             for r in ("bp-batch-instance", "bp-batch-job")]
    passes = [st for d in docs for st in d["Statement"] if "iam:PassRole" in as_list(st["Action"])
              or "iam:*" in as_list(st["Action"]) or "*" in as_list(st["Action"])]
    assert passes, "Cromwell passes the job role"
    for st in passes:
        services = as_list(st["Condition"]["StringEquals"]["iam:PassedToService"])
        assert services and set(services) <= {"batch.amazonaws.com", "ecs-tasks.amazonaws.com"}
        assert as_list(st["Resource"]) == [dep.roles["job_role_arn"]]
    job = iam._policy_doc(client.get_role(RoleName="bp-batch-job")["Role"]["AssumeRolePolicyDocument"])
    instance = iam._policy_doc(client.get_role(RoleName="bp-batch-instance")["Role"]["AssumeRolePolicyDocument"])
    for d in (job, instance):
        check_policy_grammar(d)
    assert job["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": dep.account}}
    assert "Condition" not in instance["Statement"][0], "EC2 sends no aws:SourceAccount for instance profiles"
    again = env.deploy(tmp_path)
    assert again.changes == [], "the conditioned trust is recognised as current on the next deploy"


def test_iam_requests_match_the_api_shapes(env: Env, tmp_path: Path) -> None:
    """Every IAM request deploy makes is valid for botocore's model (ParamValidator), documents included."""
    from botocore.validate import ParamValidator

    seen: list[str] = []
    validator = ParamValidator()

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        report = validator.validate(params, model.input_shape)
        assert not report.has_errors(), report.generate_report()
        for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
            if key in params:
                check_policy_grammar(json.loads(params[key]))
                seen.append(model.name)

    env.sess.events.register("before-parameter-build.iam.*", check)
    env.deploy(tmp_path)
    assert {"CreateRole", "PutRolePolicy", "CreatePolicy"} <= set(seen)
