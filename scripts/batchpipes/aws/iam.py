"""IAM outside the deployment's stack: the account's AWS Batch service-linked role, and Cromwell's job-definition names.

The deployment's roles and policies are in ``cloudformation/batchpipes.yaml``. What stays here:

* ``AWSServiceRoleForBatch``, AWS's service-linked role for Batch, shared by every Batch user of the account and
  never deleted by teardown. Deploy makes sure it exists and passes its ARN to the stack (found by its path: the
  role name's case is AWS's business). Its trust policy is AWS's and cannot be edited.
* :func:`cromwell_definition_prefix`, the start of the job-definition names Cromwell registers for our ECR images;
  the template's Cromwell policy scopes RegisterJobDefinition and SubmitJob to it.
"""

from __future__ import annotations

import logging
from typing import Any

import botocore.exceptions

from .session import error_code

log = logging.getLogger(__name__)

BATCH_SLR = "AWSServiceRoleForBatch"
BATCH_SLR_PATH = "/aws-service-role/batch.amazonaws.com/"


def cromwell_definition_prefix(account: str, region: str, repository_prefix: str = "batchpipes") -> str:
    """The start of every job definition name Cromwell registers for one of our ECR images.

    Cromwell names a definition ``sanitize("cromwell_" + image + "_")[:88] + sha1`` (AwsBatchJobDefinition.scala,
    ``sanitize`` turns every character outside ``[A-Za-z0-9_-]`` into ``_``), so for the image
    ``<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<name>:<tag>`` the name starts with this (about 65
    characters, always inside the 88 kept). China regions' registry host ends ``amazonaws.com.cn``.
    """
    domain = "amazonaws_com_cn" if region.startswith("cn-") else "amazonaws_com"
    return f"cromwell_{account}_dkr_ecr_{region}_{domain}_{repository_prefix}_"


def _batch_slr(iam: Any) -> str | None:
    """ARN of Batch's service-linked role, found by its path."""
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=BATCH_SLR_PATH):
        for role in page["Roles"]:
            return str(role["Arn"])
    return None


def ensure_batch_service_role(iam: Any, changes: list[str]) -> str:
    """The ARN of the account's Batch service-linked role, created when absent (then noted in ``changes``)."""
    existing = _batch_slr(iam)
    if existing is not None:
        return existing
    try:
        role = iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]
        changes.append(f"created service-linked role {BATCH_SLR}")
        log.info("created the account's service-linked role %s", BATCH_SLR)
        return str(role["Arn"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("InvalidInput", "EntityAlreadyExists"):  # created meanwhile
            raise
        again = _batch_slr(iam)
        assert again is not None
        return again
