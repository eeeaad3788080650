"""Images to Amazon ECR: repositories with safe settings, login without exposing the password, push.

Each ``containers/<name>`` image goes to the repository ``batchpipes/<name>`` of the caller's account
(from STS) with its content-hash tag. Repositories are created scan-on-push, with immutable tags,
encrypted, with a lifecycle policy; re-running changes nothing that is already right.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from .. import containers, settings
from ..errors import UserError
from ..proc import run
from .constants import PROJECT_TAGS
from .session import account_id, client, describe_error, error_code

log = logging.getLogger(__name__)

#: Tagged images kept per repository by the lifecycle policy (older ones expire).
KEEP_TAGGED = 20
#: Days after which an untagged image (a layer left by an interrupted push) expires.
UNTAGGED_DAYS = 7
REPO_TAGS = [{"Key": k, "Value": v} for k, v in PROJECT_TAGS.items()]


def ecr_registry(account: str, region: str) -> str:
    """The ECR registry host of ``account`` in ``region`` (China regions have their own domain)."""
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"{account}.dkr.ecr.{region}{suffix}"


#: A private ECR registry host (``dkr.ecr-fips`` too): account and region.
ECR_HOST_RE = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


def ecr_host_region(reference: str) -> str | None:
    """The region of the private ECR registry an image reference (or a bare registry host) names, else None."""
    m = ECR_HOST_RE.fullmatch(reference.split("/", 1)[0])
    return m["region"] if m else None


@dataclass(frozen=True)
class EcrImage:
    """A tagged image reference in a private ECR registry."""

    reference: str
    account: str
    region: str
    repository: str
    tag: str


def parse_ecr_image(reference: str) -> EcrImage | None:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` split up; None for anything else."""
    host, _, rest = reference.partition("/")
    m = ECR_HOST_RE.fullmatch(host)
    if m is None or "@" in rest:
        return None
    repository, sep, tag = rest.rpartition(":")
    if not sep or not repository or "/" in tag:
        return None
    return EcrImage(reference, m["account"], m["region"], repository, tag)


def missing_images(ecr: Any, references: Sequence[str]) -> list[str]:
    """The references among ``references`` (ECR images of ``ecr``'s region) whose tag is not in ECR.

    One ``DescribeImages`` per image (ImageNotFound or RepositoryNotFound: missing); any other refusal is a
    UserError naming the repository. References that are not ECR images are not checked.
    """
    missing = []
    for ref in references:
        image = parse_ecr_image(ref)
        if image is None:
            continue
        if not tag_exists(ecr, image.repository, image.tag, registry_id=image.account):
            missing.append(ref)
    return missing


def lifecycle_policy(keep: int = KEEP_TAGGED, untagged_days: int = UNTAGGED_DAYS) -> dict[str, Any]:
    """ECR lifecycle policy: expire untagged images after some days; keep the newest ``keep`` images.

    The ``tagStatus: any`` rule must carry the highest rulePriority (ECR evaluates it last).
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"expire untagged images {untagged_days} days after push",
                "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                              "countUnit": "days", "countNumber": untagged_days},
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the {keep} most recent images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"},
            },
        ]
    }


def ensure_repository(ecr: Any, name: str, *, keep: int = KEEP_TAGGED, kms_key: str | None = None) -> str:
    """Create ``name`` if absent (or bring its settings in line); return its URI.

    Every ECR refusal (e.g. AccessDenied) is a one-line UserError naming the repository and the step.
    """
    try:
        repo: dict[str, Any] | None = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise UserError(f"cannot read ECR repository {name}: {describe_error(exc)}") from exc
        repo = None
    if repo is None:
        encryption: dict[str, str] = {"encryptionType": "AES256"}
        if kms_key:
            encryption = {"encryptionType": "KMS", "kmsKey": kms_key}
        try:
            repo = ecr.create_repository(
                repositoryName=name,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
                encryptionConfiguration=encryption,
                tags=REPO_TAGS,
            )["repository"]
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"cannot create ECR repository {name}: {describe_error(exc)}") from exc
        log.info("created ECR repository %s (scan on push, immutable tags, %s)", name, encryption["encryptionType"])
    else:
        log.info("ECR repository %s exists", name)
        try:
            if repo.get("imageTagMutability") != "IMMUTABLE":
                ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
                log.info("  set imageTagMutability=IMMUTABLE")
            if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
                ecr.put_image_scanning_configuration(repositoryName=name,
                                                     imageScanningConfiguration={"scanOnPush": True})
                log.info("  set scanOnPush=true")
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"cannot update the settings of ECR repository {name}: {describe_error(exc)}") from exc
    wanted = json.dumps(lifecycle_policy(keep), sort_keys=True)
    try:
        current = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
        same = json.dumps(json.loads(current), sort_keys=True) == wanted
    except botocore.exceptions.ClientError:
        same = False
    if not same:
        try:
            ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=wanted)
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"cannot set the lifecycle policy of ECR repository {name}: {describe_error(exc)}") \
                from exc
        log.info("  lifecycle policy set (untagged expire after %d days, keep %d)", UNTAGGED_DAYS, keep)
    return str(repo["repositoryUri"])


def tag_exists(ecr: Any, repository: str, tag: str, *, registry_id: str | None = None) -> bool:
    """Whether ``repository`` (of ``registry_id``, default the caller's account) holds an image tagged ``tag``."""
    registry = {"registryId": registry_id} if registry_id else {}
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}], **registry)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise UserError(f"cannot list images of {repository}: {describe_error(exc)}") from exc


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    registry: str


def registry_credentials(ecr: Any) -> Credentials:
    """Decode ``get_authorization_token`` (base64 ``user:password``, valid 12 hours)."""
    try:
        data = ecr.get_authorization_token()["authorizationData"][0]
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"cannot get an ECR login token: {describe_error(exc)}") from exc
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = re.sub(r"^https?://", "", data["proxyEndpoint"]).rstrip("/")
    return Credentials(user, password, host)


def _loopback(registry: str) -> bool:
    return bool(re.fullmatch(r"(127\.\d+\.\d+\.\d+|localhost)(:\d+)?", registry))


def login_command(registry: str, username: str, authfile: Path) -> list[str]:
    """``podman login``; the password goes to its stdin, never onto a command line."""
    cmd = ["podman", "login", "--authfile", str(authfile), "--username", username, "--password-stdin"]
    if _loopback(registry):
        cmd.append("--tls-verify=false")
    return cmd + [registry]


def push_command(local_ref: str, remote_ref: str, authfile: Path) -> list[str]:
    """``podman push`` of a local image to ``remote_ref`` with the credentials in ``authfile``."""
    registry = remote_ref.split("/", 1)[0]
    cmd = ["podman", "push", "--authfile", str(authfile)]
    if _loopback(registry):
        cmd.append("--tls-verify=false")
    return cmd + [local_ref, f"docker://{remote_ref}"]


def gpu_host_commands(image: containers.Image, registry: str, region: str) -> list[str]:
    """Commands to build and push an image that cannot be built here (on a CUDA build host)."""
    remote = f"{registry}/{image.pinned}"
    rel = image.context.relative_to(settings.REPO_ROOT) if image.context.is_relative_to(settings.REPO_ROOT) \
        else image.context
    return [
        f"aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin {registry}",
        f"docker build -t {remote} {rel}",
        f"docker push {remote}",
    ]


@dataclass
class PushResult:
    pushed: list[str]
    skipped: list[str]
    gpu_host: list[str]


def push_images(sess: boto3.session.Session, names: Sequence[str] = (), *, registry: str | None = None,
                keep: int = KEEP_TAGGED, kms_key: str | None = None,
                images: dict[str, containers.Image] | None = None) -> PushResult:
    """Create the ECR repositories of ``names`` (all images if empty) and push what is missing.

    ``registry`` replaces the account's ECR host as the push target (a mirror or, in tests, the
    registry on 127.0.0.1); repositories and tags are still managed through the ECR API.
    """
    available = images if images is not None else containers.discover()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(f"unknown image(s) {', '.join(unknown)}: known images are {', '.join(sorted(available))}")
    selected = [available[n] for n in (names or sorted(available))]
    ecr = client(sess, "ecr")
    account = account_id(sess)
    region = str(sess.region_name)
    target = registry or ecr_registry(account, region)
    result = PushResult([], [], [])
    todo: list[tuple[containers.Image, str]] = []
    for image in selected:
        ensure_repository(ecr, image.repository, keep=keep, kms_key=kms_key)
        remote = f"{target}/{image.pinned}"
        if tag_exists(ecr, image.repository, image.tag):
            log.info("skip %s: tag %s is in ECR already", image.name, image.tag)
            result.skipped.append(remote)
            continue
        if not image.local_build:
            log.info("skip %s: it needs a GPU build host; there, run:", image.name)
            for line in gpu_host_commands(image, target, region):
                print(f"  {line}")
            result.gpu_host.append(remote)
            continue
        todo.append((image, remote))
    if not todo:
        return result
    creds = registry_credentials(ecr)
    username, password = creds.username, creds.password
    host = target.split("/", 1)[0]
    auth_dir = Path(tempfile.mkdtemp(prefix="batchpipes-ecr-auth-"))
    auth_dir.chmod(0o700)
    authfile = auth_dir / "auth.json"
    try:
        run(login_command(host, username, authfile), what=f"podman login to {host}", capture=True,
            input_bytes=password.encode())
        for image, remote in todo:
            local = containers.build(image)
            log.info("pushing %s -> %s", local, remote)
            run(push_command(local, remote, authfile), what=f"pushing '{image.name}' to {host}", capture=True)
            result.pushed.append(remote)
    finally:
        shutil.rmtree(auth_dir, ignore_errors=True)
    return result
