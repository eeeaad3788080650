"""``batchpipes aws deploy`` and ``batchpipes aws teardown``: the AWS Batch infrastructure."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from ..errors import UserError
from . import infra, session
from .options import add_common, deployment_name

log = logging.getLogger(__name__)

def _csv(value: str) -> list[str]:
    return [v for v in (x.strip() for x in value.split(",")) if v]


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser(
        "deploy", help="create or update the AWS Batch infrastructure (idempotent)",
        description="Create or update IAM roles scoped to the named buckets, launch templates (IMDSv2, encrypted "
        "EBS), a cluster placement group, compute environments (CPU Spot capacity-optimised, GPU, on-demand "
        "MNP), job queues and job definitions. Re-running changes only what differs. Prints the queue ARNs "
        "and writes them to a local state JSON.")
    add_common(p)
    p.add_argument("--name", type=deployment_name, required=True, help="deployment name; prefixes every resource")
    p.add_argument("--bucket", action="append", required=True, dest="buckets",
                   help="S3 bucket the jobs may read and write (repeat for more)")
    p.add_argument("--subnets", type=_csv, required=True, help="comma-separated subnet ids")
    p.add_argument("--security-groups", type=_csv, required=True, help="comma-separated security group ids")
    p.add_argument("--gpu-ami-id", help="AMI for GPU instances (from 'batchpipes aws build-ami --flavor gpu'); "
                   "default: Batch's ECS GPU AMI")
    p.add_argument("--cpu-ami-id", help="AMI for CPU and MNP instances (from 'batchpipes aws build-ami --flavor "
                   "cpu': Cromwell needs its AWS CLI v2 and fetch_and_run.sh); default: Batch's ECS AMI, which "
                   "lacks them")
    p.add_argument("--max-vcpus", type=int, default=256, help="CPU Spot environment size (default 256)")
    p.add_argument("--gpu-max-vcpus", type=int, default=64, help="GPU environment size (default 64)")
    p.add_argument("--mnp-max-vcpus", type=int, default=288, help="MNP environment size (default 288)")
    p.add_argument("--mnp-instance-type", default="c5n.18xlarge", help="MNP instance type (default c5n.18xlarge)")
    p.add_argument("--mnp-nodes", type=int, default=2, help="nodes of the GROMACS MNP job definition (default 2)")
    p.add_argument("--state", type=Path, help="state JSON (default ~/.cache/batchpipes/aws/deploy-NAME-REGION.json)")
    p.set_defaults(func=run_deploy)

    t = asub.add_parser("teardown", help="delete everything 'deploy' created for a name, in dependency order",
                        description="Disable and delete the job queues, then the compute environments; deregister "
                        "the job definitions; delete launch templates, the placement group and the IAM roles and "
                        "policy. Waits for each step. The Batch service-linked role is shared and kept.")
    add_common(t)
    t.add_argument("--name", type=deployment_name, required=True, help="deployment name given to deploy")
    t.add_argument("--state", type=Path, help="state JSON to remove (default as for deploy)")
    t.set_defaults(func=run_teardown)


def run_deploy(args: argparse.Namespace) -> int:
    for flag, value in (("--max-vcpus", args.max_vcpus), ("--gpu-max-vcpus", args.gpu_max_vcpus),
                        ("--mnp-max-vcpus", args.mnp_max_vcpus), ("--mnp-nodes", args.mnp_nodes)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1")
    if not args.subnets or not args.security_groups:
        raise UserError("--subnets and --security-groups need at least one id each")
    for ami in (args.gpu_ami_id, args.cpu_ami_id):
        if ami and not re.match(r"^ami-[0-9a-f]{8,17}$", ami):
            raise UserError(f"'{ami}' is not an AMI id: expected ami-<hex>")
    sess = session.session(args.region, args.profile)
    spec = infra.Spec(name=args.name, buckets=args.buckets, subnets=args.subnets,
                      security_groups=args.security_groups, gpu_ami_id=args.gpu_ami_id, cpu_ami_id=args.cpu_ami_id,
                      max_vcpus=args.max_vcpus, gpu_max_vcpus=args.gpu_max_vcpus,
                      mnp_max_vcpus=args.mnp_max_vcpus, mnp_instance_type=args.mnp_instance_type,
                      mnp_nodes=args.mnp_nodes)
    state = args.state or infra.default_state_path(args.name, str(sess.region_name))
    dep = infra.deploy(sess, spec, state_path=state)
    for change in dep.changes:
        print(f"changed  {change}")
    if not dep.changes:
        print("no changes: everything was already as specified")
    for kind, arn in dep.queues.items():
        print(f"queue    {kind:4s} {arn}")
    for name, arn in dep.job_definitions.items():
        print(f"jobdef   {name} {arn}")
    print(f"policy   attach {dep.roles['cromwell_policy_arn']} to whatever runs Cromwell")
    print(f"jobrole  put \"aws_batch_job_role_arn\": \"{dep.roles['job_role_arn']}\" in Cromwell's workflow options "
          "so that jobs use the job role rather than the instance role")
    print(f"state    {state}")
    print(f"next     batchpipes aws cromwell-config --cpu-queue-arn {dep.queues['cpu']} "
          f"--gpu-queue-arn {dep.queues['gpu']} ...")
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    sess = session.session(args.region, args.profile)
    removed = infra.teardown(sess, args.name, state_path=args.state)
    for r in removed:
        print(f"deleted  {r}")
    if not removed:
        print(f"nothing to delete for '{args.name}' in {sess.region_name}")
    return 0
