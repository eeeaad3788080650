"""Command-line options shared by the AWS actions: --region/--profile, and argument types checked by pattern."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable


def add_common(p: argparse.ArgumentParser) -> None:
    """--region and --profile, shared by every AWS action."""
    p.add_argument("--region", help="AWS region (default: AWS_REGION / the profile's region)")
    p.add_argument("--profile", help="AWS profile name (default: AWS_PROFILE / default credentials chain)")


def matching(pattern: str, problem: str) -> Callable[[str], str]:
    """An argparse ``type`` accepting values that match ``pattern``; ``problem`` (with ``{value}``) says why
    another value is refused."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise argparse.ArgumentTypeError(problem.format(value=value))
        return value

    return check


#: An AWS Batch job id (a UUID; ``:N`` for an array child, ``#N`` for a multi-node node).
job_id = matching(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:\d+)?(#\d+)?$",
                  "'{value}' is not a Batch job id (a UUID such as 0c5e1f1e-1c43-4d5f-9f3c-0123456789ab)")
#: A deployment name: it prefixes every resource of the deployment.
deployment_name = matching(r"^[A-Za-z][A-Za-z0-9-]{0,39}$",
                           "'{value}' is not a deployment name: use 1-40 letters, digits and dashes, starting "
                           "with a letter")
