"""Issue 8, AWS side: interrupts, vanishing/changing files, unparseable answers and refusals, as a user meets them.

* ``batchpipes aws stage`` runs as a subprocess against moto_server with its uploads throttled (the test-only
  ``BATCHPIPES_TEST_UPLOAD_BPS``), gets SIGINT or SIGTERM in the middle of its parts, must be gone within 2 s
  with one line and status 130/143, and the next run must resume to byte-identical objects with no multipart
  upload left behind.
* Files that vanish or change while being staged (in process, with moto) give one line naming the file, and
  their multipart upload is aborted.
* An HTTP proxy between the CLI and moto_server plays the misbehaving network: a captive-portal page instead
  of XML (botocore's ResponseParserError) and a 403 on the bucket.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from batchpipes import settings
from batchpipes.aws import buckets, s3_upload, stage
from moto import mock_aws

MiB = 1024 * 1024
REGION = "eu-west-1"
BUCKET = "trust-bkt"
EXE = str(Path(sys.executable).with_name("batchpipes"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def genomics_inputs(root: Path, size: int = 23 * MiB) -> Path:
    """A genomics inputs JSON whose FASTQs are ``size`` bytes of random data (3 parts of 8 MiB by default)."""
    data = json.loads((settings.INPUTS_DIR / "genomics.local.json").read_text())
    folder = root / "inputs"
    (folder / "genomics").mkdir(parents=True)
    for i, key in enumerate(("genomics.fastq_r1", "genomics.fastq_r2")):
        big = folder / "genomics" / f"big_R{i + 1}.fastq.gz"
        big.write_bytes(os.urandom(size))
        data[key] = str(big.relative_to(folder))
    for key in ("genomics.reference_fasta", "genomics.annotation"):
        data[key] = str(settings.INPUTS_DIR / data[key])
    path = folder / "genomics.local.json"
    path.write_text(json.dumps(data))
    return path


def local_files(inputs: Path) -> list[Path]:
    data = json.loads(inputs.read_text())
    return [(inputs.parent / data[k]).resolve() for k in ("genomics.fastq_r1", "genomics.fastq_r2",
                                                          "genomics.reference_fasta", "genomics.annotation")]


def live_uploads(s3: object, bucket: str = BUCKET) -> list[dict]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))  # type: ignore[attr-defined]


def parts_in_s3(s3: object) -> int:
    return sum(len(s3.list_parts(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])  # type: ignore[attr-defined]
                   .get("Parts", [])) for u in live_uploads(s3))


# -- interrupts: the CLI against moto_server ---------------------------------------------------------------

@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_within_2s_keeps_state_and_resumes(aws_env: str, tmp_path: Path, sig: signal.Signals,
                                                           status: int) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    inputs = genomics_inputs(tmp_path)
    state, out = tmp_path / "state", tmp_path / "genomics.staged.json"
    args = [EXE, "aws", "stage", "--bucket", BUCKET, "-i", str(inputs), "-o", str(out), "--state-dir", str(state),
            "--workers", "2", "--no-progress"]
    slow = {**os.environ, s3_upload.THROTTLE_ENV: str(4 * MiB)}  # an 8 MiB part takes >= 2 s
    proc = subprocess.Popen(args, env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while parts_in_s3(s3) < 1:  # at least one part done, others in flight
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no part reached S3 in 120 s"
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, stderr
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"error: interrupted by {sig.name}: staging stopped, 2 unfinished upload(s) kept in {state}: re-run the "
        "same command to resume")
    assert not out.exists(), "no inputs JSON for an unfinished staging"
    saved = json.loads((state / "state.json").read_text())["uploads"]
    assert {u["UploadId"] for u in live_uploads(s3)} == {u["upload_id"] for u in saved.values()}, \
        "the uploads begun are kept, and the state names each of them"
    done_before = parts_in_s3(s3)
    assert done_before < 6, "interrupted before the end"

    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stdout and "4 file(s)" in again.stdout
    for path in local_files(inputs):
        key = next(line.split()[1] for line in again.stdout.splitlines() if line.split()[1:2]
                   and line.split()[1].endswith("/" + path.name)).removeprefix(f"s3://{BUCKET}/")
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert sha256(body) == sha256(path.read_bytes()), path
    assert live_uploads(s3) == [], "no multipart upload left behind"
    assert json.loads((state / "state.json").read_text())["uploads"] == {}
    staged = json.loads(out.read_text())
    assert staged["genomics.fastq_r1"].startswith(f"s3://{BUCKET}/inputs/genomics/")


def test_upload_not_resumed_is_aborted(aws_env: str, tmp_path: Path) -> None:
    """Interrupted, then run with another R2 file: the R2 upload of the first run will never be resumed."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    inputs = genomics_inputs(tmp_path)
    state = tmp_path / "state"
    args = [EXE, "aws", "stage", "--bucket", BUCKET, "-i", str(inputs), "-o", str(tmp_path / "o.json"),
            "--state-dir", str(state), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(args, env={**os.environ, s3_upload.THROTTLE_ENV: str(4 * MiB)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(live_uploads(s3)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    first_ids = {u["UploadId"] for u in live_uploads(s3)}
    data = json.loads(inputs.read_text())
    data["genomics.fastq_r2"] = str(settings.INPUTS_DIR / "genomics" / "sample_R2.fastq.gz")  # the R2 changes
    inputs.write_text(json.dumps(data))
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert live_uploads(s3) == [], "the upload of the old R2 was aborted, R1's resumed and completed"
    assert len(first_ids) == 2


# -- files that vanish or change while being staged (in process) --------------------------------------------

@pytest.fixture()
def sess(fake_aws: str) -> Iterator[boto3.session.Session]:
    with mock_aws():
        s = boto3.session.Session(region_name=REGION)
        s.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield s


def run_stage(s: boto3.session.Session, inputs: Path, tmp: Path, **kw: object) -> stage.StageResult:
    return stage.stage(s, inputs, BUCKET, output=tmp / "out.json", state_dir=tmp / "state", min_part=5 * MiB,
                       progress=False, **kw)  # type: ignore[arg-type]


Mutation = Callable[[Path], None]


LATE = b"@late read\nACGT\n+\nIIII\n"


def grow(p: Path) -> None:
    with p.open("ab") as fh:
        fh.write(LATE)


def rewrite_same_size(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF  # the last part changes, not the one just sent
    p.write_bytes(bytes(data))
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # even on a coarse-mtime file system


@pytest.mark.parametrize("mutate, problem", [
    (Path.unlink, "disappeared while being staged: restore it and re-run"),
    (grow, f"changed while being staged (size {23 * MiB} -> {23 * MiB + len(LATE)} bytes): re-run when it is "
           "complete"),
    (rewrite_same_size, "changed while being staged (modified after it was hashed): re-run when it is complete"),
], ids=["vanished", "grew", "rewritten"])
def test_file_vanishing_or_changing_mid_upload(sess: boto3.session.Session, tmp_path: Path, expect_user_error,
                                               mutate: Mutation, problem: str) -> None:
    inputs = genomics_inputs(tmp_path)
    victim = local_files(inputs)[0]
    fired: list[int] = []

    def after_first_part(key: str, part: int) -> None:
        if key.endswith("big_R1.fastq.gz") and not fired:
            fired.append(part)
            mutate(victim)

    msg = expect_user_error(run_stage, sess, inputs, tmp_path, on_part=after_first_part, workers=1)
    assert msg == f"'{victim}' {problem} (its partial upload was aborted)"
    s3 = sess.client("s3")
    assert not [u for u in live_uploads(s3) if u["Key"].endswith("big_R1.fastq.gz")], "R1's upload was aborted"
    saved = json.loads((tmp_path / "state" / "state.json").read_text())["uploads"]
    assert not [k for k in saved if k.endswith("big_R1.fastq.gz")]
    assert {u["UploadId"] for u in live_uploads(s3)} == {u["upload_id"] for u in saved.values()}, \
        "the other file's upload stays resumable, and only it"
    assert not (tmp_path / "out.json").exists()
    assert not any(o["Key"].endswith("big_R1.fastq.gz")
                   for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_file_vanishing_before_upload_names_it(sess: boto3.session.Session, tmp_path: Path,
                                               expect_user_error, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = genomics_inputs(tmp_path, size=1 * MiB)  # single PutObject
    victim = local_files(inputs)[1]
    original = s3_upload.Stager._upload

    def vanish_then_upload(self: s3_upload.Stager, fp: s3_upload.FilePlan, parts: object) -> s3_upload.Entry:
        if fp.path == victim:
            victim.unlink()
        return original(self, fp, parts)  # type: ignore[arg-type]

    monkeypatch.setattr(s3_upload.Stager, "_upload", vanish_then_upload)
    msg = expect_user_error(run_stage, sess, inputs, tmp_path)
    assert msg == f"'{victim}' disappeared while being staged: restore it and re-run (nothing of it was uploaded)"
    assert live_uploads(sess.client("s3")) == [] and not (tmp_path / "out.json").exists()


# -- a misbehaving network between the CLI and S3 -----------------------------------------------------------

Rule = Callable[[str, str], "tuple[int, dict[str, str], bytes] | None"]

#: A captive portal's page, as HTML (not well-formed XML) and as XHTML (well-formed, but not S3's answer).
PORTAL = b"<html><body><h1>Network login required</h1><p>Sign in to continue<br></body>"
PORTAL_XHTML = b"<html><body><h1>Network login required</h1><p>Sign in to continue</p></body></html>"


class Proxy:
    """An HTTP proxy in front of moto_server whose ``rule(method, path)`` may replace moto's answer."""

    def __init__(self, upstream: str, rule: Rule) -> None:
        up = urllib.parse.urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # The request always reaches moto; the rule may replace the answer on the way back.
                forwarded: tuple[int, dict[str, str], bytes] = (502, {}, b"")
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    forwarded = (resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in
                                               ("transfer-encoding", "connection", "content-length")}, resp.read())
                except OSError:
                    pass  # moto dropped it: the rule's answer, or a 502
                finally:
                    conn.close()
                status, headers, payload = rule(self.command, self.path) or forwarded
                proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.seen: list[tuple[str, str, int]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def proxied(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Rule], Proxy]]:
    made: list[Proxy] = []

    def make(rule: Rule) -> Proxy:
        p = Proxy(aws_env, rule)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AWS_ENDPOINT_URL": endpoint})


def portal_on_create_multipart(page: bytes) -> Rule:
    def rule(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        if method == "POST" and path.endswith("?uploads"):
            return 200, {"Content-Type": "text/html"}, page
        return None
    return rule


def test_unparseable_s3_answer_is_one_line_and_the_next_run_leaves_no_upload(proxied, aws_env: str,
                                                                            tmp_path: Path) -> None:
    """botocore turns an S3 200 whose body is not XML into a 500 and retries it; then one line, and the uploads
    S3 did start (the requests reached it, only the answers were replaced) are cleaned up by the next run."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    inputs = genomics_inputs(tmp_path)
    proxy = proxied(portal_on_create_multipart(PORTAL))
    args = ["aws", "stage", "--bucket", BUCKET, "-i", str(inputs), "-o", str(tmp_path / "o.json"), "--state-dir",
            str(tmp_path / "state"), "--no-progress"]
    r = cli(proxy.url, *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: staging to s3://{BUCKET}/inputs/genomics failed: CreateMultipartUpload kept failing with HTTP 500 "
        "(500: Internal Server Error): retry later; if it persists, check AWS_ENDPOINT_URL and any proxy between "
        "you and AWS; then re-run to resume")
    assert "Traceback" not in r.stderr and not (tmp_path / "o.json").exists()
    assert sum(1 for m, p, st in proxy.seen if m == "POST" and st == 200) > 2, "botocore retried"
    assert live_uploads(s3), "S3 did start uploads whose ids never reached us"
    ok = cli(aws_env, *args)  # the network is fine again
    assert ok.returncode == 0, ok.stderr
    assert live_uploads(s3) == [], "the strays of the broken run are aborted once their objects are complete"


def test_wellformed_foreign_answer_is_one_line(proxied, tmp_path: Path) -> None:
    """A portal page that is well-formed XML parses, but holds no UploadId: one line, not a KeyError."""
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    inputs = genomics_inputs(tmp_path)
    proxy = proxied(portal_on_create_multipart(PORTAL_XHTML))
    r = cli(proxy.url, "aws", "stage", "--bucket", BUCKET, "-i", str(inputs), "-o", str(tmp_path / "o.json"),
            "--state-dir", str(tmp_path / "state"), "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    expected = {f"error: CreateMultipartUpload of s3://{BUCKET}/inputs/genomics/genomics/big_R{i}.fastq.gz answered "
                "without an UploadId: something other than AWS answered (a proxy or captive portal?): check "
                "AWS_ENDPOINT_URL and the network, then retry" for i in (1, 2)}
    assert r.stderr.strip().splitlines()[-1] in expected
    assert not (tmp_path / "o.json").exists()


def forbid_bucket_head(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
    if method == "HEAD" and path.rstrip("/") == f"/{BUCKET}":
        return 403, {}, b""
    return None


DENIED = (f"error: access denied to bucket '{BUCKET}' (HTTP 403): the credentials in use may not list it "
          "(s3:ListBucket), or the bucket policy refuses them: fix the IAM or bucket policy, use other credentials "
          "(--profile), or pass another --bucket")
CPU_Q = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
GPU_Q = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"


@pytest.mark.parametrize("command", ["stage", "stage --verify", "cromwell-config --check-bucket"])
def test_bucket_403_says_access_denied_in_every_command(proxied, tmp_path: Path, command: str) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    proxy = proxied(forbid_bucket_head)
    out = tmp_path / "out"
    if command.startswith("stage"):
        args = ["aws", "stage", "--bucket", BUCKET, "-i", str(settings.INPUTS_DIR / "genomics.local.json"), "-o",
                str(out), "--state-dir", str(tmp_path / "state"), *command.split()[1:]]
    else:
        args = ["aws", "cromwell-config", "--bucket", BUCKET, "--cpu-queue-arn", CPU_Q, "--gpu-queue-arn", GPU_Q,
                "-o", str(out), "--db", str(tmp_path / "db" / "cache"), "--check-bucket"]
    r = cli(proxy.url, *args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [DENIED]
    assert not out.exists()
    assert ("HEAD", f"/{BUCKET}", 403) in proxy.seen


def test_unparseable_sts_answer_in_another_command(proxied, tmp_path: Path) -> None:
    """Any aws action, not only stage: teardown's first call (STS GetCallerIdentity) gets a login page."""
    proxy = proxied(lambda method, path: (200, {"Content-Type": "text/html"}, PORTAL) if method == "POST" else None)
    r = cli(proxy.url, "aws", "teardown", "--name", "bp")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: aws teardown: AWS sent a response that could not be parsed (ResponseParserError: Unable to parse "
        f"response (mismatched tag: line 1, column {PORTAL.index(b'</body>') + 2}), invalid XML received. Further "
        "retries may succeed:): retry; if it persists, check AWS_ENDPOINT_URL and any proxy between you and AWS"]


# -- check_bucket: every HeadBucket answer, in process ------------------------------------------------------

def head_bucket_answers(code: str, status: int, headers: dict[str, str] | None = None) -> Callable[..., None]:
    def answer(**kw: object) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": code, "Message": ""},
             "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}}, "HeadBucket")
    return answer


@pytest.mark.parametrize("code, status, headers, region, message", [
    ("403", 403, None, None, DENIED.removeprefix("error: ")),
    ("AccessDenied", 403, None, REGION, DENIED.removeprefix("error: ")),
    ("404", 404, None, None,
     f"bucket '{BUCKET}' does not exist: create it (aws s3 mb s3://{BUCKET}) or pass an existing --bucket"),
    ("301", 301, {"x-amz-bucket-region": "us-west-2"}, None,
     f"bucket '{BUCKET}' is in us-west-2, not {REGION}: pass --region us-west-2"),
    ("301", 301, {"x-amz-bucket-region": "us-west-2"}, REGION,
     f"bucket '{BUCKET}' is in us-west-2, not {REGION}: use a bucket in {REGION} (where the job queues are)"),
], ids=["403", "AccessDenied", "404", "301", "301-queues"])
def test_check_bucket_messages(sess: boto3.session.Session, expect_user_error, code: str, status: int,
                               headers: dict[str, str] | None, region: str | None, message: str) -> None:
    s3 = sess.client("s3")
    s3.meta.events.register("before-call.s3.HeadBucket", head_bucket_answers(code, status, headers))
    assert expect_user_error(buckets.check_bucket, s3, BUCKET, region) == message


def test_wellformed_foreign_sts_answer_is_one_line(proxied, tmp_path: Path) -> None:
    proxy = proxied(lambda method, path: (200, {"Content-Type": "text/html"}, PORTAL_XHTML)
                    if method == "POST" else None)
    r = cli(proxy.url, "aws", "teardown", "--name", "bp")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: aws teardown: AWS sent a response that could not be parsed (KeyError: 'GetCallerIdentityResult'): "
        "retry; if it persists, check AWS_ENDPOINT_URL and any proxy between you and AWS"]


def test_a_moto_server_that_lost_its_port_is_not_taken_for_ours(moto_endpoint: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel test workers each start a moto_server on a port found free: found free is not kept free. When the
    port is taken meanwhile (here: forced to the one another server holds), the answer comes from the other server
    and the new one exits; it must not be returned (the other worker's resets would wipe this one's state)."""
    import socket as real_socket

    from batchpipes.aws import moto_local

    busy = int(moto_endpoint.rsplit(":", 1)[1])
    calls = []

    class FirstBusy(real_socket.socket):
        def getsockname(self) -> tuple[str, int]:
            calls.append(1)
            return ("127.0.0.1", busy) if len(calls) == 1 else super().getsockname()

    monkeypatch.setattr(moto_local.socket, "socket", FirstBusy)
    proc, url = moto_local.start_moto_server(tmp_path / "moto.log")
    try:
        assert url != moto_endpoint and proc.poll() is None and len(calls) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_server_holding_a_port_is_told_from_others(tmp_path: Path) -> None:
    """The started server is recognised by the listening socket among its open files, not by timing."""
    import socket as real_socket

    from batchpipes.aws import moto_local

    with real_socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert moto_local.listens_on(os.getpid(), port)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not moto_local.listens_on(other.pid, port)
        finally:
            other.kill()
            other.wait()
    assert not moto_local.listens_on(os.getpid(), port)
    net = tmp_path / "net"
    net.mkdir()
    (net / "tcp").write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n"
        "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n")
    assert moto_local.listening_inodes(8080, net) == {"4242"}
    assert moto_local.listening_inodes(8081, net) == set()
