"""S3 staging against moto: full stage, skip, interrupted upload resumed, corrupted object, CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from batchpipes import settings, workflows
from batchpipes.aws import s3_upload, stage

MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part: keeps the test files small but multipart
REGION = "eu-west-1"


class Interrupted(Exception):
    pass


@pytest.fixture()
def sess(stage_session: boto3.session.Session) -> boto3.session.Session:
    return stage_session


def count_calls(s: boto3.session.Session, op: str) -> list[dict]:
    """Record the parameters of every ``op`` call made by clients created from ``s`` from now on."""
    calls: list[dict] = []
    s.events.register(f"provide-client-params.s3.{op}", lambda params, **kw: calls.append(dict(params)))
    return calls


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """A genomics inputs JSON whose two FASTQ inputs are 23 MiB files (5 parts each), the rest the real data."""
    data = json.loads((settings.INPUTS_DIR / "genomics.local.json").read_text())
    folder = tmp_path / "inputs"
    (folder / "genomics").mkdir(parents=True)
    for i, key in enumerate(("genomics.fastq_r1", "genomics.fastq_r2")):
        big = folder / "genomics" / f"big_R{i + 1}.fastq.gz"
        big.write_bytes(os.urandom(23 * MiB))
        data[key] = str(big.relative_to(folder))  # relative to the inputs file
    for key in ("genomics.reference_fasta", "genomics.annotation"):
        data[key] = str(settings.INPUTS_DIR / data[key])
    (folder / "genomics.local.json").write_text(json.dumps(data))
    return tmp_path


def run_stage(s: boto3.session.Session, ws: Path, **kw) -> stage.StageResult:
    return stage.stage(s, ws / "inputs" / "genomics.local.json", "stage-bkt", output=ws / "out.json",
                       state_dir=ws / "state", min_part=PART, progress=False, **kw)


def test_full_stage_rewrites_inputs_and_writes_manifest(sess: boto3.session.Session, workspace: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_stage(sess, workspace)
    assert sorted(e.action for e in result.entries) == ["uploaded"] * 4
    s3 = sess.client("s3")
    for e in result.entries:
        local = Path(e.local).read_bytes()
        key = e.uri.removeprefix("s3://stage-bkt/")
        obj = s3.get_object(Bucket="stage-bkt", Key=key)
        assert obj["Body"].read() == local
        assert obj["Metadata"]["sha256"] == e.sha256
        assert obj["ServerSideEncryption"] == "AES256"
    big = [e for e in result.entries if "big_R" in e.local]
    assert all(e.etag.endswith("-5") for e in big), "23 MiB in 5 MiB parts is a 5-part multipart upload"
    remote = json.loads(s3.get_object(Bucket="stage-bkt", Key="inputs/genomics/manifest.json")["Body"].read())
    assert remote == json.loads(result.manifest_path.read_text())
    assert {f["uri"] for f in remote["files"]} == {e.uri for e in result.entries}

    staged = json.loads((workspace / "out.json").read_text())
    file_keys = ("genomics.fastq_r1", "genomics.fastq_r2", "genomics.reference_fasta", "genomics.annotation")
    assert all(staged[k].startswith("s3://stage-bkt/inputs/genomics/") for k in file_keys)
    assert staged["genomics.sample_name"] == "SIM001"
    workflows.validate(workflows.get("genomics"), staged, source="staged", check_files=False)
    assert not list(workspace.glob("*.tmp")) and not list(workspace.glob(".out.json.*"))


def test_rerun_skips_unchanged_files(sess: boto3.session.Session, workspace: Path) -> None:
    run_stage(sess, workspace)
    puts, parts = count_calls(sess, "PutObject"), count_calls(sess, "UploadPart")
    again = run_stage(sess, workspace)
    assert [e.action for e in again.entries] == ["skipped"] * 4
    assert parts == []
    assert [p["Key"] for p in puts] == ["inputs/genomics/manifest.json"]  # only the manifest is rewritten


def test_one_s3_client_per_stage(sess: boto3.session.Session, workspace: Path) -> None:
    created: list[str] = []
    sess.events.register("creating-client-class.s3", lambda **kw: created.append("s3"))
    run_stage(sess, workspace)
    assert created == ["s3"]


def test_refused_manifest_upload_is_one_line_error(sess: boto3.session.Session, workspace: Path,
                                                   expect_user_error) -> None:
    def deny_manifest(params: dict, **kw: object) -> None:
        if params["Key"].endswith("manifest.json"):
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    sess.events.register("provide-client-params.s3.PutObject", deny_manifest)
    msg = expect_user_error(run_stage, sess, workspace)
    assert msg == ("staging to s3://stage-bkt/inputs/genomics failed: access denied (HTTP 403 on PutObject): the "
                   "credentials in use may not read and write objects there, or the bucket policy refuses them: fix "
                   "the IAM or bucket policy, or use other credentials (--profile)")
    assert not (workspace / "out.json").exists(), "no inputs JSON pointing at an unfinished staging"


def test_interrupted_upload_resumes_only_missing_parts(sess: boto3.session.Session, workspace: Path) -> None:
    done: list[tuple[str, int]] = []

    def fail_after_three(key: str, part: int) -> None:
        if "big_R" not in key:
            return  # small files go in one PutObject
        done.append((key, part))
        if len(done) == 3:
            raise Interrupted("network gone")

    with pytest.raises(Interrupted):  # one worker: parts go one at a time, so the cut is exact
        run_stage(sess, workspace, on_part=fail_after_three, workers=1)
    assert not (workspace / "out.json").exists(), "nothing half-written"
    saved = json.loads((workspace / "state" / "state.json").read_text())["uploads"]
    assert len(saved) == 2, "both upload ids are kept for the next run"
    s3 = sess.client("s3")
    already = {key: len(s3.list_parts(Bucket="stage-bkt", Key=key, UploadId=u["upload_id"]).get("Parts", []))
               for key, u in saved.items()}
    assert sum(already.values()) == 3

    parts = count_calls(sess, "UploadPart")
    creates = count_calls(sess, "CreateMultipartUpload")
    result = run_stage(sess, workspace)
    assert len(parts) == 10 - 3, "only the missing parts are sent"
    for key, n in already.items():
        sent = sorted(p["PartNumber"] for p in parts if p["Key"] == key)
        assert len(sent) == 5 - n and set(sent).isdisjoint(range(1, n + 1)) if n else len(sent) == 5
    assert creates == [], "the saved uploads are resumed, not restarted"
    assert "resumed" in {e.action for e in result.entries}
    for e in result.entries:
        body = s3.get_object(Bucket="stage-bkt", Key=e.uri.removeprefix("s3://stage-bkt/"))["Body"].read()
        assert body == Path(e.local).read_bytes()
    assert json.loads((workspace / "state" / "state.json").read_text())["uploads"] == {}


def test_corrupted_object_is_detected_and_reuploaded(sess: boto3.session.Session, workspace: Path) -> None:
    first = run_stage(sess, workspace)
    victim = next(e for e in first.entries if "big_R1" in e.local)
    key = victim.uri.removeprefix("s3://stage-bkt/")
    s3 = sess.client("s3")
    head = s3.head_object(Bucket="stage-bkt", Key=key)
    # Same size and the same metadata, different bytes: only the ETag can tell.
    s3.put_object(Bucket="stage-bkt", Key=key, Body=os.urandom(victim.size), Metadata=head["Metadata"])

    inputs = workspace / "inputs" / "genomics.local.json"
    checked, bad = stage.verify(sess, inputs, "stage-bkt", progress=False)
    assert checked == 4 and [m.uri for m in bad] == [victim.uri]
    assert "content differs" in bad[0].reason

    again = run_stage(sess, workspace)
    actions = {Path(e.local).name: e.action for e in again.entries}
    assert actions.pop("big_R1.fastq.gz") == "uploaded"
    assert set(actions.values()) == {"skipped"}
    assert s3.get_object(Bucket="stage-bkt", Key=key)["Body"].read() == Path(victim.local).read_bytes()
    assert stage.verify(sess, inputs, "stage-bkt", progress=False) == (4, [])


def test_missing_bucket_is_one_line_error(sess: boto3.session.Session, workspace: Path, expect_user_error) -> None:
    msg = expect_user_error(stage.stage, sess, workspace / "inputs" / "genomics.local.json", "no-such-bkt",
                            state_dir=workspace / "state", progress=False)
    assert msg == ("bucket 'no-such-bkt' does not exist: create it (aws s3 mb s3://no-such-bkt) or pass an existing "
                   "--bucket")


def test_part_size_grows_for_huge_files() -> None:
    assert s3_upload.part_size_for(10 * MiB) == 8 * MiB
    big = 200 * 1024 * MiB  # 200 GiB
    size = s3_upload.part_size_for(big)
    assert size % MiB == 0 and s3_upload.part_count(big, size) <= s3_upload.MAX_PARTS


def test_digest_matches_s3_multipart_etag_rule(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(12 * MiB + 7)
    f = tmp_path / "x"
    f.write_bytes(data)
    d = s3_upload.digest_file(f, PART, single=False)
    md5s = [hashlib.md5(data[i:i + PART]).digest() for i in range(0, len(data), PART)]
    assert d.etag() == hashlib.md5(b"".join(md5s)).hexdigest() + "-3"
    assert d.sha256 == hashlib.sha256(data).hexdigest()


# -- end to end through the CLI against moto_server ------------------------------------------------

def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("batchpipes")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=dict(os.environ), cwd=cwd,
                          timeout=300)


def test_cli_stage_end_to_end(aws_env: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket="e2e-bkt", CreateBucketConfiguration={"LocationConstraint": REGION})
    out = tmp_path / "genomics.staged.json"
    args = ["aws", "stage", "--bucket", "e2e-bkt", "-i", str(settings.INPUTS_DIR / "genomics.local.json"),
            "-o", str(out), "--state-dir", str(tmp_path / "state")]
    first = cli(*args, cwd=settings.REPO_ROOT)
    assert first.returncode == 0, first.stderr
    assert "4 file(s): 4 uploaded" in first.stdout
    staged = json.loads(out.read_text())
    assert staged["genomics.fastq_r1"] == "s3://e2e-bkt/inputs/genomics/genomics/sample_R1.fastq.gz"
    body = boto3.client("s3").get_object(Bucket="e2e-bkt", Key="inputs/genomics/genomics/sample_R1.fastq.gz")
    assert body["Body"].read() == (settings.INPUTS_DIR / "genomics" / "sample_R1.fastq.gz").read_bytes()

    second = cli(*args, cwd=settings.REPO_ROOT)
    assert second.returncode == 0 and "4 file(s): 4 skipped" in second.stdout

    verify = cli(*args, "--verify", cwd=settings.REPO_ROOT)
    assert verify.returncode == 0 and "4 match, 0 mismatch" in verify.stdout


@pytest.mark.parametrize("env, fragment", [
    ({"AWS_REGION": "xx-nowhere-1", "AWS_DEFAULT_REGION": "xx-nowhere-1"}, "unknown AWS region 'xx-nowhere-1'"),
    ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
      "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
      "AWS_EC2_METADATA_DISABLED": "true"}, "no AWS credentials found"),
    ({}, "bucket 'absent-bkt' does not exist: create it"),
])
def test_cli_stage_bad_input(aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             env: dict[str, str | None], fragment: str) -> None:
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    r = cli("aws", "stage", "--bucket", "absent-bkt", "-i", str(settings.INPUTS_DIR / "genomics.local.json"),
            "-o", str(tmp_path / "o.json"), "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
    assert not (tmp_path / "o.json").exists()


def test_file_changed_after_interruption_restarts_its_upload(sess: boto3.session.Session, workspace: Path) -> None:
    def stop_at_first_big_part(key: str, part: int) -> None:
        if "big_R" in key:
            raise Interrupted("stopped")

    with pytest.raises(Interrupted):
        run_stage(sess, workspace, on_part=stop_at_first_big_part, workers=1)
    old_ids = {u["upload_id"] for u in json.loads((workspace / "state" / "state.json").read_text())["uploads"].values()}
    changed = workspace / "inputs" / "genomics" / "big_R1.fastq.gz"
    changed.write_bytes(os.urandom(21 * MiB))  # a new version: its saved upload must not be reused
    result = run_stage(sess, workspace)
    s3 = sess.client("s3")
    entry = next(e for e in result.entries if e.local == str(changed))
    assert entry.action == "uploaded" and entry.size == 21 * MiB
    key = entry.uri.removeprefix("s3://stage-bkt/")
    assert s3.get_object(Bucket="stage-bkt", Key=key)["Body"].read() == changed.read_bytes()
    live = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket="stage-bkt").get("Uploads", [])}
    assert not live & old_ids, "the stale upload was aborted, the resumed one completed"
