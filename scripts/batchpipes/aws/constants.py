"""AWS names batchpipes relies on in several places: the Spot-reclaim reason, the retry rule built on it and the
resource tags. Library code reads them from here only (the queue-ARN input names are WDL names: workflows.py)."""

from __future__ import annotations

from typing import Any

#: The start of AWS Batch's status reason when a job's host (a Spot instance, or any EC2 host) was reclaimed
#: ("Host EC2 (instance i-...) terminated."): such failures are retried, bugs are not.
SPOT_RECLAIM_REASON = "Host EC2"

#: ``retryStrategy`` of every job definition: up to 3 attempts for host reclaims, none for anything else.
SPOT_RETRY: dict[str, Any] = {
    "attempts": 3,
    "evaluateOnExit": [
        {"onStatusReason": f"{SPOT_RECLAIM_REASON}*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}

#: Tag of every resource ``batchpipes aws deploy`` makes; its value is the deployment name.
DEPLOYMENT_TAG = "batchpipes:deployment"
#: Tag of a job definition revision: the digest of the spec it was registered from (deploy skips equal ones).
SPEC_TAG = "batchpipes:spec"
#: Tag of what batchpipes makes outside a deployment (ECR repositories, AMI builds).
PROJECT_TAGS = {"project": "batchpipes"}
