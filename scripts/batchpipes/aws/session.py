"""boto3 sessions with one-line errors for the usual set-up mistakes.

The endpoint can be redirected (tests point it at ``moto_server`` on 127.0.0.1) with the standard
``AWS_ENDPOINT_URL`` environment variable, which botocore reads itself.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from ..errors import UserError

RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"}, user_agent_appid="batchpipes")


@cache
def known_regions() -> frozenset[str]:
    regions = boto3.session.Session().get_available_regions("batch")
    return frozenset(regions) | {"us-east-1"}


def session(region: str | None = None, profile: str | None = None) -> boto3.session.Session:
    """A session for ``region`` (or the configured default) that has credentials, or a UserError."""
    # botocore reads AWS_DEFAULT_REGION; the newer AWS_REGION is honoured here too
    region = region or os.environ.get("AWS_REGION") or None
    try:
        sess = boto3.session.Session(region_name=region, profile_name=profile)
    except botocore.exceptions.ProfileNotFound as exc:
        raise UserError(f"AWS profile '{profile}' not found: check ~/.aws/config or drop --profile") from exc
    if sess.region_name is None:
        raise UserError("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1)")
    if sess.region_name not in known_regions():
        raise UserError(f"unknown AWS region '{sess.region_name}': use a region code such as us-east-1 or eu-west-1")
    if sess.get_credentials() is None:
        raise UserError("no AWS credentials found: run 'aws configure', set AWS_PROFILE, or set "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    return sess


def client(sess: boto3.session.Session, service: str) -> Any:
    return sess.client(service, config=RETRIES)


def account_id(sess: boto3.session.Session) -> str:
    try:
        return str(client(sess, "sts").get_caller_identity()["Account"])
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"AWS credentials were rejected: {exc.response['Error'].get('Message', exc)}") from exc


_QUEUE_ARN = re.compile(r"^arn:aws[a-z-]*:batch:([a-z0-9-]+):(\d{12}):job-queue/([A-Za-z0-9_-]{1,128})$")


def parse_queue_arn(arn: str) -> tuple[str, str, str]:
    """(region, account, queue name) of a Batch job queue ARN, or a UserError."""
    m = _QUEUE_ARN.match(arn)
    if m is None:
        raise UserError(f"malformed job queue ARN '{arn}': expected "
                        "arn:aws:batch:<region>:<12-digit account>:job-queue/<name>")
    return m[1], m[2], m[3]


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe_error(exc: botocore.exceptions.ClientError) -> str:
    err = exc.response.get("Error", {})
    return f"{err.get('Code', 'Error')}: {err.get('Message', str(exc))}"
