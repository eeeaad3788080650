#!/usr/bin/env python3
"""The programs of the genomics tasks (wdl/tasks/{reference,alignment,variant_calling,qc}.wdl), installed in the
genomics image as ``genomics-tasks``.

Values reach this script as arguments (shell variables read from ``write_lines`` files; after ``--``, so that a
value starting with '-' stays a value) or files, never pasted into its source. Every bad input is one ``ERROR:``
line on stderr (problem and fix) and exit status 1, before any heavy work; no output is left half-written (files
are written under a temporary name, then renamed).

Subcommands, by task:
  index_reference   faidx         check the FASTA (not gzip, starts with '>'), run samtools faidx, turn its
                                  warnings/errors (repeated or ragged sequence) into one line
  split_lane        split-lane    one pass over one lane (fastq_lane.py): the checks of both mates (format,
                                  truncation, CRLF, quality length, mates in sync), fastp, shards
  align_shard       choice        the one check of a choice (aligner; caller in split_regions)
                    same-shard    the shard's files are the two mates of one shard, in order
                    read-group    check sample name, read group ID, platform, library; print the @RG line
                    link-index    link the aligner index beside the reference under fixed names; print the target
                    sam-error     the aligner/samtools failed: name a contig repeated in the SAM header
  merge_sample      merge-sample  merge the shards, duplicates marked within each library (markdup.py)
  check_samples     check-samples the cohort's lanes (cohort.py): names, read groups, libraries, platforms,
                                  files given twice, mixed paired/single-end samples
  cohort_callable   intersect-callable  bases callable in every sample (cohort.py)
  split_regions     split-regions check the .fai and the targets BED, pad, merge, cut into shards
  alignment_qc      bed           BED -> chrom, start, end (0-based, or 1-based inclusive for samtools stats -t)
  callable_regions  mosdepth      depth classes with mosdepth (NO_COVERAGE, LOW_COVERAGE, CALLABLE)
                    callable      callable BED and the summary of a scope (genome or targets)
  (several)         check-name    sample_name rule (it becomes file names)
                    check-id      read group ID rule (lane_id: it becomes file names)
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cohort
import markdup
from fastq_lane import Fastp, Mates, split_lane
from task_common import Command, TaskError, add_check_name, check_name, run_main

#: Every choice of the genomics tasks, checked once, at the first task that uses it.
CHOICES = {"aligner": ("bwa", "minimap2"), "caller": ("bcftools", "freebayes")}
BWA_INDEX = ("amb", "ann", "bwt", "pac", "sa")
CRLF_FIX = "convert it first (dos2unix, or tr -d '\\r')"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    tmp.replace(path)


# -- names and choices ---------------------------------------------------------------------------------------


def check_choice(what: str, value: str) -> str:
    options = CHOICES[what]
    if value not in options:
        raise TaskError(f"unknown {what} '{value}': choose {' or '.join(options)}")
    return value


def read_group(sample: str, rg_id: str, platform: str, library: str = "") -> str:
    """The read group line as bwa mem -R and minimap2 -R take it (``\\t`` written as backslash-t); the library
    (LB, what duplicates are marked within) defaults to the sample."""
    check_name("sample_name", [sample])
    for what, value in (("read group ID", rg_id), ("platform", platform), ("library", library or sample)):
        if not value or re.search(r"[\x00-\x1f\x7f\\]", value):
            raise TaskError(f"{what} '{value}' is empty or holds a tab, backslash or control character: give plain "
                            "text")
    return "\\t".join(["@RG", f"ID:{rg_id}", f"SM:{sample}", f"PL:{platform}", f"LB:{library or sample}"])


# -- reference -----------------------------------------------------------------------------------------------


def check_fasta_start(path: Path, label: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        raise TaskError(f"reference_fasta '{label}' is gzip-compressed: give the uncompressed FASTA (gunzip it first)")
    if head[:1] != b">":
        first = head[:1].decode("latin-1").rstrip("\n")
        raise TaskError(f"reference_fasta '{label}' is not FASTA: it should start with '>', found '{first}'")


def faidx_problem(log: str, label: str) -> str:
    """samtools faidx failed: the one line saying why (``log`` is its stderr)."""
    m = re.search(r"Different line length in sequence '([^']*)'", log)
    if m:
        return (f"reference_fasta '{label}': sequence '{m[1]}' has lines of different lengths, which samtools cannot "
                "index: rewrap the FASTA to one line length")
    lines = [ln for ln in log.splitlines() if ln.strip()]
    msg = re.sub(r"^\[[^]]*\] *", "", lines[0]) if lines else ""
    return f"reference_fasta '{label}' could not be indexed ({msg}): give a complete, uncompressed FASTA"


def duplicate_contig(lines: Iterable[str]) -> tuple[str, int, int] | None:
    """The first sequence name (up to the first blank) given twice, with the line numbers of both headers."""
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if line.startswith(">"):
            name = re.split(r"[ \t]", line[1:].rstrip("\r\n"), maxsplit=1)[0]
            if name in seen:
                return name, seen[name], number
            seen[name] = number
    return None


def faidx(fasta: Path, label: str) -> None:
    """Check the FASTA, index it with samtools faidx (``<fasta>.fai``), refuse a repeated sequence name."""
    check_fasta_start(fasta, label)
    proc = subprocess.run(["samtools", "faidx", str(fasta)], capture_output=True, text=True, errors="replace",
                          check=False)
    if proc.returncode != 0:
        raise TaskError(faidx_problem(proc.stderr, label))
    if "Ignoring duplicate sequence" in proc.stderr:
        Path(f"{fasta}.fai").unlink(missing_ok=True)
        with fasta.open(errors="replace") as fh:
            dup = duplicate_contig(fh)
        name, first, second = dup if dup else ("?", 0, 0)
        raise TaskError(f"reference_fasta '{label}' names contig '{name}' twice (lines {first} and {second}): give "
                        "every sequence a unique name")
    sys.stderr.write(proc.stderr)


# -- alignment -----------------------------------------------------------------------------------------------


def link_index(aligner: str, folder: Path, fasta: str, index: Sequence[str]) -> Path:
    """Link the reference and its index files under fixed names in ``folder``: genome.fa, genome.fa.<ext>,
    genome.mmi (a .fai is skipped). Return what the aligner is given (the .mmi when minimap2 has one)."""
    folder.mkdir(parents=True, exist_ok=True)
    genome = folder / "genome.fa"
    genome.symlink_to(fasta)
    for path in index:
        if path.endswith(".mmi"):
            target = folder / "genome.mmi"
        elif path.endswith(".fai"):
            continue
        else:
            target = folder / f"genome.fa.{path.rsplit('.', 1)[-1]}"
        target.unlink(missing_ok=True)
        target.symlink_to(path)
    if aligner == "bwa":
        for ext in BWA_INDEX:
            if not (folder / f"genome.fa.{ext}").exists():
                raise TaskError(f"bwa index file .{ext} is missing from aligner_index: give all of .amb .ann .bwt .pac "
                                ".sa, or leave aligner_index out to build it")
        return genome
    mmi = folder / "genome.mmi"
    return mmi if mmi.exists() else genome


def sam_header_problem(log: str) -> str | None:
    """The line for a SAM header htslib refused because the reference repeats a contig name (given with a
    prebuilt index, bwa does not notice), or None."""
    m = re.search(r'Duplicate entry "([^"]*)" in sam header', log)
    if m is None:
        return None
    return (f"reference_fasta names contig '{m[1]}' more than once: give every sequence a unique name and rebuild "
            "the index")


# -- BED and regions -----------------------------------------------------------------------------------------


def read_fai(text: str) -> dict[str, int]:
    """Contig lengths of a samtools .fai, in reference order; ERROR on a malformed line or a repeated name."""
    lengths: dict[str, int] = {}
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        cols = line.split("\t")
        if len(cols) < 2 or not re.fullmatch(r"[0-9]+", cols[1]):
            raise TaskError(f"reference_fai line {number} is not a samtools .fai line (name<TAB>length...): rebuild "
                            "it with samtools faidx")
        if cols[0] in seen:
            raise TaskError(f"reference_fai names contig {cols[0]} twice (lines {seen[cols[0]]} and {number}): give "
                            "every reference sequence a unique name and rebuild the index")
        seen[cols[0]] = number
        lengths[cols[0]] = int(cols[1])
    return lengths


def _other_name(chrom: str, lengths: dict[str, int]) -> str | None:
    """How the reference names a contig the BED names differently (chr prefix, chrM/MT), as a fix."""
    if chrom.startswith("chr") and chrom[3:] in lengths:
        return f'{chrom[3:]}: remove the chr prefix (e.g. sed "s/^chr//")'
    if f"chr{chrom}" in lengths:
        return f'chr{chrom}: add the chr prefix (e.g. sed "s/^/chr/")'
    if chrom == "chrM" and "MT" in lengths:
        return "MT: rename it"
    if chrom == "MT" and "chrM" in lengths:
        return "chrM: rename it"
    return None


def is_header(line: str) -> bool:
    """A BED line that holds no interval: blank, '#' comment, track or browser line."""
    return re.fullmatch(r"[ \t]*|#.*|(track|browser)([ \t].*)?", line, re.DOTALL) is not None


def read_targets(text: str, lengths: dict[str, int], label: str, pad: int) -> list[tuple[str, int, int]]:
    """The intervals of a targets BED as found in the wild (track/browser/# lines, blank lines, CRLF, tab- or
    space-separated, extra columns, any order, overlaps), each checked against the reference, padded, clipped to
    its contig, ordered as the reference and merged with those it overlaps or touches."""
    rank = {name: i for i, name in enumerate(lengths)}
    some = ", ".join(list(lengths)[:3]) + (", ..." if len(lengths) > 3 else "")
    padded = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if is_header(line):
            continue
        where = f"targets_bed '{label}' line {number}"
        cols = re.split(r"[ \t]+", line)
        if len(cols) < 3 or not re.fullmatch("[0-9]+", cols[1]) or not re.fullmatch("[0-9]+", cols[2]):
            raise TaskError(f"{where} is not a BED interval (chrom, start, end; whole numbers): remove it or start "
                            "it with #")
        chrom, start, end = cols[0], int(cols[1]), int(cols[2])
        if start > end:
            raise TaskError(f"{where} has start {start} after end {end}: fix or remove the line")
        if start == end:
            raise TaskError(f"{where} is an empty interval (start = end = {end}): BED is 0-based, half-open; give "
                            "end = start + length")
        if chrom not in lengths:
            other = _other_name(chrom, lengths)
            if other:
                raise TaskError(f"{where} names contig {chrom}, but the reference names it {other}")
            raise TaskError(f"{where} names contig {chrom}, which is not in the reference ({some}): use the "
                            "reference's contig names")
        if end > lengths[chrom]:
            raise TaskError(f"{where} ends at {end}, past the end of {chrom} ({lengths[chrom]} bp): is the BED for "
                            "another reference build?")
        padded.append((rank[chrom], chrom, max(0, start - pad), min(lengths[chrom], end + pad)))
    if not padded:
        raise TaskError(f"targets_bed '{label}' has no intervals: give at least one chrom<TAB>start<TAB>end line")
    padded.sort(key=lambda t: (t[0], t[2], t[3]))
    merged: list[tuple[str, int, int]] = []
    for _, chrom, start, end in padded:
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            if end > merged[-1][2]:
                merged[-1] = (chrom, merged[-1][1], end)
            continue
        merged.append((chrom, start, end))
    return merged


def shards(intervals: Sequence[tuple[str, int, int]], count: int) -> list[list[tuple[str, int, int]]]:
    """Cut the intervals, in order, into at most ``count`` shards of ceil(total / count) bases (the last ones may
    be smaller or absent)."""
    total = sum(end - start for _, start, end in intervals)
    chunk = -(-total // count)
    out: list[list[tuple[str, int, int]]] = [[]]
    used = 0
    for chrom, start, end in intervals:
        s = start
        while s < end:
            take = min(end - s, chunk - used)
            out[-1].append((chrom, s, s + take))
            used += take
            s += take
            if used >= chunk and len(out) < count:
                out.append([])
                used = 0
    return [shard for shard in out if shard]


def bed_text(rows: Iterable[tuple[str, int, int]]) -> str:
    return "".join(f"{chrom}\t{start}\t{end}\n" for chrom, start, end in rows)


def split_regions(fai: Path, targets: Path | None, pad: int, count: int, out_dir: Path, intervals: Path) -> int:
    """Write ``out_dir``/region_NNNN.bed (one per shard) and ``intervals``; return the number of shards."""
    if count < 1:
        raise TaskError(f"scatter_count must be at least 1, got {count}")
    if pad < 0:
        raise TaskError(f"target_padding must be 0 or more, got {pad}")
    lengths = read_fai(fai.read_text(errors="replace"))
    if targets is not None:
        rows = read_targets(targets.read_bytes().decode("utf-8", "replace"), lengths, targets.name, pad)
    else:
        rows = [(name, 0, length) for name, length in lengths.items()]
    parts = shards(rows, count)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, shard in enumerate(parts, 1):
        write_atomic(out_dir / f"region_{i:04d}.bed", bed_text(shard))
    write_atomic(intervals, bed_text(rows))
    return len(parts)


def bed3(text: str, one_based: bool = False) -> str:
    """chrom, start, end of every interval line of a BED (header lines and lines of < 3 columns skipped); with
    ``one_based``, the 1-based inclusive intervals samtools stats -t reads (start + 1, same end)."""
    out = []
    for line in text.splitlines():
        cols = line.split("\t")
        if is_header(line) or len(cols) < 3:
            continue
        start = int(cols[1]) + 1 if one_based else int(cols[1])
        out.append(f"{cols[0]}\t{start}\t{cols[2]}\n")
    return "".join(out)


# -- callable regions ----------------------------------------------------------------------------------------


def mosdepth_command(bam: Path, prefix: str, min_depth: int, min_mapq: int, threads: int) -> tuple[list[str],
                                                                                                      dict[str, str]]:
    """mosdepth's arguments and the environment naming its depth classes: 0 reads, 1 to min_depth - 1,
    min_depth or more (--quantize)."""
    if min_depth < 1:
        raise TaskError(f"min_depth must be at least 1, got {min_depth}")
    if min_mapq < 0:
        raise TaskError(f"min_mapq must be 0 or more, got {min_mapq}")
    if min_depth > 1:
        bins, names = f"0:1:{min_depth}:", ["NO_COVERAGE", "LOW_COVERAGE", "CALLABLE"]
    else:
        bins, names = "0:1:", ["NO_COVERAGE", "CALLABLE"]
    env = {f"MOSDEPTH_Q{i}": name for i, name in enumerate(names)}
    argv = ["mosdepth", "-t", str(threads), "-n", "--quantize", bins, "--mapq", str(min_mapq), prefix, str(bam)]
    return argv, env


@dataclass
class Callable:
    sample: str
    scope: str  # genome or targets
    min_depth: int
    min_mapq: int
    padding: int = 0


def callable_summary(spec: Callable, scope_bed: str, classes_bed: str) -> tuple[str, str]:
    """(callable BED, summary) from the scope intervals and the depth classes inside them; bases mosdepth did not
    list (contigs without reads) count as no coverage."""
    total = sum(int(c[2]) - int(c[1]) for c in (ln.split("\t") for ln in scope_bed.splitlines()) if len(c) >= 3)
    by_class: dict[str, int] = {}
    callable_rows = []
    for line in classes_bed.splitlines():
        cols = line.split("\t")
        if len(cols) < 4:
            continue
        by_class[cols[3]] = by_class.get(cols[3], 0) + int(cols[2]) - int(cols[1])
        if cols[3] == "CALLABLE":
            callable_rows.append(f"{cols[0]}\t{cols[1]}\t{cols[2]}\n")
    good = by_class.get("CALLABLE", 0)
    low = by_class.get("LOW_COVERAGE", 0)
    bad = total - good
    if spec.scope == "targets":
        what = "of the targets" + (f" (padded by {spec.padding} bp)" if spec.padding > 0 else "")
    else:
        what = "of the genome"
    share = 100 * bad / total if total else 0
    summary = (f"{spec.sample}: {bad} bp ({share:.2f}%) {what} not callable (fewer than {spec.min_depth} reads with "
               f"MAPQ >= {spec.min_mapq}); {good} of {total} bp callable\n"
               f"scope\t{spec.scope}\ntotal_bp\t{total}\ncallable_bp\t{good}\nnot_callable_bp\t{bad}\n"
               f"no_coverage_bp\t{bad - low}\nlow_coverage_bp\t{low}\nmin_depth\t{spec.min_depth}\n"
               f"min_mapq\t{spec.min_mapq}\n")
    return "".join(callable_rows), summary


# -- command line --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genomics-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    add_check_name(sub)
    s = sub.add_parser("choice", help="the one check of a choice")
    s.add_argument("what", choices=sorted(CHOICES))
    s.add_argument("value")
    s = sub.add_parser("read-group", help="check the read group fields; print the @RG line")
    s.add_argument("sample")
    s.add_argument("id")
    s.add_argument("platform")
    s.add_argument("library", nargs="?", default="")
    s = sub.add_parser("faidx", help="check a reference FASTA and index it with samtools faidx")
    s.add_argument("fasta", type=Path)
    s.add_argument("label", help="the file name shown in messages")
    s = sub.add_parser("link-index", help="link reference and index under fixed names; print the aligner's target")
    s.add_argument("aligner", choices=sorted(CHOICES["aligner"]))
    s.add_argument("folder", type=Path)
    s.add_argument("fasta")
    s.add_argument("index", nargs="*")
    s = sub.add_parser("split-lane", help="check, trim (fastp) and shard one lane's FASTQ in one pass")
    s.add_argument("--fastq", type=Path, nargs="+", required=True, help="first mates, then second mates (if any)")
    s.add_argument("--names", nargs="+", required=True, help="the inputs' names in messages (fastq_1 fastq_2)")
    s.add_argument("--reads-per-shard", type=int, default=4_000_000)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--no-trim", action="store_true", help="no trimming or filtering: the reads as they are")
    s.add_argument("--check-only", action="store_true", help="only check the files and write the counts (no fastp, "
                   "no shards): a lane can be checked before it is uploaded")
    s.add_argument("--out-dir", type=Path, default=Path("shards"))
    s.add_argument("--counts", type=Path, required=True)
    s.add_argument("--json", type=Path, default=Path("fastp.json"), help="fastp JSON report")
    s.add_argument("--html", type=Path, default=Path("fastp.html"), help="fastp HTML report")
    s = sub.add_parser("check-id", help="a read group ID or library: letters, digits, . _ : -")
    s.add_argument("what")
    s.add_argument("values", nargs="*", help="the lines of its write_lines file (after --)")
    s = sub.add_parser("check-samples", help="check the cohort's lanes; write the sample indexes and a summary")
    s.add_argument("--lanes", type=Path, required=True, help="TSV: sample, read group, library, platform, fastq_1, "
                   "fastq_2")
    s.add_argument("--samples", type=int, required=True, help="number of samples")
    s.add_argument("--indexes", type=Path, required=True)
    s.add_argument("--summary", type=Path, required=True)
    s = sub.add_parser("intersect-callable", help="bases callable in every sample: BED and summary")
    s.add_argument("--beds", type=Path, required=True, help="file listing the samples' callable BEDs")
    s.add_argument("--names", type=Path, required=True, help="file listing the sample names")
    s.add_argument("--summaries", type=Path, required=True, help="file listing the samples' callable summaries")
    s.add_argument("--name", required=True)
    s.add_argument("--bed-out", type=Path, required=True)
    s.add_argument("--summary-out", type=Path, required=True)
    s = sub.add_parser("merge-sample", help="merge a sample's shards, duplicates marked within each library")
    s.add_argument("--bams", type=Path, required=True, help="file listing the shard BAMs")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--metrics", type=Path, required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--no-markdup", action="store_true")
    s = sub.add_parser("same-shard", help="the reads of align_shard are the two mates of one shard (or one file)")
    s.add_argument("paths", nargs="+")
    s = sub.add_parser("sam-error", help="after a failed alignment: name a contig repeated in the SAM header")
    s.add_argument("log", type=Path)
    s = sub.add_parser("split-regions", help="check the .fai and targets; write the shards and the intervals")
    s.add_argument("--fai", type=Path, required=True)
    s.add_argument("--targets", type=Path)
    s.add_argument("--padding", type=int, default=0)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--out-dir", type=Path, required=True)
    s.add_argument("--intervals", type=Path, required=True)
    s = sub.add_parser("bed", help="chrom, start, end of a BED's intervals (or of a .fai's contigs), on stdout")
    s.add_argument("bed", type=Path, nargs="?")
    s.add_argument("--fai", type=Path, help="whole contigs of this .fai instead")
    s.add_argument("--one-based", action="store_true", help="1-based inclusive, as samtools stats -t reads")
    s = sub.add_parser("mosdepth", help="run mosdepth --quantize with the depth classes; write <prefix>.classes.bed")
    s.add_argument("bam", type=Path)
    s.add_argument("prefix")
    s.add_argument("--min-depth", type=int, required=True)
    s.add_argument("--min-mapq", type=int, required=True)
    s.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("callable", help="callable BED and summary of the scope")
    s.add_argument("--scope", type=Path, required=True, help="BED of the scope (genome or targets)")
    s.add_argument("--scope-name", choices=["genome", "targets"], required=True)
    s.add_argument("--classes", type=Path, required=True, help="depth classes inside the scope")
    s.add_argument("--sample", required=True)
    s.add_argument("--min-depth", type=int, required=True)
    s.add_argument("--min-mapq", type=int, required=True)
    s.add_argument("--padding", type=int, default=0)
    s.add_argument("--bed-out", type=Path, required=True)
    s.add_argument("--summary-out", type=Path, required=True)
    return p


def _mosdepth(args: argparse.Namespace) -> None:
    cmd, env = mosdepth_command(args.bam, args.prefix, args.min_depth, args.min_mapq, args.threads)
    status = subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode
    if status != 0:
        raise TaskError(f"mosdepth failed (exit status {status}; its messages are above): is the BAM complete and "
                        "indexed?")
    with gzip.open(f"{args.prefix}.quantized.bed.gz", "rt") as fh:
        write_atomic(Path(f"{args.prefix}.classes.bed"), fh.read())


def _callable(args: argparse.Namespace) -> None:
    spec = Callable(args.sample, args.scope_name, args.min_depth, args.min_mapq, args.padding)
    bed, summary = callable_summary(spec, args.scope.read_text(), args.classes.read_text())
    write_atomic(args.bed_out, bed)
    write_atomic(args.summary_out, summary)


def same_shard(paths: Sequence[str]) -> None:
    """The files of one shard: the first and second mates of the same shard of split_lane (shard_NNNN_R1/_R2),
    whatever folders the engine localized them to; one file for single-end reads."""
    names = [os.path.basename(p) for p in paths]
    found = [re.fullmatch(r"shard_([0-9]+)_R([12])\.fq\.gz", n) for n in names]
    if not all(found):
        raise TaskError(f"align_shard reads {', '.join(names)}: give the shards of split_lane (shard_NNNN_R1.fq.gz, "
                        "shard_NNNN_R2.fq.gz)")
    numbers = [m[1] for m in found if m]
    mates = [m[2] for m in found if m]
    if mates != ["1", "2"][:len(mates)] or len(set(numbers)) != 1:
        raise TaskError(f"align_shard reads {', '.join(names)}: the first and second mates of one shard are expected, "
                        "in that order")


def _intersect_callable(args: argparse.Namespace) -> None:
    def listed(path: Path) -> list[str]:
        return path.read_text().splitlines()

    beds = [cohort.read_bed(Path(p)) for p in listed(args.beds)]
    summaries = [Path(p).read_text() for p in listed(args.summaries)]
    rows, summary = cohort.cohort_callable(args.name, listed(args.names), beds, summaries)
    write_atomic(args.bed_out, bed_text(rows))
    write_atomic(args.summary_out, summary)


def _split_lane(args: argparse.Namespace) -> None:
    if len(args.fastq) not in (1, 2) or len(args.names) != len(args.fastq):
        raise TaskError("split-lane takes one or two FASTQ files and as many names")
    labels = [p.name for p in args.fastq]
    m = Mates(args.names[0], labels[0], args.names[1], labels[1]) if len(labels) == 2 else \
        Mates(args.names[0], labels[0])
    fastp = None if args.check_only else Fastp(args.reads_per_shard, args.threads, not args.no_trim)
    shards = split_lane(m, args.fastq, fastp, args.out_dir, args.counts, (args.json, args.html))
    if fastp is not None:
        print(f"{shards} shards", file=sys.stderr)


def _sam_error(args: argparse.Namespace) -> None:
    problem = sam_header_problem(args.log.read_text(errors="replace"))
    if problem:
        raise TaskError(problem)


def _bed(args: argparse.Namespace) -> None:
    if args.fai is not None:
        sys.stdout.write(bed_text((name, 0, n) for name, n in read_fai(args.fai.read_text()).items()))
    else:
        sys.stdout.write(bed3(args.bed.read_text(errors="replace"), args.one_based))


COMMANDS: dict[str, Command] = {
    "choice": lambda a: check_choice(a.what, a.value),
    "read-group": lambda a: print(read_group(a.sample, a.id, a.platform, a.library)),
    "faidx": lambda a: faidx(a.fasta, a.label),
    "link-index": lambda a: print(link_index(a.aligner, a.folder, a.fasta, a.index)),
    "split-lane": _split_lane,
    "same-shard": lambda a: same_shard(a.paths),
    "merge-sample": lambda a: print("libraries:", *markdup.merge_sample(
        a.bams.read_text().splitlines(), a.out, a.metrics, a.threads, not a.no_markdup), file=sys.stderr),
    "check-id": lambda a: cohort.check_id(a.what, a.values),
    "check-samples": lambda a: cohort.check_samples(a.lanes, a.samples, a.indexes, a.summary),
    "intersect-callable": _intersect_callable,
    "sam-error": _sam_error,
    "split-regions": lambda a: split_regions(a.fai, a.targets, a.padding, a.count, a.out_dir, a.intervals),
    "bed": _bed,
    "mosdepth": _mosdepth,
    "callable": _callable,
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
