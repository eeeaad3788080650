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


# --- cohorts: multi-sample VCFs ---------------------------------------------------------------------------------
#
# Every record is split into one biallelic site per ALT allele (trimmed to its minimal representation, as
# ``bcftools norm -m-any`` writes it), and each sample's GT is read relative to it. A sample CARRIES a site when
# the record is PASS (or "."), its own FT (if any) is PASS or ".", and its GT holds that ALT allele. Its GENOTYPE
# at the site is the sorted tuple of its alleles as sites (None for REF), unphased; a homozygous genotype of any
# ploidy (haploid "1", diploid "1/1") is written as two copies, so a haploid call equals a homozygous diploid
# truth. A GT with a missing allele ("./.", ".", "./1") is a no-call for genotype concordance.

Allele = Key | None  # None: the reference allele
Genotype = tuple[Allele, ...]
_SYMBOLIC = ("*", ".", "<*>", "<NON_REF>")


def _trim(chrom: str, pos: int, ref: str, alt: str) -> Key:
    """The minimal representation of one REF/ALT pair (common suffix, then common prefix, removed)."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return chrom, pos, ref, alt


def _genotype(alleles: list[Allele]) -> Genotype:
    if len(set(alleles)) == 1:
        return (alleles[0], alleles[0])
    return tuple(sorted(alleles, key=lambda a: ("",) if a is None else ("~", *map(str, a))))


@dataclass
class Cohort:
    """The sites of a multi-sample VCF with each sample's genotype.

    ``genotypes[site][sample]`` is None for a no-call (or a sample whose FT is not PASS); ``carried[sample]``
    is the set of sites the sample carries.
    """

    path: Path
    samples: tuple[str, ...]
    genotypes: dict[Key, dict[str, Genotype | None]]
    carried: dict[str, set[Key]]

    def private_sites(self) -> dict[str, set[Key]]:
        """For each sample, the sites it alone carries."""
        owners: dict[Key, list[str]] = {}
        for sample, keys in self.carried.items():
            for key in keys:
                owners.setdefault(key, []).append(sample)
        out: dict[str, set[Key]] = {s: set() for s in self.samples}
        for key, who in owners.items():
            if len(who) == 1:
                out[who[0]].add(key)
        return out


def read_cohort(path: Path, *, pass_only: bool = True, regions: Regions | list[Interval] | None = None) -> Cohort:
    """The sites and per-sample genotypes of a multi-sample VCF (multi-allelic records split per ALT)."""
    if isinstance(regions, list):
        regions = Regions(regions)
    samples: tuple[str, ...] | None = None
    genotypes: dict[Key, dict[str, Genotype | None]] = {}
    carried: dict[str, set[Key]] = {}
    for lineno, line in enumerate(_open(path), 1):
        if line.startswith("##"):
            continue
        f = line.rstrip("\r\n").split("\t")
        if line.startswith("#"):
            samples = tuple(f[9:])
            if not samples:
                raise UserError(f"{path}: no sample columns: give a VCF with genotypes (FORMAT and sample columns)")
            if len(set(samples)) != len(samples):
                raise UserError(f"{path}: a sample name appears twice in the #CHROM line: rename it")
            carried = {s: set() for s in samples}
            continue
        if samples is None:
            raise UserError(f"{path}:{lineno}: record before the #CHROM header line: give a complete VCF")
        if len(f) != 9 + len(samples) or not f[1].isdigit():
            raise UserError(f"{path}:{lineno}: not a VCF record of {len(samples)} samples "
                            f"({9 + len(samples)} tab-separated fields, numeric POS)")
        chrom, pos, ref, filt = f[0], int(f[1]), f[3], f[6]
        if pass_only and filt not in ("PASS", "."):
            continue
        if regions is not None and not regions.contains(chrom, pos):
            continue
        alts = f[4].split(",")
        alleles: list[Allele] = [None, *(_trim(chrom, pos, ref, a) for a in alts)]
        real = [a for a, alt in zip(alleles[1:], alts, strict=True) if alt not in _SYMBOLIC]
        fmt = f[8].split(":")
        if "GT" not in fmt:
            raise UserError(f"{path}:{lineno}: FORMAT '{f[8]}' has no GT: give a VCF with genotypes")
        gt_at, ft_at = fmt.index("GT"), fmt.index("FT") if "FT" in fmt else None
        per_sample: dict[str, Genotype | None] = {}
        for sample, column in zip(samples, f[9:], strict=True):
            values = column.split(":")
            gt = values[gt_at] if gt_at < len(values) else "."
            ft = values[ft_at] if ft_at is not None and ft_at < len(values) else "."
            idx = gt.replace("|", "/").split("/")
            if any(i.isdigit() and int(i) >= len(alleles) for i in idx):
                raise UserError(f"{path}:{lineno}: sample {sample} has GT '{gt}' but the record has "
                                f"{len(alts)} ALT allele(s): fix the record")
            if ft not in ("PASS", "."):
                per_sample[sample] = None
                continue
            called = [alleles[int(i)] for i in idx if i.isdigit()]
            carried[sample].update(a for a in called if a is not None and a in real)
            per_sample[sample] = _genotype(called) if len(called) == len(idx) else None
        for key in real:
            assert key is not None
            site = genotypes.setdefault(key, {})
            for sample, gt_of in per_sample.items():  # a second record of the same site: keep the one carrying it
                if sample not in site or (gt_of is not None and key in gt_of):
                    site[sample] = gt_of
    if samples is None:
        raise UserError(f"{path}: no #CHROM header line: give a VCF")
    return Cohort(path, samples, genotypes, carried)


def _site_text(key: Key) -> str:
    return f"{key[0]}:{key[1]} {key[2]}>{key[3]}"


def _gt_text(genotype: Genotype | None, key: Key) -> str:
    """A genotype relative to one site: 0 (REF), 1 (this site's ALT), x (another ALT); ./. for a no-call."""
    if genotype is None:
        return "./."
    return "/".join("0" if a is None else "1" if a == key else "x" for a in genotype)


@dataclass(frozen=True)
class Concordance:
    """Genotype concordance of one sample over the truth sites present in the calls (truth 0/0 sites included)."""

    sample: str
    concordant: int
    discordant: int
    no_call: int  # the site was called but this sample's GT is missing or filtered (FT)
    not_called: int  # truth sites absent from the calls (or not PASS there)
    mismatches: tuple[tuple[Key, str, str], ...] = ()  # (site, truth GT, called GT)

    @property
    def rate(self) -> float | None:
        """concordant / (concordant + discordant); None (n/a) when no truth site was called."""
        n = self.concordant + self.discordant
        return self.concordant / n if n else None

    def line(self) -> str:
        text = (f"{self.sample} genotype concordance {_fmt(self.rate)} ({self.concordant} of "
                f"{self.concordant + self.discordant} called truth sites agree; {self.no_call} no-call, "
                f"{self.not_called} truth sites not called)")
        if self.mismatches:
            text += ": " + ", ".join(f"{_site_text(k)} truth {t} called {c}" for k, t, c in self.mismatches)
        return text

    def as_dict(self) -> dict[str, object]:
        return {"rate": self.rate, "concordant": self.concordant, "discordant": self.discordant,
                "no_call": self.no_call, "not_called": self.not_called,
                "mismatches": [{"site": _site_text(k), "truth": t, "called": c} for k, t, c in self.mismatches]}


@dataclass(frozen=True)
class PrivateCheck:
    """Where one sample's private truth variants (carried by it alone in the truth) were called."""

    sample: str
    variants: int
    found: int  # called in this sample
    elsewhere: tuple[tuple[Key, tuple[str, ...]], ...] = ()  # private variants called in other samples, and which

    @property
    def ok(self) -> bool:
        """True when no private variant of the sample was called in another sample."""
        return not self.elsewhere

    def line(self) -> str:
        text = (f"{self.sample} private variants: {self.found} of {self.variants} called in {self.sample}, "
                f"{len(self.elsewhere)} called in another sample")
        if self.elsewhere:
            text += ": " + ", ".join(f"{_site_text(k)} in {','.join(who)}" for k, who in self.elsewhere)
        return text

    def as_dict(self) -> dict[str, object]:
        return {"variants": self.variants, "found": self.found, "ok": self.ok,
                "elsewhere": [{"site": _site_text(k), "samples": list(who)} for k, who in self.elsewhere]}


def sample_accuracy(truth: Cohort, calls: Cohort, sample: str) -> dict[str, Accuracy]:
    """SNP and indel recall and precision of one sample: the sites its truth GT carries vs its called GT carries."""
    return _score(truth.carried[sample], calls.carried[sample])


def genotype_concordance(truth: Cohort, calls: Cohort, sample: str) -> Concordance:
    """How many truth sites present in the calls have the truth's genotype in ``sample`` (unphased)."""
    counts = {"agree": 0, "differ": 0, "no_call": 0, "absent": 0}
    mismatches = []
    for key in sorted(truth.genotypes):
        want = truth.genotypes[key].get(sample)
        if want is None:
            continue  # the truth does not know this sample's genotype here
        if key not in calls.genotypes:
            counts["absent"] += 1
            continue
        got = calls.genotypes[key].get(sample)
        if got is None:
            counts["no_call"] += 1
        elif got == want:
            counts["agree"] += 1
        else:
            counts["differ"] += 1
            mismatches.append((key, _gt_text(want, key), _gt_text(got, key)))
    return Concordance(sample, counts["agree"], counts["differ"], counts["no_call"], counts["absent"],
                       tuple(mismatches))


def private_check(truth: Cohort, calls: Cohort, sample: str) -> PrivateCheck:
    """The private truth variants of ``sample``: how many it was called with, and which other samples were."""
    private = sorted(truth.private_sites()[sample])
    elsewhere = []
    for key in private:
        who = tuple(s for s in calls.samples if s != sample and key in calls.carried[s])
        if who:
            elsewhere.append((key, who))
    return PrivateCheck(sample, len(private), sum(key in calls.carried[sample] for key in private),
                        tuple(elsewhere))


@dataclass(frozen=True)
class CohortReport:
    samples: tuple[str, ...]
    accuracy: dict[str, dict[str, Accuracy]]  # sample -> "snp"/"indel" -> Accuracy
    concordance: dict[str, Concordance]
    private: dict[str, PrivateCheck]

    def lines(self) -> list[str]:
        out = []
        for s in self.samples:
            out += [f"{s} {acc.line()}" for acc in self.accuracy[s].values()]
            out += [self.concordance[s].line(), self.private[s].line()]
        return out

    def as_dict(self) -> dict[str, object]:
        return {"samples": {s: {**{k: a.as_dict() for k, a in self.accuracy[s].items()},
                                "concordance": self.concordance[s].as_dict(),
                                "private": self.private[s].as_dict()} for s in self.samples}}


def compare_cohort(truth: Path, calls: Path, regions: list[Interval] | None = None,
                   samples: list[str] | None = None) -> CohortReport:
    """Per-sample accuracy, genotype concordance and private-variant check of a cohort VCF against a
    multi-sample truth VCF (samples matched by name, in any column order). ``samples`` defaults to the truth's;
    each must be in both files."""
    inside = Regions(regions) if regions is not None else None
    t = read_cohort(truth, pass_only=False, regions=inside)
    c = read_cohort(calls, regions=inside)
    wanted = tuple(samples) if samples else t.samples
    for s in wanted:
        for what, cohort in (("truth", t), ("calls", c)):
            if s not in cohort.samples:
                raise UserError(f"{cohort.path}: no sample '{s}' in the {what} (it has {', '.join(cohort.samples)}):"
                                " compare samples present in both files")
    return CohortReport(wanted, {s: sample_accuracy(t, c, s) for s in wanted},
                        {s: genotype_concordance(t, c, s) for s in wanted},
                        {s: private_check(t, c, s) for s in wanted})
