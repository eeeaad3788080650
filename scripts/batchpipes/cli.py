"""The ``batchpipes`` command: one CLI, one subcommand per job.

Each command module exposes ``register(subparsers)``; it adds its parser and sets ``func``, a
callable taking the parsed namespace and returning an exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError

from . import (
    __version__,
    aws_cmd,
    bench_cmd,
    check_cmd,
    docs_cmd,
    evaluate_cmd,
    gromacs_cmd,
    images_cmd,
    run_cmd,
    testdata_cmd,
)
from .errors import Interrupted, UserError

log = logging.getLogger("batchpipes")

#: The command modules, in --help order (``gromacs`` last: the old spelling of ``aws mnp``).
COMMAND_MODULES = (
    images_cmd, check_cmd, run_cmd, evaluate_cmd, testdata_cmd, bench_cmd, aws_cmd, docs_cmd, gromacs_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchpipes",
        description="Batch science pipelines: run WDL workflows locally (miniwdl + podman) "
        "and on AWS Batch (Cromwell).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if not args.verbose:  # botocore logs credential and endpoint discovery at INFO
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except UserError as exc:
        log.debug("failure", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BotoCoreError as exc:  # endpoint unreachable, credentials unusable, ...: not a traceback
        log.debug("failure", exc_info=True)
        print(f"error: cannot reach AWS: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
