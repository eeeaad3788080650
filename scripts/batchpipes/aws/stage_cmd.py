"""``batchpipes aws stage``: upload a workflow's local input files to S3 and rewrite its inputs JSON."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

from .. import samplesheet, settings
from ..errors import UserError
from ..proc import stop_signals_handled
from . import session, stage
from .options import add_common

log = logging.getLogger(__name__)


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser(
        "stage", help="upload a workflow's local input files to S3 (parallel, verified, resumable)",
        description="Upload every local File input named by an inputs JSON to s3://BUCKET/PREFIX/ with parallel "
        "multipart uploads (each file read once; S3 verifies a SHA-256 checksum on every request and keeps it, "
        "composite for multipart objects). Unchanged objects are skipped; an interrupted run resumes where it "
        "stopped. Writes a "
        "manifest to s3://BUCKET/PREFIX/manifest.json and the inputs JSON with s3:// URIs.")
    add_common(p)
    p.add_argument("--bucket", required=True, help="existing S3 bucket to stage into")
    p.add_argument("--prefix", help="key prefix (default: inputs/<workflow>)")
    p.add_argument("-i", "--inputs", type=Path,
                   help="local inputs JSON, e.g. inputs/genomics.local.json (with --samples, default "
                   "inputs/genomics_cohort.local.json)")
    p.add_argument("--samples", type=Path, metavar="SHEET",
                   help="a genomics sample sheet (TSV or CSV, one line per lane): its FASTQ files are staged too and "
                   "the staged inputs hold them as genomics_cohort.samples")
    p.add_argument("-o", "--output", type=Path,
                   help="rewritten inputs JSON (default: <inputs dir>/<workflow>.staged.json)")
    p.add_argument("--workers", type=int, default=10, help="parallel requests (default 10, as the AWS CLI)")
    p.add_argument("--state-dir", type=Path, help="local state and manifest folder "
                   "(default: ~/.cache/batchpipes/stage/<bucket>/<prefix>)")
    p.add_argument("--verify", action="store_true",
                   help="upload nothing: download every staged object and compare it with the local file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.inputs is None:
        if args.samples is None:
            raise UserError("give the inputs JSON to stage with -i/--inputs (e.g. -i inputs/genomics.local.json)")
        args.inputs = settings.INPUTS_DIR / f"{samplesheet.COHORT_WORKFLOW}.local.json"
    sess = session.session(args.region, args.profile)
    progress = not args.no_progress and sys.stderr.isatty()
    if args.verify:
        stop = threading.Event()
        try:
            with _interruptible(stop):
                checked, bad = stage.verify(sess, args.inputs, args.bucket, prefix=args.prefix,
                                            workers=args.workers, progress=progress, stop=stop,
                                            samples=args.samples)
        except stage.StageInterrupted as exc:
            print(f"error: interrupted by {signal.Signals(exc.signum).name}: verification stopped (it changes "
                  "nothing): re-run it to verify", file=sys.stderr)
            _leave(128 + exc.signum)
        for m in bad:
            print(f"MISMATCH {m.uri}: {m.reason}")
        print(f"verified {checked} object(s): {checked - len(bad)} match, {len(bad)} mismatch")
        if bad:
            print("re-run without --verify to upload the mismatched files again", file=sys.stderr)
        return 1 if bad else 0
    wf = samplesheet.COHORT_WORKFLOW if args.samples is not None else args.inputs.name.split(".")[0]
    output = args.output or args.inputs.parent / f"{wf}.staged.json"
    stop = threading.Event()
    try:
        with _interruptible(stop):
            result = stage.stage(sess, args.inputs, args.bucket, prefix=args.prefix, output=output,
                                 state_dir=args.state_dir, workers=args.workers, progress=progress, stop=stop,
                                 samples=args.samples)
    except stage.StageInterrupted as exc:
        name = signal.Signals(exc.signum).name
        if exc.state_path is None:
            print(f"error: interrupted by {name} before any upload began: nothing to resume", file=sys.stderr)
        else:
            print(f"error: interrupted by {name}: staging stopped, {exc.kept} unfinished upload(s) kept in "
                  f"{exc.state_path.parent}: re-run the same command to resume", file=sys.stderr)
        _leave(128 + exc.signum)
    counts: dict[str, int] = {}
    for e in result.entries:
        counts[e.action] = counts.get(e.action, 0) + 1
        print(f"{e.action:9s} {e.uri}  {e.size} B  checksum-sha256 {e.checksum_sha256}")
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no local files"
    print(f"{len(result.entries)} file(s): {summary}")
    print(f"manifest: {result.manifest_uri} (local copy {result.manifest_path})")
    print(f"inputs:   {output}")
    return 0


@contextmanager
def _interruptible(stop: threading.Event) -> Iterator[None]:
    """Turn the first SIGINT/SIGTERM into ``stop`` + StageInterrupted in the main thread; a second one leaves
    at once (the resume state is written atomically whenever it changes, so nothing is lost)."""
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen:
            print(f"error: interrupted again by {signal.Signals(signum).name}: leaving now; re-run the same "
                  "command to resume", file=sys.stderr)
            _hard_exit(128 + seen[0])
        seen.append(signum)
        stop.set()
        raise stage.StageInterrupted(signum)

    with stop_signals_handled(handler):
        yield


def _workers_alive() -> list[threading.Thread]:
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def _leave(status: int, grace: float = 0.5) -> NoReturn:
    """Exit with ``status`` now: give the upload threads ``grace`` seconds to end, then leave without the
    interpreter's own shutdown. That shutdown joins every worker thread (one stuck in a request on a stalled
    network would hold the exit for minutes) and tears down every module (over a second here, with boto3's
    and miniwdl's data loaded); the resume state is already on disk, fsynced."""
    deadline = time.monotonic() + grace
    for t in _workers_alive():
        t.join(max(0.0, deadline - time.monotonic()))
    _hard_exit(status)


def _hard_exit(status: int) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
