"""S3 staging: our Stager vs `aws s3 cp --recursive` on the same files (moto_server), throughput and peak RSS ratios.

At each ``--sizes`` total (MiB) the file set is a quarter of the bytes in many small files (``--small-kib`` each,
one request each) and three quarters in three large files (multipart when over the 8 MiB threshold). Each run
uploads the whole set to a fresh prefix of a moto_server started on a free 127.0.0.1 port, over HTTPS (a
certificate made for the run, trusted through AWS_CA_BUNDLE) as S3 is reached: there botocore sends both tools'
checksums as aws-chunked trailers (``--http``: plain HTTP, where botocore puts awscli's CRC32 in a header, which
moto decodes about twice as fast as a trailer, while we keep the trailer: one read of each byte). The two tools
alternate (``--repeats`` runs each, the first tool swapped every run) and run as child processes, each measured
from spawn to exit (wall time) with its peak RSS and CPU time from ``wait4``. The AWS CLI is v1 from PyPI with
its defaults (10 concurrent requests, 8 MiB parts), in its own venv (~/.cache/batchpipes/bench-awscli, or
``--aws``) so it cannot disturb our boto3 pins. Printed: per size the medians, the ratios throughput
ours/awscli, peak RSS ours/awscli and client CPU time ours/awscli (steadier than wall time when other work
shares the machine), and the share of the cores moto_server itself used. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3

from .. import settings
from ..aws.moto_local import start_moto_server
from ..aws.s3_upload import MIN_PART, MiB, Stager, State
from ..errors import UserError

log = logging.getLogger(__name__)

AWSCLI_VENV = settings.CACHE_DIR / "bench-awscli"
BUCKET = "bench-stage"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
               "AWS_REGION": REGION}
#: How many large files a set holds (three quarters of its bytes).
LARGE_FILES = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="64,256,1024",
                   help="total sizes of the file set, MiB, comma-separated (default 64,256,1024)")
    p.add_argument("--small-kib", type=int, default=256, help="size of each small file, KiB (default 256)")
    p.add_argument("--workers", type=int, default=10,
                   help="our parallel requests (default 10, as `aws stage` and the AWS CLI)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each tool per size (default 2)")
    p.add_argument("--http", action="store_true", help="plain HTTP to moto_server instead of HTTPS")
    p.add_argument("--aws", type=Path, help="the `aws` executable (default: AWS CLI v1 installed from PyPI into "
                   f"{AWSCLI_VENV})")


def awscli() -> Path:
    exe = AWSCLI_VENV / "bin" / "aws"
    if exe.exists():
        return exe
    log.info("installing the AWS CLI (v1, PyPI 'awscli') into %s", AWSCLI_VENV)
    subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
    r = subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", "awscli"], capture_output=True,
                       text=True)
    if r.returncode != 0 or not exe.exists():
        raise UserError(f"could not install awscli into {AWSCLI_VENV} ({r.stderr.strip().splitlines()[-1:]}): "
                        f"install it with '{AWSCLI_VENV}/bin/pip install awscli' or pass --aws")
    return exe


def file_set(root: Path, total_mib: int, small_kib: int) -> tuple[int, int]:
    """Write the set (random bytes) under ``root``; return (number of files, bytes)."""
    total = total_mib * MiB
    small = small_kib * 1024
    n_small = max(1, total // 4 // small)
    large = (total - n_small * small) // LARGE_FILES
    (root / "small").mkdir(parents=True)
    for i in range(n_small):
        (root / "small" / f"s{i:05d}.bin").write_bytes(os.urandom(small))
    for i in range(LARGE_FILES):
        with (root / f"large{i}.bin").open("wb") as fh:
            left = large
            while left:
                fh.write(os.urandom(min(left, 4 * MiB)))
                left -= min(left, 4 * MiB)
    return n_small + LARGE_FILES, n_small * small + LARGE_FILES * large


def child(argv: list[str]) -> int:
    """Our side, run in a child process: stage every file under ``data`` to ``s3://bucket/prefix/``."""
    data, bucket, prefix, workers, state = Path(argv[0]), argv[1], argv[2], int(argv[3]), Path(argv[4])
    sess = boto3.session.Session(region_name=REGION)
    stager = Stager(sess, bucket, State(state), workers=workers, progress=False)
    files = [(p, f"{prefix}/{p.relative_to(data).as_posix()}") for p in sorted(data.rglob("*")) if p.is_file()]
    entries = stager.stage_files(files)
    uploaded = sum(e.action == "uploaded" for e in entries)
    sys.stdout.write(json.dumps({"uploaded": uploaded, "peak_held_bytes": stager.meter.peak}) + "\n")
    return 0 if uploaded == len(files) else 1


@dataclass
class Run:
    seconds: float
    rss_kib: int
    cpu_s: float
    server_cpu_s: float


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _measure(cmd: list[str], env: dict[str, str], server_pid: int, out: Path) -> Run:
    tick = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks(server_pid)
    with out.open("wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise UserError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed with status {proc.returncode}: see {out}")
    return Run(seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime,
               (_cpu_ticks(server_pid) - before) / tick)


def _stored(s3: object, prefix: str) -> tuple[int, int]:
    n = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):  # type: ignore[attr-defined]
        for o in page.get("Contents", []):
            n += 1
            size += int(o["Size"])
    return n, size


def _reset(url: str, s3: object, ctx: ssl.SSLContext | None) -> None:
    """Empty moto (its objects live in the server's memory) and create the bucket again."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30, context=ctx)
    s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]


def start_tls_moto(work: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """moto_server over HTTPS on a free 127.0.0.1 port with a certificate made here; returns (process, URL, cert)."""
    cert, key = work / "moto-cert.pem", work / "moto-key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                        str(cert)], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"openssl could not make a certificate ({r.stderr.strip()[-200:]}): install openssl or "
                        "pass --http")
    ctx = ssl.create_default_context(cafile=str(cert))
    exe = Path(sys.executable).with_name("moto_server")
    for _ in range(5):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with (work / "moto.log").open("ab") as logf:
            proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port), "-c", str(cert), "-k", str(key)],
                                    stdout=logf, stderr=logf)
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1, context=ctx)
                return proc, url, cert
            except OSError:
                time.sleep(0.2)
        proc.kill()
        proc.wait()
    raise UserError(f"moto_server did not start over HTTPS: see {work / 'moto.log'}")


def main(args: argparse.Namespace) -> int:
    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes {args.sizes!r} is not a list of MiB: give e.g. --sizes 64,256") from None
    if not sizes or min(sizes) < 1 or args.small_kib < 1 or args.workers < 1 or args.repeats < 1:
        raise UserError("--sizes, --small-kib, --workers and --repeats must be at least 1")
    aws = args.aws or awscli()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CREDENTIALS)
    env["PYTHONPATH"] = os.pathsep.join([str(settings.REPO_ROOT / "scripts"), env.get("PYTHONPATH", "")])
    ours_cmd = [sys.executable, "-c", "import sys; from batchpipes.bench.stage import child; "
                "sys.exit(child(sys.argv[1:]))"]
    results: dict[int, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        work = Path(tmp)
        ctx: ssl.SSLContext | None = None
        if args.http:
            proc, url = start_moto_server(work / "moto.log")
            verify: str | bool = True
        else:
            proc, url, cert = start_tls_moto(work)
            env["AWS_CA_BUNDLE"] = verify = str(cert)
            ctx = ssl.create_default_context(cafile=str(cert))
        env["AWS_ENDPOINT_URL"] = url
        s3 = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                   region_name=REGION).client("s3", endpoint_url=url, verify=verify)
        try:
            for total_mib in sizes:
                data = work / f"set-{total_mib}"
                n_files, n_bytes = file_set(data, total_mib, args.small_kib)
                runs: dict[str, list[Run]] = {"ours": [], "awscli": []}
                for r in range(args.repeats):
                    order = ["ours", "awscli"] if r % 2 == 0 else ["awscli", "ours"]
                    for tool in order:
                        _reset(url, s3, ctx)
                        prefix = f"{tool}-{total_mib}-{r}"
                        if tool == "ours":
                            cmd = [*ours_cmd, str(data), BUCKET, prefix, str(args.workers),
                                   str(work / f"state-{prefix}.json")]
                        else:
                            cmd = [str(aws), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", url,
                                   str(data), f"s3://{BUCKET}/{prefix}/"]
                        runs[tool].append(_measure(cmd, env, proc.pid, work / f"{prefix}.log"))
                        if _stored(s3, prefix) != (n_files, n_bytes):
                            raise UserError(f"{tool} stored {_stored(s3, prefix)} (objects, bytes), expected "
                                            f"{(n_files, n_bytes)}: see {work / (prefix + '.log')}")
                results[total_mib] = runs
                _report(total_mib, n_files, n_bytes, runs, args)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


def _report(total_mib: int, n_files: int, n_bytes: int, runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    mb = n_bytes / 1e6
    med = {t: Run(statistics.median(r.seconds for r in rs), int(statistics.median(r.rss_kib for r in rs)),
                  statistics.median(r.cpu_s for r in rs), statistics.median(r.server_cpu_s for r in rs))
           for t, rs in runs.items()}
    print(f"== {total_mib} MiB over {'HTTP' if args.http else 'HTTPS'}: {n_files} files ({n_files - LARGE_FILES} x {args.small_kib} KiB, {LARGE_FILES} x "
          f"{(n_bytes - (n_files - LARGE_FILES) * args.small_kib * 1024) // LARGE_FILES // MiB} MiB), "
          f"{args.repeats} alternating run(s) each, medians")
    for tool, label in (("ours", f"batchpipes Stager ({args.workers} workers, {MIN_PART // MiB} MiB parts)"),
                        ("awscli", "aws s3 cp --recursive (10 requests, 8 MiB parts)")):
        m = med[tool]
        share = m.server_cpu_s / ((os.cpu_count() or 1) * m.seconds)
        print(f"  {label:52s} {m.seconds:7.2f} s {mb / m.seconds:7.1f} MB/s  peak RSS {m.rss_kib / 1024:6.1f} MiB  "
              f"client CPU {m.cpu_s:6.2f} s  moto_server CPU {m.server_cpu_s:6.2f} s ({share:.0%} of the cores)")
    print(f"  throughput ratio (ours/awscli) at {total_mib} MiB: {med['awscli'].seconds / med['ours'].seconds:.2f}")
    print(f"  peak RSS ratio (ours/awscli) at {total_mib} MiB: {med['ours'].rss_kib / med['awscli'].rss_kib:.2f}")
    print(f"  client CPU ratio (ours/awscli) at {total_mib} MiB: {med['ours'].cpu_s / med['awscli'].cpu_s:.2f} "
          "(steadier than wall time on a shared machine)")
    sys.stdout.flush()
