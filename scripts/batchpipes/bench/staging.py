"""S3 staging throughput: batchpipes' parallel verified multipart upload vs `aws s3 cp --recursive` (moto_server).

Both upload the same N random files to a moto_server started on a free 127.0.0.1 port; the AWS CLI (v1, from
PyPI) lives in its own venv under ~/.cache/batchpipes/bench-awscli so it cannot disturb our boto3 pins. The
figures measure client-side work against a local server (hashing, part handling, HTTP), not a network link.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from .. import settings
from ..aws.moto_local import start_moto_server
from ..aws.s3_upload import MiB, Stager, State
from ..errors import UserError

log = logging.getLogger(__name__)

AWSCLI_VENV = settings.CACHE_DIR / "bench-awscli"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=4, help="number of files (default 4)")
    p.add_argument("--size-mib", type=int, default=64, help="size of each file in MiB (default 64)")
    p.add_argument("--workers", type=int, default=8, help="parallel part uploads for batchpipes (default 8)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs of each tool; the best counts (default 1)")


def awscli() -> Path:
    exe = AWSCLI_VENV / "bin" / "aws"
    if exe.exists():
        return exe
    log.info("installing the AWS CLI (v1, PyPI 'awscli') into %s", AWSCLI_VENV)
    subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
    r = subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", "awscli"], capture_output=True,
                       text=True)
    if r.returncode != 0 or not exe.exists():
        raise UserError(f"could not install awscli into {AWSCLI_VENV}: {r.stderr.strip().splitlines()[-1:]}")
    return exe


def main(args: argparse.Namespace) -> int:
    if args.files < 1 or args.size_mib < 1 or args.workers < 1 or args.repeat < 1:
        raise UserError("--files, --size-mib, --workers and --repeat must be at least 1")
    aws = awscli()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        for i in range(args.files):
            with (data / f"file{i}.bin").open("wb") as fh:
                for _ in range(args.size_mib):
                    fh.write(os.urandom(MiB))
        total = args.files * args.size_mib * MiB
        proc, url = start_moto_server(work / "moto.log")
        saved_endpoint = os.environ.get("AWS_ENDPOINT_URL")
        try:
            env["AWS_ENDPOINT_URL"] = url
            sess = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                         region_name="us-east-1")
            s3 = sess.client("s3", endpoint_url=url)
            ours_s, cli_s = [], []
            for run in range(args.repeat):
                bucket = f"bench-{run}"
                s3.create_bucket(Bucket=bucket)
                os.environ["AWS_ENDPOINT_URL"] = url  # our Stager builds its client from the session
                stager = Stager(sess, bucket, State(work / f"state-{run}.json"), workers=args.workers,
                                progress=False)
                files = [(p, f"ours/{p.name}") for p in sorted(data.iterdir())]
                t0 = time.perf_counter()
                entries = stager.stage_files(files)
                ours_s.append(time.perf_counter() - t0)
                assert all(e.action == "uploaded" for e in entries)
                t0 = time.perf_counter()
                r = subprocess.run([str(aws), "s3", "cp", "--recursive", "--only-show-errors", str(data),
                                    f"s3://{bucket}/cli/"], env=env, capture_output=True, text=True)
                cli_s.append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise UserError(f"aws s3 cp failed: {r.stderr.strip().splitlines()[-1:]}")
                got = sum(o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="cli/")["Contents"])
                if got != total:
                    raise UserError(f"aws s3 cp uploaded {got} bytes, expected {total}")
        finally:
            if saved_endpoint is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = saved_endpoint
            proc.terminate()
            proc.wait(timeout=10)
    ours, theirs = min(ours_s), min(cli_s)
    mb = total / 1e6
    print(f"staging {args.files} x {args.size_mib} MiB ({mb:.0f} MB) to moto_server on 127.0.0.1, best of "
          f"{args.repeat}")
    print(f"batchpipes stage (sha256 + per-part MD5, {args.workers} workers, verified): {ours:7.2f} s  "
          f"{mb / ours:7.1f} MB/s")
    print(f"aws s3 cp --recursive (awscli v1 defaults):            {theirs:7.2f} s  {mb / theirs:7.1f} MB/s")
    print(f"ratio (batchpipes throughput / aws s3 cp): {theirs / ours:.2f}")
    return 0
