"""Resumable, verified uploads of local files to one S3 bucket (:class:`Stager`), as ``batchpipes aws stage`` uses them.

One read of each byte for a new file: every request body (a part, or the whole of a file up to one part) is read
from disk while it is sent, and hashed (SHA-256) on the way; botocore computes S3's own checksum
(``ChecksumAlgorithm=SHA256``) from the same bytes and sends it as an aws-chunked trailer (``x-amz-checksum-sha256``;
also over plain HTTP, where botocore would otherwise compute it in a header first, reading the body twice more);
multipart objects get S3's ``COMPOSITE`` checksum (SHA-256 of the part checksums, ``-N``). S3 refuses a request
whose bytes do not give the checksum (``BadDigest``; such a request is read and sent again, twice at most) and
answers the checksum it stored: the part checksums for ``CompleteMultipartUpload`` and the resume state come from
those answers, and the object's checksum after completion must be their composite.

What counts as *unchanged* (the object is left alone), exactly:

* one ``ListObjectsV2`` of the common prefix gives every object's size and ETag: no object, or another size, is
  *changed* without reading the local file or asking anything else;
* an object this state file recorded after uploading it (same ETag, the local file's device, inode, size, mtime
  and ctime unchanged) is *unchanged* without reading the local file;
* otherwise (same size, unknown history) the local file is read once and compared with the object's stored
  digest: its SHA-256 checksum (whole file, or composite over its parts, whose size ``HeadObject?partNumber=1``
  gives), else its ETag when that is an MD5 (SSE-S3 or unencrypted: MD5 of the file, or of its part MD5s plus
  ``-N``). Any other object (only a CRC, or an SSE-KMS ETag) cannot be proven equal and is uploaded again.
  The local digests are cached by device, inode, size, mtime and ctime (ctime cannot be set back by a user).

Resume: the upload id and each part's checksum and ETag are kept in the local state as they happen, so an
interrupted run resumes: ``ListParts`` tells which parts S3 holds, and a part whose ETag and checksum are the ones
recorded (the file's identity unchanged) is not read or sent again. Interrupts and failures: a stop (the ``stop``
event set) ends reading and sending within a block and keeps the uploads begun in the state; a file that vanishes
or changes while being staged (size and mtime checked before and after each part is read, and before completion)
is a one-line LocalFileError and its multipart upload is aborted. Unfinished uploads of the keys staged that this
run will not resume (a lost state, a changed file) are aborted, so nothing is left to cost storage.

Memory: no part is held in memory; each request in flight holds the block it last read (1 MiB at most).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
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
#: Our part size (also the AWS CLI's default ``multipart_chunksize``); S3's smallest is 5 MiB.
MIN_PART = 8 * MiB
#: S3 allows at most 10,000 parts; stay clear of it.
MAX_PARTS = 9000
#: Read files in blocks of this size when comparing them with an existing object.
BLOCK = 1 * MiB
#: Largest block a request body hands out at once (botocore's aws-chunked encoder asks for 1 MiB blocks).
READ_CHUNK = 1 * MiB
#: S3's checksum for our uploads (verified by S3 on every request; composite for multipart objects).
ALGORITHM = "SHA256"
#: Multipart files whose parts are being queued and completed at once.
COORDINATORS = 4
#: A request S3 refused as corrupted (its bytes do not give the checksum sent) is sent again this many times.
BAD_DIGEST_RETRIES = 2

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


class _FileFailed(BaseException):
    """Raised from inside a request body when its file cannot be read as planned (a BaseException: botocore would
    take an Exception for a network error and retry it)."""

    def __init__(self, error: LocalFileError) -> None:
        super().__init__(str(error))
        self.error = error


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


def _what_changed(size: int, now: os.stat_result) -> str:
    if now.st_size != size:
        return f"size {size} -> {now.st_size} bytes"
    return "modified after it was hashed"


def part_size_for(size: int, minimum: int = MIN_PART) -> int:
    """Part size for a file of ``size`` bytes: ``minimum``, grown (in whole MiB) to keep under MAX_PARTS."""
    needed = -(-size // MAX_PARTS)
    needed = -(-needed // MiB) * MiB
    return max(minimum, needed)


def part_count(size: int, part_size: int) -> int:
    return max(1, -(-size // part_size))


def identity(st: os.stat_result) -> list[int]:
    """What says a local file is the one seen before: device, inode, size, mtime and ctime (nanoseconds).

    ctime changes with every write and with every ``utime`` (a user cannot set it back), so a file rewritten with
    the same size and its old mtime restored (``cp -p``, ``rsync -t``, ``touch -d``) is not taken for the old one."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite(part_digests: list[bytes]) -> str:
    """S3's COMPOSITE checksum of a multipart object: base64 of the hash of the part hashes, ``-N``."""
    return f"{_b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


# -- digests of a local file, computed in one read -----------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One S3 digest of a whole file: ``sha256`` (S3's checksum) or ``md5`` (its ETag); ``part_size`` 0 for an
    object sent in one request, else the multipart part size (the digest is then over the part digests, ``-N``)."""

    algo: str
    part_size: int

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.part_size}"


class _Digester:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.parts: list[bytes] = []
        self.h = hashlib.new(spec.algo)
        self.filled = 0

    def update(self, view: memoryview) -> None:
        ps = self.spec.part_size
        while len(view):
            take = len(view) if not ps else min(len(view), ps - self.filled)
            self.h.update(view[:take])
            self.filled += take
            view = view[take:]
            if ps and self.filled == ps:
                self.parts.append(self.h.digest())
                self.h, self.filled = hashlib.new(self.spec.algo), 0

    def value(self) -> str:
        if not self.spec.part_size:
            d = self.h.digest()
            return _b64(d) if self.spec.algo == "sha256" else d.hex()
        parts = self.parts + ([self.h.digest()] if self.filled or not self.parts else [])
        if self.spec.algo == "sha256":
            return composite(parts)
        return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def digest_file(path: Path, specs: Iterable[Spec], stop: threading.Event | None = None) -> dict[str, str]:
    """The S3 digests ``specs`` of the file's bytes, all from one read (values as S3 shows them: base64 for
    SHA-256 checksums, hex for MD5 ETags, ``-N`` for multipart). Checks ``stop`` between blocks."""
    digesters = [_Digester(s) for s in specs]
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while True:
            if stop is not None and stop.is_set():
                raise Aborted(f"reading of '{path}' stopped")
            n = fh.readinto(buf)
            if not n:
                break
            for d in digesters:
                d.update(view[:n])
    return {d.spec.name: d.value() for d in digesters}


@dataclass
class Entry:
    """One staged file, as it appears in the manifest."""

    local: str
    uri: str
    size: int
    checksum_sha256: str  # S3's checksum: base64 SHA-256 of the file, or composite ``...-N`` for multipart
    etag: str
    part_size: int
    action: str = field(default="", compare=False)  # uploaded | resumed | skipped (not in the manifest)

    def manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("action")
        return d


class State:
    """Local state of one bucket/prefix: cached local digests, objects this state uploaded, unfinished uploads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        self.digests: dict[str, Any] = data.get("digests", {})
        self.objects: dict[str, Any] = data.get("objects", {})
        self.uploads: dict[str, Any] = data.get("uploads", {})

    def save(self) -> None:
        with self.lock:
            text = json.dumps({"digests": self.digests, "objects": self.objects, "uploads": self.uploads},
                              indent=1, sort_keys=True)
        write_atomically(self.path, text)

    def local_digests(self, path: Path, st: os.stat_result, specs: list[Spec],
                      stop: threading.Event | None = None) -> dict[str, str]:
        """``digest_file`` cached by the file's identity; a file that changes while read is a LocalFileError."""
        ident = identity(st)
        with self.lock:
            cached = self.digests.get(str(path))
        have = dict(cached["values"]) if cached and cached["identity"] == ident else {}
        missing = [s for s in specs if s.name not in have]
        if missing:
            have.update(digest_file(path, missing, stop))
            after = path.stat()
            if identity(after) != ident:
                raise _changed(path, _what_changed(st.st_size, after))
            with self.lock:
                self.digests[str(path)] = {"identity": ident, "values": have}
        return {s.name: have[s.name] for s in specs}


def default_state_dir(bucket: str, prefix: str) -> Path:
    safe = prefix.strip("/").replace("/", "__") or "_root"
    return settings.CACHE_DIR / "stage" / bucket / safe


def s3_client(sess: boto3.session.Session, workers: int) -> Any:
    return sess.client("s3", config=RETRIES.merge(Config(max_pool_connections=workers + 4)))


@dataclass
class FilePlan:
    """One local file to stage: where it goes and what it looked like when planned."""

    path: Path
    key: str
    size: int
    mtime_ns: int
    part_size: int
    single: bool
    identity: list[int]

    def parts(self) -> int:
        return 1 if self.single else part_count(self.size, self.part_size)

    def part_range(self, n: int) -> tuple[int, int]:
        if self.single:
            return 0, self.size
        start = (n - 1) * self.part_size
        return start, min(self.part_size, self.size - start)


class _Part:
    """Bytes ``start .. start+length`` of a file as a request body, read from disk as the request is sent (no
    buffer of the part; botocore hashes them on the way), that ends the request when the staging stops (and, for
    tests, sends no faster than ``bps`` bytes per second). It seeks back only to its start (a retry)."""

    def __init__(self, fp: FilePlan, n: int, stop: threading.Event, bps: int, meter: Meter) -> None:
        self.fp, self.n = fp, n
        self.start, self.length = fp.part_range(n)
        self._stop, self._bps, self._meter = stop, bps, meter
        self._fh = fp.path.open("rb", buffering=0)
        try:
            self.check()
        except BaseException:
            self._fh.close()
            raise
        self._rewind()
        self._held = 0

    def check(self) -> None:
        """The file still has the size and mtime it had when planned (a LocalFileError if not)."""
        now = os.fstat(self._fh.fileno())
        if (now.st_size, now.st_mtime_ns) != (self.fp.size, self.fp.mtime_ns):
            raise _changed(self.fp.path, _what_changed(self.fp.size, now))

    def _rewind(self) -> None:
        self._fh.seek(self.start)
        self._pos = 0

    def __len__(self) -> int:
        return self.length

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: 0, 1: self._pos, 2: self.length}[whence] + offset
        if target == 0:
            self._rewind()
        elif target != self._pos:
            raise io.UnsupportedOperation("a part body only seeks back to its start")
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if self._stop.is_set():
            raise _Stopped
        want = self.length - self._pos if size is None or size < 0 else min(size, self.length - self._pos)
        want = min(want, READ_CHUNK if not self._bps else 64 * 1024)
        try:
            chunk = self._fh.read(want) if want > 0 else b""
        except OSError as exc:
            raise _FileFailed(_unreadable(self.fp.path, exc)) from None
        if len(chunk) < want:
            now = os.fstat(self._fh.fileno())
            raise _FileFailed(_changed(self.fp.path, _what_changed(self.fp.size, now)))
        self._meter.swap(self._held, len(chunk))
        self._held = len(chunk)
        self._pos += len(chunk)
        if self._bps and chunk and self._stop.wait(len(chunk) / self._bps):
            raise _Stopped
        return chunk

    def close(self) -> None:
        self._meter.swap(self._held, 0)
        self._held = 0
        self._fh.close()


class Meter:
    """Bytes of file data held by the request bodies at once (each holds the block it last handed out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0
        self.peak = 0

    def swap(self, old: int, new: int) -> None:
        with self._lock:
            self.held += new - old
            self.peak = max(self.peak, self.held)


def _throttle_from_env() -> int:
    raw = os.environ.get(THROTTLE_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"{THROTTLE_ENV}={raw!r} is not a positive number of bytes per second: unset it "
                        "(it is a test-only knob)")
    return int(raw)


def _checksum_in_trailer(params: dict[str, Any], **kw: Any) -> None:
    """Send our SHA-256 checksum as an aws-chunked trailer (computed by botocore while it reads the body for the
    wire) also over plain HTTP: botocore does so only over HTTPS, and in a header otherwise, which reads the body
    once more to compute it before sending, and once more to sign the payload. The payload is then unsigned (as
    over HTTPS); the checksum, which S3 verifies, covers it."""
    algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(algorithm, dict) and algorithm.get("algorithm") == "sha256" and algorithm.get("in") == "header":
        algorithm["in"] = "trailer"


def _etag(value: object) -> str:
    return str(value or "").strip('"')


def _same_checksum(got: str | None, want: str) -> bool:
    """S3 shows a composite checksum as ``...-N``; an endpoint that leaves out the ``-N`` still matches."""
    if not got:
        return False
    return got == want or ("-" in want and "-" not in got and got == want.rsplit("-", 1)[0])


class Stager:
    """Uploads files to one bucket with a shared pool of ``workers`` requests.

    ``stop`` (an Event) ends the staging early: reading stops between blocks, requests not yet started are not
    sent and the ones in flight end at the next block of their body. The uploads begun stay in the state
    (resumable); a file that vanished or changed has its upload aborted instead.
    """

    def __init__(self, sess: boto3.session.Session, bucket: str, state: State, *, workers: int = 10,
                 min_part: int = MIN_PART, on_part: PartHook | None = None, progress: bool = True,
                 stop: threading.Event | None = None) -> None:
        self.s3 = s3_client(sess, workers)
        self.bucket = bucket
        self.state = state
        self.workers = workers
        self.min_part = min_part
        self.on_part = on_part
        self.progress = progress
        self.meter = Meter()
        self._slots = threading.Semaphore(workers)
        for op in ("PutObject", "UploadPart"):
            self.s3.meta.events.register(f"before-call.s3.{op}", _checksum_in_trailer)
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

    def head(self, key: str, part: int | None = None) -> dict[str, Any] | None:
        kw: dict[str, Any] = {"PartNumber": part} if part else {"ChecksumMode": "ENABLED"}
        try:
            return dict(self.s3.head_object(Bucket=self.bucket, Key=key, **kw))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _plan(self, path: Path, key: str) -> FilePlan:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise _vanished(path).with_upload(False) from None
        except OSError as exc:
            raise _unreadable(path, exc).with_upload(False) from None
        psize = part_size_for(st.st_size, self.min_part)
        return FilePlan(path, key, st.st_size, st.st_mtime_ns, psize, st.st_size <= psize, identity(st))

    def _listing(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Size and ETag of the objects at ``keys``: one ListObjectsV2 of their common prefix (HeadObject each
        when they share none, not to list a whole bucket)."""
        common = posixpath.commonprefix(keys)
        common = common[:common.rfind("/") + 1]
        wanted = set(keys)
        found: dict[str, dict[str, Any]] = {}
        if not common:
            for key in keys:
                h = self.head(key)
                if h is not None:
                    found[key] = {"Size": int(h.get("ContentLength", -1)), "ETag": h.get("ETag")}
            return found
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=common):
            for o in page.get("Contents", []):
                if o["Key"] in wanted:
                    found[o["Key"]] = {"Size": int(o["Size"]), "ETag": o.get("ETag")}
        return found

    def _live_uploads(self, keys: list[str]) -> dict[str, list[str]]:
        """Unfinished multipart uploads in S3 of ``keys``: key -> upload ids."""
        common = posixpath.commonprefix(keys)
        wanted = set(keys)
        out: dict[str, list[str]] = {}
        try:
            for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                 Prefix=common):
                for u in page.get("Uploads", []):
                    if u.get("Key") in wanted:
                        out.setdefault(str(u["Key"]), []).append(str(u["UploadId"]))
        except botocore.exceptions.ClientError as exc:
            log.debug("cannot list the unfinished uploads of s3://%s/%s: %s", self.bucket, common,
                      describe_error(exc))
        return out

    def _recorded(self, fp: FilePlan, listed: dict[str, Any]) -> dict[str, Any] | None:
        """What this state recorded of the object at ``fp.key``, if it is still that object and the file is too."""
        with self.state.lock:
            rec = self.state.objects.get(fp.key)
        if rec and rec.get("etag") == _etag(listed.get("ETag")) and rec.get("identity") == fp.identity \
                and rec.get("local") == str(fp.path) and listed.get("Size") == fp.size:
            return dict(rec)
        return None

    def _record(self, fp: FilePlan, entry: Entry) -> None:
        with self.state.lock:
            self.state.objects[fp.key] = {"etag": entry.etag, "identity": fp.identity, "local": str(fp.path),
                                          "checksum_sha256": entry.checksum_sha256, "part_size": entry.part_size}

    def _entry(self, fp: FilePlan, action: str, checksum: str, etag: str, part_size: int) -> Entry:
        return Entry(str(fp.path), f"s3://{self.bucket}/{fp.key}", fp.size, checksum, etag, part_size, action)

    def compare(self, fp: FilePlan) -> Entry | None:
        """The object at ``fp.key`` has ``fp``'s size: an Entry if it holds the file's bytes, None if not (or if
        that cannot be proven). Reads the local file once (or takes its digests from the cache)."""
        head = self.head(fp.key)
        if head is None or int(head.get("ContentLength", -1)) != fp.size:
            return None
        etag = _etag(head.get("ETag"))
        checksum = str(head.get("ChecksumSHA256") or "")
        composite_parts = 0
        for value in (checksum, etag):
            if "-" in value and value.rsplit("-", 1)[1].isdigit():
                composite_parts = int(value.rsplit("-", 1)[1])
                break
        if head.get("ChecksumType") == "COMPOSITE" and not composite_parts:
            composite_parts = int(head.get("PartsCount") or 0)
        part_size = 0
        if composite_parts:
            meta = str(head.get("Metadata", {}).get("part-size", ""))
            if meta.isdigit() and part_count(fp.size, int(meta)) == composite_parts:
                part_size = int(meta)
            else:
                first = self.head(fp.key, part=1)
                part_size = int((first or {}).get("ContentLength", 0))
            if part_size <= 0 or part_count(fp.size, part_size) != composite_parts:
                return None  # parts of uneven sizes: the layout is unknown, cannot be proven equal
        if checksum:
            spec = Spec("sha256", part_size)
            want = checksum
        elif len(etag.split("-")[0]) == 32 and all(c in "0123456789abcdef" for c in etag.split("-")[0]):
            spec = Spec("md5", part_size)  # an MD5 ETag (SSE-S3 or none); an SSE-KMS one never matches
            want = etag
        else:
            return None
        try:
            st = fp.path.stat()
            if identity(st) != fp.identity:
                raise _changed(fp.path, _what_changed(fp.size, st))
            # With an MD5 ETag, the SHA-256 checksum for the manifest comes from the same read.
            specs = [spec] if spec.algo == "sha256" else [spec, Spec("sha256", part_size)]
            local = self.state.local_digests(fp.path, st, specs, self._stop)
            got = local[spec.name]
        except FileNotFoundError:
            raise _vanished(fp.path).with_upload(False) from None
        except LocalFileError as exc:
            raise exc.with_upload(False) from None
        except OSError as exc:
            raise _unreadable(fp.path, exc).with_upload(False) from None
        if got != want and not (spec.algo == "sha256" and _same_checksum(want, got)):
            return None
        if spec.algo == "md5":  # the object has no SHA-256 checksum: the manifest gets the file's
            checksum = local[Spec("sha256", part_size).name]
        elif composite_parts and "-" not in checksum:
            checksum = f"{checksum}-{composite_parts}"
        return self._entry(fp, "skipped", checksum, etag, part_size or fp.part_size)

    # -- uploads -------------------------------------------------------------------------------
    def stage_files(self, files: list[tuple[Path, str]]) -> list[Entry]:
        """Upload (or skip) each ``(local path, key)``; returns manifest entries in the same order."""
        plans = [self._plan(*f) for f in files]
        entries: list[Entry | None] = [None] * len(files)
        listing = self._listing([fp.key for fp in plans]) if plans else {}
        same_size: list[int] = []
        for i, fp in enumerate(plans):
            listed = listing.get(fp.key)
            if listed is None or listed["Size"] != fp.size:
                continue
            rec = self._recorded(fp, listed)
            if rec is not None:
                entries[i] = self._entry(fp, "skipped", rec["checksum_sha256"], rec["etag"], rec["part_size"])
            else:
                same_size.append(i)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="single")
        parts = ThreadPoolExecutor(self.workers, thread_name_prefix="part")
        coord = ThreadPoolExecutor(COORDINATORS, thread_name_prefix="file")
        futures: dict[int, Future[Entry]] = {}
        self._bar = None
        try:
            for i, found in zip(same_size, pool.map(lambda i: self.compare(plans[i]), same_size), strict=True):
                entries[i] = found
            for i, e in enumerate(entries):
                if e is not None and e.action == "skipped":
                    self._record(plans[i], e)
                    log.info("unchanged  %s", e.uri)
            todo = [i for i, e in enumerate(entries) if e is None]
            self._abort_unresumed({plans[i].key for i in todo}, [fp.key for fp in plans])
            self.state.save()
            total = sum(plans[i].size for i in todo)
            self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
                             disable=not self.progress or not todo, leave=False)
            # Parts and single requests queue in pools of their own and take turns for the ``workers`` request
            # slots: the large files' parts start at once instead of waiting behind every small file, and the
            # two kinds of request overlap to the end.
            for i in sorted(todo, key=lambda i: plans[i].single):
                if self._stop.is_set():
                    break  # a file failed (its error is raised below) or an interrupt
                runner = pool if plans[i].single else coord
                futures[i] = runner.submit(self._upload_or_abort, plans[i], parts)
            wait(list(futures.values()))
            errors = [e for e in (f.exception() for f in futures.values()) if e is not None]
            if errors:
                raise next((e for e in errors if not isinstance(e, Aborted)), errors[0])
            if len(futures) < len(todo):
                raise Aborted("staging stopped")
            for i, fut in futures.items():
                entries[i] = fut.result()
                self._record(plans[i], fut.result())
        except BaseException:
            # An interrupt lands here too: stop everything, give the requests in flight a moment to end, and
            # leave the uploads begun in the state for the next run.
            self._stop.set()
            coord.shutdown(wait=False, cancel_futures=True)
            pool.shutdown(wait=False, cancel_futures=True)
            parts.shutdown(wait=False, cancel_futures=True)
            wait(list(futures.values()), timeout=STOP_GRACE_S)
            raise
        else:
            coord.shutdown()
            pool.shutdown()
            parts.shutdown()
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self.state.save()
        return [e for e in entries if e is not None]

    def _abort_unresumed(self, todo: set[str], keys: list[str]) -> None:
        """Abort the uploads this run will not resume: saved ones of files now unchanged in S3 or not staged, and
        unfinished uploads in S3 of the staged keys that the state does not know (a lost state, an answer lost)."""
        with self.state.lock:
            stale = {k: u["upload_id"] for k, u in self.state.uploads.items() if k not in todo}
            saved = {u["upload_id"] for u in self.state.uploads.values()}
        for key, upload_id in stale.items():
            log.info("aborting the unfinished upload of s3://%s/%s: not resumed by this run", self.bucket, key)
            self._abort(key, upload_id)
        for key, ids in (self._live_uploads(keys) if keys else {}).items():
            for upload_id in ids:
                if upload_id not in saved:
                    log.info("aborting a stray unfinished upload of s3://%s/%s", self.bucket, key)
                    self._abort(key, upload_id, forget=False)

    def _upload_or_abort(self, fp: FilePlan, parts: ThreadPoolExecutor) -> Entry:
        try:
            return self._upload(fp, parts)
        except BaseException:
            self._stop.set()
            raise

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One of the ``workers`` request slots (parts and single files share them); a stop ends the wait."""
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                raise Aborted("the staging is stopping")
        try:
            yield
        finally:
            self._slots.release()

    def _open(self, fp: FilePlan, n: int) -> _Part:
        try:
            return _Part(fp, n, self._stop, self._throttle, self.meter)
        except FileNotFoundError:
            raise _vanished(fp.path) from None
        except LocalFileError:
            raise
        except OSError as exc:
            raise _unreadable(fp.path, exc) from None

    def _send(self, fp: FilePlan, n: int, call: Callable[..., Any], **kw: Any) -> tuple[dict[str, Any], bytes]:
        """Send part ``n`` (the whole file when single) with ``call``, read from disk once as it is sent, with S3's
        SHA-256 checksum computed on the way (botocore's aws-chunked trailer); returns the answer and the SHA-256
        S3 verified and stored (it answers it). A request S3 refuses as corrupted is read and sent again."""
        for attempt in range(BAD_DIGEST_RETRIES + 1):
            body = self._open(fp, n)
            try:
                resp = dict(call(Bucket=self.bucket, Key=fp.key, Body=body, ChecksumAlgorithm=ALGORITHM, **kw))
                if body.tell() != body.length:
                    raise _changed(fp.path, "read short")
                try:
                    body.check()  # the file did not change while it was read
                except LocalFileError:
                    if fp.single:  # the object S3 just stored may mix two versions: do not leave it
                        self.s3.delete_object(Bucket=self.bucket, Key=fp.key)
                    raise
            except _Stopped:
                raise Aborted(f"s3://{self.bucket}/{fp.key} part {n} stopped: the staging is stopping") from None
            except _FileFailed as exc:
                raise exc.error from None
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                    raise
                problem = f"S3 refused it as corrupted in transit ({error_code(exc)})"
            else:
                got = str(resp.get("ChecksumSHA256") or "")
                try:
                    digest = base64.b64decode(got, validate=True)
                except ValueError:
                    digest = b""
                if len(digest) != hashlib.sha256().digest_size:
                    what = "PutObject" if fp.single else f"UploadPart {n}"
                    raise UserError(not_aws_answer(f"{what} of s3://{self.bucket}/{fp.key}",
                                                   "the SHA-256 checksum it stored"))
                return resp, digest
            finally:
                body.close()
            if attempt == BAD_DIGEST_RETRIES:
                raise UserError(f"part {n} of '{fp.path}' failed {attempt + 1} times: {problem}: check the network "
                                "path (proxy) and the machine's memory, then re-run to resume")
            log.warning("part %d of s3://%s/%s: %s: sending it again", n, self.bucket, fp.key, problem)
        raise AssertionError("unreachable")

    def _upload(self, fp: FilePlan, parts: ThreadPoolExecutor) -> Entry:
        if self._stop.is_set():
            raise Aborted(f"s3://{self.bucket}/{fp.key} not started: the staging is stopping")
        key = fp.key
        if fp.single:
            with self._slot():
                try:
                    resp, digest = self._send(fp, 1, self.s3.put_object, Metadata=self._metadata(fp),
                                              ServerSideEncryption="AES256")
                except LocalFileError as exc:
                    raise exc.with_upload(False) from None
                self._advance(fp.size)
                if self.on_part:
                    self.on_part(key, 1)
            checksum = _b64(digest)  # S3 verified it against the bytes it stored
            log.info("%-10s s3://%s/%s (%d bytes)", "uploaded", self.bucket, key, fp.size)
            return self._entry(fp, "uploaded", checksum, _etag(resp.get("ETag")), fp.part_size)
        upload_id, done = self._resumable_parts(fp)
        try:
            action = self._send_parts(fp, upload_id, done, parts)
            now = fp.path.stat()
            if (now.st_size, now.st_mtime_ns) != (fp.size, fp.mtime_ns):
                raise _changed(fp.path, _what_changed(fp.size, now))
        except FileNotFoundError:
            self._abort(key, upload_id)
            self.state.save()
            raise _vanished(fp.path).with_upload(True) from None
        except LocalFileError as exc:
            self._abort(key, upload_id)
            self.state.save()
            raise exc.with_upload(True) from None
        with self.state.lock:
            sent = dict(self.state.uploads[key]["parts"])
        digests = [base64.b64decode(sent[str(n)]["sha256"]) for n in range(1, fp.parts() + 1)]
        checksum = composite(digests)
        resp = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, ChecksumType="COMPOSITE",
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{sent[str(n)]["etag"]}"',
                                        "ChecksumSHA256": sent[str(n)]["sha256"]}
                                       for n in range(1, fp.parts() + 1)]})
        with self.state.lock:
            self.state.uploads.pop(key, None)
        self.state.save()
        got = resp.get("ChecksumSHA256")
        etag = _etag(resp.get("ETag"))
        if got is None:  # an endpoint that does not answer it (moto): ask
            head = self.head(key) or {}
            got, etag = head.get("ChecksumSHA256"), _etag(head.get("ETag")) or etag
            if int(head.get("ContentLength", -1)) != fp.size:
                got = f"size {head.get('ContentLength')}"
        if not _same_checksum(got, checksum):
            raise UserError(f"s3://{self.bucket}/{key} does not match '{fp.path}' after upload (checksum {got}, "
                            f"expected {checksum}): re-run to upload it again")
        log.info("%-10s s3://%s/%s (%d bytes)", action, self.bucket, key, fp.size)
        return self._entry(fp, action, checksum, etag, fp.part_size)

    def _send_parts(self, fp: FilePlan, upload_id: str, done: set[int], parts: ThreadPoolExecutor) -> str:
        """Send the parts S3 does not hold yet; 'resumed' if some were there already, else 'uploaded'."""
        if done:
            log.info("resuming   s3://%s/%s: %d of %d parts already there", self.bucket, fp.key, len(done),
                     fp.parts())
            self._advance(sum(fp.part_range(n)[1] for n in done))
        missing = [n for n in range(1, fp.parts() + 1) if n not in done]
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
        return {"part-size": str(fp.part_size)}

    def _resumable_parts(self, fp: FilePlan) -> tuple[str, set[int]]:
        """The upload kept in the state (if its file is unchanged) and the parts S3 holds as recorded; else a new
        upload. A part is taken as done when S3 lists it with the ETag and checksum recorded when it was sent."""
        key = fp.key
        with self.state.lock:
            saved = self.state.uploads.get(key)
        if saved and saved.get("identity") == fp.identity and saved.get("part_size") == fp.part_size \
                and saved.get("bucket") == self.bucket:
            recorded = saved.get("parts", {})
            try:
                done = set()
                for n, etag, checksum in self._list_parts(key, saved["upload_id"]):
                    rec = recorded.get(str(n))
                    if rec and rec["etag"] == etag and checksum in (None, rec["sha256"]):
                        done.add(n)
                with self.state.lock:
                    saved["parts"] = {str(n): recorded[str(n)] for n in sorted(done)}
                return str(saved["upload_id"]), done
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "NoSuchUpload":
                    raise
                log.info("the saved upload of s3://%s/%s is gone; starting again", self.bucket, key)
        elif saved:
            self._abort(key, saved["upload_id"])
        resp = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=self._metadata(fp),
                                               ServerSideEncryption="AES256", ChecksumAlgorithm=ALGORITHM,
                                               ChecksumType="COMPOSITE")
        if not resp.get("UploadId"):
            raise UserError(not_aws_answer(f"CreateMultipartUpload of s3://{self.bucket}/{key}", "an UploadId"))
        with self.state.lock:
            self.state.uploads[key] = {"upload_id": resp["UploadId"], "identity": fp.identity,
                                       "part_size": fp.part_size, "size": fp.size, "bucket": self.bucket,
                                       "parts": {}}
        self.state.save()
        return str(resp["UploadId"]), set()

    def _list_parts(self, key: str, upload_id: str) -> Iterator[tuple[int, str, str | None]]:
        marker = 0
        while True:
            resp = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
            for p in resp.get("Parts", []):
                yield int(p["PartNumber"]), _etag(p["ETag"]), p.get("ChecksumSHA256")
            if not resp.get("IsTruncated"):
                return
            marker = int(resp["NextPartNumberMarker"])

    def _abort(self, key: str, upload_id: str, forget: bool = True) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                log.warning("could not abort the upload of s3://%s/%s (%s): abort it with 'aws s3api "
                            "abort-multipart-upload'", self.bucket, key, describe_error(exc))
        if forget:
            with self.state.lock:
                self.state.uploads.pop(key, None)

    def _part(self, fp: FilePlan, upload_id: str, n: int) -> None:
        key = fp.key
        if self._stop.is_set():
            raise Aborted(f"s3://{self.bucket}/{key} part {n} not sent: the staging is stopping")
        try:
            with self._slot():
                resp, digest = self._send(fp, n, self.s3.upload_part, UploadId=upload_id, PartNumber=n)
                with self.state.lock:
                    saved = self.state.uploads.get(key)
                    if saved is not None and saved["upload_id"] == upload_id:
                        saved["parts"][str(n)] = {"etag": _etag(resp.get("ETag")), "sha256": _b64(digest)}
                self._advance(fp.part_range(n)[1])
                if self.on_part:
                    self.on_part(key, n)
        except BaseException:
            self._stop.set()  # stop the parts not yet started, in every file
            raise
