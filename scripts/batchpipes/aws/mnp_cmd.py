"""``batchpipes aws mnp``: GROMACS jobs that Cromwell cannot run, i.e. AWS Batch multi-node parallel jobs.

``definition`` prints the job definition (no AWS call); ``submit`` registers it, stores a fresh rendezvous
secret under the input prefix, submits one job naming it, waits for the job and deletes the secret (boto3;
--region/--profile, else the usual AWS environment). See mnp.py for why the secret lives in S3.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import UserError
from . import mnp, session
from .buckets import BUCKET_RE
from .options import add_common

log = logging.getLogger(__name__)

S3_PREFIX_RE = re.compile(rf"s3://{BUCKET_RE.pattern}(/.*)?")


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser("mnp", help="GROMACS on AWS Batch multi-node (MPI across instances)",
                        description="AWS Batch multi-node parallel GROMACS jobs (Cromwell cannot submit them).")
    add_actions(p.add_subparsers(dest="mnp_command", metavar="ACTION", required=True), "definition", "submit")


def add_actions(sub: argparse._SubParsersAction, definition: str, submit: str) -> None:
    """The two actions, under the names ``definition`` and ``submit``."""
    d = sub.add_parser(definition, help="print the multi-node job definition as JSON (no AWS call)")
    _job_options(d)
    d.set_defaults(func=_definition)

    s = sub.add_parser(submit, help="register the multi-node job definition, submit one job, wait for it")
    _job_options(s)
    s.add_argument("--job-queue", required=True, help="AWS Batch job queue (name or ARN) on EC2 instances in "
                   "one cluster placement group")
    s.add_argument("--job-name", default="gromacs-mnp", help="job name (default: gromacs-mnp)")
    add_common(s)
    s.add_argument("--poll-seconds", type=float, default=15.0, help="longest wait between status polls")
    s.add_argument("--wait-seconds", type=float, default=7 * 86400.0,
                   help="stop waiting after this long (the job keeps running)")
    s.set_defaults(func=_submit)


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="image with GROMACS and mnp-entrypoint, e.g. "
                   "ACCOUNT.dkr.ecr.REGION.amazonaws.com/batchpipes/gromacs:TAG (gromacs-cuda for GPUs)")
    p.add_argument("--input-uri", required=True, help="s3:// prefix holding topol.tpr (and any other inputs)")
    p.add_argument("--output-uri", required=True, help="s3:// prefix for results and checkpoints")
    p.add_argument("--nodes", type=int, default=2, help="number of nodes (default: 2)")
    p.add_argument("--vcpus", type=int, default=16, help="vCPUs per node (default: 16)")
    p.add_argument("--memory-mib", type=int, default=30000, help="memory per node, MiB (default: 30000)")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default: 0)")
    p.add_argument("--mdrun-args", default=" ".join(mnp.DEFAULT_MDRUN_ARGS),
                   help="arguments of gmx_mpi mdrun after '-s topol.tpr' (default: %(default)s). With -cpi, "
                   "-noappend is required: a retried attempt gets back only the checkpoint, and mdrun refuses to "
                   "append to output files that are missing")
    p.add_argument("--job-role-arn", help="IAM role of the job (read the input prefix, write the output prefix)")
    p.add_argument("--name", default="batchpipes-gromacs-mnp", help="job definition name")
    p.add_argument("--timeout-seconds", type=int, default=86400, help="per-attempt time limit (default: 1 day)")
    p.add_argument("--allowed-networks", default="", metavar="CIDR[,CIDR...]",
                   help="networks the main node accepts nodes from (default: its own subnet); give the subnets of "
                        "the compute environment when it has more than one")


def allowed_networks(value: str) -> list[str]:
    """The CIDRs of --allowed-networks, normalised; one-line UserError for anything else."""
    networks = []
    for item in value.split(",") if value.strip() else []:
        try:
            networks.append(str(ipaddress.IPv4Network(item.strip(), strict=False)))
        except ValueError:
            raise UserError(f"--allowed-networks has '{item.strip()}', not an IPv4 network: give CIDRs such as "
                            "10.0.0.0/16, separated by commas") from None
    return networks


def definition_from_args(args: argparse.Namespace) -> dict[str, Any]:
    for flag, uri in (("--input-uri", args.input_uri), ("--output-uri", args.output_uri)):
        if not S3_PREFIX_RE.fullmatch(uri):
            raise UserError(f"{flag} is '{uri}': give an s3://bucket/prefix/ URI")
    mnp.check_mdrun_args(args.mdrun_args.split())  # the message shows the arguments as given
    command = ["mnp-entrypoint", "--input-uri", args.input_uri, "--output-uri", args.output_uri, "--",
               "gmx_mpi", "mdrun", "-s", "topol.tpr", *args.mdrun_args.split()]
    if args.gpus_per_node:
        command += ["-nb", "gpu", "-pme", "gpu", "-bonded", "gpu"]
    return mnp.job_definition(
        args.name, args.image, args.nodes, args.vcpus, args.memory_mib,
        gpus_per_node=args.gpus_per_node, command=command, job_role_arn=args.job_role_arn,
        timeout_seconds=args.timeout_seconds, allowed_networks=allowed_networks(args.allowed_networks),
    )


def _definition(args: argparse.Namespace) -> int:
    print(json.dumps(definition_from_args(args), indent=2))
    return 0


def _submit(args: argparse.Namespace) -> int:
    kwargs = definition_from_args(args)
    sess = session.session(args.region, args.profile)
    batch = session.client(sess, "batch")
    try:
        registered = batch.register_job_definition(**kwargs)
        log.info("registered job definition %s", registered["jobDefinitionArn"])
        # a fresh rendezvous secret for this job, next to its inputs, deleted when the job has ended
        job = mnp.submit_and_wait(batch, args.job_name, args.job_queue, registered["jobDefinitionArn"],
                                  poll_seconds=args.poll_seconds, timeout_seconds=args.wait_seconds,
                                  s3_client=session.client(sess, "s3"), input_uri=args.input_uri)
    except ClientError as exc:
        raise UserError(f"AWS Batch refused {exc.operation_name}: {session.describe_error(exc)}") from None
    except BotoCoreError as exc:
        raise UserError(f"AWS call failed: {exc}") from None
    print(json.dumps({"jobId": job["jobId"], "jobName": job.get("jobName"), "status": job["status"],
                      "outputs": args.output_uri}, indent=2))
    return 0
