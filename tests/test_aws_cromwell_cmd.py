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
from pathlib import Path

import boto3
import pytest
import WDL
from batchpipes import cli, containers, settings, workflows
from batchpipes.aws import cromwell, cromwell_inputs, cromwell_run
from batchpipes.files import write_atomically

CPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
GPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
FLOWS = sorted(workflows.known())


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


def test_command_for_aws(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    conf = _rendered(tmp_path)
    options = tmp_path / "options.json"
    options.write_text('{"write_to_cache": true}')
    rc, stdout, err = run_cli(capsys, "aws", "cromwell-command", "--workflow", "genomics", "--config", str(conf),
                              "--inputs", str(settings.INPUTS_DIR / "genomics.aws.json"), "--options", str(options))
    assert rc == 0, err
    argv = shlex.split(stdout.strip())
    assert argv == ["java", "-Dconfig.file=conf/aws.rendered.conf", "-jar", "cromwell.jar", "run",
                    str(settings.WDL_DIR / "genomics.wdl"), "--inputs", "conf/genomics.inputs.json",
                    "--imports", "conf/genomics.imports.zip", "--options", "options.json"]
    written = json.loads((tmp_path / "conf" / "genomics.inputs.json").read_text())
    assert written["genomics.fastq_r1"] == "s3://my-bucket/fastq/SAMPLE01_R1.fastq.gz"
    assert written["genomics.genomics_image"] == f"{ECR}/{containers.get('genomics').pinned}"
    assert written["genomics.snpeff_image"] == f"{ECR}/{containers.get('snpeff').pinned}"
    assert zipfile.ZipFile(tmp_path / "conf" / "genomics.imports.zip").namelist()


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
