"""``batchpipes aws``: the AWS side. Each ``batchpipes/aws/<x>_cmd.py`` adds its own actions."""

from __future__ import annotations

import argparse

#: Action modules under batchpipes.aws, in --help order.
AWS_COMMANDS = ("cromwell_cmd", "ecr_cmd", "ami_cmd", "stage_cmd", "infra_cmd", "jobs_cmd", "cost_cmd")


def add_common(p: argparse.ArgumentParser) -> None:
    """--region and --profile, shared by every AWS action."""
    p.add_argument("--region", help="AWS region (default: AWS_REGION / the profile's region)")
    p.add_argument("--profile", help="AWS profile name (default: AWS_PROFILE / default credentials chain)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aws", help="AWS: Cromwell config, ECR images, AMI, S3 staging, Batch infrastructure, runs",
                       description="The AWS side of batchpipes. Every action accepts --region and --profile.")
    asub = p.add_subparsers(dest="aws_command", metavar="ACTION", required=True)
    from .cli import register_modules

    register_modules(asub, "batchpipes.aws", AWS_COMMANDS)
