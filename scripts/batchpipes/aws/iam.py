"""IAM for a batchpipes deployment: least-privilege roles scoped to the named buckets.

* ``<name>-batch-instance`` (trusts ec2.amazonaws.com) with instance profile of the same name: what the
  ECS agent on a Batch instance needs, ECR pulls of ``batchpipes/*`` only, logs to ``/aws/batch/job`` only,
  and S3 read/write on the named buckets only (Cromwell's localisation runs with these credentials).
* ``<name>-batch-job`` (trusts ecs-tasks.amazonaws.com): the job role, S3 on the named buckets only.
* ``<name>-cromwell`` (customer-managed policy, attached to nothing): what the Cromwell server needs; attach
  it to the role or user that runs Cromwell. Its Batch rights are scoped (see ``cromwell_policy``): jobs go
  only to this deployment's CPU and GPU queues, and only job definitions Cromwell names after our ECR images
  can be registered and submitted.
* Batch itself uses its service-linked role ``AWSServiceRoleForBatch`` (created if absent); Spot compute
  environments with SPOT_CAPACITY_OPTIMIZED need no Spot fleet role.

Trust policies and ``aws:SourceAccount`` (confused-deputy protection):

* ``<name>-batch-job`` trusts ``ecs-tasks.amazonaws.com`` only for this account: ECS sends
  ``aws:SourceAccount`` when it assumes a task role, and the ECS developer guide recommends the condition.
* ``<name>-batch-instance`` trusts ``ec2.amazonaws.com`` with no such condition: EC2 does not send
  ``aws:SourceAccount`` when it delivers instance-profile credentials, so the condition would make the role
  unusable (the instance profile, not the trust policy, is what ties the role to our instances).
* The Batch service role is AWS's service-linked role, whose trust policy AWS owns and nobody can edit;
  there is no Spot fleet role. So there is no other trust policy to condition.

Every ``iam:PassRole`` we grant carries ``iam:PassedToService``.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from .constants import DEPLOYMENT_TAG
from .session import error_code

log = logging.getLogger(__name__)

BATCH_SLR = "AWSServiceRoleForBatch"
BATCH_SLR_PATH = "/aws-service-role/batch.amazonaws.com/"
TAG = {"Key": DEPLOYMENT_TAG}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trust(service: str, account: str | None = None) -> dict[str, Any]:
    """Trust ``service``; only on behalf of ``account`` when given (``aws:SourceAccount``)."""
    st: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if account is not None:
        st["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return _doc(st)


#: Services a Batch job role is handed to: Batch takes it in RegisterJobDefinition and ECS (ecs-tasks)
#: assumes it for the job's container. AWS does not document which of the two Batch reports as
#: ``iam:PassedToService``, so both are allowed, and nothing else (not EC2, Lambda, ...).
JOB_ROLE_PASSED_TO = ["batch.amazonaws.com", "ecs-tasks.amazonaws.com"]


def cromwell_definition_prefix(account: str, region: str) -> str:
    """The start of every job definition name Cromwell registers for one of our ECR images.

    Cromwell names a definition ``sanitize("cromwell_" + image + "_")[:88] + sha1`` (AwsBatchJobDefinition.scala,
    ``sanitize`` turns every character outside ``[A-Za-z0-9_-]`` into ``_``), so for the image
    ``<account>.dkr.ecr.<region>.amazonaws.com/batchpipes/<name>:<tag>`` the name starts with this (about 65
    characters, always inside the 88 kept).
    """
    return f"cromwell_{account}_dkr_ecr_{region}_amazonaws_com_batchpipes_"


def s3_statements(buckets: list[str]) -> list[dict[str, Any]]:
    """Read/write objects and list the named buckets; nothing else in S3."""
    return [
        {"Sid": "ListNamedBuckets", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
         "Resource": [f"arn:aws:s3:::{b}" for b in buckets]},
        {"Sid": "ObjectsInNamedBuckets", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets]},
    ]


def instance_policy(buckets: list[str], region: str, account: str) -> dict[str, Any]:
    """The ECS container instance role: agent calls, ECR pulls of our images, Batch job logs, S3 buckets."""
    return _doc(
        # The ECS agent's calls take no resource-level restriction except the cluster; Batch names the
        # cluster itself, so these stay on "*" (as in AWS's AmazonEC2ContainerServiceforEC2Role).
        {"Sid": "EcsAgent", "Effect": "Allow",
         "Action": ["ecs:CreateCluster", "ecs:DeregisterContainerInstance", "ecs:DiscoverPollEndpoint",
                    "ecs:Poll", "ecs:RegisterContainerInstance", "ecs:StartTelemetrySession",
                    "ecs:UpdateContainerInstancesState", "ecs:Submit*", "ecs:TagResource"],
         "Resource": "*"},
        {"Sid": "EcrToken", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Sid": "EcrPullBatchpipes", "Effect": "Allow",
         "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
         "Resource": f"arn:aws:ecr:{region}:{account}:repository/batchpipes/*"},
        {"Sid": "BatchJobLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [f"arn:aws:logs:{region}:{account}:log-group:/aws/batch/job",
                      f"arn:aws:logs:{region}:{account}:log-group:/aws/batch/job:*"]},
        *s3_statements(buckets),
    )


def job_policy(buckets: list[str]) -> dict[str, Any]:
    return _doc(*s3_statements(buckets))


def cromwell_policy(name: str, buckets: list[str], region: str, account: str, job_role_arn: str) -> dict[str, Any]:
    """What Cromwell's AWS backend calls (docs: §4.4 IAM), scoped to deployment ``name``.

    From the Service Authorization Reference for AWS Batch: DescribeJobs, DescribeJobDefinitions,
    DescribeJobQueues and ListJobs take no resource-level permissions ("*"); RegisterJobDefinition takes a
    job-definition ARN (and the batch:Image / batch:Privileged condition keys); SubmitJob needs both the
    job-queue and the job-definition ARN; TerminateJob and TagResource take the job ARN, whose id is random.
    """
    arn = f"arn:aws:batch:{region}:{account}"
    definitions = f"{arn}:job-definition/{cromwell_definition_prefix(account, region)}*"
    queues = [f"{arn}:job-queue/{name}-cpu", f"{arn}:job-queue/{name}-gpu"]  # Cromwell runs no MNP jobs
    return _doc(
        {"Sid": "BatchReadNoResourceLevel", "Effect": "Allow",
         "Action": ["batch:DescribeJobs", "batch:DescribeJobDefinitions", "batch:DescribeJobQueues",
                    "batch:ListJobs"],
         "Resource": "*"},
        {"Sid": "RegisterCromwellDefinitionsOfOurImages", "Effect": "Allow",
         "Action": "batch:RegisterJobDefinition", "Resource": definitions,
         "Condition": {"StringLike": {"batch:Image": f"{account}.dkr.ecr.{region}.amazonaws.com/batchpipes/*"},
                       "Bool": {"batch:Privileged": "false"}}},
        {"Sid": "SubmitToDeploymentQueues", "Effect": "Allow", "Action": "batch:SubmitJob",
         "Resource": [*queues, definitions]},
        {"Sid": "ManageSubmittedJobs", "Effect": "Allow", "Action": ["batch:TerminateJob", "batch:TagResource"],
         "Resource": f"{arn}:job/*"},
        {"Sid": "PassJobRoleToBatch", "Effect": "Allow", "Action": "iam:PassRole", "Resource": job_role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": list(JOB_ROLE_PASSED_TO)}}},
        *s3_statements(buckets),
    )


@dataclass
class Roles:
    service_role_arn: str
    instance_role_arn: str
    instance_profile_arn: str
    job_role_arn: str
    cromwell_policy_arn: str


def names(name: str) -> dict[str, str]:
    return {"instance": f"{name}-batch-instance", "job": f"{name}-batch-job", "cromwell": f"{name}-cromwell"}


def _get_role(iam: Any, role: str) -> dict[str, Any] | None:
    try:
        return dict(iam.get_role(RoleName=role)["Role"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise


def _policy_doc(raw: Any) -> Any:
    """IAM returns documents URL-encoded (a string) or, through boto3, already decoded."""
    if isinstance(raw, str):
        return json.loads(urllib.parse.unquote(raw))
    return raw


def ensure_role(iam: Any, role: str, want_trust: dict[str, Any], inline: dict[str, Any], tag: str,
                changes: list[str]) -> str:
    """Create ``role`` with trust policy ``want_trust`` and one inline policy ``role``-policy; fix either if
    different."""
    existing = _get_role(iam, role)
    if existing is None:
        existing = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(want_trust),
                                   Description="batchpipes: created by 'batchpipes aws deploy'",
                                   Tags=[{**TAG, "Value": tag}])["Role"]
        changes.append(f"created role {role}")
    elif _policy_doc(existing.get("AssumeRolePolicyDocument")) != want_trust:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(want_trust))
        changes.append(f"updated trust of role {role}")
    policy_name = f"{role}-policy"
    try:
        current = _policy_doc(iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        current = None
    if current != inline:
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(inline))
        changes.append(f"{'set' if current is None else 'updated'} policy {policy_name}")
    return str(existing["Arn"])


def ensure_instance_profile(iam: Any, profile: str, role: str, tag: str, changes: list[str]) -> str:
    try:
        prof = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        prof = iam.create_instance_profile(InstanceProfileName=profile, Tags=[{**TAG, "Value": tag}])[
            "InstanceProfile"]
        changes.append(f"created instance profile {profile}")
    if role not in [r["RoleName"] for r in prof.get("Roles", [])]:
        for r in prof.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=r["RoleName"])
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
        changes.append(f"put role {role} in instance profile {profile}")
    return str(prof["Arn"])


def _batch_slr(iam: Any) -> str | None:
    """ARN of Batch's service-linked role, found by its path (the role name's case is AWS's business)."""
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=BATCH_SLR_PATH):
        for role in page["Roles"]:
            return str(role["Arn"])
    return None


def ensure_batch_service_role(iam: Any, changes: list[str]) -> str:
    existing = _batch_slr(iam)
    if existing is not None:
        return existing
    try:
        role = iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]
        changes.append(f"created service-linked role {BATCH_SLR}")
        return str(role["Arn"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("InvalidInput", "EntityAlreadyExists"):  # created meanwhile
            raise
        again = _batch_slr(iam)
        assert again is not None
        return again


def ensure_managed_policy(iam: Any, account: str, policy_name: str, doc: dict[str, Any], tag: str,
                          changes: list[str]) -> str:
    arn = f"arn:aws:iam::{account}:policy/{policy_name}"
    try:
        pol = iam.get_policy(PolicyArn=arn)["Policy"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        iam.create_policy(PolicyName=policy_name, PolicyDocument=json.dumps(doc),
                          Description="batchpipes: what the Cromwell server needs", Tags=[{**TAG, "Value": tag}])
        changes.append(f"created policy {policy_name}")
        return arn
    version = iam.get_policy_version(PolicyArn=arn, VersionId=pol["DefaultVersionId"])["PolicyVersion"]
    if _policy_doc(version["Document"]) != doc:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        old = [v for v in versions if not v["IsDefaultVersion"]]
        if len(versions) >= 5 and old:  # IAM keeps at most five versions
            iam.delete_policy_version(PolicyArn=arn, VersionId=old[-1]["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(doc), SetAsDefault=True)
        changes.append(f"updated policy {policy_name}")
    return arn


def ensure(iam: Any, name: str, buckets: list[str], region: str, account: str, changes: list[str]) -> Roles:
    n = names(name)
    service = ensure_batch_service_role(iam, changes)
    # EC2 sends no aws:SourceAccount for instance profiles; ECS does for task roles (see the module doc).
    instance_role = ensure_role(iam, n["instance"], trust("ec2.amazonaws.com"),
                                instance_policy(buckets, region, account), name, changes)
    profile = ensure_instance_profile(iam, n["instance"], n["instance"], name, changes)
    job_role = ensure_role(iam, n["job"], trust("ecs-tasks.amazonaws.com", account), job_policy(buckets), name,
                           changes)
    cromwell = ensure_managed_policy(iam, account, n["cromwell"],
                                     cromwell_policy(name, buckets, region, account, job_role), name, changes)
    return Roles(service, instance_role, profile, job_role, cromwell)


def teardown(iam: Any, name: str, account: str, removed: list[str]) -> None:
    """Delete what ``ensure`` created for ``name`` (never the shared Batch service-linked role)."""
    n = names(name)
    try:
        prof = iam.get_instance_profile(InstanceProfileName=n["instance"])["InstanceProfile"]
        for r in prof.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=n["instance"], RoleName=r["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=n["instance"])
        removed.append(f"instance profile {n['instance']}")
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
    for key in ("instance", "job"):
        role = n[key]
        if _get_role(iam, role) is None:
            continue
        for pol in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            iam.delete_role_policy(RoleName=role, PolicyName=pol)
        for att in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=role, PolicyArn=att["PolicyArn"])
        iam.delete_role(RoleName=role)
        removed.append(f"role {role}")
    arn = f"arn:aws:iam::{account}:policy/{n['cromwell']}"
    try:
        for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not v["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
        for kind, key, fn in (("PolicyRoles", "RoleName", "detach_role_policy"),
                              ("PolicyUsers", "UserName", "detach_user_policy"),
                              ("PolicyGroups", "GroupName", "detach_group_policy")):
            for ent in iam.list_entities_for_policy(PolicyArn=arn)[kind]:
                getattr(iam, fn)(PolicyArn=arn, **{key: ent[key]})
        iam.delete_policy(PolicyArn=arn)
        removed.append(f"policy {n['cromwell']}")
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
