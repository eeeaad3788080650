"""``batchpipes aws``: the AWS side. Each ``batchpipes/aws/<x>_cmd.py`` adds its own actions.

Every action runs through ``_one_line_errors``: an AWS failure that the action does not turn into its own
message still ends as one line (exit status 2), never a traceback: a refusal (HTTP 403) says "access
denied", an unparseable response says so, an unreachable endpoint says so.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import botocore.exceptions

from .aws import ami_cmd, cost_cmd, cromwell_cmd, ecr_cmd, infra_cmd, jobs_cmd, mnp_cmd, stage_cmd
from .aws.session import BOTO_FAILURES, describe_botocore, describe_error, is_access_denied, raised_by_response_parser
from .errors import UserError

#: Action modules under batchpipes.aws, in --help order.
AWS_COMMANDS = (cromwell_cmd, ecr_cmd, ami_cmd, stage_cmd, infra_cmd, jobs_cmd, cost_cmd, mnp_cmd)

Action = Callable[[argparse.Namespace], int]


def _one_line_errors(action: str, func: Action) -> Action:
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except botocore.exceptions.ClientError as exc:
            op = exc.operation_name or "a request"
            if is_access_denied(exc):
                raise UserError(f"aws {action}: access denied on {op} ({describe_error(exc)}): the credentials in "
                                "use lack the permission, or a resource policy refuses them: fix the IAM policy "
                                "or use other credentials (--profile)") from exc
            raise UserError(f"aws {action}: AWS refused {op} ({describe_error(exc)})") from exc
        except BOTO_FAILURES as exc:
            raise UserError(f"aws {action}: {describe_botocore(exc)}") from exc
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            if not raised_by_response_parser(exc):
                raise
            raise UserError(f"aws {action}: {describe_botocore(exc)}") from exc

    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aws", help="AWS: Cromwell config, ECR images, AMI, S3 staging, Batch infrastructure, runs, "
                       "GROMACS multi-node jobs",
                       description="The AWS side of batchpipes. Every action that calls AWS accepts --region and "
                       "--profile.")
    asub = p.add_subparsers(dest="aws_command", metavar="ACTION", required=True)
    for module in AWS_COMMANDS:
        module.register(asub)
    _wrap_actions(asub, "")


def _wrap_actions(sub: argparse._SubParsersAction, prefix: str) -> None:
    """Run every action under ``sub`` (at any depth, e.g. ``mnp submit``) through ``_one_line_errors``."""
    for name, parser in sub.choices.items():
        func = parser.get_default("func")
        if func is not None:
            parser.set_defaults(func=_one_line_errors(prefix + name, func))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _wrap_actions(action, f"{prefix}{name} ")
