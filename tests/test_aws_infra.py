"""Least privilege of the deployment's IAM, read from cloudformation/batchpipes.yaml resolved for an account.

The hand-written deploy these tests once drove is gone (the stack replaces it: tests/test_aws_stack.py runs it
against moto, idempotent re-deploy and teardown included); what they asserted about IAM still holds, now of the
template: S3 only on the two buckets, "*" only for actions without resource-level permissions, every PassRole
conditioned and naming the job role, trusts scoped, Cromwell's Batch rights limited to the deployment's queues and
to the job definitions Cromwell names after our ECR images, and the ECR reads Cromwell's call cache needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest
from batchpipes.aws import iam
from test_aws_stack_template import ACCOUNT, PARAMS, REGION, Resolved, load

#: Actions that take no resource-level permissions (Service Authorization Reference), the only ones allowed on "*".
NO_RESOURCE_LEVEL = {
    "ecr:GetAuthorizationToken", "batch:DescribeJobs", "batch:DescribeJobDefinitions", "batch:DescribeJobQueues",
    "batch:ListJobs",
    # the ECS agent's calls on the cluster and container instances Batch creates and names itself
    "ecs:CreateCluster", "ecs:DeregisterContainerInstance", "ecs:DiscoverPollEndpoint", "ecs:Poll",
    "ecs:RegisterContainerInstance", "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState",
    "ecs:Submit*", "ecs:TagResource",
}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


@pytest.fixture(scope="module")
def r() -> Resolved:
    return Resolved(load(), PARAMS)


def documents(r: Resolved) -> dict[str, dict[str, Any]]:
    """Every policy document of the template, by owner."""
    docs = {}
    for role in ("InstanceRole", "JobRole"):
        for pol in r.props(role)["Policies"]:
            docs[role] = pol["PolicyDocument"]
    docs["CromwellPolicy"] = r.props("CromwellPolicy")["PolicyDocument"]
    return docs


def check_policy_grammar(doc: dict[str, Any]) -> None:
    """The IAM policy grammar we rely on: version, statements, effects, action and ARN forms, operators."""
    assert doc["Version"] == "2012-10-17" and isinstance(doc["Statement"], list) and doc["Statement"]
    sids = [st["Sid"] for st in doc["Statement"] if "Sid" in st]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
    for st in doc["Statement"]:
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Principal", "Condition"}, st
        assert st["Effect"] in ("Allow", "Deny")
        for a in as_list(st["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z*]+", a), a
        for res in as_list(st.get("Resource", [])):
            assert res == "*" or re.fullmatch(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:\S+", res), res
        for op, keys in st.get("Condition", {}).items():
            assert op in ("StringEquals", "StringLike", "ArnLike", "ArnEquals", "Bool"), op
            for key, value in keys.items():
                assert re.fullmatch(r"(aws|iam|batch):[A-Za-z]+", key), key
                assert all(isinstance(v, str) and v for v in as_list(value)), value


def allowed(doc: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """A small evaluator for our Allow-only documents: action and resource wildcards, StringEquals/StringLike/Bool."""
    for st in doc["Statement"]:
        if not any(fnmatchcase(action, a) for a in as_list(st["Action"])):
            continue
        if not any(fnmatchcase(resource, res) for res in as_list(st["Resource"])):
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
    sha1 = hashlib.sha1(f"{image}:{props}:{retry}".encode()).hexdigest()
    return re.sub(r"[^A-Za-z0-9_\-]", "_", f"cromwell_{image}_"[:88] + sha1)[:128]


def test_every_document_is_well_formed_and_star_only_where_no_resource_level_exists(r: Resolved) -> None:
    for owner, doc in documents(r).items():
        check_policy_grammar(doc)
        for st in doc["Statement"]:
            actions = as_list(st["Action"])
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), (owner, st)
            if "*" in as_list(st["Resource"]):
                assert set(actions) <= NO_RESOURCE_LEVEL, (owner, st)


def test_s3_rights_are_scoped_to_the_two_buckets(r: Resolved) -> None:
    buckets = (PARAMS["DataBucket"], PARAMS["CromwellBucket"])
    allowed_arns = {f"arn:aws:s3:::{b}" for b in buckets} | {f"arn:aws:s3:::{b}/*" for b in buckets}
    for owner, doc in documents(r).items():
        s3 = [st for st in doc["Statement"] if any(a.startswith("s3:") for a in as_list(st["Action"]))]
        assert s3, f"{owner} reaches the buckets"
        for st in s3:
            assert set(as_list(st["Resource"])) <= allowed_arns, (owner, st)
        granted = {a for st in s3 for a in as_list(st["Action"])}
        assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= granted
        assert not granted & {"s3:DeleteObject", "s3:DeleteBucket", "s3:PutBucketPolicy"}, owner
        for b in buckets:
            assert allowed(doc, "s3:GetObject", f"arn:aws:s3:::{b}/cromwell-execution/x", {})
        assert not allowed(doc, "s3:GetObject", "arn:aws:s3:::someone-else/x", {})


def test_cromwell_batch_rights_are_scoped_to_the_deployment(r: Resolved) -> None:
    doc = r.props("CromwellPolicy")["PolicyDocument"]
    batch = f"arn:aws:batch:{REGION}:{ACCOUNT}"
    register = next(st for st in doc["Statement"] if st["Sid"] == "RegisterCromwellDefinitionsOfOurImages")
    prefix = iam.cromwell_definition_prefix(ACCOUNT, REGION)
    assert as_list(register["Resource"]) == [f"{batch}:job-definition/{prefix}*"]
    ours = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/batchpipes/genomics:0123456789ab"
    our_def = f"{batch}:job-definition/{cromwell_definition_name(ours)}:3"
    foreign = "docker.io/library/ubuntu:22.04"
    foreign_def = f"{batch}:job-definition/{cromwell_definition_name(foreign)}:1"
    lookalike = f"{ACCOUNT}_dkr_ecr_{REGION}_amazonaws_com_batchpipes_evil:1"  # sanitizes to our prefix
    image_ok = {"batch:Image": ours, "batch:Privileged": "false"}
    assert allowed(doc, "batch:RegisterJobDefinition", our_def, image_ok)
    assert not allowed(doc, "batch:RegisterJobDefinition", our_def, {**image_ok, "batch:Privileged": "true"})
    assert not allowed(doc, "batch:RegisterJobDefinition", foreign_def, {**image_ok, "batch:Image": foreign})
    assert not allowed(doc, "batch:RegisterJobDefinition", f"{batch}:job-definition/"
                       f"{cromwell_definition_name(lookalike)}:1", {**image_ok, "batch:Image": lookalike}), \
        "a look-alike image name maps to our prefix, but batch:Image refuses it"
    assert not allowed(doc, "batch:RegisterJobDefinition", f"{batch}:job-definition/bp-genomics:1", image_ok), \
        "the stack's own definitions are not Cromwell's to change"
    for kind in ("cpu", "gpu"):
        assert allowed(doc, "batch:SubmitJob", f"{batch}:job-queue/bp-{kind}", {})
    for queue in (f"{batch}:job-queue/bp-mnp", f"{batch}:job-queue/bp-test-cpu", f"{batch}:job-queue/other-cpu"):
        assert not allowed(doc, "batch:SubmitJob", queue, {}), queue
    assert allowed(doc, "batch:SubmitJob", our_def, {}) and not allowed(doc, "batch:SubmitJob", foreign_def, {})
    assert allowed(doc, "batch:TerminateJob", f"{batch}:job/0f1e2d3c-aaaa-bbbb-cccc-123456789012", {})
    assert not allowed(doc, "batch:TerminateJob", f"arn:aws:batch:us-east-1:{ACCOUNT}:job/x", {})


def test_cromwell_can_hash_our_images_for_call_caching_and_nothing_else(r: Resolved) -> None:
    doc = r.props("CromwellPolicy")["PolicyDocument"]
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/batchpipes/genomics"
    assert allowed(doc, "ecr:GetAuthorizationToken", "*", {})
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"):
        assert allowed(doc, action, repo, {}), action
        assert not allowed(doc, action, f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other/genomics", {}), action
        assert not allowed(doc, action, f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/batchpipes/genomics", {}), \
            "the region must match the repositories"
    for action in ("ecr:PutImage", "ecr:BatchDeleteImage", "ecr:DeleteRepository", "ecr:SetRepositoryPolicy"):
        assert not allowed(doc, action, repo, {}), action
    other_prefix = Resolved(load(), {**PARAMS, "RepositoryPrefix": "team-a"}).props("CromwellPolicy")
    assert allowed(other_prefix["PolicyDocument"], "ecr:BatchGetImage",
                   f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team-a/genomics", {})


def test_every_passrole_is_conditioned_and_trusts_are_scoped(r: Resolved) -> None:
    passes = [st for doc in documents(r).values() for st in doc["Statement"]
              if "iam:PassRole" in as_list(st["Action"]) or "iam:*" in as_list(st["Action"])]
    assert passes, "Cromwell passes the job role"
    for st in passes:
        services = as_list(st["Condition"]["StringEquals"]["iam:PassedToService"])
        assert services and set(services) <= {"batch.amazonaws.com", "ecs-tasks.amazonaws.com"}
        assert as_list(st["Resource"]) == [r.getatt("JobRole", "Arn")]
    job = r.props("JobRole")["AssumeRolePolicyDocument"]
    instance = r.props("InstanceRole")["AssumeRolePolicyDocument"]
    for d in (job, instance):
        check_policy_grammar(d)
        assert len(d["Statement"]) == 1 and d["Statement"][0]["Action"] == "sts:AssumeRole"
    assert job["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert job["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert instance["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert "Condition" not in instance["Statement"][0], "EC2 sends no aws:SourceAccount for instance profiles"


def test_instance_role_pulls_only_our_images_and_writes_only_batch_logs(r: Resolved) -> None:
    doc = documents(r)["InstanceRole"]
    assert allowed(doc, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/batchpipes/gromacs", {})
    assert not allowed(doc, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other/x", {})
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/batch/job"
    assert allowed(doc, "logs:PutLogEvents", f"{group}:log-stream:x", {})
    assert not allowed(doc, "logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/other:log-stream:x", {})


def test_china_partition_names(r: Resolved) -> None:
    china = Resolved(load(), PARAMS, region="cn-north-1")
    doc = china.props("CromwellPolicy")["PolicyDocument"]
    text = json.dumps(doc)
    assert "arn:aws-cn:batch:cn-north-1:" in text and "arn:aws:" not in text
    assert iam.cromwell_definition_prefix(ACCOUNT, "cn-north-1") in text
    assert f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/batchpipes/*" in text
