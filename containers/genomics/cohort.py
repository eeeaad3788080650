"""The cohort's own programs (``genomics-tasks check-samples`` and ``intersect-callable``; wdl/tasks/cohort.wdl
and the cohort_callable task of wdl/tasks/qc.wdl).

check-samples is the workflow's first task: the same rules as the CLI's sample-sheet check
(scripts/batchpipes/samplesheet.py; tests/test_genomics_scripts.py feeds both the same cohorts), for Cromwell users
who write the inputs JSON themselves. Python 3.10+ standard library only; imported by genomics_tasks.py.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from task_common import NAME_PATTERN, NAME_RULE, TaskError, printable

#: Read group IDs, libraries: they name files (each lane's fastp report and read counts) and SAM header fields; no
#: ':' (podman cannot mount a path holding one).
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
ID_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 100, not starting with . _ -)"
#: The SAM specification's PL values (v1, 2024).
PLATFORMS = ("CAPILLARY", "DNBSEQ", "ELEMENT", "HELICOS", "ILLUMINA", "IONTORRENT", "LS454", "ONT", "PACBIO",
             "SINGULAR", "SOLID", "ULTIMA")
COLUMNS = ("sample", "read_group", "library", "platform", "fastq_1", "fastq_2")


def check_id(what: str, values: Sequence[str]) -> str:
    """``values`` are the lines of a write_lines file: exactly one, matching ID_PATTERN."""
    if len(values) == 1 and re.fullmatch(ID_PATTERN, values[0]):
        return values[0]
    raise TaskError(f"{what} '{printable(values)}' {ID_RULE}: rename it")


def check_lanes(rows: Sequence[Sequence[str]], sample_count: int) -> str:
    """Check the cohort's lanes (rows of COLUMNS, fastq_2 empty for single-end); return the summary line."""
    if not rows or sample_count < 1:
        raise TaskError("the cohort has no samples: give at least one sample with one lane")
    samples: dict[str, list[bool]] = {}
    read_groups: dict[str, str] = {}
    files: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        if len(row) != len(COLUMNS):
            raise TaskError(f"lane {number} has {len(row)} fields, not {len(COLUMNS)}: a value holds a tab; remove it")
        sample, rg, library, platform, fq1, fq2 = row
        where = f"lane {number} (sample '{sample}', read group '{rg}')"
        if not re.fullmatch(NAME_PATTERN, sample):
            raise TaskError(f"sample name '{sample}' {NAME_RULE}")
        for what, value in (("read group", rg), ("library", library)):
            if not re.fullmatch(ID_PATTERN, value):
                raise TaskError(f"{where}: {what} '{value}' {ID_RULE}: rename it")
        if platform.upper() not in PLATFORMS:
            raise TaskError(f"{where}: platform '{platform}' is not a SAM platform: use one of {', '.join(PLATFORMS)}")
        if rg in read_groups:
            raise TaskError(f"read group '{rg}' is given twice (samples '{read_groups[rg]}' and '{sample}'): give "
                            "every lane its own read group ID")
        read_groups[rg] = sample
        if fq1 == fq2:
            raise TaskError(f"{where}: fastq_1 and fastq_2 are the same file: give the second mates as fastq_2")
        for path in (fq1, fq2):
            if path and path in files:
                raise TaskError(f"{where}: '{path}' is already the reads of {files[path]}: give each lane its own "
                                "files")
            if path:
                files[path] = where
        samples.setdefault(sample, []).append(bool(fq2))
    for sample, kinds in samples.items():
        if len(set(kinds)) > 1:
            raise TaskError(f"sample '{sample}' mixes paired and single-end lanes ({sum(kinds)} paired, "
                            f"{len(kinds) - sum(kinds)} single-end): give it one kind, or split it into two samples")
    if len(samples) != sample_count:
        raise TaskError(f"{sample_count} samples are given but {len(samples)} distinct names: give each sample once, "
                        "with all its lanes")
    lanes = sum(len(p) for p in samples.values())
    pairs = sum(sum(p) for p in samples.values())
    return f"{len(samples)} samples, {lanes} lanes ({pairs} paired, {lanes - pairs} single-end)"


def check_samples(lanes_tsv: Path, sample_count: int, indexes: Path, summary: Path) -> None:
    text = lanes_tsv.read_text(errors="replace")
    rows = [line.split("\t") for line in text.split("\n") if line != ""]
    line = check_lanes(rows, sample_count)
    indexes.write_text(json.dumps(list(range(sample_count))) + "\n")
    summary.write_text(line + "\n")


# -- callable regions of the cohort ----------------------------------------------------------------------------

Interval = tuple[str, int, int]


def read_bed(path: Path) -> list[Interval]:
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rt") if gz else path.open()) as fh:
        return [(c[0], int(c[1]), int(c[2])) for c in (line.rstrip("\n").split("\t") for line in fh) if len(c) >= 3]


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """Bases in both: one sweep per contig (each input sorted by start within a contig and not overlapping
    itself, as mosdepth writes them), so the cost grows with the number of intervals, not their product."""
    by_contig: dict[str, list[tuple[int, int]]] = {}
    for chrom, start, end in b:
        by_contig.setdefault(chrom, []).append((start, end))
    ours: dict[str, list[tuple[int, int]]] = {}
    for chrom, start, end in a:
        ours.setdefault(chrom, []).append((start, end))
    out: list[Interval] = []
    for chrom, spans in ours.items():
        other, j = by_contig.get(chrom, []), 0
        for start, end in spans:
            while j < len(other) and other[j][1] <= start:
                j += 1
            k = j
            while k < len(other) and other[k][0] < end:
                out.append((chrom, max(start, other[k][0]), min(end, other[k][1])))
                k += 1
    return out


def total_bp(summary_text: str) -> int:
    for line in summary_text.splitlines():
        key, _, value = line.partition("\t")
        if key == "total_bp":
            return int(value)
    raise TaskError("a callable summary has no total_bp line: give the summaries of callable_regions")


def cohort_callable(name: str, samples: Sequence[str], beds: Sequence[list[Interval]],
                    summaries: Sequence[str]) -> tuple[list[Interval], str]:
    if not (len(samples) == len(beds) == len(summaries)) or not samples:
        raise TaskError("callable_beds, callable_summaries and sample_names differ in number: give one of each per "
                        "sample")
    common = beds[0]
    for bed in beds[1:]:
        common = intersect(common, bed)
    scope = total_bp(summaries[0])
    size = sum(e - s for _, s, e in common)
    share = 100 * size / scope if scope else 0.0
    lines = [f"{name}: {size} bp callable in all {len(samples)} samples ({share:.2f}% of {scope} bp)"]
    lines += [f"{sample}\t{sum(e - s for _, s, e in bed)}" for sample, bed in zip(samples, beds, strict=True)]
    return common, "\n".join(lines) + "\n"
