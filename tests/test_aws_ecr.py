"""``batchpipes aws ecr-push``: repositories (moto), command construction, and a real push through the
same code path to the registry on 127.0.0.1:5000 standing in for ECR (moto has no registry API)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import boto3
import pytest
from batchpipes import cli, containers
from batchpipes import registry as local_registry
from batchpipes.aws import ecr
from batchpipes.aws.session import session
from botocore.stub import Stubber
from moto import mock_aws

REGION = "eu-west-1"




def _image(tmp_path: Path, name: str, *, local_build: bool = True) -> containers.Image:
    ctx = tmp_path / name
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\n"
        "RUN echo batchpipes-ecr-test > /ecr-test.txt\n")
    # Builds need a lock file; this Dockerfile checks none (the lock itself is tested in test_containers.py).
    (ctx / containers.LOCK_FILE).write_text("# test image without a lock check\n")
    return containers.Image(name=name, context=ctx, local_build=local_build)


@mock_aws
def test_repository_settings_and_idempotent_rerun(fake_aws: str) -> None:
    client = boto3.client("ecr", region_name=REGION)
    uri = ecr.ensure_repository(client, "batchpipes/genomics", keep=15)
    assert uri == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/batchpipes/genomics"
    repo = client.describe_repositories(repositoryNames=["batchpipes/genomics"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {"Key": "project", "Value": "batchpipes"} in tags
    policy = json.loads(client.get_lifecycle_policy(repositoryName="batchpipes/genomics")["lifecyclePolicyText"])
    assert policy == ecr.lifecycle_policy(15)

    assert ecr.ensure_repository(client, "batchpipes/genomics", keep=15) == uri
    assert len(client.describe_repositories()["repositories"]) == 1
    assert client.describe_repositories(repositoryNames=["batchpipes/genomics"])["repositories"][0] == repo


@mock_aws
def test_existing_repository_is_brought_in_line(fake_aws: str) -> None:
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName="batchpipes/snpeff", imageTagMutability="MUTABLE",
                             imageScanningConfiguration={"scanOnPush": False})
    ecr.ensure_repository(client, "batchpipes/snpeff")
    repo = client.describe_repositories(repositoryNames=["batchpipes/snpeff"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    policy = json.loads(client.get_lifecycle_policy(repositoryName="batchpipes/snpeff")["lifecyclePolicyText"])
    assert policy == ecr.lifecycle_policy(ecr.KEEP_TAGGED)


DENIED = "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: ecr:{action}"


def _stubbed(expect: list[tuple[str, dict, dict | tuple[str, str]]]) -> tuple[object, Stubber]:
    """An ECR client answering ``expect`` in order: (operation, expected params, response or (code, message))."""
    client = boto3.client("ecr", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    for op, params, answer in expect:
        if isinstance(answer, tuple):
            stubber.add_client_error(op, service_error_code=answer[0], service_message=answer[1],
                                     http_status_code=400, expected_params=params)
        else:
            stubber.add_response(op, answer, params)
    return client, stubber


def test_access_denied_on_create_repository_is_one_line(expect_user_error) -> None:
    name = "batchpipes/denied"
    client, stubber = _stubbed([
        ("describe_repositories", {"repositoryNames": [name]}, ("RepositoryNotFoundException", "no such repo")),
        ("create_repository", {"repositoryName": name, "imageTagMutability": "IMMUTABLE",
                               "imageScanningConfiguration": {"scanOnPush": True},
                               "encryptionConfiguration": {"encryptionType": "AES256"}, "tags": ecr.REPO_TAGS},
         ("AccessDeniedException", DENIED.format(action="CreateRepository"))),
    ])
    with stubber:
        msg = expect_user_error(ecr.ensure_repository, client, name)
    stubber.assert_no_pending_responses()
    assert msg == (f"cannot create ECR repository {name}: AccessDeniedException: "
                   + DENIED.format(action="CreateRepository"))


def test_access_denied_on_lifecycle_policy_is_one_line(expect_user_error) -> None:
    name = "batchpipes/nopolicy"
    repo = {"repositoryName": name, "repositoryUri": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{name}",
            "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}}
    wanted = json.dumps(ecr.lifecycle_policy(), sort_keys=True)
    client, stubber = _stubbed([
        ("describe_repositories", {"repositoryNames": [name]}, {"repositories": [repo]}),
        ("get_lifecycle_policy", {"repositoryName": name}, ("LifecyclePolicyNotFoundException", "no policy")),
        ("put_lifecycle_policy", {"repositoryName": name, "lifecyclePolicyText": wanted},
         ("AccessDeniedException", DENIED.format(action="PutLifecyclePolicy"))),
    ])
    with stubber:
        msg = expect_user_error(ecr.ensure_repository, client, name)
    stubber.assert_no_pending_responses()
    assert msg == (f"cannot set the lifecycle policy of ECR repository {name}: AccessDeniedException: "
                   + DENIED.format(action="PutLifecyclePolicy"))


@mock_aws
def test_kms_encryption(fake_aws: str) -> None:
    client = boto3.client("ecr", region_name=REGION)
    ecr.ensure_repository(client, "batchpipes/kms", kms_key="alias/bp")
    repo = client.describe_repositories(repositoryNames=["batchpipes/kms"])["repositories"][0]
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"


def test_lifecycle_policy_shape() -> None:
    policy = ecr.lifecycle_policy(keep=7, untagged_days=3)
    text = json.dumps(policy)
    assert json.loads(text) == policy
    rules = sorted(policy["rules"], key=lambda r: r["rulePriority"])
    assert [r["rulePriority"] for r in rules] == [1, 2]
    assert rules[0]["selection"] == {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                                     "countNumber": 3}
    assert rules[-1]["selection"]["tagStatus"] == "any"  # must be the highest priority number
    assert rules[-1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 7}
    assert all(r["action"] == {"type": "expire"} for r in rules)


def test_push_commands_keep_the_password_off_the_command_line(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    login = ecr.login_command("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS", auth)
    assert login == ["podman", "login", "--authfile", str(auth), "--username", "AWS", "--password-stdin",
                     "123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
    push = ecr.push_command("localhost/batchpipes/genomics:0123456789ab",
                            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/batchpipes/genomics:0123456789ab", auth)
    assert push == ["podman", "push", "--authfile", str(auth), "localhost/batchpipes/genomics:0123456789ab",
                    "docker://123456789012.dkr.ecr.eu-west-1.amazonaws.com/batchpipes/genomics:0123456789ab"]
    assert "--tls-verify=false" in ecr.push_command("a", "127.0.0.1:5000/batchpipes/x:1", auth)
    assert "--tls-verify=false" in ecr.login_command("127.0.0.1:5000", "AWS", auth)


@mock_aws
def test_credentials_are_decoded(fake_aws: str) -> None:
    creds = ecr.registry_credentials(boto3.client("ecr", region_name=REGION))
    assert creds.username == "AWS" and creds.password
    assert creds.registry == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@mock_aws
def test_present_tags_and_gpu_images_are_not_pushed(fake_aws: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    present = _image(tmp_path, "present")
    gpu = _image(tmp_path, "gpu-only", local_build=False)
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName=present.repository)
    client.put_image(repositoryName=present.repository, imageTag=present.tag,
                     imageManifest=json.dumps({"schemaVersion": 2, "layers": [],
                                                "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}))
    result = ecr.push_images(session(REGION), images={"present": present, "gpu-only": gpu})
    assert result.pushed == []
    assert result.skipped == [f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{present.pinned}"]
    assert result.gpu_host == [f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{gpu.pinned}"]
    printed = capsys.readouterr().out
    assert f"docker build -t 123456789012.dkr.ecr.eu-west-1.amazonaws.com/{gpu.pinned} {gpu.context}" in printed
    assert "aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin" in printed
    names = {r["repositoryName"] for r in client.describe_repositories()["repositories"]}
    assert names == {"batchpipes/present", "batchpipes/gpu-only"}  # the GPU host can push to it


def test_cli_bad_input(aws_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:
    assert cli.main(["aws", "ecr-push", "no-such-image"]) == 2
    assert "unknown image(s) no-such-image" in capsys.readouterr().err
    assert cli.main(["aws", "ecr-push", "--region", "mars-north-1"]) == 2
    assert "error: unknown AWS region 'mars-north-1'" in capsys.readouterr().err
    assert cli.main(["aws", "ecr-push", "--keep", "0"]) == 2
    assert "--keep must be between" in capsys.readouterr().err
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["aws", "ecr-push"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no AWS credentials found")


def _delete_from_registry(image: containers.Image, registry: str) -> None:
    url = f"http://{registry}/v2/{image.repository}/manifests/{image.tag}"
    head = urllib.request.Request(url, method="HEAD", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(head, timeout=5) as resp:
            digest = resp.headers["Docker-Content-Digest"]
    except OSError:
        return
    delete = urllib.request.Request(f"http://{registry}/v2/{image.repository}/manifests/{digest}", method="DELETE")
    urllib.request.urlopen(delete, timeout=5)


@pytest.mark.containers
def test_push_end_to_end_to_a_stand_in_registry(aws_env: str, podman_ready: None, tmp_path: Path) -> None:
    """The whole flow against moto_server (ECR API) with 127.0.0.1:5000 as the registry host."""
    registry = "127.0.0.1:5000"
    image = _image(tmp_path, "ecr-e2e")
    _delete_from_registry(image, registry)
    assert not local_registry.in_registry(image, registry)
    auth_dirs_before = set(Path(tempfile.gettempdir()).glob("batchpipes-ecr-auth-*"))
    try:
        result = ecr.push_images(session(REGION), images={"ecr-e2e": image}, registry=registry)
        assert result.pushed == [f"{registry}/{image.pinned}"]
        assert local_registry.in_registry(image, registry)
        pulled = subprocess.run(["podman", "run", "--rm", f"{registry}/{image.pinned}", "cat", "/ecr-test.txt"],
                                capture_output=True, text=True, check=False)
        assert pulled.stdout.strip() == "batchpipes-ecr-test", pulled.stderr
        repo = boto3.client("ecr", region_name=REGION).describe_repositories(
            repositoryNames=[image.repository])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert set(Path(tempfile.gettempdir()).glob("batchpipes-ecr-auth-*")) == auth_dirs_before
    finally:
        _delete_from_registry(image, registry)
        subprocess.run(["podman", "rmi", "-f", image.ref(None), f"{registry}/{image.pinned}"],
                       capture_output=True, check=False)
