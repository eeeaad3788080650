"""AWS Batch multi-node parallel (MNP) jobs for GROMACS: the job definition, submission and waiting.

Cromwell cannot submit multi-node jobs, so ``batchpipes aws mnp submit`` does it with boto3:
register the job definition (:func:`job_definition`), submit, and wait (:func:`submit_and_wait`).
Every node runs the image's ``mnp-entrypoint``, which does the main/child rendezvous and one
``mpirun gmx_mpi mdrun`` (containers/shared/mnp_entrypoint.py).

The rendezvous secret (issue 8). The nodes prove to each other that they hold a per-job secret
(HMAC challenge/response; the secret never crosses the network). :func:`submit_and_wait` makes a
fresh one for every submission -- 32 random bytes as 64 hex digits -- and puts it, SSE-encrypted,
at ``<input prefix>.batchpipes-mnp/<random>.key``, a key that the entrypoint's input staging skips
(it copies only the prefix's own files). The job learns only that object's URI, through
``MNP_SECRET_URI`` in the submission's node overrides, and reads it with its job role, which
already reads the input prefix: no new permission, role or service. The object is deleted when the
job has ended (SUCCEEDED or FAILED; kept, with a warning naming it, while the job still runs, since
a retried attempt needs it).

Why not the alternatives: an environment value (containerOverrides) is shown to anyone allowed
DescribeJobs and recorded in CloudTrail's SubmitJob event; a Secrets Manager secret in the job
definition's ``secrets`` keeps it from the job's own role, but needs an execution role, a job
definition revision per job (``secrets`` cannot be overridden at submission) and Secrets Manager
rights for the submitter. Trust boundary of the S3 choice: every principal that can read the input
prefix can join the job -- in a deployment from ``batchpipes aws deploy`` that is the job role,
which can also rewrite the job's inputs, so it gains nothing; give each tenant its own bucket, or
its own job role scoped to its prefix (``--job-role-arn``), when tenants must not trust each other.
"""

from __future__ import annotations

import copy
import logging
import secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import UserError
from . import jobs, session
from .constants import SPOT_RETRY

log = logging.getLogger(__name__)

#: What every node runs unless told otherwise: resume from md.cpt when an earlier attempt left one, into new
#: ``md.partNNNN.*`` files (``-noappend``; see :func:`check_mdrun_args`).
DEFAULT_MDRUN_ARGS = ["-deffnm", "md", "-cpi", "md.cpt", "-noappend", "-cpt", "15"]
DEFAULT_COMMAND = ["mnp-entrypoint", "--", "gmx_mpi", "mdrun", "-s", "topol.tpr", *DEFAULT_MDRUN_ARGS]
RENDEZVOUS_PORT = 2223
SSH_PORT = 2222
#: Folder (under the job's input prefix) of the per-job rendezvous secrets; input staging skips sub-folders.
SECRET_FOLDER = ".batchpipes-mnp/"
#: Seconds one connection may take per handshake step on the main node.
HANDSHAKE_TIMEOUT = 10
#: Seconds between uploads of the checkpoints and numbered outputs while mdrun runs (what a reclaim can lose).
CHECKPOINT_UPLOAD_SECONDS = 600


def check_mdrun_args(args: list[str]) -> None:
    """Refuse mdrun arguments a retried attempt cannot run with: ``-cpi`` needs ``-noappend``.

    A retry (Spot reclaim) gets back only the checkpoints (``*.cpt``, uploaded during the run), not the
    trajectory, energy and log files the checkpoint records. Unless told ``-noappend``, mdrun then stops with a
    fatal error naming the missing output files; it never switches to numbered files by itself (GROMACS
    ``src/gromacs/mdrunutility/handlerestart.cpp``, ``chooseStartingBehavior`` and
    ``throwBecauseOfMissingOutputFiles``). With ``-noappend`` every attempt writes ``<deffnm>.partNNNN.*`` files,
    the first one included (``-cpi`` naming a checkpoint that does not exist yet starts a new simulation, into
    ``md.part0001.*``); the checkpoint keeps its name. ``-append`` with no checkpoint is an error there too.
    """
    if "-cpi" in args and ("-noappend" not in args or "-append" in args):
        shown = " ".join(args)
        if "-append" in args:
            raise UserError(f"mdrun arguments '{shown}' use -cpi with -append: a retried attempt restores only the "
                            "checkpoint, and mdrun refuses to append to the missing outputs: use -noappend")
        raise UserError(f"mdrun arguments '{shown}' use -cpi without -noappend: a retried attempt restores only the "
                        "checkpoint, and mdrun refuses to append to the missing outputs: add -noappend")


def job_definition(
    name: str,
    image: str,
    num_nodes: int,
    vcpus: int,
    memory_mib: int,
    gpus_per_node: int = 0,
    command: list[str] | None = None,
    job_role_arn: str | None = None,
    timeout_seconds: int = 86400,
    allowed_networks: list[str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``boto3.client("batch").register_job_definition`` for a multi-node job.

    One node range ``0:`` covers every node (main node 0 and the children) with the same container;
    the per-node identity comes from AWS Batch's ``AWS_BATCH_JOB_*`` variables, read by the
    entrypoint. Spot host terminations are retried (up to 3 attempts); other failures are not.
    The main node accepts nodes from its own subnet only, or from ``allowed_networks`` (CIDRs) when
    given. The rendezvous secret is not part of the definition: :func:`submit_and_wait` adds its URI.
    """
    if num_nodes < 2:
        raise UserError(f"a multi-node job needs at least 2 nodes, not {num_nodes}: run single-node jobs "
                        "with the workflow (batchpipes run gromacs)")
    if vcpus < 1 or memory_mib < 512:
        raise UserError(f"each node needs at least 1 vCPU and 512 MiB, not {vcpus} vCPU / {memory_mib} MiB")
    if gpus_per_node < 0:
        raise UserError(f"gpus_per_node must be 0 or more, not {gpus_per_node}")
    if timeout_seconds < 60:
        raise UserError(f"timeout_seconds must be at least 60 (AWS Batch's minimum), not {timeout_seconds}")
    command = list(command or DEFAULT_COMMAND)
    if "mdrun" in command:
        check_mdrun_args(command[command.index("mdrun") + 1:])
    resources = [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": str(memory_mib)}]
    if gpus_per_node:
        resources.append({"type": "GPU", "value": str(gpus_per_node)})
    environment = {
        "MNP_PORT": str(RENDEZVOUS_PORT),
        "MNP_SSH_PORT": str(SSH_PORT),
        "MNP_RENDEZVOUS_TIMEOUT": "600",
        "MNP_CHECKPOINT_UPLOAD_SECONDS": str(CHECKPOINT_UPLOAD_SECONDS),
        "MNP_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "MNP_SLOTS": str(vcpus),
        "MNP_RANKS_PER_NODE": str(gpus_per_node or 1),
        "MNP_WORKDIR": "/work/mnp",
    }
    if allowed_networks:
        environment["MNP_ALLOWED_NETWORKS"] = ",".join(allowed_networks)
    container: dict[str, Any] = {
        "image": image,
        "command": command,
        "resourceRequirements": resources,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        # MPI shared-memory transport within a node needs more than Docker's 64 MiB /dev/shm
        "linuxParameters": {"sharedMemorySize": min(max(memory_mib // 8, 256), 8192)},
        "privileged": False,
        "readonlyRootFilesystem": False,
    }
    if job_role_arn:
        container["jobRoleArn"] = job_role_arn
    return {
        "jobDefinitionName": name,
        "type": "multinode",
        "nodeProperties": {
            "numNodes": num_nodes,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
        "platformCapabilities": ["EC2"],
        "retryStrategy": copy.deepcopy(SPOT_RETRY),
        "timeout": {"attemptDurationSeconds": int(timeout_seconds)},
        "propagateTags": True,
        "tags": {"batchpipes:workflow": "gromacs", "batchpipes:kind": "multinode"},
    }


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


def put_secret(s3_client: Any, input_uri: str) -> str:
    """Store a fresh rendezvous secret under ``input_uri`` (s3://bucket/prefix/); returns its URI."""
    bucket, prefix = _split_s3(input_uri)
    key = f"{prefix}{SECRET_FOLDER}{secrets.token_hex(16)}.key"
    try:
        s3_client.put_object(Bucket=bucket, Key=key, Body=(secrets.token_hex(32) + "\n").encode(),
                             ServerSideEncryption="AES256", ContentType="text/plain")
    except ClientError as exc:
        raise UserError(f"cannot store the job's rendezvous secret under {input_uri}: {session.describe_error(exc)}: "
                        "the submitting credentials need s3:PutObject and s3:DeleteObject on the input prefix"
                        ) from None
    return f"s3://{bucket}/{key}"


def delete_secret(s3_client: Any, uri: str) -> None:
    """Delete the secret object; a failure is logged (with the command to do it), not raised."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        s3_client.delete_object(Bucket=bucket, Key=key)
        log.info("deleted the job's rendezvous secret %s", uri)
    except (ClientError, BotoCoreError) as exc:
        log.warning("could not delete the job's rendezvous secret %s (%s): delete it with aws s3 rm %s", uri, exc, uri)


def submit_and_wait(
    batch_client: Any,
    job_name: str,
    job_queue: str,
    job_definition: str,
    poll_seconds: float = 15,
    timeout_seconds: float = 7 * 86400,
    s3_client: Any = None,
    input_uri: str | None = None,
) -> dict[str, Any]:
    """Submit a job and wait for it with :class:`batchpipes.aws.jobs.Watcher` (DescribeJobs with jittered
    backoff from 1 s up to ``poll_seconds``; status changes are logged).

    With ``s3_client`` and ``input_uri``, a fresh rendezvous secret is stored under ``input_uri``
    (:func:`put_secret`), named to the nodes by ``MNP_SECRET_URI`` in the node overrides, and deleted
    once the job has ended or could not be submitted; while the job still runs (``timeout_seconds``
    passed, Ctrl-C) it is kept for the job's retries and a warning names it.

    Returns the final job description on SUCCEEDED; raises UserError with AWS Batch's status reason
    on FAILED, and when ``timeout_seconds`` pass first (the job is left running: its id is named).
    Spot reclaims are retried by the job definition's retry strategy, not resubmitted here.
    """
    secret_uri = put_secret(s3_client, input_uri) if s3_client is not None and input_uri else None
    overrides: dict[str, Any] = {}
    if secret_uri:
        overrides["nodeOverrides"] = {"nodePropertyOverrides": [{
            "targetNodes": "0:", "containerOverrides": {"environment": [{"name": "MNP_SECRET_URI",
                                                                          "value": secret_uri}]}}]}
    job: dict[str, Any] = {}  # the final description, once the job has ended
    job_id = ""
    try:
        submitted = batch_client.submit_job(jobName=job_name, jobQueue=job_queue, jobDefinition=job_definition,
                                            **overrides)
        job_id = str(submitted["jobId"])
        log.info("submitted %s as AWS Batch job %s", job_name, job_id)
        watcher = jobs.Watcher(batch_client, max_spot_retries=0, base_delay=min(1.0, poll_seconds),
                               max_delay=poll_seconds, timeout=timeout_seconds, report=log.info)
        job = watcher.watch([job_id]).jobs[job_id]
    finally:
        if secret_uri:
            if job or not job_id:  # ended, or never submitted: no node will need it again
                delete_secret(s3_client, secret_uri)
            else:
                log.warning("the job is still running, so its rendezvous secret %s stays until it ends: delete it "
                            "then (aws s3 rm %s)", secret_uri, secret_uri)
    if job.get("status") == "SUCCEEDED":
        return job
    reason = job.get("statusReason") or "no status reason given"
    attempts = job.get("attempts") or []
    exit_code = next((a.get("container", {}).get("exitCode") for a in reversed(attempts)
                      if a.get("container", {}).get("exitCode") is not None), None)
    detail = f", exit code {exit_code}" if exit_code is not None else ""
    raise UserError(f"AWS Batch job {job_name} ({job_id}) FAILED: {reason}{detail}: see its CloudWatch "
                    "log stream /aws/batch/job for the node's ERROR line")
