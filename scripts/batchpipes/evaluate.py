"""Accuracy of variant calls against a truth set, and summaries of pipeline outputs.

Both VCFs are expected normalised against the same reference (the workflow left-aligns its calls
with ``bcftools norm``; the bundled truth set was normalised the same way), so a call matches a
truth variant when chromosome, position, REF and ALT are equal.

A variant lies inside a BED interval (0-based, half-open) when its POS (1-based: the first REF base,
the anchor base of an indel) does: ``start < POS <= end``.
"""

from __future__ import annotations

import bisect
import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

Key = tuple[str, int, str, str]
Interval = tuple[str, int, int]


@dataclass(frozen=True)
class Accuracy:
    kind: str
    true_positives: int
    false_positives: int
    false_negatives: int
    scope: str = ""

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); None (n/a) when there is no truth variant to find."""
        found = self.true_positives + self.false_negatives
        return self.true_positives / found if found else None

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None (n/a) when nothing was called."""
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else None

    def line(self) -> str:
        scope = f"{self.scope} " if self.scope else ""
        return (f"{self.kind:5} {scope}recall {_fmt(self.recall)} precision {_fmt(self.precision)} "
                f"(TP {self.true_positives}, FP {self.false_positives}, FN {self.false_negatives})")

    def as_dict(self) -> dict[str, float | int | None]:
        return {"recall": self.recall, "precision": self.precision, "tp": self.true_positives,
                "fp": self.false_positives, "fn": self.false_negatives}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class Regions:
    """BED intervals, merged per contig, for fast "is this position inside" look-ups."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        by_contig: dict[str, list[tuple[int, int]]] = {}
        for chrom, start, end in intervals:
            by_contig.setdefault(chrom, []).append((start, end))
        self._starts: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}
        for chrom, spans in by_contig.items():
            merged: list[list[int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._starts[chrom] = [s for s, _ in merged]
            self._ends[chrom] = [e for _, e in merged]

    def contains(self, chrom: str, pos: int) -> bool:
        """True when the 1-based position ``pos`` lies in an interval."""
        starts = self._starts.get(chrom)
        if not starts:
            return False
        i = bisect.bisect_left(starts, pos) - 1  # last interval with start < pos
        return i >= 0 and pos <= self._ends[chrom][i]

    @property
    def size(self) -> int:
        """Bases covered (after merging)."""
        return sum(e - s for c in self._starts for s, e in zip(self._starts[c], self._ends[c], strict=True))


def _open(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        magic = raw.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    try:
        with opener(path, "rt") as fh:  # type: ignore[operator]
            yield from fh
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as text ({exc}): give an uncompressed or gzip/bgzip file") from None


def read_variants(path: Path, *, pass_only: bool = True,
                  regions: Regions | list[Interval] | None = None) -> set[Key]:
    """Biallelic keys of the non-reference calls in ``path`` (multi-allelic records split)."""
    if isinstance(regions, list):
        regions = Regions(regions)
    keys: set[Key] = set()
    for lineno, line in enumerate(_open(path), 1):
        if line.startswith("#"):
            continue
        f = line.rstrip("\r\n").split("\t")
        if len(f) < 8 or not f[1].isdigit():
            raise UserError(f"{path}:{lineno}: not a VCF record (8+ tab-separated fields, numeric POS)")
        chrom, pos, ref, alts, filt = f[0], int(f[1]), f[3], f[4], f[6]
        if pass_only and filt not in ("PASS", "."):
            continue
        if len(f) > 9:
            gt = f[9].split(":")[0].replace("|", "/")
            if all(a in ("0", ".") for a in gt.split("/")):
                continue
        if regions is not None and not regions.contains(chrom, pos):
            continue
        for alt in alts.split(","):
            if alt not in ("*", "<*>", "."):
                keys.add((chrom, pos, ref, alt))
    return keys


def read_bed(path: Path) -> list[Interval]:
    """Intervals of a BED file (plain, gzip or bgzip; track/browser/# lines, CRLF and extra columns allowed)."""
    out = []
    for lineno, raw in enumerate(_open(path), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        f = line.split()
        if len(f) < 3 or not (f[1].isdigit() and f[2].isdigit()):
            raise UserError(f"{path}:{lineno}: not a BED line (chrom<TAB>start<TAB>end, whole numbers): "
                            "remove it or start it with #")
        start, end = int(f[1]), int(f[2])
        if start > end:
            raise UserError(f"{path}:{lineno}: start {start} is after end {end}: fix the line")
        out.append((f[0], start, end))
    return out


def is_snp(key: Key) -> bool:
    return len(key[2]) == 1 and len(key[3]) == 1


KINDS: tuple[tuple[str, Callable[[Key], bool]], ...] = (("snp", is_snp), ("indel", lambda k: not is_snp(k)))


def _score(truth: set[Key], calls: set[Key], scope: str = "") -> dict[str, Accuracy]:
    result = {}
    for kind, pick in KINDS:
        tk = {k for k in truth if pick(k)}
        ck = {k for k in calls if pick(k)}
        result[kind] = Accuracy(kind, len(tk & ck), len(ck - tk), len(tk - ck), scope)
    return result


def compare(truth: Path, calls: Path, regions: list[Interval] | None = None) -> dict[str, Accuracy]:
    """SNP and indel accuracy of ``calls`` (PASS only) against ``truth``, optionally inside ``regions``."""
    inside = Regions(regions) if regions is not None else None
    return _score(read_variants(truth, pass_only=False, regions=inside), read_variants(calls, regions=inside))


def compare_callable(truth: Path, calls: Path, callable_bed: list[Interval],
                     regions: list[Interval] | None = None) -> dict[str, dict[str, Accuracy]]:
    """Accuracy inside and outside the callable regions: ``{"callable": {...}, "not_callable": {...}}``.

    Truth variants and calls are split by whether their POS lies in ``callable_bed``; a recall below 1
    outside it is the blind spot the callable regions report, a recall below 1 inside it is a caller's miss.
    """
    inside = Regions(regions) if regions is not None else None
    t = read_variants(truth, pass_only=False, regions=inside)
    c = read_variants(calls, regions=inside)
    ok = Regions(callable_bed)

    def split(keys: set[Key], want: bool) -> set[Key]:
        return {k for k in keys if ok.contains(k[0], k[1]) == want}

    return {"callable": _score(split(t, True), split(c, True), "callable    "),
            "not_callable": _score(split(t, False), split(c, False), "not callable")}


def mapped_fraction(samtools_stats: Path) -> float:
    """Fraction of reads mapped, from ``samtools stats`` SN lines."""
    sn = stats_summary(samtools_stats)
    total = sn.get("raw total sequences", 0.0)
    return sn.get("reads mapped", 0.0) / total if total else 0.0


def stats_summary(samtools_stats: Path) -> dict[str, float]:
    """The SN (summary numbers) section of a ``samtools stats`` file, by name without the colon."""
    sn = {}
    for line in samtools_stats.read_text().splitlines():
        if line.startswith("SN\t"):
            _, key, value = line.split("\t")[:3]
            sn[key.rstrip(":")] = float(value)
    return sn


def callable_summary(path: Path) -> tuple[str, dict[str, str]]:
    """The workflow's callable_summary file: its sentence and its name -> value lines."""
    lines = path.read_text().splitlines()
    if not lines:
        raise UserError(f"{path}: empty callable summary")
    return lines[0], dict(line.split("\t", 1) for line in lines[1:] if "\t" in line)


def annotated_genes(annotated_vcf: Path) -> set[str]:
    """Gene names in the snpEff ANN fields of ``annotated_vcf``."""
    genes: set[str] = set()
    for line in _open(annotated_vcf):
        if line.startswith("#"):
            continue
        info = line.split("\t")[7]
        for field in info.split(";"):
            if field.startswith("ANN="):
                for ann in field[4:].split(","):
                    parts = ann.split("|")
                    if len(parts) > 3 and parts[3]:
                        genes.add(parts[3])
    return genes
