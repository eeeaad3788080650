"""S3 buckets: the rules of a bucket name, and the one check that a bucket exists, may be used, and
(optionally) is in a given region.

HeadBucket answers 404 for a bucket that does not exist and 403 for one that exists but refuses us (its
owner is another account, the credentials lack ``s3:ListBucket`` on it, or its bucket policy denies them).
The two get different messages: telling a user whose policy is wrong that the bucket "does not exist" sends
them to create a bucket they cannot create.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.exceptions

from ..errors import UserError
from .session import BOTO_FAILURES, describe_botocore, describe_error, error_code, is_access_denied

#: An S3 bucket name (3-63 lowercase letters, digits, '-' or '.'; more rules in check_bucket_name).
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})
_MOVED = frozenset({"301", "PermanentRedirect"})


def check_bucket_name(bucket: str) -> str:
    """The bucket name, or a UserError naming the S3 rule it breaks."""
    if bucket.startswith("s3://"):
        raise UserError(f"--bucket takes a bucket name, not a URL: use '{bucket[5:].split('/')[0]}'")
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket) \
            or bucket.startswith("xn--") or bucket.endswith("-s3alias"):
        raise UserError(f"invalid S3 bucket name '{bucket}': use 3-63 lowercase letters, digits, '-' or '.', "
                        "starting and ending with a letter or digit")
    return bucket


def access_denied_message(bucket: str, action: str = "list it (s3:ListBucket)") -> str:
    return (f"access denied to bucket '{bucket}' (HTTP 403): the credentials in use may not {action}, or the "
            "bucket policy refuses them: fix the IAM or bucket policy, use other credentials (--profile), or "
            "pass another --bucket")


def check_bucket(s3: Any, bucket: str, region: str | None = None) -> None:
    """``bucket`` exists and we may use it (and is in ``region`` when given); else a one-line UserError."""
    try:
        resp = s3.head_bucket(Bucket=bucket)
        location = resp.get("BucketRegion") if region is not None else None
        if region is not None and not location:
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except botocore.exceptions.ClientError as exc:
        if is_access_denied(exc):
            raise UserError(access_denied_message(bucket)) from exc
        if error_code(exc) in _MISSING:
            raise UserError(f"bucket '{bucket}' does not exist: create it (aws s3 mb s3://{bucket}) or pass an "
                            "existing --bucket") from exc
        if error_code(exc) in _MOVED:  # the bucket answers from another region than the client's
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            where = headers.get("x-amz-bucket-region") or "another region"
            here = region or s3.meta.region_name
            fix = (f"use a bucket in {region} (where the job queues are)" if region is not None
                   else f"pass --region {where}" if where != "another region" else "pass the bucket's --region")
            raise UserError(f"bucket '{bucket}' is in {where}, not {here}: {fix}") from exc
        raise UserError(f"cannot use bucket '{bucket}': {describe_error(exc)}") from exc
    except BOTO_FAILURES as exc:
        raise UserError(f"cannot check bucket '{bucket}': {describe_botocore(exc)}") from exc
    if location == "EU":  # GetBucketLocation's legacy name
        location = "eu-west-1"
    if region is not None and location != region:
        raise UserError(f"bucket '{bucket}' is in {location}, not {region}: use a bucket in {region} "
                        "(where the job queues are)")
