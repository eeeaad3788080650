"""``batchpipes aws cromwell-config`` and ``cromwell-command``: rendering, the --imports zip, the run line,
and one-line errors for bad input (offline, and against moto_server for --check-bucket)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import WDL
from batchpipes import cli, containers, settings, workflows
from batchpipes.aws import cromwell, cromwell_inputs, cromwell_run, ecr
from batchpipes.files import write_atomically
from botocore.stub import Stubber

CPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
GPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
FLOWS = sorted(workflows.known())
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def render(capsys: pytest.CaptureFixture[str], out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "aws", "cromwell-config", "--bucket", "bp-test-bucket", "--cpu-queue-arn", CPU,
                   "--gpu-queue-arn", GPU, "--db", str(out.parent / "db" / "cache"), "-o", str(out), *extra)


# -- cromwell-config ------------------------------------------------------------------------------


def test_render_writes_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aws.rendered.conf"
    rc, stdout, _ = render(capsys, out)
    assert rc == 0 and stdout.strip() == str(out)
    conf = cromwell.read_conf(out)
    assert cromwell.check_aws_config(conf) == []
    assert conf.get("database.db.url").startswith(f"jdbc:hsqldb:file:{tmp_path / 'db' / 'cache'};")
    assert (tmp_path / "db").is_dir()
    assert conf.get("backend.providers.AWSBATCH.config.default-runtime-attributes.queueArn") == CPU
    assert conf.get("batchpipes.gpu-queue-arn") == GPU


PASSWORD_IN_URL = ("error: --db URL carries a password in 'user:password@': remove it and export CROMWELL_DB_PASSWORD "
                   "instead (the configuration reads the password from there)")


@pytest.mark.parametrize("args, message", [
    (["--cpu-queue-arn", "arn:aws:batch:eu-west-1:123:job-queue/x"], "malformed job queue ARN"),
    (["--gpu-queue-arn", "queue/gpu"], "malformed job queue ARN 'queue/gpu'"),
    (["--region", "us-east-1"], "--region is us-east-1 but the queue ARNs are in eu-west-1"),
    (["--bucket", "Bad_Bucket"], "invalid S3 bucket name 'Bad_Bucket'"),
    (["--bucket", "s3://bp-test-bucket"], "not a URL"),
    (["--db", "jdbc:mysql://db/cromwell?user=u&password=p"], "carries a password"),
    (["--db", "jdbc:mysql://cromwell:s3cr3t@db.internal:3306/cromwell"], PASSWORD_IN_URL),
    (["--db", "jdbc:postgresql://cromwell:p%40ss@db:5432/cromwell?ssl=true"], PASSWORD_IN_URL),
    (["--db", "jdbc:mysql://u:pw@h1:3306,h2:3306/cromwell"], PASSWORD_IN_URL),
    (["--db", "jdbc:mysql://address=(host=db)(port=3306)(password=pw)/cromwell"], "carries a password"),
    (["--db", "jdbc:sqlserver://db"], "neither a file path"),
])
def test_render_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                      message: str) -> None:
    out = tmp_path / "aws.rendered.conf"
    rc, stdout, err = render(capsys, out, *args)  # later options win in argparse
    assert rc == 2 and stdout == ""
    assert message in error_line(err)
    if message == PASSWORD_IN_URL:
        assert error_line(err) == PASSWORD_IN_URL
    assert "s3cr3t" not in err and "p%40ss" not in err, "the password is not echoed"
    assert not out.exists()


def test_user_without_password_in_jdbc_url_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aws.rendered.conf"
    rc, _, err = render(capsys, out, "--db", "jdbc:mysql://cromwell@db.internal:3306/cromwell")
    assert rc == 0, err
    assert "password = ${?CROMWELL_DB_PASSWORD}" in out.read_text()


def test_check_bucket_against_moto(aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aws.rendered.conf"
    rc, _, err = render(capsys, out, "--check-bucket")
    assert rc == 2 and error_line(err) == ("error: bucket 'bp-test-bucket' does not exist: create it (aws s3 mb "
                                          "s3://bp-test-bucket) or pass an existing --bucket")
    assert not out.exists()
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="bp-test-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    rc, _, err = render(capsys, out, "--check-bucket")
    assert rc == 2 and "bucket 'bp-test-bucket' is in us-west-2, not eu-west-1" in error_line(err)
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="bp-eu-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    rc, _, err = render(capsys, out, "--check-bucket", "--bucket", "bp-eu-bucket")
    assert rc == 0, err
    assert cromwell.read_conf(out).get("batchpipes.bucket") == "bp-eu-bucket"


def test_check_bucket_without_credentials(aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    rc, _, err = render(capsys, tmp_path / "c.conf", "--check-bucket")
    assert rc == 2 and "no AWS credentials found" in error_line(err)


def test_cli_end_to_end_in_a_subprocess(aws_env: str, tmp_path: Path) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="bp-e2e", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    exe = [sys.executable, "-m", "batchpipes.cli", "aws", "cromwell-config", "--cpu-queue-arn", CPU,
           "--gpu-queue-arn", GPU, "--db", str(tmp_path / "db"), "-o", str(tmp_path / "a.conf"), "--check-bucket"]
    ok = subprocess.run(exe + ["--bucket", "bp-e2e"], capture_output=True, text=True, env=os.environ, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "a.conf")
    missing = subprocess.run(exe + ["--bucket", "bp-missing"], capture_output=True, text=True, env=os.environ,
                             check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: bucket 'bp-missing' does not exist")
    region = subprocess.run(exe + ["--bucket", "bp-e2e", "--region", "us-east-1"], capture_output=True, text=True,
                            env=os.environ, check=False)
    assert region.returncode == 2 and "error: --region is us-east-1" in region.stderr


# -- the --imports zip ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOWS)
def test_imports_zip_resolves_every_import(name: str, tmp_path: Path) -> None:
    flow = workflows.get(name)
    zip_path = cromwell_run.build_imports_zip(flow.path, tmp_path / f"{name}.imports.zip")
    with zipfile.ZipFile(zip_path) as zf:
        members = set(zf.namelist())
        zf.extractall(tmp_path / "x")
    doc = workflows.load(flow.path)
    assert {imp.uri for imp in doc.imports} <= members  # paths exactly as the workflow writes them
    assert f"{name}.wdl" not in members
    shutil.copy(flow.path, tmp_path / "x" / flow.path.name)
    loaded = WDL.load(str(tmp_path / "x" / flow.path.name), path=[])  # only what the zip holds
    seen = set()

    def walk(d: WDL.Document) -> None:
        for imp in d.imports:
            assert Path(imp.doc.pos.abspath).resolve().is_relative_to((tmp_path / "x").resolve())
            seen.add(Path(imp.doc.pos.abspath).resolve().relative_to((tmp_path / "x").resolve()).as_posix())
            walk(imp.doc)

    walk(loaded)
    assert seen == members  # nothing missing, nothing extra


def test_imports_zip_is_reproducible(tmp_path: Path) -> None:
    flow = workflows.get("genomics")
    a = cromwell_run.build_imports_zip(flow.path, tmp_path / "a.zip").read_bytes()
    b = cromwell_run.build_imports_zip(flow.path, tmp_path / "b.zip").read_bytes()
    assert a == b


# -- cromwell-command -----------------------------------------------------------------------------


def _rendered(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "aws.rendered.conf"
    write_atomically(path, cromwell.render_aws_conf("bp-test-bucket", CPU, GPU, db=str(tmp_path / "db")).text)
    return path


@pytest.fixture()
def ecr_images(fake_aws: str) -> Iterator[Callable[..., None]]:
    """In-process moto ECR; the returned function pushes (a manifest for) the given pinned project images."""
    from moto import mock_aws

    with mock_aws():
        ecr_client = boto3.client("ecr", region_name=fake_aws)

        def push(*names: str) -> None:
            for name in names:
                image = containers.get(name)
                try:
                    ecr_client.create_repository(repositoryName=image.repository)
                except ecr_client.exceptions.RepositoryAlreadyExistsException:
                    pass
                ecr_client.put_image(repositoryName=image.repository, imageTag=image.tag,
                                     imageManifest=json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                                                                 "config": {"digest": name}}))

        yield push


def test_command_for_aws(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                         ecr_images: Callable[..., None]) -> None:
    monkeypatch.chdir(tmp_path)
    ecr_images("genomics", "snpeff")
    conf = _rendered(tmp_path)
    options = tmp_path / "options.json"
    options.write_text('{"write_to_cache": true}')
    rc, stdout, err = run_cli(capsys, "aws", "cromwell-command", "--workflow", "genomics", "--config", str(conf),
                              "--inputs", str(settings.INPUTS_DIR / "genomics.aws.json"), "--options", str(options))
    assert rc == 0, err
    argv = shlex.split(stdout.strip())
    # -Daws.region: Cromwell's ECR digest lookup uses the SDK's default region chain, not aws.region
    assert argv == ["java", "-Dconfig.file=conf/aws.rendered.conf", "-Daws.region=eu-west-1", "-jar", "cromwell.jar",
                    "run", str(settings.WDL_DIR / "genomics.wdl"), "--inputs", "conf/genomics.inputs.json",
                    "--imports", "conf/genomics.imports.zip", "--options", "options.json"]
    written = json.loads((tmp_path / "conf" / "genomics.inputs.json").read_text())
    assert written["genomics.fastq_r1"] == "s3://my-bucket/fastq/SAMPLE01_R1.fastq.gz"
    assert written["genomics.genomics_image"] == f"{ECR}/{containers.get('genomics').pinned}"
    assert written["genomics.snpeff_image"] == f"{ECR}/{containers.get('snpeff').pinned}"
    assert zipfile.ZipFile(tmp_path / "conf" / "genomics.imports.zip").namelist()


def test_command_refuses_images_missing_in_ecr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               ecr_images: Callable[..., None]) -> None:
    conf = _rendered(tmp_path)
    argv = ["aws", "cromwell-command", "--workflow", "genomics", "--config", str(conf), "--inputs",
            str(settings.INPUTS_DIR / "genomics.aws.json"), "--out-dir", str(tmp_path / "out")]
    rc, stdout, err = run_cli(capsys, *argv)  # no repository at all: RepositoryNotFoundException
    assert rc == 2 and stdout == ""
    line = error_line(err)
    assert f"{ECR}/{containers.get('genomics').pinned}" in line and f"{ECR}/{containers.get('snpeff').pinned}" in line
    assert line.endswith("push with 'batchpipes aws ecr-push --region eu-west-1 genomics snpeff' (an image built on "
                         "a GPU host: run the commands it prints there)")
    assert not (tmp_path / "out").exists(), "nothing is written before the check"
    ecr_images("genomics")  # the repository of snpeff exists but holds another tag: ImageNotFoundException
    boto3.client("ecr", region_name="eu-west-1").create_repository(repositoryName="batchpipes/snpeff")
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    line = error_line(err)
    assert f"{containers.get('snpeff').pinned}" in line and containers.get("genomics").pinned not in line
    assert "ecr-push --region eu-west-1 snpeff'" in line
    ecr_images("snpeff")
    assert run_cli(capsys, *argv)[0] == 0


def test_cuda_image_is_checked_only_when_the_run_uses_the_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              ecr_images: Callable[..., None]) -> None:
    conf = _rendered(tmp_path)
    ecr_images("gromacs")  # the CUDA image is built on a GPU host: ecr-push does not push it
    inputs = json.loads((settings.INPUTS_DIR / "gromacs.aws.json").read_text())
    assert inputs["gromacs.gpu"] is True
    path = tmp_path / "gromacs.json"
    path.write_text(json.dumps(inputs))
    argv = ["aws", "cromwell-command", "--workflow", "gromacs", "--config", str(conf), "--inputs", str(path),
            "--out-dir", str(tmp_path / "out")]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    line = error_line(err)
    assert f"not in ECR: {ECR}/{containers.get('gromacs-cuda').pinned}:" in line and "ecr-push" in line
    path.write_text(json.dumps({**inputs, "gromacs.gpu": False}))
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 0, err


def test_ecr_refusal_other_than_not_found_is_one_line(expect_user_error) -> None:
    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("describe_images", service_error_code="AccessDeniedException",
                              service_message="User is not authorized to perform: ecr:DescribeImages",
                              http_status_code=400,
                              expected_params={"repositoryName": "batchpipes/genomics", "registryId": "123456789012",
                                               "imageIds": [{"imageTag": "8c2aa7663d60"}]})
        message = expect_user_error(ecr.missing_images, client,
                                    [f"{ECR}/batchpipes/genomics:8c2aa7663d60", "ubuntu:22.04"])
    assert message.startswith("cannot list images of batchpipes/genomics:") and "AccessDenied" in message


def test_ecr_image_references() -> None:
    image = ecr.parse_ecr_image(f"{ECR}/batchpipes/genomics:8c2aa7663d60")
    assert image is not None and (image.account, image.region, image.repository, image.tag) == (
        "123456789012", "eu-west-1", "batchpipes/genomics", "8c2aa7663d60")
    assert ecr.parse_ecr_image("111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn/x:1").region == "cn-north-1"
    for other in ("ubuntu:22.04", "quay.io/biocontainers/samtools:1.19", f"{ECR}/batchpipes/genomics",
                  f"{ECR}/batchpipes/genomics@sha256:" + "0" * 64, "public.ecr.aws/docker/library/ubuntu:22.04"):
        assert ecr.parse_ecr_image(other) is None, other
    assert ecr.ecr_host_region("111122223333.dkr.ecr-fips.us-east-1.amazonaws.com/x:1") == "us-east-1"
    assert ecr.ecr_host_region("ubuntu") is None


def test_user_ecr_image_of_another_region_is_refused(expect_user_error) -> None:
    flow = workflows.get("genomics")
    aws = cromwell.AwsSettings("bp-test-bucket", CPU, GPU, "eu-west-1")
    data = workflows.read_json(settings.INPUTS_DIR / "genomics.aws.json")
    mine = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/lab/genomics:v3"
    assert cromwell_inputs.aws_inputs(flow, {**data, "genomics.genomics_image": mine}, aws)[
        "genomics.genomics_image"] == mine
    message = expect_user_error(cromwell_inputs.aws_inputs, flow,
                                {**data, "genomics.genomics_image": mine.replace("eu-west-1", "us-east-1")}, aws)
    assert message.startswith("genomics.genomics_image is an ECR image in us-east-1 but the Batch queues are in "
                              "eu-west-1")


def test_command_rejects_local_paths_on_aws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _rendered(tmp_path)
    rc, _, err = run_cli(capsys, "aws", "cromwell-command", "--workflow", "genomics", "--config", str(conf),
                         "--inputs", str(settings.INPUTS_DIR / "genomics.local.json"))
    assert rc == 2
    assert "is the local path" in error_line(err) and "s3://" in error_line(err)


def test_command_for_the_local_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, err = run_cli(capsys, "aws", "cromwell-command", "--workflow", "genomics", "--config",
                              str(cromwell.LOCAL_CONF), "--out-dir", str(tmp_path))
    assert rc == 0, err
    argv = shlex.split(stdout.strip())
    assert argv[:2] == ["java", f"-Dconfig.file={cromwell.LOCAL_CONF}"] or argv[1].endswith("cromwell_conf/local.conf")
    written = json.loads((tmp_path / "genomics.inputs.json").read_text())
    assert written["genomics.fastq_r1"] == str(settings.INPUTS_DIR / "genomics" / "sample_R1.fastq.gz")
    assert "genomics.genomics_image" not in written  # left at the WDL default


@pytest.mark.parametrize("argv, message", [
    (["--workflow", "nope"], "unknown pipeline 'nope'"),
    (["--workflow", "genomics", "--config", "/nonexistent/aws.rendered.conf"], "render it with"),
    (["--workflow", "genomics", "--inputs", "/nonexistent.json"], "not found"),
    (["--workflow", "genomics", "--options", "/nonexistent.json"], "options file"),
])
def test_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    if "--config" not in argv:
        argv = argv + ["--config", str(_rendered(tmp_path))]
    if "--inputs" not in argv and argv[1] != "nope":
        argv += ["--inputs", str(settings.INPUTS_DIR / "genomics.aws.json")]
    rc, _, err = run_cli(capsys, "aws", "cromwell-command", *argv)
    assert rc == 2 and message in error_line(err)


GPU_FLOW = """version 1.0

task gpu_step {
    input {
        Boolean gpu = true
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }
    command <<<
        echo hi > out.txt
    >>>
    output { File out = "out.txt" }
    runtime {
        docker: "batchpipes/genomics:000000000000"
        gpuCount: if gpu then 1 else 0
        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn  # !UnknownRuntimeKey
    }
}

workflow gpu_flow {
    input {
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }
    call gpu_step { input: gpu_queue_arn = gpu_queue_arn, cpu_queue_arn = cpu_queue_arn }
}
"""


def test_queue_inputs_are_filled_from_the_config(tmp_path: Path, expect_user_error) -> None:
    path = tmp_path / "gpu_flow.wdl"
    path.write_text(GPU_FLOW)
    flow = workflows.Workflow("gpu_flow", path)
    aws = cromwell.AwsSettings("bp-test-bucket", CPU, GPU, "eu-west-1")
    filled = cromwell_inputs.aws_inputs(flow, {}, aws)
    assert filled == {"gpu_flow.gpu_queue_arn": GPU, "gpu_flow.cpu_queue_arn": CPU}
    mine = GPU.replace("bp-gpu", "my-gpu")
    assert cromwell_inputs.aws_inputs(flow, {"gpu_flow.gpu_queue_arn": mine}, aws)["gpu_flow.gpu_queue_arn"] == mine
    other = GPU.replace("eu-west-1", "us-east-1")
    assert "is in us-east-1" in expect_user_error(cromwell_inputs.aws_inputs, flow, {"gpu_flow.gpu_queue_arn": other},
                                                  aws)


def test_command_refuses_a_config_without_a_usable_evaluate_on_exit(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    conf = _rendered(tmp_path)
    text = conf.read_text()
    start = text.index("awsBatchEvaluateOnExit = [")
    end = text.index("]\n", start) + 2
    mine = tmp_path / "mine.conf"
    for replacement, expected in [
        ("", "default-runtime-attributes.awsBatchEvaluateOnExit is not set, so Cromwell sends an evaluateOnExit entry "
             "without the action Batch requires (the tasks set awsBatchRetryAttempts): set it to "
             '[{action = "RETRY", onStatusReason = "Host EC2*"}, {action = "EXIT", onReason = "*"}]'),
        ('awsBatchEvaluateOnExit = [{onStatusReason = "Host EC2*"}]\n', "entry 1 has no action RETRY or EXIT"),
    ]:
        mine.write_text(text[:start] + replacement + text[end:])
        rc, stdout, err = run_cli(capsys, "aws", "cromwell-command", "--workflow", "genomics", "--config", str(mine),
                                  "--inputs", str(settings.INPUTS_DIR / "genomics.aws.json"), "--out-dir",
                                  str(tmp_path / "out"))
        assert rc == 2 and stdout == ""
        assert error_line(err).startswith(f"error: {mine}: ") and expected in error_line(err)
    assert not (tmp_path / "out").exists()
