"""``batchpipes aws build-ami``."""

from __future__ import annotations

import argparse
import logging

from . import ami
from .options import add_common
from .session import session

log = logging.getLogger(__name__)


def register(asub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gpu, cpu = ami.FLAVORS["gpu"], ami.FLAVORS["cpu"]
    p = asub.add_parser(
        "build-ami", help="build an ECS host AMI (GPU or CPU) for Cromwell's AWS Batch backend",
        description=f"Launch the {gpu.base_label} AMI (--flavor gpu, SSM parameter {gpu.ssm_parameter}) or "
        f"the {cpu.base_label} AMI (--flavor cpu, SSM parameter {cpu.ssm_parameter}) with "
        "scripts/batchpipes/aws/ami_userdata.sh (AWS CLI v2, fetch_and_run.sh, ECS agent settings, and "
        "bp-scratch.service, which mounts /scratch at every boot before docker and ecs: instance-store NVMe when "
        "the instance has it, else the EBS volume the launch template maps at /dev/xvdb; on GPU hosts also nvidia "
        "as docker's default runtime and ECS GPU support), IMDSv2 only and encrypted EBS; wait for it to power "
        "off, create the image without any scratch volume, tag it (batchpipes:flavor, batchpipes:os=al2023), "
        "terminate the instance. Pass the result to 'batchpipes aws deploy' as --gpu-ami-id or --cpu-ami-id. "
        "The subnet needs a route to the internet (NAT or public IP) to download the AWS CLI.")
    p.add_argument("--flavor", choices=tuple(ami.FLAVORS), default=ami.DEFAULT_FLAVOR,
                   help="gpu: host for GPU queues; cpu: host for CPU and MNP queues (default: %(default)s)")
    p.add_argument("--subnet-id", required=True, help="subnet for the build instance")
    p.add_argument("--security-group-id", required=True, help="security group for the build instance "
                   "(outbound HTTPS; no inbound rule is needed)")
    p.add_argument("--instance-type", default="",
                   help=f"build instance type (default: {gpu.instance_type} for gpu, {cpu.instance_type} for cpu)")
    p.add_argument("--name", default="", help="AMI name (default: batchpipes-ecs-<flavor>-<UTC time>)")
    p.add_argument("--base-ami", help="start from this AMI instead of the SSM-recommended one (an ECS-optimised AL2023 "
                   "AMI of the flavour: its name starts with al2023-ami-ecs-gpu- or al2023-ami-ecs-)")
    p.add_argument("--kms-key-id", help="KMS key for the EBS volumes (default: the account's EBS key)")
    p.add_argument("--instance-profile", help="instance profile name for the build instance (not needed)")
    p.add_argument("--wait", action="store_true", help="also wait until the new AMI is available")
    p.add_argument("--poll-seconds", type=float, default=15.0, help="seconds between status checks "
                   "(default: %(default)s)")
    add_common(p)
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    build = ami.AmiBuild(subnet_id=args.subnet_id, security_group_id=args.security_group_id,
                         flavor=args.flavor, instance_type=args.instance_type,
                         name=args.name, base_ami=args.base_ami, kms_key_id=args.kms_key_id,
                         instance_profile=args.instance_profile, poll_seconds=args.poll_seconds)
    build.validate()
    sess = session(args.region, args.profile)
    print(ami.build_ami(sess, build, wait_available=args.wait))
    return 0
