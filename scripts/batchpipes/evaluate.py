"""Accuracy of variant calls against a truth set, and summaries of pipeline outputs.

Both VCFs are expected normalised against the same reference (the workflow left-aligns its calls
with ``bcftools norm``; the bundled truth set was normalised the same way), so a call matches a
truth variant when chromosome, position, REF and ALT are equal.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

Key = tuple[str, int, str, str]


@dataclass(frozen=True)
class Accuracy:
    kind: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def recall(self) -> float:
        found = self.true_positives + self.false_negatives
        return self.true_positives / found if found else 1.0

    @property
    def precision(self) -> float:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else 1.0

    def line(self) -> str:
        return (f"{self.kind:5} recall {self.recall:.3f} precision {self.precision:.3f} "
                f"(TP {self.true_positives}, FP {self.false_positives}, FN {self.false_negatives})")


def _open(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        magic = raw.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        yield from fh


def read_variants(path: Path, *, pass_only: bool = True,
                  regions: list[tuple[str, int, int]] | None = None) -> set[Key]:
    """Biallelic keys of the non-reference calls in ``path`` (multi-allelic records split)."""
    keys: set[Key] = set()
    for lineno, line in enumerate(_open(path), 1):
        if line.startswith("#"):
            continue
        f = line.rstrip("\n").split("\t")
        if len(f) < 8 or not f[1].isdigit():
            raise UserError(f"{path}:{lineno}: not a VCF record (8+ tab-separated fields, numeric POS)")
        chrom, pos, ref, alts, filt = f[0], int(f[1]), f[3], f[4], f[6]
        if pass_only and filt not in ("PASS", "."):
            continue
        if len(f) > 9:
            gt = f[9].split(":")[0].replace("|", "/")
            if all(a in ("0", ".") for a in gt.split("/")):
                continue
        if regions is not None and not any(c == chrom and s < pos <= e for c, s, e in regions):
            continue
        for alt in alts.split(","):
            if alt not in ("*", "<*>", "."):
                keys.add((chrom, pos, ref, alt))
    return keys


def read_bed(path: Path) -> list[tuple[str, int, int]]:
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.startswith(("#", "track", "browser")):
            f = line.split("\t")
            if len(f) < 3 or not (f[1].isdigit() and f[2].isdigit()):
                raise UserError(f"{path}:{lineno}: not a BED line (chrom<TAB>start<TAB>end)")
            out.append((f[0], int(f[1]), int(f[2])))
    return out


def is_snp(key: Key) -> bool:
    return len(key[2]) == 1 and len(key[3]) == 1


def compare(truth: Path, calls: Path, regions: list[tuple[str, int, int]] | None = None) -> dict[str, Accuracy]:
    """SNP and indel accuracy of ``calls`` (PASS only) against ``truth``, optionally inside ``regions``."""
    t = read_variants(truth, pass_only=False, regions=regions)
    c = read_variants(calls, regions=regions)
    result = {}
    for kind, pick in (("snp", is_snp), ("indel", lambda k: not is_snp(k))):
        tk = {k for k in t if pick(k)}
        ck = {k for k in c if pick(k)}
        result[kind] = Accuracy(kind, len(tk & ck), len(ck - tk), len(tk - ck))
    return result


def mapped_fraction(samtools_stats: Path) -> float:
    """Fraction of reads mapped, from ``samtools stats`` SN lines."""
    sn = {}
    for line in samtools_stats.read_text().splitlines():
        if line.startswith("SN\t"):
            _, key, value = line.split("\t")[:3]
            sn[key.rstrip(":")] = float(value)
    total = sn.get("raw total sequences", 0.0)
    return sn.get("reads mapped", 0.0) / total if total else 0.0


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
