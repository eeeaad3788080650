"""The inputs of a Cromwell run on AWS Batch: every File an s3:// URL, pinned images pointed at ECR, the queue
ARN inputs filled in from the rendered configuration."""

from __future__ import annotations

import logging
from typing import Any

import WDL

from .. import containers, images, workflows
from ..errors import UserError
from .cromwell import AwsSettings
from .ecr import ecr_host_region, ecr_registry
from .session import parse_queue_arn

log = logging.getLogger(__name__)


def aws_inputs(flow: workflows.Workflow, inputs: dict[str, Any], aws: AwsSettings) -> dict[str, Any]:
    """Inputs for a Cromwell run on AWS: pinned images pointed at ECR, the queue ARN inputs filled in.

    Raises UserError for a local file path (the Batch jobs cannot read it) or a stale image pin.
    """
    doc = workflows.load(flow.path)
    assert doc.workflow is not None
    wf = doc.workflow
    workflows.map_files(wf, inputs, _remote_only)
    out = dict(inputs)
    for name, queue in workflows.QUEUE_INPUTS.items():
        key = f"{wf.name}.{name}"
        if name not in {d.name for d in wf.inputs or []}:
            continue
        given = str(out.get(key) or "")
        if given:
            arn_region = parse_queue_arn(given)[0]
            if arn_region != aws.region:
                raise UserError(f"{key} is in {arn_region} but the configuration is for {aws.region}")
        else:
            out[key] = aws.gpu_queue_arn if queue == "gpu" else aws.cpu_queue_arn
            log.info("%s = %s (from the rendered configuration)", key, out[key])
    found = containers.discover()
    registry = ecr_registry(aws.account, aws.region)
    for key, value, _given in workflows.image_inputs(wf, out):
        if images.resolve_pinned(value, key, found) is not None:  # else the user's own reference: left alone
            out[key] = f"{registry}/{value}"
        elif (where := ecr_host_region(value)) is not None and where != aws.region:
            # the job's host pulls through the Batch region's ECR endpoints and Cromwell's digest lookup (call
            # caching) asks ECR in its own region: an image of another region breaks one or both
            raise UserError(f"{key} is an ECR image in {where} but the Batch queues are in {aws.region}: "
                            f"push it to {registry} (batchpipes aws ecr-push, or ECR replication)")
    return out


def images_to_check(flow: workflows.Workflow, inputs: dict[str, Any], aws: AwsSettings) -> list[str]:
    """The ECR images (of the configuration's registry) a run with ``inputs`` (from :func:`aws_inputs`) pulls.

    A CUDA image (an input whose name has ``cuda``) is only pulled when the workflow's ``gpu`` input is true.
    """
    doc = workflows.load(flow.path)
    assert doc.workflow is not None
    wf = doc.workflow
    registry = ecr_registry(aws.account, aws.region)
    gpu = _gpu_value(wf, inputs)
    refs = []
    for key, value, _given in workflows.image_inputs(wf, inputs):
        if not value.startswith(f"{registry}/"):
            continue
        if "cuda" in key.rsplit(".", 1)[-1] and gpu is False:
            log.info("%s is not checked in ECR: %s.gpu is false, so no task pulls it", key, wf.name)
            continue
        refs.append(value)
    return sorted(set(refs))


def _gpu_value(wf: WDL.Tree.Workflow, inputs: dict[str, Any]) -> bool | None:
    """The workflow's ``gpu`` input (given, else its literal default); None when it has none."""
    decl = next((d for d in wf.inputs or [] if d.name == "gpu"), None)
    if decl is None:
        return None
    given = inputs.get(f"{wf.name}.gpu")
    if isinstance(given, bool):
        return given
    literal = decl.expr.literal if decl.expr is not None else None
    return bool(literal.value) if isinstance(literal, WDL.Value.Boolean) else None


def _remote_only(key: str, value: WDL.Value.File | WDL.Value.Directory) -> str:
    if not str(value.value).startswith("s3://"):
        raise UserError(f"{key} is the local path '{value.value}': AWS runs read s3:// URLs only "
                        "(stage the data to S3 and use its s3:// URL)")
    return str(value.value)
