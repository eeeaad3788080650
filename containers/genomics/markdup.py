"""A sample's shard BAMs merged with duplicates marked within each library (``genomics-tasks merge-sample``, task
merge_sample).

samtools markdup compares positions only: it does not read the libraries (LB) of the read groups
(samtools/samtools#1108), so two libraries of one sample (other molecules at the same positions) would mark each
other's reads. Here the shards are grouped by the library of their read group, each library is merged and
marked on its own, and the marked libraries are merged into the sample's BAM. With one library (the usual case)
that is one merge and one markdup, as before. Python 3.10+ standard library only; imported by genomics_tasks.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from task_common import TaskError


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        tail = " / ".join(proc.stderr.strip().splitlines()[-2:])
        raise TaskError(f"{what} failed (exit status {proc.returncode}: {tail}): is the disk full, or a shard damaged?")
    return proc.stdout


def library_of(header: str, label: str) -> str:
    """The library (LB) of a shard's one read group; the read group ID when the read group has no LB."""
    groups = [line.split("\t") for line in header.splitlines() if line.startswith("@RG\t")]
    if len(groups) != 1:
        raise TaskError(f"shard BAM '{label}' has {len(groups)} read groups, not 1: give the shards of align_shard")
    fields = dict(f.split(":", 1) for f in groups[0][1:] if ":" in f)
    return fields.get("LB") or fields.get("ID", "")


def group_by_library(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """(path, header) of each shard -> {library: [paths]}, libraries in order of first appearance."""
    out: dict[str, list[str]] = {}
    for path, header in headers:
        out.setdefault(library_of(header, os.path.basename(path)), []).append(path)
    return out


def merge_sample(bams: Sequence[str], out: Path, metrics: Path, threads: int, mark: bool) -> list[str]:
    """Write ``out`` (merged, duplicates marked per library when ``mark``) and ``metrics``; return the
    libraries."""
    headers = [(b, _run(["samtools", "view", "-H", "--", b], f"reading the header of {os.path.basename(b)}"))
               for b in bams]
    libraries = group_by_library(headers)
    tmp = out.parent / f".{out.name}.parts"
    tmp.mkdir(parents=True, exist_ok=True)
    merge = ["samtools", "merge", "-c", "-p", "-@", str(threads), "-f"]
    if not mark:
        _run([*merge, "-o", str(out), *bams], "samtools merge")
        metrics.write_text("duplicate marking disabled\n")
        return list(libraries)
    marked, reports = [], []
    for i, (library, paths) in enumerate(libraries.items()):
        merged, done, stats = tmp / f"lib{i}.bam", tmp / f"lib{i}.marked.bam", tmp / f"lib{i}.markdup.txt"
        _run([*merge, "-o", str(merged), *paths], f"samtools merge of library {library}")
        _run(["samtools", "markdup", "-@", str(threads), "-s", "-f", str(stats), str(merged), str(done)],
             f"samtools markdup of library {library}")
        merged.unlink()
        marked.append(done)
        reports.append(f"# library {library}: {len(paths)} shard(s)\n" + stats.read_text())
    if len(marked) == 1:
        marked[0].replace(out)
    else:
        _run([*merge, "-o", str(out), *map(str, marked)], "samtools merge of the libraries")
    metrics.write_text("".join(reports))
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    return list(libraries)
