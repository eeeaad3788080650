"""AWS Batch multi-node parallel (MNP) jobs for GROMACS: the job definition, submission and waiting.

Cromwell cannot submit multi-node jobs, so ``batchpipes gromacs mnp-submit`` does it with boto3:
register the job definition (:func:`job_definition`), submit, and wait (:func:`submit_and_wait`).
Every node runs the image's ``mnp-entrypoint``, which does the main/child rendezvous and one
``mpirun gmx_mpi mdrun`` (containers/gromacs/mnp_entrypoint.py).
"""

from __future__ import annotations

import logging
from typing import Any

from .aws import jobs
from .errors import UserError

log = logging.getLogger(__name__)

#: What every node runs unless told otherwise: resume from md.cpt when an earlier attempt left one.
DEFAULT_COMMAND = ["mnp-entrypoint", "--", "gmx_mpi", "mdrun", "-s", "topol.tpr", "-deffnm", "md",
                   "-cpi", "md.cpt", "-cpt", "15"]
#: AWS Batch's status reason when a Spot instance (or any host) is reclaimed: retry those, not bugs.
SPOT_RECLAIM_REASON = "Host EC2*"
RENDEZVOUS_PORT = 2223
SSH_PORT = 2222


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
) -> dict[str, Any]:
    """Keyword arguments of ``boto3.client("batch").register_job_definition`` for a multi-node job.

    One node range ``0:`` covers every node (main node 0 and the children) with the same container;
    the per-node identity comes from AWS Batch's ``AWS_BATCH_JOB_*`` variables, read by the
    entrypoint. Spot host terminations are retried (up to 3 attempts); other failures are not.
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
    resources = [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": str(memory_mib)}]
    if gpus_per_node:
        resources.append({"type": "GPU", "value": str(gpus_per_node)})
    environment = {
        "MNP_PORT": str(RENDEZVOUS_PORT),
        "MNP_SSH_PORT": str(SSH_PORT),
        "MNP_RENDEZVOUS_TIMEOUT": "600",
        "MNP_SLOTS": str(vcpus),
        "MNP_RANKS_PER_NODE": str(gpus_per_node or 1),
        "MNP_WORKDIR": "/work/mnp",
    }
    container: dict[str, Any] = {
        "image": image,
        "command": list(command or DEFAULT_COMMAND),
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
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": SPOT_RECLAIM_REASON, "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        },
        "timeout": {"attemptDurationSeconds": int(timeout_seconds)},
        "propagateTags": True,
        "tags": {"batchpipes:workflow": "gromacs", "batchpipes:kind": "multinode"},
    }


def submit_and_wait(
    batch_client: Any,
    job_name: str,
    job_queue: str,
    job_definition: str,
    poll_seconds: float = 15,
    timeout_seconds: float = 7 * 86400,
) -> dict[str, Any]:
    """Submit a job and wait for it with :class:`batchpipes.aws.jobs.Watcher` (DescribeJobs with jittered
    backoff from 1 s up to ``poll_seconds``; status changes are logged).

    Returns the final job description on SUCCEEDED; raises UserError with AWS Batch's status reason
    on FAILED, and when ``timeout_seconds`` pass first (the job is left running: its id is named).
    Spot reclaims are retried by the job definition's retry strategy, not resubmitted here.
    """
    submitted = batch_client.submit_job(jobName=job_name, jobQueue=job_queue, jobDefinition=job_definition)
    job_id = str(submitted["jobId"])
    log.info("submitted %s as AWS Batch job %s", job_name, job_id)
    watcher = jobs.Watcher(batch_client, max_spot_retries=0, base_delay=min(1.0, poll_seconds),
                           max_delay=poll_seconds, timeout=timeout_seconds, report=log.info)
    job = watcher.watch([job_id]).jobs[job_id]
    if job.get("status") == "SUCCEEDED":
        return job
    reason = job.get("statusReason") or "no status reason given"
    attempts = job.get("attempts") or []
    exit_code = next((a.get("container", {}).get("exitCode") for a in reversed(attempts)
                      if a.get("container", {}).get("exitCode") is not None), None)
    detail = f", exit code {exit_code}" if exit_code is not None else ""
    raise UserError(f"AWS Batch job {job_name} ({job_id}) FAILED: {reason}{detail}: see its CloudWatch "
                    "log stream /aws/batch/job for the node's ERROR line")
