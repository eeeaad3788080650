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
from botocore.parsers import ResponseParserError

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
        account = client(sess, "sts").get_caller_identity().get("Account")
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"AWS credentials were rejected: {one_line(exc.response['Error'].get('Message', exc))}") \
            from exc
    if not account:
        raise UserError(not_aws_answer("STS GetCallerIdentity", "an account id"))
    return str(account)


def not_aws_answer(op: str, missing: str) -> str:
    """The message for a well-formed answer that lacks what the API always returns (a proxy's page, ...)."""
    return (f"{op} answered without {missing}: something other than AWS answered (a proxy or captive portal?): "
            "check AWS_ENDPOINT_URL and the network, then retry")


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


def one_line(text: object, limit: int = 160) -> str:
    """The first non-blank line of ``text``, cut to ``limit`` characters (AWS messages may embed raw bodies)."""
    first = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return first if len(first) <= limit else first[:limit - 3] + "..."


def describe_error(exc: botocore.exceptions.ClientError) -> str:
    err = exc.response.get("Error", {})
    return f"{err.get('Code', 'Error')}: {one_line(err.get('Message') or exc)}"


def is_access_denied(exc: botocore.exceptions.ClientError) -> bool:
    """HTTP 403 / AccessDenied: the request reached AWS and was refused (credentials or a policy)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 403 or error_code(exc) in ("403", "AccessDenied", "Forbidden", "AllAccessDisabled")


#: What botocore raises for a request that got no usable AWS answer. ResponseParserError (an answer that is
#: not the XML/JSON the API returns: a proxy's or captive portal's page, a truncated body) is a plain
#: Exception in botocore.parsers, not a BotoCoreError, so it is listed on its own.
BOTO_FAILURES: tuple[type[Exception], ...] = (botocore.exceptions.BotoCoreError, ResponseParserError)


def raised_by_response_parser(exc: BaseException) -> bool:
    """Whether ``exc`` (a KeyError, TypeError, ...) was raised inside botocore's response parsers: what a
    well-formed answer of the wrong shape (a proxy's XHTML page, say) does to the query-protocol parser."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and last.replace("\\", "/").endswith("botocore/parsers.py")


def describe_botocore(exc: Exception) -> str:
    """One line ``<what went wrong> (<Class>: <first line>): <what to do>`` for a failure that is not an AWS
    error answer (one of BOTO_FAILURES): an unparseable response, an unreachable endpoint, unusable credentials."""
    detail = f"{type(exc).__name__}: {one_line(exc)}"
    if isinstance(exc, ResponseParserError) or raised_by_response_parser(exc):
        return (f"AWS sent a response that could not be parsed ({detail}): retry; if it persists, check "
                "AWS_ENDPOINT_URL and any proxy between you and AWS")
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError,
                        botocore.exceptions.CredentialRetrievalError)):
        return (f"AWS credentials are missing or unusable ({detail}): run 'aws configure', set AWS_PROFILE, or "
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return f"cannot reach AWS ({detail}): check the network, --region, or AWS_ENDPOINT_URL"
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return f"a request to AWS was malformed ({detail}): this is a batchpipes bug, please report it"
    return f"the AWS request failed ({detail}): retry; run with -v for the details"
