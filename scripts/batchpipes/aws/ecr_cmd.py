"""``batchpipes aws ecr-push``."""

from __future__ import annotations

import argparse
import logging

from ..errors import UserError
from . import ecr
from .options import add_common
from .session import session

log = logging.getLogger(__name__)


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser(
        "ecr-push", help="create ECR repositories and push images with their content-hash tags",
        description="For each image (all containers/* by default): create the ECR repository batchpipes/<name> "
        "if absent (scan on push, immutable tags, encryption, lifecycle policy), then build and push the image "
        "with its content-hash tag unless that tag is in ECR already. Images marked local_build = false "
        "(GPU builds) are not pushed: the commands for a GPU build host are printed instead.")
    p.add_argument("names", nargs="*", metavar="NAME", help="images to push (default: all)")
    p.add_argument("--keep", type=int, default=ecr.KEEP_TAGGED,
                   help="images kept per repository by the lifecycle policy (default: %(default)s)")
    p.add_argument("--kms-key", help="KMS key ARN or alias for repository encryption (default: AES256)")
    p.add_argument("--registry", help="push to this registry host instead of the account's ECR "
                   "(repositories and tags are still managed in ECR)")
    add_common(p)
    p.set_defaults(func=_push)


def _push(args: argparse.Namespace) -> int:
    if not 1 <= args.keep <= 1000:
        raise UserError(f"--keep must be between 1 and 1000, not {args.keep}")
    sess = session(args.region, args.profile)
    result = ecr.push_images(sess, args.names, registry=args.registry, keep=args.keep, kms_key=args.kms_key)
    for ref in result.pushed:
        print(f"pushed   {ref}")
    for ref in result.skipped:
        print(f"present  {ref}")
    for ref in result.gpu_host:
        print(f"gpu-host {ref}")
    return 0
