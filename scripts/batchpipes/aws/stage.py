"""Stage local workflow inputs to S3: parallel multipart uploads that verify, skip and resume.

For every local ``File`` (or ``Array[File]``, ``Map[..., File]``, ...) input of a workflow's inputs JSON:

* the file is hashed once (SHA-256 of the whole file and MD5 of each part; cached by size and mtime);
* an object already in S3 with the same size, the same ``sha256`` metadata and the ETag the local
  bytes would give is left alone (unchanged files are skipped);
* otherwise it is uploaded with ``CreateMultipartUpload``/``UploadPart``/``CompleteMultipartUpload``,
  parts in parallel, each part carrying its ``Content-MD5`` (S3 rejects a part whose bytes differ);
* the upload id is kept in a local state file as soon as it exists, so an interrupted run resumes:
  ``ListParts`` tells which parts S3 already holds, and only the missing ones are sent;
* after completion a ``HeadObject`` checks size and ETag against the local computation.

A manifest (local path, S3 URI, size, sha256, ETag) is written to ``s3://<bucket>/<prefix>/manifest.json``
and locally, and the inputs JSON is rewritten with ``s3://`` URIs through a temporary file and a rename.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import WDL
from botocore.config import Config
from tqdm import tqdm

from .. import settings, workflows
from ..errors import UserError
from ..files import write_atomically
from .buckets import check_bucket
from .session import RETRIES, describe_error, error_code

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Smallest part S3 accepts (except the last one); also our default.
MIN_PART = 8 * MiB
#: S3 allows at most 10,000 parts; stay clear of it.
MAX_PARTS = 9000
#: Read files in blocks of this size while hashing.
BLOCK = 4 * MiB

PartHook = Callable[[str, int], None]


class Aborted(Exception):
    """A part not sent because another part or file failed first."""


def part_size_for(size: int, minimum: int = MIN_PART) -> int:
    """Part size for a file of ``size`` bytes: ``minimum``, grown (in whole MiB) to keep under MAX_PARTS."""
    needed = -(-size // MAX_PARTS)
    needed = -(-needed // MiB) * MiB
    return max(minimum, needed)


def part_count(size: int, part_size: int) -> int:
    return max(1, -(-size // part_size))


@dataclass
class Digest:
    """What the local bytes hash to, for one part size."""

    sha256: str
    part_md5: list[str]  # hex, one per part (one entry for a single PutObject)

    def etag(self) -> str:
        """The ETag S3 gives these bytes (SSE-S3): MD5, or MD5 of the part MD5s plus ``-N``."""
        if len(self.part_md5) == 1:
            return self.part_md5[0]
        joined = b"".join(bytes.fromhex(h) for h in self.part_md5)
        return f"{hashlib.md5(joined).hexdigest()}-{len(self.part_md5)}"


def digest_file(path: Path, part_size: int, single: bool) -> Digest:
    """SHA-256 of the whole file and MD5 of each ``part_size`` part (or of the whole, if ``single``)."""
    sha = hashlib.sha256()
    md5s: list[str] = []
    part = hashlib.md5()
    in_part = 0
    with path.open("rb") as fh:
        while True:
            want = BLOCK if single else min(BLOCK, part_size - in_part)
            block = fh.read(want)
            if not block:
                break
            sha.update(block)
            part.update(block)
            in_part += len(block)
            if not single and in_part == part_size:
                md5s.append(part.hexdigest())
                part, in_part = hashlib.md5(), 0
    if in_part or not md5s:
        md5s.append(part.hexdigest())
    return Digest(sha.hexdigest(), md5s)


@dataclass
class Entry:
    """One staged file, as it appears in the manifest."""

    local: str
    uri: str
    size: int
    sha256: str
    etag: str
    part_size: int
    action: str = field(default="", compare=False)  # uploaded | resumed | skipped (not in the manifest)

    def manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("action")
        return d


class State:
    """Local state of one bucket/prefix: cached digests and unfinished multipart uploads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        self.digests: dict[str, Any] = data.get("digests", {})
        self.uploads: dict[str, Any] = data.get("uploads", {})

    def save(self) -> None:
        with self.lock:
            text = json.dumps({"digests": self.digests, "uploads": self.uploads}, indent=1, sort_keys=True)
            write_atomically(self.path, text)

    def digest(self, path: Path, part_size: int, single: bool) -> Digest:
        st = path.stat()
        key = f"{path}|{part_size}|{int(single)}"
        with self.lock:
            cached = self.digests.get(key)
        if cached and cached["size"] == st.st_size and cached["mtime_ns"] == st.st_mtime_ns:
            return Digest(cached["sha256"], cached["part_md5"])
        d = digest_file(path, part_size, single)
        with self.lock:
            self.digests[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": d.sha256,
                                 "part_md5": d.part_md5}
        return d


def default_state_dir(bucket: str, prefix: str) -> Path:
    safe = prefix.strip("/").replace("/", "__") or "_root"
    return settings.CACHE_DIR / "stage" / bucket / safe


def s3_client(sess: boto3.session.Session, workers: int) -> Any:
    return sess.client("s3", config=RETRIES.merge(Config(max_pool_connections=workers + 4)))


class Stager:
    """Uploads files to one bucket with a shared pool of part uploads."""

    def __init__(self, sess: boto3.session.Session, bucket: str, state: State, *, workers: int = 8,
                 min_part: int = MIN_PART, on_part: PartHook | None = None, progress: bool = True) -> None:
        self.s3 = s3_client(sess, workers)
        self.bucket = bucket
        self.state = state
        self.workers = workers
        self.min_part = min_part
        self.on_part = on_part
        self.progress = progress
        self._bar: tqdm | None = None
        self._bar_lock = threading.Lock()
        #: Set by the first failure: parts not yet started are not sent (the next run resumes them).
        self._stop = threading.Event()

    # -- helpers -------------------------------------------------------------------------------
    def _advance(self, n: int) -> None:
        if self._bar is not None:
            with self._bar_lock:
                self._bar.update(n)

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.s3.head_object(Bucket=self.bucket, Key=key))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _plan(self, path: Path) -> tuple[int, bool, Digest]:
        size = path.stat().st_size
        psize = part_size_for(size, self.min_part)
        single = size <= psize
        return psize, single, self.state.digest(path, psize, single)

    @staticmethod
    def unchanged(head: dict[str, Any] | None, size: int, d: Digest) -> bool:
        if head is None:
            return False
        return (int(head.get("ContentLength", -1)) == size
                and head.get("Metadata", {}).get("sha256") == d.sha256
                and str(head.get("ETag", "")).strip('"') == d.etag())

    # -- uploads -------------------------------------------------------------------------------
    def stage_files(self, files: list[tuple[Path, str]]) -> list[Entry]:
        """Upload (or skip) each ``(local path, key)``; returns manifest entries in the same order."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:
            plans = list(pool.map(lambda f: self._plan(f[0]), files))
        todo: list[int] = []
        entries: list[Entry | None] = [None] * len(files)
        for i, ((path, key), (psize, _single, d)) in enumerate(zip(files, plans, strict=True)):
            size = path.stat().st_size
            if self.unchanged(self.head(key), size, d):
                entries[i] = Entry(str(path), f"s3://{self.bucket}/{key}", size, d.sha256, d.etag(), psize,
                                   "skipped")
                log.info("unchanged  s3://%s/%s", self.bucket, key)
            else:
                todo.append(i)
        total = sum(files[i][0].stat().st_size for i in todo)
        self.state.save()
        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
                         disable=not self.progress or not todo, leave=False)
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="part") as parts, \
                    ThreadPoolExecutor(min(4, max(1, len(todo))), thread_name_prefix="file") as outer:
                futures = {i: outer.submit(self._upload_or_abort, files[i][0], files[i][1], plans[i], parts)
                           for i in todo}
                wait(list(futures.values()))
                errors = [e for e in (f.exception() for f in futures.values()) if e is not None]
                if errors:
                    raise next((e for e in errors if not isinstance(e, Aborted)), errors[0])
                for i, fut in futures.items():
                    entries[i] = fut.result()
        finally:
            self._bar.close()
            self._bar = None
            self.state.save()
        return [e for e in entries if e is not None]

    def _upload_or_abort(self, path: Path, key: str, plan: tuple[int, bool, Digest],
                         parts: ThreadPoolExecutor) -> Entry:
        try:
            return self._upload(path, key, plan, parts)
        except BaseException:
            self._stop.set()
            raise

    def _upload(self, path: Path, key: str, plan: tuple[int, bool, Digest], parts: ThreadPoolExecutor) -> Entry:
        psize, single, d = plan
        size = path.stat().st_size
        extra = {"Metadata": {"sha256": d.sha256, "part-size": str(psize)}, "ServerSideEncryption": "AES256"}
        action = "uploaded"
        if single:
            body = path.read_bytes()
            if hashlib.sha256(body).hexdigest() != d.sha256:
                raise UserError(f"'{path}' changed while being staged: re-run when it is complete")
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=_b64(d.part_md5[0]), **extra)
            self._advance(size)
            if self.on_part:
                self.on_part(key, 1)
        else:
            done = self._resumable_parts(key, size, psize, d)
            upload_id = self.state.uploads[key]["upload_id"]
            if done:
                action = "resumed"
                log.info("resuming   s3://%s/%s: %d of %d parts already there", self.bucket, key, len(done),
                         len(d.part_md5))
                self._advance(sum(min(psize, size - (n - 1) * psize) for n in done))
            missing = [n for n in range(1, len(d.part_md5) + 1) if n not in done]
            futs: list[Future[None]] = [
                parts.submit(self._part, path, key, upload_id, n, psize, d.part_md5[n - 1]) for n in missing
            ]
            finished, pending = wait(futs, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            if pending:
                self._stop.set()
            errors = [f.exception() for f in futs if f.done() and not f.cancelled() and f.exception()]
            first = next((e for e in errors if not isinstance(e, Aborted)), errors[0] if errors else None)
            if first is not None:
                raise first
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{h}"'}
                                           for n, h in enumerate(d.part_md5, start=1)]})
            with self.state.lock:
                self.state.uploads.pop(key, None)
            self.state.save()
        head = self.head(key)
        if not self.unchanged(head, size, d):
            got = (head or {}).get("ETag", "nothing")
            raise UserError(f"s3://{self.bucket}/{key} does not match '{path}' after upload (ETag {got}, "
                            f"expected {d.etag()}): re-run to upload it again")
        log.info("%-10s s3://%s/%s (%d bytes)", action, self.bucket, key, size)
        return Entry(str(path), f"s3://{self.bucket}/{key}", size, d.sha256, d.etag(), psize, action)

    def _resumable_parts(self, key: str, size: int, psize: int, d: Digest) -> set[int]:
        """Part numbers already uploaded (and matching) for the upload kept in the state; starts one if none."""
        with self.state.lock:
            saved = self.state.uploads.get(key)
        if saved and saved.get("sha256") == d.sha256 and saved.get("part_size") == psize \
                and saved.get("bucket") == self.bucket:
            try:
                done = set()
                for n, etag in self._list_parts(key, saved["upload_id"]):
                    if n <= len(d.part_md5) and etag == d.part_md5[n - 1]:
                        done.add(n)
                return done
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "NoSuchUpload":
                    raise
                log.info("the saved upload of s3://%s/%s is gone; starting again", self.bucket, key)
        elif saved:
            self._abort(key, saved["upload_id"])
        resp = self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, Metadata={"sha256": d.sha256, "part-size": str(psize)},
            ServerSideEncryption="AES256")
        with self.state.lock:
            self.state.uploads[key] = {"upload_id": resp["UploadId"], "sha256": d.sha256, "part_size": psize,
                                       "size": size, "bucket": self.bucket}
        self.state.save()
        return set()

    def _list_parts(self, key: str, upload_id: str) -> Iterator[tuple[int, str]]:
        marker = 0
        while True:
            resp = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
            for p in resp.get("Parts", []):
                yield int(p["PartNumber"]), str(p["ETag"]).strip('"')
            if not resp.get("IsTruncated"):
                return
            marker = int(resp["NextPartNumberMarker"])

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError:
            pass
        with self.state.lock:
            self.state.uploads.pop(key, None)

    def _part(self, path: Path, key: str, upload_id: str, n: int, psize: int, md5_hex: str) -> None:
        if self._stop.is_set():
            raise Aborted(f"s3://{self.bucket}/{key} part {n} not sent: another upload failed")
        try:
            with path.open("rb") as fh:
                fh.seek((n - 1) * psize)
                body = fh.read(psize)
            # Content-MD5 is the digest of the first read: S3 answers BadDigest if the bytes differ now.
            try:
                self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body,
                                    ContentMD5=_b64(md5_hex))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("BadDigest", "InvalidDigest"):
                    raise UserError(f"'{path}' changed while being staged (part {n}): re-run when it is "
                                    "complete") from exc
                raise
            self._advance(len(body))
            if self.on_part:
                self.on_part(key, n)
        except BaseException:
            self._stop.set()  # stop the parts not yet started, in every file
            raise


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


# -- workflow inputs ------------------------------------------------------------------------------

def _walk(value: Any, ty: WDL.Type.Base, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every local path in ``value`` (JSON) whose WDL type is File."""
    if value is None:
        return None
    if isinstance(ty, WDL.Type.File):
        return fn(value) if isinstance(value, str) and "://" not in value else value
    if isinstance(ty, WDL.Type.Directory):
        if isinstance(value, str) and "://" not in value:
            raise UserError(f"Directory input '{value}' cannot be staged (Cromwell's WDL 1.0 has no Directory): "
                            "pass its files as Array[File]")
        return value
    if isinstance(ty, WDL.Type.Array):
        return [_walk(v, ty.item_type, fn) for v in value]
    if isinstance(ty, WDL.Type.Map):
        k_ty, v_ty = ty.item_type
        if isinstance(value, dict):
            return {k: _walk(v, v_ty, fn) for k, v in value.items()}
        return value
    if isinstance(ty, WDL.Type.Pair):
        return {"left": _walk(value["left"], ty.left_type, fn), "right": _walk(value["right"], ty.right_type, fn)}
    if isinstance(ty, WDL.Type.StructInstance) and ty.members and isinstance(value, dict):
        return {k: _walk(v, ty.members[k], fn) if k in ty.members else v for k, v in value.items()}
    return value


def file_inputs(flow: workflows.Workflow, resolved: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """``resolved`` (as returned by workflows.validate) with ``fn`` applied to every local File path."""
    doc = workflows.load(flow.path)
    assert doc.workflow is not None
    types = {f"{doc.workflow.name}.{b.name}": b.value.type for b in doc.workflow.available_inputs}
    return {k: _walk(v, types[k], fn) if k in types else v for k, v in resolved.items()}


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


def _plan(inputs_path: Path, prefix: str | None) -> _Plan:
    data = workflows.read_json(inputs_path)
    flow = workflows.workflow_for_inputs(inputs_path, data)
    bases = [inputs_path.resolve().parent, settings.REPO_ROOT, Path.cwd()]
    resolved = workflows.validate(flow, data, source=str(inputs_path), base_dirs=[Path.cwd(), *bases[:2]])
    prefix = (prefix if prefix is not None else f"inputs/{flow.name}").strip("/")
    local: dict[str, str] = {}

    def collect(p: str) -> str:
        local.setdefault(p, object_key(Path(p), prefix, bases))
        return p

    file_inputs(flow, resolved, collect)
    return _Plan(flow, data, resolved, prefix, local)


def stage(sess: boto3.session.Session, inputs_path: Path, bucket: str, *, prefix: str | None = None,
          output: Path | None = None, state_dir: Path | None = None, workers: int = 8, min_part: int = MIN_PART,
          on_part: PartHook | None = None, progress: bool = True) -> StageResult:
    """Upload the local files named by ``inputs_path`` and write the rewritten inputs JSON to ``output``."""
    plan = _plan(inputs_path, prefix)
    flow, prefix = plan.flow, plan.prefix
    keys = list(plan.local.values())
    if len(set(keys)) != len(keys):
        raise UserError("two input files map to the same S3 key: give them distinct names")
    state_dir = state_dir or default_state_dir(bucket, prefix)
    stager = Stager(sess, bucket, State(state_dir / "state.json"), workers=workers, min_part=min_part,
                    on_part=on_part, progress=progress)
    check_bucket(stager.s3, bucket)
    manifest_key = f"{prefix}/manifest.json" if prefix else "manifest.json"
    try:
        entries = stager.stage_files([(Path(p), k) for p, k in plan.local.items()])
        manifest = {"version": 1, "workflow": flow.name, "inputs": str(inputs_path), "bucket": bucket,
                    "prefix": prefix, "files": [e.manifest() for e in entries]}
        text = json.dumps(manifest, indent=2) + "\n"
        stager.s3.put_object(Bucket=bucket, Key=manifest_key, Body=text.encode(), ContentType="application/json",
                             ServerSideEncryption="AES256")
    except botocore.exceptions.ClientError as exc:
        raise UserError(f"staging to s3://{bucket}/{prefix} failed: {describe_error(exc)}: re-run to resume") \
            from exc
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
           workers: int = 8, progress: bool = True) -> tuple[int, list[Mismatch]]:
    """Download every staged object and compare it with the local file; returns (checked, mismatches)."""
    plan = _plan(inputs_path, prefix)
    s3 = s3_client(sess, workers)
    check_bucket(s3, bucket)
    local = plan.local
    total = sum(Path(p).stat().st_size for p in local)
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="verify",
               disable=not progress, leave=False)
    lock = threading.Lock()

    def check(item: tuple[str, str]) -> Mismatch | None:
        path, key = item
        uri = f"s3://{bucket}/{key}"
        want = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(BLOCK), b""):
                want.update(block)
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            return Mismatch(uri, f"missing ({describe_error(exc)})")
        got = hashlib.sha256()
        for block in obj["Body"].iter_chunks(BLOCK):
            got.update(block)
            with lock:
                bar.update(len(block))
        if got.hexdigest() != want.hexdigest():
            return Mismatch(uri, f"content differs from '{path}' (sha256 {got.hexdigest()[:12]}... "
                                 f"!= {want.hexdigest()[:12]}...)")
        if obj.get("Metadata", {}).get("sha256") != want.hexdigest():
            return Mismatch(uri, "sha256 metadata missing or wrong")
        return None

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(check, local.items()))
    bar.close()
    return len(local), [m for m in results if m is not None]
