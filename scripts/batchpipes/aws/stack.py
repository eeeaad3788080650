"""The batchpipes AWS Batch infrastructure as one CloudFormation stack: deploy through a change set, teardown.

The template is ``cloudformation/batchpipes.yaml`` (a user can deploy it with ``aws cloudformation deploy`` and no
Python). ``deploy`` here adds what a plain deploy cannot check:

1. every parameter is validated offline (patterns, ranges), then against the account, all before any write: the
   buckets exist, the subnets and security groups are in ``vpc_id``, the multi-node subnet too (one subnet: a
   cluster placement group lives in one AZ), and each AMI is an image of this account tagged by
   ``batchpipes aws build-ami`` with the matching ``batchpipes:flavor`` and ``batchpipes:os = al2023`` (Batch's
   stock ECS AMIs lack the AWS CLI and ``fetch_and_run.sh`` Cromwell's jobs need, and an AMI built for Amazon
   Linux 2 does not match the ``ECS_AL2023*`` image types);
2. a change set (CREATE when the stack does not exist, else UPDATE) is created and each change logged
   (Add/Modify/Remove, logical id, type, replacement); an empty one is deleted and reported as "no changes";
3. unless ``dry_run``, it is executed and the stack watched until it settles; a failure is reported in one line
   with the first failed resource's reason from the stack events.

The deployment's names, ARNs and job definitions are the stack's outputs (:func:`outputs`); there is no local
state file. ``teardown`` deletes the stack and waits: nothing in the template is retained.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from .. import REPO_ROOT, containers
from ..errors import UserError
from . import iam as iam_mod
from .ami import OS_TAG as AMI_OS
from .buckets import check_bucket, check_bucket_name
from .constants import DEPLOYMENT_TAG, PROJECT_TAGS
from .session import account_id, client, describe_error, error_code

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]

CPU_FAMILIES = ["c5", "c6i", "m5", "m6i", "r5", "r6i"]
GPU_FAMILIES = ["g4dn", "g5", "g6"]  # NVENC-capable; p3 is V100, a training part
#: Network-optimised (100 Gb/s) instance of the multi-node environment.
MNP_INSTANCE_TYPE = "c5n.18xlarge"

#: Stack of deployment ``N``: ``batchpipes-N``.
STACK_PREFIX = "batchpipes-"
#: Tags ``batchpipes aws build-ami`` puts on its images; deploy refuses AMIs without the expected values.
FLAVOR_TAG = "batchpipes:flavor"
OS_TAG = "batchpipes:os"
HOST_OS = AMI_OS
#: CloudFormation's limit for a TemplateBody sent inline (larger ones must come from S3).
TEMPLATE_BODY_LIMIT = 51_200
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
#: StatusReason of a change set without changes (CloudFormation's wording; checked by prefix).
NO_CHANGES = ("The submitted information didn't contain changes", "No updates are to be performed")

_SUBNET = re.compile(r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_GROUP = re.compile(r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_VPC = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_AMI = re.compile(r"^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_INSTANCE = re.compile(r"^[a-z][a-z0-9-]*(?:\.[a-z0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PREFIX = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")


def template_path() -> Path:
    """The template: shipped in the package when installed from a wheel (``batchpipes/aws/cloudformation.yaml``),
    else the repository's ``cloudformation/batchpipes.yaml``."""
    packaged = resources.files("batchpipes.aws").joinpath("cloudformation.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return REPO_ROOT / "cloudformation" / "batchpipes.yaml"


def template_body() -> str:
    body = template_path().read_text()
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        raise UserError(f"{template_path()} is {len(body.encode())} bytes, above CloudFormation's inline limit of "
                        f"{TEMPLATE_BODY_LIMIT}: shorten it")
    return body


def stack_name(name: str) -> str:
    return f"{STACK_PREFIX}{name}"


def image_parameter(image: str) -> str:
    """Template parameter holding the ECR tag of ``image`` (``gromacs`` -> ``GromacsImageTag``)."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", image)) + "ImageTag"


def default_image_tags() -> dict[str, str]:
    """The content tag of every image the job definitions use (CUDA builds are not among them)."""
    return {name: img.tag for name, img in containers.discover().items() if not name.endswith("-cuda")}


@dataclass
class Spec:
    """What ``batchpipes aws deploy`` asks the stack for; one field per template parameter."""

    name: str
    data_bucket: str
    cromwell_bucket: str
    vpc_id: str
    subnets: list[str]
    security_groups: list[str]
    mnp_subnet: str
    cpu_ami_id: str
    gpu_ami_id: str
    capacity_type: str = "SPOT"
    cpu_max_vcpus: int = 256
    gpu_max_vcpus: int = 64
    mnp_max_vcpus: int = 288
    cpu_instance_types: list[str] = field(default_factory=lambda: list(CPU_FAMILIES))
    gpu_instance_types: list[str] = field(default_factory=lambda: list(GPU_FAMILIES))
    mnp_instance_type: str = MNP_INSTANCE_TYPE
    mnp_nodes: int = 2
    mnp_vcpus: int = 72
    mnp_memory_mib: int = 180_000
    root_gib: int = 30
    scratch_gib: int = 500
    repository_prefix: str = "batchpipes"
    image_tags: dict[str, str] = field(default_factory=default_image_tags)


@dataclass
class Change:
    action: str  # Add, Modify, Remove (Import, Dynamic)
    logical_id: str
    resource_type: str
    replacement: str | None  # True, False, Conditional (Modify only)

    def line(self) -> str:
        extra = f" (replacement: {self.replacement})" if self.action == "Modify" and self.replacement else ""
        return f"{self.action:<6} {self.logical_id} {self.resource_type}{extra}"


@dataclass
class Deployment:
    """What deploy leaves: the stack and its outputs."""

    name: str
    stack: str
    region: str
    status: str
    changes: list[Change]
    outputs: dict[str, str]
    executed: bool


# -- validation (offline, then read-only calls) -------------------------------------------------------------------

def _check_int(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise UserError(f"{flag} must be between {low} and {high}, not {value}")


def validate(spec: Spec) -> None:
    """Every value against the template's constraints, with the flag to fix; no AWS call."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,39}", spec.name):
        raise UserError(f"'{spec.name}' is not a deployment name: use 1-40 letters, digits and dashes, starting "
                        "with a letter")
    check_bucket_name(spec.data_bucket)
    check_bucket_name(spec.cromwell_bucket)
    if not _VPC.match(spec.vpc_id):
        raise UserError(f"'{spec.vpc_id}' is not a VPC id: pass --vpc-id vpc-<hex>")
    if not spec.subnets:
        raise UserError("--subnets needs at least one subnet id")
    if not spec.security_groups:
        raise UserError("--security-groups needs at least one security group id")
    for s in [*spec.subnets, spec.mnp_subnet]:
        if not _SUBNET.match(s):
            raise UserError(f"'{s}' is not a subnet id: expected subnet-<8 or 17 hex digits>")
    for g in spec.security_groups:
        if not _GROUP.match(g):
            raise UserError(f"'{g}' is not a security group id: expected sg-<8 or 17 hex digits>")
    for flag, ami in (("--cpu-ami-id", spec.cpu_ami_id), ("--gpu-ami-id", spec.gpu_ami_id)):
        if not _AMI.match(ami):
            raise UserError(f"'{ami}' is not an AMI id ({flag}): expected ami-<8 or 17 hex digits>")
    if spec.capacity_type not in ("SPOT", "ON_DEMAND"):
        raise UserError(f"--capacity must be SPOT or ON_DEMAND, not '{spec.capacity_type}'")
    for flag, value in (("--max-vcpus", spec.cpu_max_vcpus), ("--gpu-max-vcpus", spec.gpu_max_vcpus),
                        ("--mnp-max-vcpus", spec.mnp_max_vcpus)):
        _check_int(flag, value, 1, 100_000)
    _check_int("--mnp-nodes", spec.mnp_nodes, 2, 1000)
    _check_int("--mnp-vcpus", spec.mnp_vcpus, 1, 448)
    _check_int("--mnp-memory-mib", spec.mnp_memory_mib, 16_384, 10_000_000)
    _check_int("--root-gib", spec.root_gib, 30, 16_384)
    _check_int("--scratch-gib", spec.scratch_gib, 20, 16_384)
    for flag, types in (("--cpu-instance-types", spec.cpu_instance_types),
                        ("--gpu-instance-types", spec.gpu_instance_types),
                        ("--mnp-instance-type", [spec.mnp_instance_type])):
        if not types:
            raise UserError(f"{flag} needs at least one instance type")
        for t in types:
            if not _INSTANCE.match(t):
                raise UserError(f"'{t}' is not an instance type or family ({flag}): e.g. c6i or c6i.4xlarge")
    if "." not in spec.mnp_instance_type:
        raise UserError(f"--mnp-instance-type takes one instance type such as c5n.18xlarge, not the family "
                        f"'{spec.mnp_instance_type}'")
    if not _PREFIX.match(spec.repository_prefix):
        raise UserError(f"'{spec.repository_prefix}' is not a usable ECR repository prefix: use lowercase letters "
                        "and digits with single '-' or '_' between them")
    for image, tag in spec.image_tags.items():
        if not _TAG.match(tag):
            raise UserError(f"'{tag}' is not an image tag (image {image}): use what 'batchpipes aws ecr-push' pushed")


def parameters(spec: Spec, service_role_arn: str) -> list[dict[str, str]]:
    """The stack parameters, every one given (none left to the template's defaults)."""
    values = {
        "Name": spec.name, "DataBucket": spec.data_bucket, "CromwellBucket": spec.cromwell_bucket,
        "RepositoryPrefix": spec.repository_prefix, "BatchServiceRoleArn": service_role_arn,
        "VpcId": spec.vpc_id, "Subnets": ",".join(spec.subnets), "SecurityGroups": ",".join(spec.security_groups),
        "MnpSubnet": spec.mnp_subnet, "CpuAmiId": spec.cpu_ami_id, "GpuAmiId": spec.gpu_ami_id,
        "RootGiB": str(spec.root_gib), "ScratchGiB": str(spec.scratch_gib), "CapacityType": spec.capacity_type,
        "CpuInstanceTypes": ",".join(spec.cpu_instance_types), "GpuInstanceTypes": ",".join(spec.gpu_instance_types),
        "MnpInstanceType": spec.mnp_instance_type, "CpuMaxVcpus": str(spec.cpu_max_vcpus),
        "GpuMaxVcpus": str(spec.gpu_max_vcpus), "MnpMaxVcpus": str(spec.mnp_max_vcpus),
        "MnpNodes": str(spec.mnp_nodes), "MnpVcpus": str(spec.mnp_vcpus), "MnpMemoryMiB": str(spec.mnp_memory_mib),
        **{image_parameter(image): tag for image, tag in sorted(spec.image_tags.items())},
    }
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _network_error(what: str, exc: botocore.exceptions.ClientError, flag: str) -> UserError:
    return UserError(f"{what} not found ({describe_error(exc)}): pass {flag} with ids of this region's VPC")


def check_network(ec2: Any, spec: Spec) -> None:
    """Subnets, the multi-node subnet and the security groups exist and belong to ``spec.vpc_id``."""
    try:
        subnets = ec2.describe_subnets(SubnetIds=sorted({*spec.subnets, spec.mnp_subnet}))["Subnets"]
    except botocore.exceptions.ClientError as exc:
        raise _network_error("subnet", exc, "--subnets/--mnp-subnet") from exc
    by_id = {s["SubnetId"]: s for s in subnets}
    for sid in spec.subnets:
        if by_id[sid]["VpcId"] != spec.vpc_id:
            raise UserError(f"subnet {sid} is in {by_id[sid]['VpcId']}, not --vpc-id {spec.vpc_id}: pass subnets "
                            "of one VPC")
    mnp = by_id[spec.mnp_subnet]
    if mnp["VpcId"] != spec.vpc_id:
        raise UserError(f"--mnp-subnet {spec.mnp_subnet} is in {mnp['VpcId']}, not --vpc-id {spec.vpc_id}: the "
                        "multi-node security group is made in that VPC; pick one of its subnets")
    try:
        groups = ec2.describe_security_groups(GroupIds=spec.security_groups)["SecurityGroups"]
    except botocore.exceptions.ClientError as exc:
        raise _network_error("security group", exc, "--security-groups") from exc
    for g in groups:
        if g.get("VpcId") != spec.vpc_id:
            raise UserError(f"security group {g['GroupId']} is in {g.get('VpcId')}, not --vpc-id {spec.vpc_id}: "
                            "pass groups of that VPC")


def check_ami(ec2: Any, ami: str, flavor: str, account: str) -> None:
    """``ami`` is an image of this account built by ``batchpipes aws build-ami --flavor <flavor>`` for AL2023."""
    build = f"build one with 'batchpipes aws build-ami --flavor {flavor}' and pass its id as --{flavor}-ami-id"
    try:
        images = ec2.describe_images(ImageIds=[ami], Owners=["self"])["Images"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            raise UserError(f"cannot check AMI {ami}: {describe_error(exc)}") from exc
        images = []
    if not images or images[0].get("OwnerId") != account:
        raise UserError(f"AMI {ami} is not an image of this account in this region (a stock AMI lacks the AWS CLI "
                        f"and fetch_and_run.sh Cromwell's jobs need): {build}")
    tags = {t["Key"]: t["Value"] for t in images[0].get("Tags", [])}
    if FLAVOR_TAG not in tags:
        raise UserError(f"AMI {ami} was not built by batchpipes (no {FLAVOR_TAG} tag): {build}")
    if tags[FLAVOR_TAG] != flavor:
        raise UserError(f"AMI {ami} is a {tags[FLAVOR_TAG]} host image, not {flavor}: {build}")
    if tags.get(OS_TAG) != HOST_OS:
        raise UserError(f"AMI {ami} is not an Amazon Linux 2023 host ({OS_TAG} is "
                        f"{tags.get(OS_TAG, 'missing')}, an Amazon Linux 2 build?): {build}")


def check_account(sess: boto3.session.Session, spec: Spec, account: str) -> None:
    """The read-only checks: buckets, network, AMIs."""
    s3, ec2 = client(sess, "s3"), client(sess, "ec2")
    for bucket in dict.fromkeys([spec.data_bucket, spec.cromwell_bucket]):
        check_bucket(s3, bucket)
    check_network(ec2, spec)
    check_ami(ec2, spec.cpu_ami_id, "cpu", account)
    check_ami(ec2, spec.gpu_ami_id, "gpu", account)


# -- stack operations ----------------------------------------------------------------------------------------------

def poll(check: Callable[[], bool], what: str, *, timeout: float, sleep: Sleep) -> None:
    """Call ``check`` with exponential backoff and jitter (1 s doubling to 30 s) until true; UserError after
    ``timeout`` seconds."""
    delay, waited = 1.0, 0.0
    while not check():
        if waited >= timeout:
            raise UserError(f"timed out after {int(waited)} s waiting for {what}: see the CloudFormation console")
        pause = random.uniform(delay / 2, delay)
        sleep(pause)
        waited += pause
        delay = min(delay * 2, 30.0)


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack called ``name`` (or with that id), or None when there is none."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in describe_error(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def change_set_request(spec: Spec, change_set: str, change_type: str, service_role_arn: str) -> dict[str, Any]:
    """Keyword arguments of CreateChangeSet."""
    return {
        "StackName": stack_name(spec.name), "ChangeSetName": change_set, "ChangeSetType": change_type,
        "TemplateBody": template_body(), "Parameters": parameters(spec, service_role_arn),
        "Capabilities": list(CAPABILITIES),
        "Tags": [*({"Key": k, "Value": v} for k, v in PROJECT_TAGS.items()),
                 {"Key": DEPLOYMENT_TAG, "Value": spec.name}],
        "Description": f"batchpipes aws deploy --name {spec.name}",
    }


def _changes(cfn: Any, arn: str) -> tuple[dict[str, Any], list[Change]]:
    out: list[Change] = []
    kwargs: dict[str, Any] = {"ChangeSetName": arn}
    while True:
        resp = cfn.describe_change_set(**kwargs)
        for c in resp.get("Changes", []):
            rc = c.get("ResourceChange", {})
            out.append(Change(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"),
                              rc.get("Replacement")))
        if not resp.get("NextToken"):
            return resp, out
        kwargs["NextToken"] = resp["NextToken"]


def first_failure(cfn: Any, stack_id: str, before: set[str] | None = None) -> str:
    """The first (oldest) failed resource event of the stack, as 'LogicalId (Type): reason'; events whose ids are in
    ``before`` (an earlier operation's) are not considered."""
    events: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        events.extend(page["StackEvents"])
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")
              and e["EventId"] not in (before or set())
              and "cancelled" not in str(e.get("ResourceStatusReason", "")).lower()]
    failed.sort(key=lambda e: e["Timestamp"])
    if not failed:
        return "no failed resource event (see the CloudFormation console)"
    e = failed[0]
    reason = " ".join(str(e.get("ResourceStatusReason", "no reason given")).split())
    return f"{e['LogicalResourceId']} ({e.get('ResourceType', '?')}): {reason}"


def _delete_review_stack(cfn: Any, stack_id: str) -> None:
    """A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS; remove it when not executed."""
    stack = describe_stack(cfn, stack_id)
    if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        cfn.delete_stack(StackName=stack_id)


def _event_ids(cfn: Any, stack_id: str) -> set[str]:
    """The ids of the stack's events so far (the first page, newest first: what an operation adds comes after)."""
    return {e["EventId"] for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]}


def _wait_settled(cfn: Any, stack_id: str, seen: set[str], what: str, *, timeout: float,
                  sleep: Sleep) -> dict[str, Any]:
    """Poll until the stack is no longer ``*_IN_PROGRESS``, logging each new event once; its last description
    (``DELETE_COMPLETE`` once it is gone)."""
    final: dict[str, Any] = {}

    def settled() -> bool:
        _log_new_events(cfn, stack_id, seen)
        final.update(describe_stack(cfn, stack_id) or {"StackStatus": "DELETE_COMPLETE"})
        return not str(final["StackStatus"]).endswith("_IN_PROGRESS")

    poll(settled, what, timeout=timeout, sleep=sleep)
    return final


def _log_new_events(cfn: Any, stack_id: str, seen: set[str]) -> None:
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]  # newest first; the first page suffices
    for e in reversed(events):
        if e["EventId"] in seen:
            continue
        seen.add(e["EventId"])
        reason = f": {' '.join(str(e['ResourceStatusReason']).split())}" if e.get("ResourceStatusReason") else ""
        log.info("%-22s %s %s%s", e.get("ResourceStatus"), e["LogicalResourceId"], e.get("ResourceType", ""), reason)


def deploy(sess: boto3.session.Session, spec: Spec, *, dry_run: bool = False, sleep: Sleep = time.sleep,
           timeout: float = 3600) -> Deployment:
    """Create or update the stack of ``spec`` through a change set (see the module doc)."""
    validate(spec)
    region = str(sess.region_name)
    cfn, iam = client(sess, "cloudformation"), client(sess, "iam")
    check_account(sess, spec, account_id(sess))
    name = stack_name(spec.name)
    try:
        existing = describe_stack(cfn, name)
        if existing is not None:
            status = existing["StackStatus"]
            if status == "ROLLBACK_COMPLETE":
                raise UserError(f"stack {name} is ROLLBACK_COMPLETE (its creation failed) and cannot be updated: "
                                f"run 'batchpipes aws teardown --name {spec.name}', then deploy again")
            if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
                raise UserError(f"stack {name} is {status}: wait until it settles, then deploy again")
        change_type = "CREATE" if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
        service_role = iam_mod.ensure_batch_service_role(iam, [])  # the account's, shared; never deleted
        change_set = f"batchpipes-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        request = change_set_request(spec, change_set, change_type, service_role)
        try:
            created = cfn.create_change_set(**request)
        except botocore.exceptions.ClientError as exc:
            # UpdateStack's (and some emulators') answer to an unchanged stack; CloudFormation's own is a FAILED
            # change set (handled below)
            if error_code(exc) == "ValidationError" and describe_error(exc).find(NO_CHANGES[1]) >= 0:
                log.info("no changes: stack %s already matches the template and parameters", name)
                return Deployment(spec.name, name, region, str((existing or {}).get("StackStatus")), [],
                                  outputs(existing or {}), False)
            raise
        arn, stack_id = created["Id"], created["StackId"]
        log.info("change set %s (%s) for stack %s", change_set, change_type, name)

        state: dict[str, Any] = {}

        def settled() -> bool:
            state.update(cfn.describe_change_set(ChangeSetName=arn))
            return state.get("Status") in ("CREATE_COMPLETE", "FAILED")

        poll(settled, f"change set {change_set}", timeout=600, sleep=sleep)
        if state["Status"] == "FAILED":
            reason = " ".join(str(state.get("StatusReason", "")).split())
            cfn.delete_change_set(ChangeSetName=arn)
            if reason.startswith(NO_CHANGES):
                log.info("no changes: stack %s already matches the template and parameters", name)
                stack = describe_stack(cfn, stack_id) or {}
                return Deployment(spec.name, name, region, str(stack.get("StackStatus")), [], outputs(stack), False)
            if change_type == "CREATE":
                _delete_review_stack(cfn, stack_id)
            raise UserError(f"change set for stack {name} failed: {reason}")
        _, changes = _changes(cfn, arn)
        for c in changes:
            log.info("%s", c.line())
        if dry_run:
            cfn.delete_change_set(ChangeSetName=arn)
            if change_type == "CREATE":
                _delete_review_stack(cfn, stack_id)
            log.info("dry run: %d change(s) not executed; change set deleted", len(changes))
            stack = describe_stack(cfn, stack_id) or {}
            return Deployment(spec.name, name, region, str(stack.get("StackStatus", "NONE")), changes,
                              outputs(stack), False)
        before = _event_ids(cfn, stack_id)
        cfn.execute_change_set(ChangeSetName=arn)
        final = _wait_settled(cfn, stack_id, set(before), f"stack {name} to finish {change_type.lower()}",
                              timeout=timeout, sleep=sleep)
        status = str(final["StackStatus"])
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise UserError(f"deploy of stack {name} ended {status}: {first_failure(cfn, stack_id, before)}")
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"deploy of stack {name} stopped: {describe_error(exc)}") from exc
    return Deployment(spec.name, name, region, status, changes, outputs(final), True)


def teardown(sess: boto3.session.Session, name: str, *, sleep: Sleep = time.sleep,
             timeout: float = 3600) -> list[str]:
    """Delete the stack of deployment ``name`` and wait; returns what it held ('Type physical-id'), [] when there
    was no stack. The Batch service-linked role is the account's and stays."""
    account_id(sess)  # the credentials answer (and are AWS's) before anything is asked
    cfn = client(sess, "cloudformation")
    stack = stack_name(name)
    try:
        found = describe_stack(cfn, stack)
        if found is None:
            return []
        stack_id = found["StackId"]
        held: list[str] = []
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id):
            for r in page["StackResourceSummaries"]:
                ident = str(r.get("PhysicalResourceId") or "").strip() or str(r.get("LogicalResourceId", "")).strip()
                if ident:
                    held.append(f"{r.get('ResourceType') or '?'} {ident}")
        before = _event_ids(cfn, stack_id)
        cfn.delete_stack(StackName=stack_id)
        final = _wait_settled(cfn, stack_id, set(before), f"stack {stack} to be deleted", timeout=timeout, sleep=sleep)
        if final["StackStatus"] != "DELETE_COMPLETE":
            raise UserError(f"teardown of stack {stack} ended {final['StackStatus']}: "
                            f"{first_failure(cfn, stack_id, before)}: fix it and run teardown again")
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"teardown of stack {stack} stopped: {describe_error(exc)}") from exc
    return held


def deployment_outputs(sess: boto3.session.Session, name: str) -> dict[str, str]:
    """The outputs of deployment ``name`` (queue ARNs, roles, ...); UserError when it is not deployed."""
    found = describe_stack(client(sess, "cloudformation"), stack_name(name))
    if found is None:
        raise UserError(f"no stack {stack_name(name)} in {sess.region_name}: run 'batchpipes aws deploy --name {name} "
                        "...' first (or pass --region)")
    return outputs(found)
