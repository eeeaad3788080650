"""One lane's FASTQ in one streaming pass (``genomics-tasks split-lane``, task split_lane): checked, trimmed and
cut into shards for parallel alignment.

Each mate file is decompressed by its own ``gzip -cdf`` (plain files pass through); this module reads both
streams in blocks of records, checks them (FASTQ format, CRLF, truncation, quality as long as the sequence, the
same read names in the same order — comment and /1 /2 set aside —, not the same file twice, equal counts) and
writes them, interleaved, to fastp's standard input. fastp trims (adapters by pair overlap, fastp's default
quality and length filters) or passes the reads through, writes its JSON and HTML reports, and writes the pairs
into shards of ``reads_per_shard`` pairs (``--split_by_lines``). So the input is read once: no separate
validation pass. A bad input stops fastp, nothing is left in the output folder, and the one ERROR line names the
file, the read or line, and the fix.

Python 3.10+ standard library only; imported by genomics_tasks.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO

from task_common import TaskError

CRLF_FIX = "convert it first (dos2unix, or tr -d '\\r')"
#: Records read from each mate per block (the checks and the interleaving work on whole blocks).
BLOCK_RECORDS = 16384


@dataclass(frozen=True)
class Mates:
    """How the files are named in messages: the input names (``fastq_r1``/``fastq_r2`` of the single-sample
    workflow, ``fastq_1``/``fastq_2`` of a sample sheet) and the files' base names."""

    name1: str
    label1: str
    name2: str = ""
    label2: str = ""

    @property
    def paired(self) -> bool:
        return bool(self.name2)

    def who(self, mate: int) -> str:
        return f"{self.name1} '{self.label1}'" if mate == 1 else f"{self.name2} '{self.label2}'"


def read_name(header: bytes) -> bytes:
    """The read name of a FASTQ header line: without '@', the comment, the line end and a /1 or /2 suffix."""
    name = header[1:].split(None, 1)[0] if header[1:].strip() else b""
    return name[:-2] if name[-2:] in (b"/1", b"/2") else name


def _short(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    return text[:57] + "..." if len(name) > 60 else text


def _record_problem(m: Mates, a: Sequence[bytes], b: Sequence[bytes] | None, first_line: int) -> TaskError | None:
    """The first problem in a block, line by line (``first_line``: the 1-based number of the block's first
    line), or None. Only run on a block the fast checks found fault with."""
    for i in range(0, min(len(a), len(b)) if b is not None else len(a)):
        line = first_line + i
        k = i % 4
        pair = ((1, a[i]),) if b is None else ((1, a[i]), (2, b[i]))
        if k == 0:
            for mate, text in pair:
                if not text.startswith(b"@"):
                    return TaskError(f"{m.who(mate)} is not FASTQ: line {line}: record header expected (line starting "
                                     "with @)")
            if b is not None and read_name(a[i]) != read_name(b[i]):
                return TaskError(f"{m.name1} and {m.name2} are out of sync at read {(line + 3) // 4}: "
                                 f"'{_short(read_name(a[i]))}' in {m.name1} but '{_short(read_name(b[i]))}' in "
                                 f"{m.name2}: give both mates of every pair in the same order (the two files of one "
                                 "paired run)")
        elif k == 2:
            for mate, text in pair:
                if not text.startswith(b"+"):
                    return TaskError(f"{m.who(mate)} is not FASTQ: line {line}: separator line starting with + "
                                     "expected")
        elif k == 3:
            for mate, text in pair:
                seq = (a if mate == 1 or b is None else b)[i - 2]
                nq, ns = len(text.rstrip(b"\r\n")), len(seq.rstrip(b"\r\n"))
                if nq != ns:
                    return TaskError(f"{m.who(mate)} read {line // 4} (line {line}): the quality has {nq} characters "
                                     f"but the sequence {ns}: the file is damaged, copy or export it again")
    return None


def _names(headers: list[bytes]) -> list[bytes]:
    names = [h.split(None, 1)[0] for h in headers]
    return [n[:-2] if n[-2:] in (b"/1", b"/2") else n for n in names]


def _block_ok(a: list[bytes], b: list[bytes] | None) -> bool:
    """The fast checks of a block of whole records (all lines end with a newline)."""
    mates = (a,) if b is None else (a, b)
    for lines in mates:
        if not all(h[:1] == b"@" for h in lines[0::4]) or not all(p[:1] == b"+" for p in lines[2::4]):
            return False
        if not all(len(s) == len(q) for s, q in zip(lines[1::4], lines[3::4], strict=True)):
            return False
    if b is None:
        return True
    h1, h2 = a[0::4], b[0::4]
    return h1 == h2 or _names(h1) == _names(h2)


def _block(stream: IO[bytes], records: int) -> list[bytes]:
    lines = list(islice(stream, 4 * records))
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"  # no newline at the end of the file
    return lines


def _count_lines(stream: IO[bytes]) -> int:
    return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))


def stream_pairs(m: Mates, s1: IO[bytes], s2: IO[bytes] | None, sink: IO[bytes] | None,
                 block_records: int = BLOCK_RECORDS) -> int:
    """Check the mates block by block and write them (interleaved when paired) to ``sink``; return the reads
    (pairs) counted. A TaskError names the first problem."""
    reads = 0
    first = True
    while True:
        a = _block(s1, block_records)
        b = _block(s2, block_records) if s2 is not None else None
        if first:
            if not a:
                raise TaskError(f"{m.who(1)} holds no reads: give the reads of the sample")
            for mate, lines in ((1, a), (2, b)):
                if lines and lines[0].endswith(b"\r\n"):
                    raise TaskError(f"{m.who(mate)} has Windows line ends (CRLF): {CRLF_FIX}")
        line0 = 4 * reads + 1
        whole = len(a) - len(a) % 4 if b is None else min(len(a), len(b)) // 4 * 4
        if not _block_ok(a[:whole], b[:whole] if b is not None else None):
            problem = _record_problem(m, a[:whole], b[:whole] if b is not None else None, line0)
            if problem is not None:
                raise problem
        if first and b is not None and len(a) >= 4 and len(b) >= 4 and a[0] == b[0] and a[1] == b[1]:
            raise TaskError(f"{m.name1} and {m.name2} hold the same reads (read 1 is identical in both): give the "
                            f"second mates as {m.name2}")
        first = False
        if len(a) % 4 or (b is not None and len(b) != len(a)):
            _ends(m, a, b, s1, s2, reads)
        if sink is not None and a:
            if b is None:
                sink.write(b"".join(a))
            else:
                sink.write(b"".join(b"".join(a[i:i + 4]) + b"".join(b[i:i + 4]) for i in range(0, len(a), 4)))
        reads += len(a) // 4
        if len(a) < 4 * block_records:
            return reads


def _ends(m: Mates, a: list[bytes], b: list[bytes] | None, s1: IO[bytes], s2: IO[bytes] | None, before: int) -> None:
    """A block where a file ended early or inside a record: the line that says which (always raises). The rest
    of both files is counted (a file at its end counts 0 more)."""
    c1 = 4 * before + len(a) + _count_lines(s1)
    c2 = 4 * before + len(b) + _count_lines(s2) if b is not None and s2 is not None else None
    for mate, count in ((1, c1), (2, c2)):
        if count is not None and count % 4:
            raise TaskError(f"{m.who(mate)} is truncated: {count} lines is not a whole number of 4-line records: copy "
                            "or download it again")
    raise TaskError(f"mates differ in length: {m.name1} has {c1 // 4} reads, {m.name2} has {(c2 or 0) // 4}; give the "
                    "two files of one paired run")


def gzip_problem(stderr: str) -> str:
    """gzip's first complaint without the program and file name ('gzip: x.gz: not in gzip format' -> 'not in gzip
    format')."""
    lines = [line for line in stderr.splitlines() if line.strip()]  # gzip 1.12 starts with an empty line
    first = lines[0] if lines else "gzip failed"
    first = re.sub(r"^gzip: ", "", first)
    return re.sub(r"^.*: ", "", first)


def _first_byte(path: Path) -> bytes:
    with subprocess.Popen(["gzip", "-cdf", "--", str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as peek:
        assert peek.stdout is not None
        first = peek.stdout.read(1)
        peek.kill()
    return first


def precheck(m: Mates, paths: Sequence[Path]) -> None:
    """The cheap checks before streaming: not empty, not FASTA."""
    for mate, path in enumerate(paths, 1):
        if not path.is_file() or path.stat().st_size == 0:
            raise TaskError(f"{m.who(mate)} is empty: give the reads of the sample")
        if _first_byte(path) == b">":
            raise TaskError(f"{m.who(mate)} is FASTA, not FASTQ (starts with '>'): give sequencing reads with "
                            "qualities")


@dataclass(frozen=True)
class Fastp:
    reads_per_shard: int
    threads: int = 2
    trim: bool = True
    compression: int = 1

    def argv(self, paired: bool, out: Path) -> list[str]:
        cmd = ["fastp", "--stdin", "-o", str(out / "R1.fq.gz"), "--split_by_lines", str(4 * self.reads_per_shard),
               "--split_prefix_digits", "4", "-z", str(self.compression), "-w", str(self.threads),
               "-j", str(out / "fastp.json"), "-h", str(out / "fastp.html"), "--dont_eval_duplication"]
        if paired:
            cmd += ["--interleaved_in", "-O", str(out / "R2.fq.gz")]
        if not self.trim:  # reads as they are: no adapter, quality, length, N or polyG filter or trimming
            cmd += ["-A", "-Q", "-L", "-G", "-n", "1000"]
        return cmd


def _fastp_reads(report: Path) -> int:
    data = json.loads(report.read_text())
    return int(data["summary"]["before_filtering"]["total_reads"])


def _shards(folder: Path, paired: bool) -> list[tuple[Path, Path | None]]:
    """fastp's non-empty shards, in order (fastp leaves an empty last file when the reads fill the shards
    exactly)."""
    out = []
    for r1 in sorted(folder.glob("[0-9][0-9][0-9][0-9].R1.fq.gz")):
        r2 = r1.with_name(r1.name.replace(".R1.", ".R2.")) if paired else None
        if r1.stat().st_size == 0 and (r2 is None or r2.stat().st_size == 0):
            continue
        out.append((r1, r2))
    return out


def split_lane(m: Mates, paths: Sequence[Path], fastp: Fastp | None, out_dir: Path, counts: Path,
               reports: tuple[Path, Path]) -> int:
    """Check, trim and shard one lane; write ``out_dir``/shard_NNNN_R1.fq.gz (and _R2), ``counts``
    (<input name><TAB>reads per mate file, then after_fastp<TAB>pairs kept) and fastp's JSON and HTML reports.
    Return the number of shards. With ``fastp`` None, only check the files and write ``counts``."""
    if fastp is not None and fastp.reads_per_shard < 1000:
        raise TaskError(f"reads_per_shard must be at least 1000, got {fastp.reads_per_shard}")
    precheck(m, paths)
    work = out_dir.with_name(f".{out_dir.name}.part")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        reads = _stream(m, paths, fastp, work)
        if fastp is None:
            _write_counts(m, counts, reads, None)
            return 0
        return _publish(m, work, out_dir, counts, reports, reads)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stream(m: Mates, paths: Sequence[Path], fastp: Fastp | None, work: Path) -> int:
    """Decompress, check and feed fastp (if any); return the reads (pairs) counted."""
    gz = [subprocess.Popen(["gzip", "-cdf", "--", str(p)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
          for p in paths]
    fp_log = work / "fastp.log"
    fp = None
    if fastp is not None:
        with fp_log.open("wb") as log:
            fp = subprocess.Popen(fastp.argv(m.paired, work), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=log)
    problem: TaskError | None = None
    reads = 0
    try:
        assert gz[0].stdout is not None
        reads = stream_pairs(m, gz[0].stdout, gz[1].stdout if m.paired else None, fp.stdin if fp else None)
    except TaskError as exc:
        problem = exc
    except BrokenPipeError:
        pass  # fastp stopped: its status and log say why
    finally:
        if fp is not None and fp.stdin is not None:
            try:
                fp.stdin.close()
            except BrokenPipeError:
                pass
    if problem is not None and fp is not None:
        fp.kill()
    status = fp.wait() if fp is not None else 0
    for mate, proc in enumerate(gz, 1):
        if problem is not None and proc.poll() is None:
            proc.kill()  # its reader stopped early
        _, err = proc.communicate()
        if proc.returncode > 0:  # killed (< 0) only when the check had already failed
            raise TaskError(f"{m.who(mate)} is not a valid gzip file ({gzip_problem(err.decode('utf-8', 'replace'))}):"
                            " copy or download it again")
    if problem is not None:
        raise problem
    if status != 0:
        tail = fp_log.read_text(errors="replace").strip().splitlines()[-3:]
        raise TaskError(f"fastp failed (exit status {status}: {' / '.join(tail)}): the reads passed the checks; "
                        "is the disk full?")
    return reads


def _write_counts(m: Mates, counts: Path, reads: int, kept: int | None) -> None:
    rows = [(m.name1, reads)] + ([(m.name2, reads)] if m.paired else [])
    if kept is not None:
        rows.append(("after_fastp", kept))
    tmp = counts.with_name(f".{counts.name}.part")
    tmp.write_text("".join(f"{k}\t{v}\n" for k, v in rows))
    tmp.replace(counts)


def _publish(m: Mates, work: Path, out_dir: Path, counts: Path, reports: tuple[Path, Path], reads: int) -> int:
    seen = _fastp_reads(work / "fastp.json")
    expected = reads * (2 if m.paired else 1)
    if seen != expected:
        raise TaskError(f"fastp read {seen} reads but the checks passed {expected}: report this as a bug")
    shards = _shards(work, m.paired)
    if not shards:
        raise TaskError(f"no read of {m.who(1)} passed fastp's filters (see its report): check the reads, or set "
                        "trim = false")
    ready = work / "shards"
    ready.mkdir()
    for i, (r1, r2) in enumerate(shards, 1):
        os.replace(r1, ready / f"shard_{i:04d}_R1.fq.gz")
        if r2 is not None:
            os.replace(r2, ready / f"shard_{i:04d}_R2.fq.gz")
    data = json.loads((work / "fastp.json").read_text())
    kept = int(data["summary"]["after_filtering"]["total_reads"]) // (2 if m.paired else 1)
    for src, dst in zip((work / "fastp.json", work / "fastp.html"), reports, strict=True):
        os.replace(src, dst)
    _write_counts(m, counts, reads, kept)
    os.replace(ready, out_dir)  # the shards appear last, all at once
    return len(shards)
