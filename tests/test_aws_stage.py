"""S3 staging against moto: full stage, skip, interrupted upload resumed, corrupted object, CLI end to end."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from batchpipes import settings, workflows
from batchpipes.aws import s3_upload, stage
from botocore.awsrequest import AWSResponse
from botocore.validate import ParamValidator

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
        assert obj["Metadata"]["part-size"] == str(e.part_size)
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


def test_digests_follow_s3s_rules(tmp_path: Path) -> None:
    """MD5 ETag and SHA-256 checksums, whole and multipart (composite), as S3 documents them, from one read."""
    data = os.urandom(12 * MiB + 7)
    f = tmp_path / "x"
    f.write_bytes(data)
    specs = [s3_upload.Spec("md5", PART), s3_upload.Spec("sha256", PART), s3_upload.Spec("md5", 0),
             s3_upload.Spec("sha256", 0)]
    got = s3_upload.digest_file(f, specs)
    md5s = [hashlib.md5(data[i:i + PART]).digest() for i in range(0, len(data), PART)]
    shas = [hashlib.sha256(data[i:i + PART]).digest() for i in range(0, len(data), PART)]
    assert got[f"md5/{PART}"] == hashlib.md5(b"".join(md5s)).hexdigest() + "-3"
    assert got[f"sha256/{PART}"] == base64.b64encode(hashlib.sha256(b"".join(shas)).digest()).decode() + "-3"
    assert got["md5/0"] == hashlib.md5(data).hexdigest()
    assert got["sha256/0"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


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


# -- one read per byte, S3's checksums, exact skip-unchanged, bounded memory ---------------------------------------

class CountingFile(io.RawIOBase):
    """A file opened for reading that adds every byte it hands out to ``counts[path]``."""

    def __init__(self, fh: io.IOBase, path: str, counts: Counter[str]) -> None:
        self.fh, self.path, self.counts = fh, path, counts  # fh: the file object, kept open as long as this
        self.raw: io.RawIOBase = fh if isinstance(fh, io.RawIOBase) else fh.raw  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        n = self.raw.readinto(b) or 0
        self.counts[self.path] += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size) or b""
        self.counts[self.path] += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()
        super().close()


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Counter[str]:
    """Bytes read from each file under tmp_path, whoever opens it (pathlib or open)."""
    counts: Counter[str] = Counter()
    original = Path.open

    def counting_open(self: Path, mode: str = "r", *args: object, **kw: object):  # type: ignore[no-untyped-def]
        fh = original(self, mode, *args, **kw)  # type: ignore[arg-type]
        if "r" in mode and "b" in mode and str(self).startswith(str(tmp_path)):
            return CountingFile(fh, str(self), counts)
        return fh

    monkeypatch.setattr(Path, "open", counting_open)
    return counts


def file_set(root: Path) -> list[tuple[Path, str]]:
    """Two multipart files (3 and 4 parts of 5 MiB), a file of exactly one part, and the bundled FASTQs."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for name, size in (("big1.bin", 13 * MiB + 11), ("big2.bin", 4 * PART), ("one_part.bin", PART)):
        (root / name).write_bytes(os.urandom(size))
        files.append(root / name)
    for fq in sorted((settings.INPUTS_DIR / "genomics").glob("sample_R*.fastq.gz")):
        (root / fq.name).write_bytes(fq.read_bytes())
        files.append(root / fq.name)
    return [(p, f"set/{p.name}") for p in files]


def stager(s: boto3.session.Session, state: Path, **kw: object) -> s3_upload.Stager:
    return s3_upload.Stager(s, "stage-bkt", s3_upload.State(state), min_part=PART, progress=False,
                            **kw)  # type: ignore[arg-type]


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def s3_checksum(data: bytes, part: int) -> str:
    """S3's SHA-256 checksum of an object of these bytes (COMPOSITE when sent in parts of ``part`` bytes)."""
    if len(data) <= part:
        return b64sha(data)
    digests = b"".join(hashlib.sha256(data[i:i + part]).digest() for i in range(0, len(data), part))
    return base64.b64encode(hashlib.sha256(digests).digest()).decode() + f"-{-(-len(data) // part)}"


def test_new_files_are_read_once_and_sent_with_s3_checksums(sess: boto3.session.Session, tmp_path: Path,
                                                            reads: Counter[str]) -> None:
    files = file_set(tmp_path / "data")
    calls = {op: count_calls(sess, op) for op in ("PutObject", "UploadPart", "CreateMultipartUpload",
                                                  "CompleteMultipartUpload")}
    headers: list[dict[str, str]] = []
    sess.events.register("before-send.s3", lambda request, **kw: headers.append(
        {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}))
    entries = stager(sess, tmp_path / "state.json").stage_files(files)

    for path, _ in files:
        assert reads[str(path)] == path.stat().st_size, f"{path.name} read {reads[str(path)]} bytes"
    s3 = sess.client("s3")
    model = s3.meta.service_model
    for op, seen in calls.items():
        for params in seen:
            report = ParamValidator().validate(params, model.operation_model(op).input_shape)
            assert not report.has_errors(), report.generate_report()
    assert len(calls["UploadPart"]) == 3 + 4 and len(calls["PutObject"]) == 3
    assert all(p["ChecksumAlgorithm"] == "SHA256" for op in ("PutObject", "UploadPart", "CreateMultipartUpload")
               for p in calls[op])
    assert all(p.get("ChecksumType") == "COMPOSITE" for p in calls["CreateMultipartUpload"])
    sent = [h for h in headers if h.get("x-amz-trailer")]
    assert len(sent) == 10 and {h["x-amz-trailer"] for h in sent} == {"x-amz-checksum-sha256"}
    assert not any("content-md5" in h for h in headers)
    for complete in calls["CompleteMultipartUpload"]:
        data = (tmp_path / "data" / Path(complete["Key"]).name).read_bytes()
        assert [p["ChecksumSHA256"] for p in complete["MultipartUpload"]["Parts"]] == \
            [b64sha(data[i:i + PART]) for i in range(0, len(data), PART)]
    for e in entries:
        data = Path(e.local).read_bytes()
        assert e.action == "uploaded" and e.checksum_sha256 == s3_checksum(data, PART)
        key = e.uri.removeprefix("s3://stage-bkt/")
        head = s3.head_object(Bucket="stage-bkt", Key=key, ChecksumMode="ENABLED")
        # S3 shows a composite checksum with its "-N"; moto (5.2) leaves the "-N" out
        assert head["ChecksumSHA256"] in (e.checksum_sha256, e.checksum_sha256.rsplit("-", 1)[0])
        assert s3.get_object(Bucket="stage-bkt", Key=key)["Body"].read() == data


def test_skip_unchanged_is_exact(sess: boto3.session.Session, tmp_path: Path, reads: Counter[str]) -> None:
    files = file_set(tmp_path / "data")
    state = tmp_path / "state.json"
    stager(sess, state).stage_files(files)
    big, small = tmp_path / "data" / "big1.bin", tmp_path / "data" / "sample_R1.fastq.gz"

    reads.clear()
    puts, parts = count_calls(sess, "PutObject"), count_calls(sess, "UploadPart")
    again = stager(sess, state).stage_files(files)
    assert {e.action for e in again} == {"skipped"} and not puts and not parts
    assert sum(reads.values()) == 0, "nothing changed: nothing is read"

    # Touched, same bytes: read once to compare, not sent.
    os.utime(big, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns + 5_000_000_000))
    reads.clear()
    again = {Path(e.local).name: e.action for e in stager(sess, state).stage_files(files)}
    assert set(again.values()) == {"skipped"} and not puts and not parts
    assert dict(reads) == {str(big): big.stat().st_size}

    # Same size, other bytes, mtime set back to the old one (as cp -p or rsync -t would): sent again.
    for victim in (big, small):
        old = victim.stat()
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        os.utime(victim, ns=(old.st_atime_ns, old.st_mtime_ns))
        assert victim.stat().st_size == old.st_size and victim.stat().st_mtime_ns == old.st_mtime_ns
    reads.clear()
    result = {Path(e.local).name: e for e in stager(sess, state).stage_files(files)}
    assert result["big1.bin"].action == "uploaded" and result["sample_R1.fastq.gz"].action == "uploaded"
    assert {e.action for n, e in result.items() if n not in ("big1.bin", "sample_R1.fastq.gz")} == {"skipped"}
    s3 = sess.client("s3")
    for victim in (big, small):
        assert s3.get_object(Bucket="stage-bkt", Key=f"set/{victim.name}")["Body"].read() == victim.read_bytes()

    # A lost state: every object is compared with its file (one read each) and none is sent.
    puts.clear()
    parts.clear()
    reads.clear()
    fresh = stager(sess, tmp_path / "other-state.json").stage_files(files)
    assert {e.action for e in fresh} == {"skipped"} and not puts and not parts
    assert all(reads[str(p)] == p.stat().st_size for p, _ in files)


def test_object_from_another_tool_with_another_part_size(sess: boto3.session.Session, tmp_path: Path) -> None:
    """Objects written by the AWS CLI's transfer manager (s3transfer: 6 MiB parts, its default CRC32 checksums and
    MD5 ETags): the same bytes are recognised (part size from HeadObject?partNumber=1), other bytes are not."""
    from boto3.s3.transfer import TransferConfig

    files = file_set(tmp_path / "data")
    s3 = sess.client("s3")
    other = TransferConfig(multipart_threshold=6 * MiB, multipart_chunksize=6 * MiB)
    for path, key in files:
        s3.upload_file(str(path), "stage-bkt", key, Config=other)
    head = s3.head_object(Bucket="stage-bkt", Key="set/big1.bin", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3") and "ChecksumSHA256" not in head
    parts = count_calls(sess, "UploadPart")
    puts = count_calls(sess, "PutObject")
    entries = stager(sess, tmp_path / "state.json").stage_files(files)
    assert {e.action for e in entries} == {"skipped"} and not parts and not puts
    big = next(e for e in entries if e.local.endswith("big1.bin"))
    assert big.part_size == 6 * MiB and big.checksum_sha256 == s3_checksum(Path(big.local).read_bytes(), 6 * MiB)

    # The same size, other bytes, written by the other tool: ours is sent again.
    changed = bytearray(Path(big.local).read_bytes())
    changed[-1] ^= 0xFF
    (tmp_path / "impostor").write_bytes(bytes(changed))
    s3.upload_file(str(tmp_path / "impostor"), "stage-bkt", "set/big1.bin", Config=other)
    again = {Path(e.local).name: e.action for e in stager(sess, tmp_path / "state2.json").stage_files(files)}
    assert again.pop("big1.bin") == "uploaded" and set(again.values()) == {"skipped"}
    assert s3.get_object(Bucket="stage-bkt", Key="set/big1.bin")["Body"].read() == Path(big.local).read_bytes()


def bad_digest(model: object, **kw: object) -> tuple[AWSResponse, dict]:
    return AWSResponse("https://s3", 400, {}, None), {  # type: ignore[arg-type]
        "Error": {"Code": "BadDigest", "Message": "The x-amz-checksum-sha256 you specified did not match the "
                  "calculated checksum."}, "ResponseMetadata": {"HTTPStatusCode": 400}}


def test_part_refused_as_corrupted_is_sent_again(sess: boto3.session.Session, tmp_path: Path,
                                                 reads: Counter[str]) -> None:
    """moto (5.2) stores whatever checksum it is sent; real S3 answers BadDigest when the bytes it received do not
    give it. The first try of part 2 gets that answer: the part is read and sent again, the object is right."""
    files = file_set(tmp_path / "data")[:1]
    refused: list[int] = []

    def refuse_part_2_once(model: object, params: dict, **kw: object) -> object:
        if params["query_string"].get("partNumber") == 2 and not refused:
            refused.append(2)
            while params["body"].read(1 << 20):  # S3 answers once it has the whole body
                pass
            return bad_digest(model)
        return None

    sess.events.register("before-call.s3.UploadPart", refuse_part_2_once)
    [entry] = stager(sess, tmp_path / "state.json").stage_files(files)
    assert refused == [2] and entry.action == "uploaded"
    path = files[0][0]
    assert reads[str(path)] == path.stat().st_size + PART, "only the refused part is read again"
    body = sess.client("s3").get_object(Bucket="stage-bkt", Key=files[0][1])["Body"].read()
    assert body == path.read_bytes()


def test_part_always_refused_is_one_line_and_resumable(sess: boto3.session.Session, tmp_path: Path,
                                                       expect_user_error) -> None:
    files = file_set(tmp_path / "data")[:1]
    sess.events.register("before-call.s3.UploadPart", lambda model, **kw: bad_digest(model))
    msg = expect_user_error(stager(sess, tmp_path / "state.json", workers=1).stage_files, files)
    assert msg.startswith(f"part 1 of '{files[0][0]}' failed 3 times: S3 refused it as corrupted in transit "
                          "(BadDigest): check the network path")
    saved = json.loads((tmp_path / "state.json").read_text())["uploads"]
    assert list(saved) == ["set/big1.bin"], "the upload stays resumable"


def test_answer_without_checksum_is_one_line(sess: boto3.session.Session, tmp_path: Path,
                                             expect_user_error) -> None:
    """S3 answers the checksum it verified and stored; an answer without it came from something else."""
    files = file_set(tmp_path / "data")[2:3]  # one PutObject

    def strip(parsed: dict, **kw: object) -> None:
        parsed.pop("ChecksumSHA256", None)

    sess.events.register("after-call.s3.PutObject", strip)
    msg = expect_user_error(stager(sess, tmp_path / "state.json").stage_files, files)
    assert msg == ("PutObject of s3://stage-bkt/set/one_part.bin answered without the SHA-256 checksum it stored: "
                   "something other than AWS answered (a proxy or captive portal?): check AWS_ENDPOINT_URL and the "
                   "network, then retry")


def test_memory_is_bounded_by_blocks_not_parts(sess: boto3.session.Session, tmp_path: Path) -> None:
    """Bodies read from disk as they are sent: the bytes held at once stay within one block per worker."""
    files = file_set(tmp_path / "data")
    st = stager(sess, tmp_path / "state.json", workers=3)
    st.stage_files(files)
    assert 0 < st.meter.peak <= 3 * s3_upload.READ_CHUNK < PART
    assert st.meter.held == 0


def test_single_file_changed_while_sent_leaves_no_object(sess: boto3.session.Session, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, expect_user_error) -> None:
    files = file_set(tmp_path / "data")[2:3]
    victim = files[0][0]
    original = s3_upload._Part.read

    grown: list[bool] = []

    def read_then_grow(self: s3_upload._Part, size: int | None = -1) -> bytes:
        chunk = original(self, size)
        if self._pos == self.length and not grown:  # a late writer, once the last block was read
            grown.append(True)
            with victim.open("ab") as fh:
                fh.write(b"late")
        return chunk

    monkeypatch.setattr(s3_upload._Part, "read", read_then_grow)
    msg = expect_user_error(stager(sess, tmp_path / "state.json").stage_files, files)
    assert msg == (f"'{victim}' changed while being staged (size {PART} -> {PART + 4} bytes): re-run when it is "
                   "complete (nothing of it was uploaded)")
    assert "Contents" not in sess.client("s3").list_objects_v2(Bucket="stage-bkt", Prefix="set/")
