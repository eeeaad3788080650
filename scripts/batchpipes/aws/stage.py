"""Stage local workflow inputs to S3 and rewrite the inputs JSON (``batchpipes aws stage``), or verify them.

Every local ``File`` (or ``Array[File]``, ``Map[..., File]``, a struct's File, ...) input of a workflow's inputs
JSON, plus the FASTQ files of a sample sheet when one is given (its lanes become the cohort workflow's ``samples``
input), is uploaded by :class:`~batchpipes.aws.s3_upload.Stager` (parallel multipart uploads that verify, skip and
resume). An interrupt (``stop`` set and StageInterrupted raised by the command's signal handler) stops reading and
sending within a block, keeps the uploads begun in the state and writes no inputs JSON.

A manifest (local path, S3 URI, size, S3's SHA-256 checksum, ETag, part size) is written to ``s3://<bucket>/<prefix>/manifest.json``
and locally, and the inputs JSON is rewritten with ``s3://`` URIs through a temporary file and a rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import WDL
from tqdm import tqdm

from .. import samplesheet, settings, workflows
from ..errors import UserError
from ..files import write_atomically
from .buckets import check_bucket
from .s3_upload import BLOCK, MIN_PART, Aborted, Entry, PartHook, Stager, State, default_state_dir, s3_client
from .session import (
    BOTO_FAILURES,
    describe_botocore,
    describe_error,
    is_access_denied,
)

log = logging.getLogger(__name__)


class StageInterrupted(BaseException):  # noqa: N818 (named like KeyboardInterrupt, which it stands in for)
    """SIGINT or SIGTERM during a staging: raised in the main thread by the command's signal handler.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way (botocore wraps
    any Exception from a request into a retried HTTPClientError) can swallow it. ``stage`` fills in where
    the resume state is and how many unfinished uploads it keeps.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.state_path: Path | None = None
        self.kept = 0


# -- workflow inputs ------------------------------------------------------------------------------

def file_inputs(flow: workflows.Workflow, resolved: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """``resolved`` (as returned by workflows.validate) with ``fn`` applied to every local File path."""
    wf = workflows.load(flow.path).workflow
    assert wf is not None

    def local(key: str, value: WDL.Value.File | WDL.Value.Directory) -> str:
        path = str(value.value)
        if "://" in path:
            return path
        if isinstance(value, WDL.Value.Directory):
            raise UserError(f"Directory input '{path}' cannot be staged (Cromwell's WDL 1.0 has no Directory): "
                            "pass its files as Array[File]")
        return fn(path)

    return workflows.map_files(wf, resolved, local)


def object_key(path: Path, prefix: str, bases: list[Path]) -> str:
    for base in bases:
        try:
            rel = path.relative_to(base.resolve())
            break
        except ValueError:
            continue
    else:
        rel = Path("_abs") / path.relative_to(path.anchor)
    return f"{prefix.strip('/')}/{rel.as_posix()}" if prefix.strip("/") else rel.as_posix()


@dataclass
class StageResult:
    entries: list[Entry]
    manifest_uri: str
    manifest_path: Path
    output: Path | None


@dataclass
class _Plan:
    """An inputs JSON read and validated once: its workflow, its inputs, and local file -> S3 key."""

    flow: workflows.Workflow
    data: dict[str, Any]
    resolved: dict[str, Any]
    prefix: str
    local: dict[str, str]


def _plan(inputs_path: Path, prefix: str | None, samples: Path | None = None) -> _Plan:
    """``samples``: a sample sheet whose lanes become the ``samples`` input (s3:// URIs in it pass unchanged)."""
    data = workflows.read_json(inputs_path)
    bases = [inputs_path.resolve().parent, settings.REPO_ROOT, Path.cwd()]
    if samples is not None:
        name, data = samplesheet.apply(samplesheet.COHORT_WORKFLOW, samples, data, local=False,
                                       inputs_file=inputs_path)
        flow = workflows.get(name)
        bases.insert(1, samples.resolve().parent)
    else:
        flow = workflows.workflow_for_inputs(inputs_path, data)
    resolved = workflows.validate(flow, data, source=str(inputs_path), base_dir=bases[0])
    prefix = (prefix if prefix is not None else f"inputs/{flow.name}").strip("/")
    local: dict[str, str] = {}

    def collect(p: str) -> str:
        local.setdefault(p, object_key(Path(p), prefix, bases))
        return p

    file_inputs(flow, resolved, collect)
    return _Plan(flow, data, resolved, prefix, local)


def stage(sess: boto3.session.Session, inputs_path: Path, bucket: str, *, prefix: str | None = None,
          output: Path | None = None, state_dir: Path | None = None, workers: int = 10, min_part: int = MIN_PART,
          on_part: PartHook | None = None, progress: bool = True,
          stop: threading.Event | None = None, samples: Path | None = None) -> StageResult:
    """Upload the local files named by ``inputs_path`` (and by the sample sheet ``samples``) and write the
    rewritten inputs JSON to ``output``.

    Setting ``stop`` (and raising StageInterrupted in the main thread, as the command's signal handler does)
    ends the staging within about a second with the resume state saved.
    """
    plan = _plan(inputs_path, prefix, samples)
    flow, prefix = plan.flow, plan.prefix
    keys = list(plan.local.values())
    if len(set(keys)) != len(keys):
        raise UserError("two input files map to the same S3 key: give them distinct names")
    state_dir = state_dir or default_state_dir(bucket, prefix)
    state = State(state_dir / "state.json")
    stager = Stager(sess, bucket, state, workers=workers, min_part=min_part, on_part=on_part,
                    progress=progress, stop=stop)
    where = f"s3://{bucket}/{prefix}"
    manifest_key = f"{prefix}/manifest.json" if prefix else "manifest.json"
    try:
        check_bucket(stager.s3, bucket)
        entries = stager.stage_files([(Path(p), k) for p, k in plan.local.items()])
        manifest: dict[str, Any] = {"version": 1, "workflow": flow.name, "inputs": str(inputs_path)}
        if samples is not None:
            manifest["samples"] = str(samples)
        manifest.update({"bucket": bucket, "prefix": prefix, "files": [e.manifest() for e in entries]})
        text = json.dumps(manifest, indent=2) + "\n"
        stager.s3.put_object(Bucket=bucket, Key=manifest_key, Body=text.encode(), ContentType="application/json",
                             ServerSideEncryption="AES256")
    except StageInterrupted as exc:
        exc.state_path = state.path
        with state.lock:
            exc.kept = len(state.uploads)
        raise
    except botocore.exceptions.ClientError as exc:
        if is_access_denied(exc):
            raise UserError(f"staging to {where} failed: access denied (HTTP 403 on {exc.operation_name}): the "
                            "credentials in use may not read and write objects there, or the bucket policy refuses "
                            "them: fix the IAM or bucket policy, or use other credentials (--profile)") from exc
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500:  # botocore retried it 8 times; S3 also turns an unparseable 200 answer into a 500
            raise UserError(f"staging to {where} failed: {exc.operation_name} kept failing with HTTP {status} "
                            f"({describe_error(exc)}): retry later; if it persists, check AWS_ENDPOINT_URL and any "
                            "proxy between you and AWS; then re-run to resume") from exc
        raise UserError(f"staging to {where} failed: {describe_error(exc)}: re-run to resume") from exc
    except BOTO_FAILURES as exc:
        raise UserError(f"staging to {where} failed: {describe_botocore(exc)}; then re-run to resume") from exc
    manifest_path = state_dir / "manifest.json"
    write_atomically(manifest_path, text)

    uris = {e.local: e.uri for e in entries}
    rewritten = file_inputs(flow, plan.resolved, lambda p: uris[p])
    order = {k if k.startswith(flow.name + ".") else f"{flow.name}.{k}": i for i, k in enumerate(plan.data)}
    rewritten = dict(sorted(rewritten.items(), key=lambda kv: order.get(kv[0], len(order))))
    workflows.validate(flow, rewritten, source="staged inputs", check_files=False)
    if output is not None:
        write_atomically(output, json.dumps(rewritten, indent=2) + "\n")
    return StageResult(entries, f"s3://{bucket}/{manifest_key}", manifest_path, output)


@dataclass
class Mismatch:
    uri: str
    reason: str


def verify(sess: boto3.session.Session, inputs_path: Path, bucket: str, *, prefix: str | None = None,
           workers: int = 8, progress: bool = True, stop: threading.Event | None = None,
           samples: Path | None = None) -> tuple[int, list[Mismatch]]:
    """Download every staged object and compare it with the local file; returns (checked, mismatches).

    Setting ``stop`` ends the downloads at their next block (as for ``stage``; verify changes nothing)."""
    stop = stop if stop is not None else threading.Event()
    plan = _plan(inputs_path, prefix, samples)
    s3 = s3_client(sess, workers)
    check_bucket(s3, bucket)
    local = plan.local
    try:
        total = sum(Path(p).stat().st_size for p in local)
    except FileNotFoundError as exc:
        raise UserError(f"'{exc.filename}' disappeared before it could be verified: restore it and re-run") \
            from None
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="verify",
               disable=not progress, leave=False)
    lock = threading.Lock()

    def check(item: tuple[str, str]) -> Mismatch | None:
        path, key = item
        uri = f"s3://{bucket}/{key}"
        want = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(BLOCK), b""):
                    if stop.is_set():
                        raise Aborted(f"verification of '{path}' stopped")
                    want.update(block)
        except FileNotFoundError:
            raise UserError(f"'{path}' disappeared while being verified: restore it and re-run") from None
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if is_access_denied(exc):
                raise UserError(f"verifying {uri} failed: access denied (HTTP 403 on GetObject): the credentials "
                                "in use may not read it, or the bucket policy refuses them: fix the IAM or "
                                "bucket policy") from exc
            return Mismatch(uri, f"missing ({describe_error(exc)})")
        except BOTO_FAILURES as exc:
            raise UserError(f"verifying {uri} failed: {describe_botocore(exc)}") from exc
        got = hashlib.sha256()
        for block in obj["Body"].iter_chunks(256 * 1024):
            if stop.is_set():
                obj["Body"].close()
                raise Aborted(f"verification of {uri} stopped")
            got.update(block)
            with lock:
                bar.update(len(block))
        if got.hexdigest() != want.hexdigest():
            return Mismatch(uri, f"content differs from '{path}' (sha256 {got.hexdigest()[:12]}... "
                                 f"!= {want.hexdigest()[:12]}...)")
        return None

    pool = ThreadPoolExecutor(workers, thread_name_prefix="verify")
    try:
        results = list(pool.map(check, local.items()))
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        bar.close()
    return len(local), [m for m in results if m is not None]
