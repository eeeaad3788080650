"""The one check that an S3 bucket exists, is ours, and (optionally) is in a given region."""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from ..errors import UserError
from .session import describe_error, error_code

#: HeadBucket answers for a bucket that is absent or belongs to someone else.
_NOT_OURS = frozenset({"404", "403", "NoSuchBucket", "AccessDenied", "Forbidden", "NotFound"})


def check_bucket(s3: Any, bucket: str, region: str | None = None) -> None:
    """``bucket`` exists and we may use it (and is in ``region`` when given); else a one-line UserError."""
    try:
        resp = s3.head_bucket(Bucket=bucket)
        location = resp.get("BucketRegion") if region is not None else None
        if region is not None and not location:
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in _NOT_OURS:
            raise UserError(f"bucket '{bucket}' does not exist or is not yours: create it or pass --bucket") \
                from exc
        raise UserError(f"cannot reach bucket '{bucket}': {describe_error(exc)}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise UserError(f"cannot reach S3 to check bucket '{bucket}': {exc}: check the network, --region, or "
                        "AWS_ENDPOINT_URL") from exc
    if location == "EU":  # GetBucketLocation's legacy name
        location = "eu-west-1"
    if region is not None and location != region:
        raise UserError(f"bucket '{bucket}' is in {location}, not {region}: use a bucket in {region} "
                        "(where the job queues are)")
