"""Resumable, verified uploads of local files to one S3 bucket (:class:`Stager`), as ``batchpipes aws stage`` uses them.

* the file is hashed once (SHA-256 of the whole file and MD5 of each part; cached by size and mtime in :class:`State`);
* an object already in S3 with the same size, the same ``sha256`` metadata and the ETag the local
  bytes would give is left alone (unchanged files are skipped);
* otherwise it is uploaded with ``CreateMultipartUpload``/``UploadPart``/``CompleteMultipartUpload``,
  parts in parallel, each part carrying its ``Content-MD5`` (S3 rejects a part whose bytes differ);
* the upload id is kept in the local state file as soon as it exists, so an interrupted run resumes:
  ``ListParts`` tells which parts S3 already holds, and only the missing ones are sent;
* after completion a ``HeadObject`` checks size and ETag against the local computation;
* a stop (the ``stop`` event set) ends hashing and sending within a block and keeps the uploads begun in the state;
* a file that vanishes or changes while being staged (checked at each part: size, mtime, MD5; and again
  before completion) is a one-line LocalFileError and its multipart upload is aborted;
* uploads the next run will not resume, and stray uploads of a key once its object is complete, are aborted,
  so nothing is left to cost storage.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config
from tqdm import tqdm

from .. import settings
from ..errors import UserError
from ..files import write_atomically
from .session import RETRIES, describe_error, error_code, not_aws_answer

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Smallest part S3 accepts (except the last one); also our default.
MIN_PART = 8 * MiB
#: S3 allows at most 10,000 parts; stay clear of it.
MAX_PARTS = 9000
#: Read files in blocks of this size while hashing.
BLOCK = 4 * MiB

PartHook = Callable[[str, int], None]

#: Test-only knob: cap each part's upload to this many bytes per second, so that a test can interrupt a
#: staging in the middle of its uploads (nothing else reads it; leave it unset).
THROTTLE_ENV = "BATCHPIPES_TEST_UPLOAD_BPS"
#: After a stop, how long the parts still in flight get to notice it before they are left behind.
STOP_GRACE_S = 1.0


class Aborted(Exception):
    """A part or file not sent because the staging is stopping (another part failed, or an interrupt)."""


class _Stopped(BaseException):
    """Raised from inside a request body when the staging stops: ends that HTTP request at once."""


class LocalFileError(UserError):
    """A local file vanished, changed or became unreadable while being staged."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"'{path}' {problem}: {fix}")
        self.path, self.problem, self.fix = path, problem, fix

    def with_upload(self, aborted: bool) -> LocalFileError:
        suffix = " (its partial upload was aborted)" if aborted else " (nothing of it was uploaded)"
        return LocalFileError(self.path, self.problem, self.fix + suffix)


def _vanished(path: Path) -> LocalFileError:
    return LocalFileError(path, "disappeared while being staged", "restore it and re-run")


def _changed(path: Path, what: str) -> LocalFileError:
    return LocalFileError(path, f"changed while being staged ({what})", "re-run when it is complete")


def _unreadable(path: Path, exc: OSError) -> LocalFileError:
    return LocalFileError(path, f"cannot be read ({exc.strerror or exc})", "fix its permissions and re-run")


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


def digest_file(path: Path, part_size: int, single: bool, stop: threading.Event | None = None) -> Digest:
    """SHA-256 of the whole file and MD5 of each ``part_size`` part (or of the whole, if ``single``).

    Checks ``stop`` between blocks, so an interrupt does not wait for a large file to be hashed."""
    sha = hashlib.sha256()
    md5s: list[str] = []
    part = hashlib.md5()
    in_part = 0
    with path.open("rb") as fh:
        while True:
            if stop is not None and stop.is_set():
                raise Aborted(f"hashing of '{path}' stopped")
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

    def digest(self, path: Path, st: os.stat_result, part_size: int, single: bool,
               stop: threading.Event | None = None) -> Digest:
        key = f"{path}|{part_size}|{int(single)}"
        with self.lock:
            cached = self.digests.get(key)
        if cached and cached["size"] == st.st_size and cached["mtime_ns"] == st.st_mtime_ns:
            return Digest(cached["sha256"], cached["part_md5"])
        d = digest_file(path, part_size, single, stop)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise _changed(path, _what_changed(st.st_size, st.st_mtime_ns, after))
        with self.lock:
            self.digests[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": d.sha256,
                                 "part_md5": d.part_md5}
        return d


def _what_changed(size: int, mtime_ns: int, now: os.stat_result) -> str:
    if now.st_size != size:
        return f"size {size} -> {now.st_size} bytes"
    return "modified after it was hashed"


def default_state_dir(bucket: str, prefix: str) -> Path:
    safe = prefix.strip("/").replace("/", "__") or "_root"
    return settings.CACHE_DIR / "stage" / bucket / safe


def s3_client(sess: boto3.session.Session, workers: int) -> Any:
    return sess.client("s3", config=RETRIES.merge(Config(max_pool_connections=workers + 4)))


@dataclass
class FilePlan:
    """One local file to stage: where it goes, what it looked like when hashed, and its digest."""

    path: Path
    key: str
    size: int
    mtime_ns: int
    part_size: int
    single: bool
    digest: Digest


class _Body(io.BytesIO):
    """A part's bytes as a request body that stops the request when the staging stops (and, for tests,
    sends no faster than ``bps`` bytes per second)."""

    def __init__(self, data: bytes, stop: threading.Event, bps: int) -> None:
        super().__init__(data)
        self._stop = stop
        self._bps = bps

    def read(self, size: int | None = -1) -> bytes:
        if self._stop.is_set():
            raise _Stopped
        if self._bps and (size is None or size < 0 or size > 64 * 1024):
            size = 64 * 1024
        chunk = super().read(size)
        if self._bps and chunk and self._stop.wait(len(chunk) / self._bps):
            raise _Stopped
        return chunk


def _throttle_from_env() -> int:
    raw = os.environ.get(THROTTLE_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"{THROTTLE_ENV}={raw!r} is not a positive number of bytes per second: unset it "
                        "(it is a test-only knob)")
    return int(raw)


class Stager:
    """Uploads files to one bucket with a shared pool of part uploads.

    ``stop`` (an Event) ends the staging early: hashing stops between blocks, parts not yet started are not
    sent and the parts in flight end their request at the next block of their body. The uploads begun stay
    in the state (resumable); a file that vanished or changed has its upload aborted instead.
    """

    def __init__(self, sess: boto3.session.Session, bucket: str, state: State, *, workers: int = 8,
                 min_part: int = MIN_PART, on_part: PartHook | None = None, progress: bool = True,
                 stop: threading.Event | None = None) -> None:
        self.s3 = s3_client(sess, workers)
        self.bucket = bucket
        self.state = state
        self.workers = workers
        self.min_part = min_part
        self.on_part = on_part
        self.progress = progress
        self._bar: tqdm | None = None
        self._bar_lock = threading.Lock()
        #: Set by the first failure or by an interrupt: nothing more is sent (the next run resumes).
        self._stop = stop if stop is not None else threading.Event()
        self._throttle = _throttle_from_env()

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

    def _plan(self, path: Path, key: str) -> FilePlan:
        try:
            st = path.stat()
            psize = part_size_for(st.st_size, self.min_part)
            single = st.st_size <= psize
            d = self.state.digest(path, st, psize, single, self._stop)
        except FileNotFoundError:
            raise _vanished(path).with_upload(False) from None
        except LocalFileError as exc:
            raise exc.with_upload(False) from None
        except OSError as exc:
            raise _unreadable(path, exc).with_upload(False) from None
        return FilePlan(path, key, st.st_size, st.st_mtime_ns, psize, single, d)

    @staticmethod
    def unchanged(head: dict[str, Any] | None, size: int, d: Digest) -> bool:
        if head is None:
            return False
        return (int(head.get("ContentLength", -1)) == size
                and head.get("Metadata", {}).get("sha256") == d.sha256
                and str(head.get("ETag", "")).strip('"') == d.etag())

    def _entry(self, fp: FilePlan, action: str) -> Entry:
        return Entry(str(fp.path), f"s3://{self.bucket}/{fp.key}", fp.size, fp.digest.sha256, fp.digest.etag(),
                     fp.part_size, action)

    def _check_unchanged(self, fp: FilePlan) -> None:
        """The file still has the size and mtime it had when hashed."""
        try:
            now = fp.path.stat()
        except FileNotFoundError:
            raise _vanished(fp.path) from None
        if (now.st_size, now.st_mtime_ns) != (fp.size, fp.mtime_ns):
            raise _changed(fp.path, _what_changed(fp.size, fp.mtime_ns, now))

    def _read_part(self, fp: FilePlan, n: int) -> bytes:
        """Bytes of part ``n`` (the whole file when single), checked against the digest taken at planning."""
        try:
            with fp.path.open("rb") as fh:
                now = os.fstat(fh.fileno())
                if (now.st_size, now.st_mtime_ns) != (fp.size, fp.mtime_ns):
                    raise _changed(fp.path, _what_changed(fp.size, fp.mtime_ns, now))
                fh.seek((n - 1) * fp.part_size)
                body = fh.read(fp.size if fp.single else fp.part_size)
        except FileNotFoundError:
            raise _vanished(fp.path) from None
        except LocalFileError:
            raise
        except OSError as exc:
            raise _unreadable(fp.path, exc) from None
        if hashlib.md5(body).hexdigest() != fp.digest.part_md5[n - 1]:
            raise _changed(fp.path, "its content differs from when it was hashed" if fp.single
                           else f"part {n} differs from when it was hashed")
        return body

    # -- uploads -------------------------------------------------------------------------------
    def stage_files(self, files: list[tuple[Path, str]]) -> list[Entry]:
        """Upload (or skip) each ``(local path, key)``; returns manifest entries in the same order."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:
            plans = list(pool.map(lambda f: self._plan(*f), files))
        todo: list[int] = []
        entries: list[Entry | None] = [None] * len(files)
        for i, fp in enumerate(plans):
            if self._stop.is_set():
                raise Aborted("staging stopped")
            if self.unchanged(self.head(fp.key), fp.size, fp.digest):
                entries[i] = self._entry(fp, "skipped")
                log.info("unchanged  s3://%s/%s", self.bucket, fp.key)
            else:
                todo.append(i)
        self._abort_unresumed({plans[i].key for i in todo})
        total = sum(plans[i].size for i in todo)
        self.state.save()
        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
                         disable=not self.progress or not todo, leave=False)
        parts = ThreadPoolExecutor(self.workers, thread_name_prefix="part")
        outer = ThreadPoolExecutor(min(4, max(1, len(todo))), thread_name_prefix="file")
        futures: dict[int, Future[Entry]] = {}
        try:
            futures = {i: outer.submit(self._upload_or_abort, plans[i], parts) for i in todo}
            wait(list(futures.values()))
            errors = [e for e in (f.exception() for f in futures.values()) if e is not None]
            if errors:
                raise next((e for e in errors if not isinstance(e, Aborted)), errors[0])
            for i, fut in futures.items():
                entries[i] = fut.result()
        except BaseException:
            # An interrupt lands here too: stop everything, give the parts in flight a moment to end their
            # requests, and leave the uploads begun in the state for the next run.
            self._stop.set()
            outer.shutdown(wait=False, cancel_futures=True)
            parts.shutdown(wait=False, cancel_futures=True)
            wait(list(futures.values()), timeout=STOP_GRACE_S)
            raise
        else:
            outer.shutdown()
            parts.shutdown()
        finally:
            self._bar.close()
            self._bar = None
            self.state.save()
        return [e for e in entries if e is not None]

    def _abort_unresumed(self, keep: set[str]) -> None:
        """Abort the saved uploads this run will not resume (their file is unchanged in S3 or not staged)."""
        with self.state.lock:
            stale = {k: u for k, u in self.state.uploads.items() if k not in keep}
        for key, saved in stale.items():
            log.info("aborting the unfinished upload of s3://%s/%s: not resumed by this run", self.bucket, key)
            self._abort(key, saved["upload_id"])

    def _upload_or_abort(self, fp: FilePlan, parts: ThreadPoolExecutor) -> Entry:
        try:
            return self._upload(fp, parts)
        except BaseException:
            self._stop.set()
            raise

    def _upload(self, fp: FilePlan, parts: ThreadPoolExecutor) -> Entry:
        if self._stop.is_set():
            raise Aborted(f"s3://{self.bucket}/{fp.key} not started: the staging is stopping")
        d, key = fp.digest, fp.key
        action = "uploaded"
        if fp.single:
            try:
                body = self._read_part(fp, 1)
            except LocalFileError as exc:
                raise exc.with_upload(False) from None
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=_Body(body, self._stop, self._throttle),
                                   ContentMD5=_b64(d.part_md5[0]), Metadata=self._metadata(fp),
                                   ServerSideEncryption="AES256")
            except _Stopped:
                raise Aborted(f"s3://{self.bucket}/{key} not sent: the staging is stopping") from None
            self._advance(fp.size)
            if self.on_part:
                self.on_part(key, 1)
        else:
            done = self._resumable_parts(fp)
            upload_id = self.state.uploads[key]["upload_id"]
            try:
                action = self._send_parts(fp, upload_id, done, parts)
                self._check_unchanged(fp)
            except LocalFileError as exc:
                self._abort(key, upload_id)
                self.state.save()
                raise exc.with_upload(True) from None
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{h}"'}
                                           for n, h in enumerate(d.part_md5, start=1)]})
            with self.state.lock:
                self.state.uploads.pop(key, None)
            self.state.save()
            self._abort_strays(key)
        head = self.head(key)
        if not self.unchanged(head, fp.size, d):
            got = (head or {}).get("ETag", "nothing")
            raise UserError(f"s3://{self.bucket}/{key} does not match '{fp.path}' after upload (ETag {got}, "
                            f"expected {d.etag()}): re-run to upload it again")
        log.info("%-10s s3://%s/%s (%d bytes)", action, self.bucket, key, fp.size)
        return self._entry(fp, action)

    def _send_parts(self, fp: FilePlan, upload_id: str, done: set[int], parts: ThreadPoolExecutor) -> str:
        """Send the parts S3 does not hold yet; 'resumed' if some were there already, else 'uploaded'."""
        if done:
            log.info("resuming   s3://%s/%s: %d of %d parts already there", self.bucket, fp.key, len(done),
                     len(fp.digest.part_md5))
            self._advance(sum(min(fp.part_size, fp.size - (n - 1) * fp.part_size) for n in done))
        missing = [n for n in range(1, len(fp.digest.part_md5) + 1) if n not in done]
        futs: list[Future[None]] = []
        try:
            for n in missing:
                futs.append(parts.submit(self._part, fp, upload_id, n))
        except RuntimeError:  # the pool was shut down by a stop
            raise Aborted(f"s3://{self.bucket}/{fp.key}: the staging is stopping") from None
        _, pending = wait(futs, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        errors = [e for e in (f.exception() for f in futs if f.done() and not f.cancelled()) if e is not None]
        first = next((e for e in errors if not isinstance(e, Aborted)), errors[0] if errors else None)
        if first is not None:
            raise first
        if pending or any(f.cancelled() for f in futs):
            raise Aborted(f"s3://{self.bucket}/{fp.key}: parts not sent, the staging is stopping")
        return "resumed" if done else "uploaded"

    @staticmethod
    def _metadata(fp: FilePlan) -> dict[str, str]:
        return {"sha256": fp.digest.sha256, "part-size": str(fp.part_size)}

    def _resumable_parts(self, fp: FilePlan) -> set[int]:
        """Part numbers already uploaded (and matching) for the upload kept in the state; starts one if none."""
        d, key = fp.digest, fp.key
        with self.state.lock:
            saved = self.state.uploads.get(key)
        if saved and saved.get("sha256") == d.sha256 and saved.get("part_size") == fp.part_size \
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
        resp = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=self._metadata(fp),
                                               ServerSideEncryption="AES256")
        if not resp.get("UploadId"):
            raise UserError(not_aws_answer(f"CreateMultipartUpload of s3://{self.bucket}/{key}", "an UploadId"))
        with self.state.lock:
            self.state.uploads[key] = {"upload_id": resp["UploadId"], "sha256": d.sha256,
                                       "part_size": fp.part_size, "size": fp.size, "bucket": self.bucket}
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
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                log.warning("could not abort the upload of s3://%s/%s (%s): abort it with 'aws s3api "
                            "abort-multipart-upload'", self.bucket, key, describe_error(exc))
        with self.state.lock:
            self.state.uploads.pop(key, None)

    def _abort_strays(self, key: str) -> None:
        """Abort other unfinished uploads of ``key`` (left by a run whose state was lost): once the object
        is complete they can only cost storage."""
        try:
            resp = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        except botocore.exceptions.ClientError as exc:
            log.debug("cannot list the unfinished uploads of s3://%s/%s: %s", self.bucket, key, describe_error(exc))
            return
        for u in resp.get("Uploads", []):
            if u.get("Key") == key:
                log.info("aborting a stray unfinished upload of s3://%s/%s", self.bucket, key)
                self._abort(key, str(u["UploadId"]))

    def _part(self, fp: FilePlan, upload_id: str, n: int) -> None:
        key = fp.key
        if self._stop.is_set():
            raise Aborted(f"s3://{self.bucket}/{key} part {n} not sent: the staging is stopping")
        try:
            body = self._read_part(fp, n)
            try:
                self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                    Body=_Body(body, self._stop, self._throttle),
                                    ContentMD5=_b64(fp.digest.part_md5[n - 1]))
            except _Stopped:
                raise Aborted(f"s3://{self.bucket}/{key} part {n} stopped: the staging is stopping") from None
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("BadDigest", "InvalidDigest"):
                    raise _changed(fp.path, f"part {n} arrived with another MD5") from exc
                raise
            self._advance(len(body))
            if self.on_part:
                self.on_part(key, n)
        except BaseException:
            self._stop.set()  # stop the parts not yet started, in every file
            raise


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()
