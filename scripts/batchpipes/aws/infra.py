"""AWS Batch infrastructure for batchpipes: deploy (idempotent) and teardown.

Everything is named from one deployment name ``N`` and tagged ``batchpipes:deployment = N``:

* IAM (see iam.py): ``N-batch-instance`` role + instance profile, ``N-batch-job`` role, ``N-cromwell`` policy.
* Launch templates ``N-cpu`` and ``N-gpu``: IMDSv2 only with a PUT response hop limit of 1 (see
  ``IMDS_HOP_LIMIT``), encrypted gp3 root volume; the GPU one carries the GPU AMI when one is given.
* Placement group ``N-mnp`` (cluster) for multi-node parallel jobs.
* Compute environments ``N-cpu-spot`` (SPOT, SPOT_CAPACITY_OPTIMIZED, diversified families), ``N-gpu``
  (SPOT, GPU families, ECS_AL2_NVIDIA) and ``N-mnp`` (on-demand EC2, placement group).
* Job queues ``N-cpu``, ``N-gpu``, ``N-mnp``.
* Job definitions ``N-<image>`` (one per pipeline image), ``N-gpu-encode`` and ``N-gromacs-mnp``; each
  retries Spot reclaims (status reason ``Host EC2*``) and exits on anything else.

Deploy describes first and creates what is absent, updates what differs and leaves the rest alone, so a
second run changes nothing. Teardown deletes in dependency order and waits for each step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from .. import containers, settings
from ..errors import UserError
from ..files import write_atomically
from . import iam as iam_mod
from . import mnp
from .buckets import check_bucket
from .constants import DEPLOYMENT_TAG, SPEC_TAG, SPOT_RETRY
from .ecr import ecr_registry
from .session import account_id, client, describe_error, error_code

log = logging.getLogger(__name__)

CPU_FAMILIES = ["c5", "c6i", "m5", "m6i", "r5", "r6i"]
GPU_FAMILIES = ["g4dn", "g5", "g6"]  # NVENC-capable; p3 is V100, a training part

Sleep = Callable[[float], None]

#: HttpPutResponseHopLimit of the launch templates: 1, the EC2 default. Why not 2:
#:
#: * Cromwell's AWS backend runs everything on the instance inside the job container: the container's command
#:   is the host's fetch_and_run.sh, which downloads the job script with the host's AWS CLI (mounted at
#:   /usr/local/aws-cli), and that script localizes and delocalizes with ``aws s3 cp``. Those calls take their
#:   credentials from the job role when the job definition has one (Cromwell sets it from the workflow option
#:   ``aws_batch_job_role_arn``; the ECS agent serves it at 169.254.170.2), else from the instance role through
#:   IMDS.
#: * AWS Batch runs single-node ECS jobs with host networking (MNP jobs with awsvpc). A host-network container
#:   is no extra hop from IMDS, so Cromwell's fallback to the instance role works with a limit of 1, and a
#:   limit of 2, which only helps containers on a bridge network, would give nothing Cromwell needs.
#: * The hop limit therefore cannot keep job containers off the instance role either: in host mode they share
#:   the host's network. What does keep the job's code off the instance role's S3 rights is running Cromwell
#:   with ``aws_batch_job_role_arn`` set to the deployment's job role (the AWS CLI prefers the ECS
#:   credentials to IMDS; see docs/aws.md, Deploy). Limit 1 still stops any
#:   bridge-network container (a container started by a job, a side tool) from getting IMDSv2 tokens.
IMDS_HOP_LIMIT = 1


@dataclass
class Spec:
    """What ``batchpipes aws deploy`` builds."""

    name: str
    buckets: list[str]
    subnets: list[str]
    security_groups: list[str]
    gpu_ami_id: str | None = None
    cpu_ami_id: str | None = None
    max_vcpus: int = 256
    gpu_max_vcpus: int = 64
    mnp_max_vcpus: int = 288
    cpu_instance_types: list[str] = field(default_factory=lambda: list(CPU_FAMILIES))
    gpu_instance_types: list[str] = field(default_factory=lambda: list(GPU_FAMILIES))
    mnp_instance_type: str = "c5n.18xlarge"
    mnp_image: str = "gromacs"
    mnp_nodes: int = 2
    mnp_vcpus: int = 72
    mnp_memory_mib: int = 180_000
    gpu_image: str = "ffmpeg"
    volume_gb: int = 100

    def names(self) -> dict[str, str]:
        n = self.name
        return {"lt_cpu": f"{n}-cpu", "lt_gpu": f"{n}-gpu", "pg": f"{n}-mnp",
                "ce_cpu": f"{n}-cpu-spot", "ce_gpu": f"{n}-gpu", "ce_mnp": f"{n}-mnp",
                "q_cpu": f"{n}-cpu", "q_gpu": f"{n}-gpu", "q_mnp": f"{n}-mnp",
                "jd_gpu": f"{n}-gpu-encode", "jd_mnp": f"{n}-gromacs-mnp"}


def names_for(name: str) -> dict[str, str]:
    return Spec(name, [], [], []).names()


@dataclass
class Deployment:
    """What deploy wrote; the local state JSON."""

    name: str
    region: str
    account: str
    queues: dict[str, str]
    compute_environments: dict[str, str]
    job_definitions: dict[str, str]
    launch_templates: dict[str, str]
    placement_group: str
    roles: dict[str, str]
    buckets: list[str]
    changes: list[str]


def default_state_path(name: str, region: str) -> Path:
    return settings.CACHE_DIR / "aws" / f"deploy-{name}-{region}.json"


def ecr_uri(account: str, region: str, image: containers.Image) -> str:
    """The image's pinned reference in the account's ECR registry of ``region``."""
    return f"{ecr_registry(account, region)}/{image.pinned}"


def wait_for(check: Callable[[], bool], what: str, *, timeout: float = 900, sleep: Sleep = time.sleep) -> None:
    """Poll ``check`` with exponential backoff and jitter until it is true, or raise after ``timeout``."""
    delay, waited = 1.0, 0.0
    while not check():
        if waited >= timeout:
            raise UserError(f"timed out after {int(waited)} s waiting for {what}: check the AWS Batch console")
        pause = random.uniform(delay / 2, delay)
        sleep(pause)
        waited += pause
        delay = min(delay * 2, 30.0)


# -- checks ---------------------------------------------------------------------------------------

def check_network(ec2: Any, subnets: list[str], groups: list[str]) -> None:
    try:
        ec2.describe_subnets(SubnetIds=subnets)
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"subnet not found ({describe_error(exc)}): pass --subnets with subnet ids of this "
                        "region's VPC") from exc
    try:
        ec2.describe_security_groups(GroupIds=groups)
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"security group not found ({describe_error(exc)}): pass --security-groups with ids "
                        "of this region's VPC") from exc


# -- launch templates and placement group -----------------------------------------------------------

def launch_template_data(spec: Spec, ami: str | None) -> dict[str, Any]:
    tags = [{"Key": DEPLOYMENT_TAG, "Value": spec.name}]
    data: dict[str, Any] = {
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                            "HttpPutResponseHopLimit": IMDS_HOP_LIMIT},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "Encrypted": True, "VolumeSize": spec.volume_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": tags}],
    }
    if ami:
        data["ImageId"] = ami
    return data


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def ensure_launch_template(ec2: Any, name: str, data: dict[str, Any], tag: str, changes: list[str]) -> dict[str, str]:
    """Launch template ``name`` whose latest version holds ``data``; returns its id and that version.

    Each version we create is described as ``batchpipes spec <hash of data>``: EC2 returns the data with
    defaults filled in, so the description, not the returned data, tells whether it is already current.
    """
    description = f"batchpipes spec {spec_hash(data)}"
    try:
        lt = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"][0]
    except botocore.exceptions.ClientError as exc:
        if "NotFound" not in error_code(exc):
            raise
        lt = ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData=data, VersionDescription=description,
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": DEPLOYMENT_TAG, "Value": tag}]}],
        )["LaunchTemplate"]
        changes.append(f"created launch template {name}")
        return {"id": lt["LaunchTemplateId"], "version": str(lt["LatestVersionNumber"])}
    latest = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"],
                                                   Versions=[str(lt["LatestVersionNumber"])])
    if latest["LaunchTemplateVersions"][0].get("VersionDescription") == description:
        return {"id": lt["LaunchTemplateId"], "version": str(lt["LatestVersionNumber"])}
    ver = ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], LaunchTemplateData=data,
                                             VersionDescription=description)["LaunchTemplateVersion"]
    ec2.modify_launch_template(LaunchTemplateId=lt["LaunchTemplateId"], DefaultVersion=str(ver["VersionNumber"]))
    changes.append(f"new version {ver['VersionNumber']} of launch template {name}")
    return {"id": lt["LaunchTemplateId"], "version": str(ver["VersionNumber"])}


def ensure_placement_group(ec2: Any, name: str, tag: str, changes: list[str]) -> str:
    groups = ec2.describe_placement_groups(Filters=[{"Name": "group-name", "Values": [name]}])["PlacementGroups"]
    groups = [g for g in groups if g.get("State") != "deleted"]
    if groups:
        if groups[0].get("Strategy") != "cluster":
            raise UserError(f"placement group {name} exists with strategy {groups[0].get('Strategy')}: delete it "
                            "or choose another --name")
        return name
    ec2.create_placement_group(GroupName=name, Strategy="cluster", TagSpecifications=[
        {"ResourceType": "placement-group", "Tags": [{"Key": DEPLOYMENT_TAG, "Value": tag}]}])
    changes.append(f"created placement group {name} (cluster)")
    return name


# -- compute environments and queues ---------------------------------------------------------------

def compute_resources(spec: Spec, kind: str, roles: iam_mod.Roles, lts: dict[str, dict[str, str]]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "minvCpus": 0, "subnets": list(spec.subnets), "securityGroupIds": list(spec.security_groups),
        "instanceRole": roles.instance_profile_arn,
        "tags": {DEPLOYMENT_TAG: spec.name, "Name": f"{spec.name}-{kind}"},
    }
    if kind == "cpu":
        return {**base, "type": "SPOT", "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED", "maxvCpus": spec.max_vcpus,
                "instanceTypes": list(spec.cpu_instance_types),
                "launchTemplate": {"launchTemplateId": lts["cpu"]["id"], "version": lts["cpu"]["version"]}}
    if kind == "gpu":
        return {**base, "type": "SPOT", "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED",
                "maxvCpus": spec.gpu_max_vcpus, "instanceTypes": list(spec.gpu_instance_types),
                "ec2Configuration": [{"imageType": "ECS_AL2_NVIDIA"}],
                "launchTemplate": {"launchTemplateId": lts["gpu"]["id"], "version": lts["gpu"]["version"]}}
    return {**base, "type": "EC2", "allocationStrategy": "BEST_FIT_PROGRESSIVE", "maxvCpus": spec.mnp_max_vcpus,
            "instanceTypes": [spec.mnp_instance_type], "placementGroup": spec.names()["pg"],
            "launchTemplate": {"launchTemplateId": lts["cpu"]["id"], "version": lts["cpu"]["version"]}}


#: computeResources fields UpdateComputeEnvironment can change in place.
UPDATABLE = ("maxvCpus", "subnets", "securityGroupIds", "instanceTypes", "launchTemplate", "instanceRole",
             "allocationStrategy", "tags", "placementGroup", "ec2Configuration")


def _describe_ce(batch: Any, name: str) -> dict[str, Any] | None:
    found = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    return dict(found[0]) if found else None


def ensure_compute_environment(batch: Any, name: str, cr: dict[str, Any], service_role: str, tag: str,
                               changes: list[str], sleep: Sleep) -> str:
    ce = _describe_ce(batch, name)
    if ce is None:
        ce = batch.create_compute_environment(computeEnvironmentName=name, type="MANAGED", state="ENABLED",
                                              computeResources=cr, serviceRole=service_role, tags={DEPLOYMENT_TAG: tag})
        changes.append(f"created compute environment {name}")
        arn = str(ce["computeEnvironmentArn"])
    else:
        arn = str(ce["computeEnvironmentArn"])
        have = ce.get("computeResources", {})
        if have.get("type") != cr["type"]:
            raise UserError(f"compute environment {name} is {have.get('type')}, not {cr['type']}: run "
                            f"'batchpipes aws teardown --name {tag}' first")
        diff = {k: cr[k] for k in UPDATABLE if k in cr and _canon(have.get(k)) != _canon(cr[k])}
        if diff or ce.get("state") != "ENABLED":
            batch.update_compute_environment(computeEnvironment=name, state="ENABLED",
                                             **({"computeResources": diff} if diff else {}))
            changes.append(f"updated compute environment {name}" + (f" ({', '.join(sorted(diff))})" if diff else ""))
    wait_for(lambda: (_describe_ce(batch, name) or {}).get("status") == "VALID",
             f"compute environment {name} to become VALID", sleep=sleep)
    return arn


def _describe_queue(batch: Any, name: str) -> dict[str, Any] | None:
    found = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    return dict(found[0]) if found else None


def ensure_queue(batch: Any, name: str, ce_arns: list[str], tag: str, changes: list[str], sleep: Sleep) -> str:
    order = [{"order": i, "computeEnvironment": arn} for i, arn in enumerate(ce_arns, start=1)]
    q = _describe_queue(batch, name)
    if q is None:
        q = batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1, computeEnvironmentOrder=order,
                                   tags={DEPLOYMENT_TAG: tag})
        changes.append(f"created job queue {name}")
    else:
        have = sorted((int(o["order"]), o["computeEnvironment"]) for o in q.get("computeEnvironmentOrder", []))
        if have != [(o["order"], o["computeEnvironment"]) for o in order] or q.get("state") != "ENABLED" \
                or int(q.get("priority", 0)) != 1:
            batch.update_job_queue(jobQueue=name, state="ENABLED", priority=1, computeEnvironmentOrder=order)
            changes.append(f"updated job queue {name}")
    wait_for(lambda: (_describe_queue(batch, name) or {}).get("status") == "VALID",
             f"job queue {name} to become VALID", sleep=sleep)
    return str(q["jobQueueArn"])


# -- job definitions --------------------------------------------------------------------------------

def spec_hash(kwargs: dict[str, Any]) -> str:
    return hashlib.sha256(_canon(kwargs).encode()).hexdigest()[:16]


def _active_definitions(batch: Any, name: str | None = None) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"status": "ACTIVE"}
    if name:
        args["jobDefinitionName"] = name
    out: list[dict[str, Any]] = []
    token = None
    while True:
        resp = batch.describe_job_definitions(**args, **({"nextToken": token} if token else {}))
        out.extend(resp.get("jobDefinitions", []))
        token = resp.get("nextToken")
        if not token:
            return out


def ensure_job_definition(batch: Any, kwargs: dict[str, Any], tag: str, changes: list[str]) -> str:
    """Register ``kwargs`` unless the newest ACTIVE revision of that name was registered from the same spec."""
    digest = spec_hash(kwargs)
    name = kwargs["jobDefinitionName"]
    revisions = sorted(_active_definitions(batch, name), key=lambda d: int(d["revision"]))
    if revisions and revisions[-1].get("tags", {}).get(SPEC_TAG) == digest:
        return str(revisions[-1]["jobDefinitionArn"])
    tags = {**kwargs.get("tags", {}), DEPLOYMENT_TAG: tag, SPEC_TAG: digest}
    resp = batch.register_job_definition(**{**kwargs, "tags": tags})
    changes.append(f"registered job definition {name}:{resp['revision']}")
    return str(resp["jobDefinitionArn"])


def container_definition(name: str, image_uri: str, job_role_arn: str, *, vcpus: int = 1, memory_mib: int = 2048,
                         gpus: int = 0, environment: dict[str, str] | None = None) -> dict[str, Any]:
    resources = [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": str(memory_mib)}]
    if gpus:
        resources.append({"type": "GPU", "value": str(gpus)})
    props: dict[str, Any] = {
        "image": image_uri, "resourceRequirements": resources, "jobRoleArn": job_role_arn,
        "privileged": False, "readonlyRootFilesystem": False,
        "logConfiguration": {"logDriver": "awslogs"},
    }
    if environment:
        props["environment"] = [{"name": k, "value": v} for k, v in sorted(environment.items())]
    return {"jobDefinitionName": name, "type": "container", "containerProperties": props,
            "retryStrategy": SPOT_RETRY, "timeout": {"attemptDurationSeconds": 86400},
            "platformCapabilities": ["EC2"], "propagateTags": True}


def mnp_definition(spec: Spec, image_uri: str, job_role_arn: str) -> dict[str, Any]:
    """The GROMACS multi-node definition (mnp.job_definition sets its Spot-reclaim retry strategy)."""
    return mnp.job_definition(spec.names()["jd_mnp"], image_uri, spec.mnp_nodes, spec.mnp_vcpus,
                              spec.mnp_memory_mib, job_role_arn=job_role_arn)


def job_definitions(spec: Spec, account: str, region: str, job_role_arn: str) -> list[dict[str, Any]]:
    images = containers.discover()
    defs = []
    for img in images.values():
        if img.name.endswith("-cuda"):
            continue  # GPU builds are used through the GPU definitions below
        defs.append(container_definition(f"{spec.name}-{img.name}", ecr_uri(account, region, img), job_role_arn))
    if spec.gpu_image not in images:
        raise UserError(f"GPU image '{spec.gpu_image}' is not in containers/: choose one of {', '.join(images)}")
    defs.append(container_definition(
        spec.names()["jd_gpu"], ecr_uri(account, region, images[spec.gpu_image]), job_role_arn, vcpus=4,
        memory_mib=15000, gpus=1, environment={"NVIDIA_DRIVER_CAPABILITIES": "compute,utility,video",
                                               "NVIDIA_VISIBLE_DEVICES": "all"}))
    if spec.mnp_image not in images:
        raise UserError(f"MNP image '{spec.mnp_image}' is not in containers/: choose one of {', '.join(images)}")
    defs.append(mnp_definition(spec, ecr_uri(account, region, images[spec.mnp_image]), job_role_arn))
    return defs


# -- deploy / teardown -------------------------------------------------------------------------------

def deploy(sess: boto3.session.Session, spec: Spec, *, state_path: Path | None = None,
           sleep: Sleep = time.sleep) -> Deployment:
    region = str(sess.region_name)
    account = account_id(sess)
    ec2, batch, iam, s3 = (client(sess, s) for s in ("ec2", "batch", "iam", "s3"))
    n = spec.names()
    changes: list[str] = []
    try:
        for bucket in spec.buckets:
            check_bucket(s3, bucket)
        check_network(ec2, spec.subnets, spec.security_groups)
        roles = iam_mod.ensure(iam, spec.name, spec.buckets, region, account, changes)
        lts = {"cpu": ensure_launch_template(ec2, n["lt_cpu"], launch_template_data(spec, spec.cpu_ami_id),
                                             spec.name, changes),
               "gpu": ensure_launch_template(ec2, n["lt_gpu"], launch_template_data(spec, spec.gpu_ami_id),
                                             spec.name, changes)}
        pg = ensure_placement_group(ec2, n["pg"], spec.name, changes)
        ces = {kind: ensure_compute_environment(batch, n[f"ce_{kind}"], compute_resources(spec, kind, roles, lts),
                                                roles.service_role_arn, spec.name, changes, sleep)
               for kind in ("cpu", "gpu", "mnp")}
        queues = {kind: ensure_queue(batch, n[f"q_{kind}"], [ces[kind]], spec.name, changes, sleep)
                  for kind in ("cpu", "gpu", "mnp")}
        jds = {d["jobDefinitionName"]: ensure_job_definition(batch, d, spec.name, changes)
               for d in job_definitions(spec, account, region, roles.job_role_arn)}
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"deploy of '{spec.name}' stopped: {describe_error(exc)}: fix it and re-run (deploy "
                        "is idempotent)") from exc
    dep = Deployment(spec.name, region, account, queues, ces, jds,
                     {k: f"{v['id']}:{v['version']}" for k, v in lts.items()}, pg, asdict(roles), spec.buckets,
                     changes)
    write_atomically(state_path or default_state_path(spec.name, region), json.dumps(asdict(dep), indent=2) + "\n")
    return dep


def _delete_batch_resource(batch: Any, kind: str, name: str, sleep: Sleep, timeout: float) -> bool:
    """Disable, wait, delete and wait for a job queue (``kind`` "queue") or compute environment ("ce")."""
    describe = _describe_queue if kind == "queue" else _describe_ce
    what = "job queue" if kind == "queue" else "compute environment"

    def status() -> str:
        return str((describe(batch, name) or {"status": "DELETED"}).get("status"))

    current = describe(batch, name)
    if current is None or current.get("status") == "DELETED":
        return False
    if current.get("state") != "DISABLED":
        if kind == "queue":
            batch.update_job_queue(jobQueue=name, state="DISABLED")
        else:
            batch.update_compute_environment(computeEnvironment=name, state="DISABLED")
    wait_for(lambda: status() != "UPDATING", f"{what} {name} to be disabled", sleep=sleep, timeout=timeout)
    if kind == "queue":
        batch.delete_job_queue(jobQueue=name)
    else:
        batch.delete_compute_environment(computeEnvironment=name)
    wait_for(lambda: status() == "DELETED", f"{what} {name} to be deleted", sleep=sleep, timeout=timeout)
    return True


def teardown(sess: boto3.session.Session, name: str, *, state_path: Path | None = None,
             sleep: Sleep = time.sleep, timeout: float = 1800) -> list[str]:
    """Delete every resource of deployment ``name`` (found by name, not only from the state file)."""
    region = str(sess.region_name)
    account = account_id(sess)
    ec2, batch, iam = (client(sess, s) for s in ("ec2", "batch", "iam"))
    n = names_for(name)
    removed: list[str] = []
    try:
        for kind in ("cpu", "gpu", "mnp"):
            if _delete_batch_resource(batch, "queue", n[f"q_{kind}"], sleep, timeout):
                removed.append(f"job queue {n[f'q_{kind}']}")
        for kind in ("cpu", "gpu", "mnp"):
            if _delete_batch_resource(batch, "ce", n[f"ce_{kind}"], sleep, timeout):
                removed.append(f"compute environment {n[f'ce_{kind}']}")
        for jd in _active_definitions(batch):
            if jd.get("tags", {}).get(DEPLOYMENT_TAG) == name or (jd["jobDefinitionName"].startswith(f"{name}-")
                                                           and DEPLOYMENT_TAG in jd.get("tags", {})):
                batch.deregister_job_definition(jobDefinition=jd["jobDefinitionArn"])
                removed.append(f"job definition {jd['jobDefinitionName']}:{jd['revision']}")
        for lt in ("lt_cpu", "lt_gpu"):
            try:
                found = ec2.describe_launch_templates(LaunchTemplateNames=[n[lt]])["LaunchTemplates"]
            except botocore.exceptions.ClientError as exc:
                if "NotFound" not in error_code(exc):
                    raise
                found = []
            for t in found:
                ec2.delete_launch_template(LaunchTemplateId=t["LaunchTemplateId"])
                removed.append(f"launch template {n[lt]}")
        groups = ec2.describe_placement_groups(Filters=[{"Name": "group-name", "Values": [n["pg"]]}])
        if [g for g in groups["PlacementGroups"] if g.get("State") != "deleted"]:
            ec2.delete_placement_group(GroupName=n["pg"])
            removed.append(f"placement group {n['pg']}")
        iam_mod.teardown(iam, name, account, removed)
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"teardown of '{name}' stopped: {describe_error(exc)}: fix it and re-run") from exc
    path = state_path or default_state_path(name, region)
    path.unlink(missing_ok=True)
    return removed
