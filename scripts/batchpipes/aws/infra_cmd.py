"""``batchpipes aws deploy`` and ``batchpipes aws teardown``: the AWS Batch infrastructure as a CloudFormation stack."""

from __future__ import annotations

import argparse
import logging
import shlex

from . import session, stack
from .options import add_common, deployment_name

log = logging.getLogger(__name__)

#: Stack outputs deploy prints (besides the job definitions), in this order.
PRINTED_OUTPUTS = ("CpuQueueArn", "GpuQueueArn", "MnpQueueArn", "JobRoleArn", "CromwellPolicyArn",
                   "MnpSecurityGroupId", "PlacementGroupName")


def _csv(value: str) -> list[str]:
    return [v for v in (x.strip() for x in value.split(",")) if v]


def register(asub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = asub.add_parser(
        "deploy", help="create or update the AWS Batch infrastructure (CloudFormation stack, via a change set)",
        description="Create or update the stack batchpipes-NAME from cloudformation/batchpipes.yaml: IAM roles "
        "scoped to the two buckets, launch templates (IMDSv2, encrypted gp3 root and scratch), a cluster placement "
        "group and security group for multi-node jobs, compute environments on batchpipes AL2023 AMIs, job queues "
        "and job definitions. Every value is checked before anything is written; the change set's changes are "
        "printed, an empty one is reported as 'no changes'.")
    add_common(p)
    p.add_argument("--name", type=deployment_name, required=True, help="deployment name; prefixes every resource")
    p.add_argument("--bucket", required=True, help="S3 bucket of the data (inputs and outputs)")
    p.add_argument("--cromwell-bucket", help="S3 bucket of Cromwell's root (default: --bucket)")
    p.add_argument("--vpc-id", required=True, help="VPC of the subnets")
    p.add_argument("--subnets", type=_csv, required=True, help="comma-separated subnet ids (CPU and GPU)")
    p.add_argument("--security-groups", type=_csv, required=True, help="comma-separated security group ids")
    p.add_argument("--mnp-subnet", help="ONE subnet for multi-node jobs (cluster placement group = one AZ; "
                   "default: the first of --subnets)")
    p.add_argument("--cpu-ami-id", required=True, help="AMI from 'batchpipes aws build-ami --flavor cpu'")
    p.add_argument("--gpu-ami-id", required=True, help="AMI from 'batchpipes aws build-ami --flavor gpu'")
    p.add_argument("--capacity", choices=["SPOT", "ON_DEMAND"], default="SPOT",
                   help="purchase option of the CPU and GPU environments (default SPOT; multi-node is on-demand)")
    p.add_argument("--max-vcpus", type=int, default=256, help="CPU environment size (default 256)")
    p.add_argument("--gpu-max-vcpus", type=int, default=64, help="GPU environment size (default 64)")
    p.add_argument("--mnp-max-vcpus", type=int, default=288, help="multi-node environment size (default 288)")
    p.add_argument("--cpu-instance-types", type=_csv, default=list(stack.CPU_FAMILIES),
                   help=f"comma-separated (default {','.join(stack.CPU_FAMILIES)})")
    p.add_argument("--gpu-instance-types", type=_csv, default=list(stack.GPU_FAMILIES),
                   help=f"comma-separated (default {','.join(stack.GPU_FAMILIES)})")
    p.add_argument("--mnp-instance-type", default="c5n.18xlarge", help="multi-node instance type (c5n.18xlarge)")
    p.add_argument("--mnp-nodes", type=int, default=2, help="nodes of the GROMACS multi-node definition (2)")
    p.add_argument("--mnp-vcpus", type=int, default=72, help="vCPUs per node of that definition (72)")
    p.add_argument("--mnp-memory-mib", type=int, default=180_000, help="MiB per node of that definition (180000)")
    p.add_argument("--root-gib", type=int, default=30,
                   help="encrypted gp3 root volume, GiB: OS, agent, logs; Docker and tasks use scratch (30)")
    p.add_argument("--scratch-gib", type=int, default=500, help="encrypted gp3 scratch volume /dev/xvdb, GiB (500)")
    p.add_argument("--repository-prefix", default="batchpipes", help="ECR repository prefix (batchpipes)")
    p.add_argument("--dry-run", "--no-execute", action="store_true", dest="dry_run",
                   help="show the changes, execute nothing (the change set is deleted)")
    p.add_argument("--print-parameters", action="store_true",
                   help="print the --parameter-overrides for 'aws cloudformation deploy' (image tags included) and "
                   "stop; no AWS call")
    p.set_defaults(func=run_deploy)

    t = asub.add_parser("teardown", help="delete the deployment's CloudFormation stack and wait",
                        description="Delete the stack batchpipes-NAME (every resource deploy made; nothing is "
                        "retained) and wait until it is gone. The account's Batch service-linked role is shared "
                        "and kept.")
    add_common(t)
    t.add_argument("--name", type=deployment_name, required=True, help="deployment name given to deploy")
    t.set_defaults(func=run_teardown)


def run_deploy(args: argparse.Namespace) -> int:
    spec = stack.Spec(
        name=args.name, data_bucket=args.bucket, cromwell_bucket=args.cromwell_bucket or args.bucket,
        vpc_id=args.vpc_id, subnets=args.subnets, security_groups=args.security_groups,
        mnp_subnet=args.mnp_subnet or (args.subnets[0] if args.subnets else ""),
        cpu_ami_id=args.cpu_ami_id, gpu_ami_id=args.gpu_ami_id, capacity_type=args.capacity,
        cpu_max_vcpus=args.max_vcpus, gpu_max_vcpus=args.gpu_max_vcpus, mnp_max_vcpus=args.mnp_max_vcpus,
        cpu_instance_types=args.cpu_instance_types, gpu_instance_types=args.gpu_instance_types,
        mnp_instance_type=args.mnp_instance_type, mnp_nodes=args.mnp_nodes, mnp_vcpus=args.mnp_vcpus,
        mnp_memory_mib=args.mnp_memory_mib, root_gib=args.root_gib, scratch_gib=args.scratch_gib,
        repository_prefix=args.repository_prefix)
    stack.validate(spec)  # before credentials are looked for
    if args.print_parameters:
        values = [f"{p['ParameterKey']}={p['ParameterValue']}" for p in stack.parameters(spec, "")
                  if p["ParameterKey"] != "BatchServiceRoleArn"]
        print(" ".join(shlex.quote(v) for v in values))
        return 0
    sess = session.session(args.region, args.profile)
    dep = stack.deploy(sess, spec, dry_run=args.dry_run)
    for change in dep.changes:
        print(f"change   {change.line()}")
    if not dep.changes:
        print(f"no changes: stack {dep.stack} already matches")
    if args.dry_run:
        print(f"dry run  {len(dep.changes)} change(s) shown, none executed")
        return 0
    print(f"stack    {dep.stack} {dep.status}")
    out = dep.outputs
    for key in PRINTED_OUTPUTS:
        if key in out:
            print(f"output   {key} {out[key]}")
    for arn in filter(None, out.get("JobDefinitions", "").split(",")):
        print(f"jobdef   {arn}")
    if {"CromwellPolicyArn", "JobRoleArn", "CpuQueueArn", "GpuQueueArn"} <= set(out):
        print(f"policy   attach {out['CromwellPolicyArn']} to whatever runs Cromwell")
        print(f"jobrole  put \"aws_batch_job_role_arn\": \"{out['JobRoleArn']}\" in Cromwell's workflow options so "
              "that jobs use the job role rather than the instance role")
        print(f"next     batchpipes aws cromwell-config --cpu-queue-arn {out['CpuQueueArn']} "
              f"--gpu-queue-arn {out['GpuQueueArn']} ...")
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    sess = session.session(args.region, args.profile)
    removed = stack.teardown(sess, args.name)
    for r in removed:
        print(f"deleted  {r}")
    if not removed:
        print(f"nothing to delete: no stack {stack.stack_name(args.name)} in {sess.region_name}")
    return 0
