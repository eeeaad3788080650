"""The inputs of a Cromwell run on AWS Batch: every File an s3:// URL, pinned images pointed at ECR, the queue
ARN inputs filled in from the rendered configuration."""

from __future__ import annotations

import logging
from typing import Any

import WDL

from .. import containers, images, workflows
from ..errors import UserError
from .cromwell import AwsSettings
from .ecr import ecr_registry
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
    return out


def _remote_only(key: str, value: WDL.Value.File | WDL.Value.Directory) -> str:
    if not str(value.value).startswith("s3://"):
        raise UserError(f"{key} is the local path '{value.value}': AWS runs read s3:// URLs only "
                        "(stage the data to S3 and use its s3:// URL)")
    return str(value.value)
