"""The bundled cohort (``inputs/genomics/cohort/``, ``batchpipes testdata genomics-cohort``) is what the cohort
tests rely on: truth files that agree with each other, the reference and the generator; a sample sheet naming
files that exist; FASTQ pairs a demultiplexer could have written (CASAVA 1.8 names, mates in sync, names unique
across the cohort); one sample in two lanes of one library."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import pytest
from batchpipes import evaluate, settings
from batchpipes.testdata import genomics

COHORT = settings.INPUTS_DIR / "genomics" / "cohort"
SAMPLES = ("COH1", "COH2", "COH3")
ILLUMINA = re.compile(r"^@(?P<instrument>[A-Za-z0-9_-]+):(?P<run>\d+):(?P<flowcell>[A-Z0-9]+):(?P<lane>\d+):"
                      r"(?P<tile>\d+):(?P<x>\d+):(?P<y>\d+) (?P<mate>[12]):[YN]:\d+:(?P<barcode>[ACGTN+]+)$")


@pytest.fixture(scope="module")
def sheet() -> list[dict[str, str]]:
    with (COHORT / "samples.tsv").open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def truth() -> evaluate.Cohort:
    return evaluate.read_cohort(COHORT / "truth_cohort.vcf.gz", pass_only=False)


def _info(path: Path) -> dict[tuple[str, int, str, str], str]:
    out = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                f = line.split("\t")
                out[(f[0], int(f[1]), f[3], f[4])] = f[7]
    return out


def _fastq(path: Path) -> list[tuple[str, str, str, str]]:
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert len(lines) % 4 == 0, f"{path.name}: truncated record"
    return [(lines[i], lines[i + 1], lines[i + 2], lines[i + 3]) for i in range(0, len(lines), 4)]


def test_sheet_columns_files_and_lanes(sheet):
    assert list(sheet[0]) == ["sample", "lane", "fastq_1", "fastq_2", "library", "platform"]
    assert [r["sample"] for r in sheet] == ["COH1", "COH2", "COH2", "COH3"]
    for row in sheet:
        for col in ("fastq_1", "fastq_2"):
            assert not Path(row[col]).is_absolute() and (COHORT / row[col]).is_file(), row[col]
        assert row["platform"] == "ILLUMINA"
    coh2 = [r for r in sheet if r["sample"] == "COH2"]
    assert [r["lane"] for r in coh2] == ["L001", "L002"] and coh2[0]["library"] == coh2[1]["library"]
    assert len({(r["sample"], r["lane"]) for r in sheet}) == len(sheet)
    assert len({r["library"] for r in sheet}) == 3  # one library per sample
    listed = {r[c] for r in sheet for c in ("fastq_1", "fastq_2")}
    assert listed == {p.name for p in COHORT.glob("*.fastq.gz")}  # no FASTQ left out of the sheet


def test_per_sample_truths_equal_the_cohort_truth(truth):
    assert truth.samples == SAMPLES
    for s in SAMPLES:
        single = evaluate.read_variants(COHORT / f"truth_{s}.vcf.gz", pass_only=False)
        assert single == truth.carried[s], s
        assert (COHORT / f"truth_{s}.vcf.gz.tbi").is_file()
    assert (COHORT / "truth_cohort.vcf.gz.tbi").is_file()


def test_shared_and_private_variants(truth):
    info = _info(COHORT / "truth_cohort.vcf.gz")
    carriers = {k: [s for s in SAMPLES if k in truth.carried[s]] for k in truth.genotypes}
    shared = [k for k in carriers if info[k] == "SET=shared"]
    partial = [k for k in carriers if info[k] == "SET=partial"]
    assert len(shared) >= 20 and all(carriers[k] == list(SAMPLES) for k in shared)
    assert len(partial) >= 3 and all(len(carriers[k]) == len(SAMPLES) - 1 for k in partial)
    private = truth.private_sites()
    for s in SAMPLES:
        assert len(private[s]) >= 8, s
        assert all(info[k] == "SET=private" and carriers[k] == [s] for k in private[s])
        indels = [k for k in truth.carried[s] if not evaluate.is_snp(k)]
        assert 0.2 <= len(indels) / len(truth.carried[s]) <= 0.4, s  # indel recall is measurable
        assert any(truth.genotypes[k][s] == (None, None) for k in partial), f"{s} is 0/0 at no shared site"
    def gt(k: tuple[str, int, str, str], s: str) -> str:
        return {(None, None): "0/0", (None, k): "0/1", (k, k): "1/1"}[truth.genotypes[k][s]]

    # genotypes differ between samples at shared sites: some 0/1 in one sample and 1/1 in another
    assert sum({"0/1", "1/1"} <= {gt(k, s) for s in SAMPLES} for k in shared) >= 5


def test_truth_matches_the_reference_and_the_generator(truth):
    contig, ref = genomics.read_fasta(settings.INPUTS_DIR / "genomics" / "reference.fa")
    for chrom, pos, r, a in truth.genotypes:
        assert chrom == contig and ref[pos - 1: pos - 1 + len(r)] == r
        assert len(r) == len(a) == 1 or a[0] == r[0]  # an indel keeps its anchor base
    # the normalised truth describes the haplotypes the generator simulated reads from
    sites = genomics.cohort_sites(ref, random.Random(genomics.COHORT_SEED))
    for s in SAMPLES:
        for hom_only in (False, True):
            want = [site.variant for site in sites
                    if site.genotypes[s] == "1/1" or (site.genotypes[s] == "0/1" and not hom_only)]
            have = [genomics.Variant(k[1], k[2], k[3], "") for k in sorted(truth.carried[s])
                    if truth.genotypes[k][s] == (k, k) or not hom_only]
            assert len(have) == len(want) > 10
            assert genomics.apply_variants(ref, have) == genomics.apply_variants(ref, want), (s, hom_only)


def test_reads_as_a_demultiplexer_writes_them(sheet):
    provenance = json.loads((COHORT / "provenance.json").read_text())
    names: set[str] = set()
    units = {}
    pairs_per_sample = dict.fromkeys(SAMPLES, 0)
    for row, lane_info in zip(sheet, provenance["lanes"], strict=True):
        r1, r2 = _fastq(COHORT / row["fastq_1"]), _fastq(COHORT / row["fastq_2"])
        assert len(r1) == len(r2) == lane_info["read_pairs"] > 1000
        fields = set()
        for a, b in zip(r1, r2, strict=True):
            m1, m2 = ILLUMINA.match(a[0]), ILLUMINA.match(b[0])
            assert m1 and m2, (a[0], b[0])
            assert a[0].split()[0] == b[0].split()[0]  # mates in sync, name by name
            assert (m1["mate"], m2["mate"]) == ("1", "2")
            for rec in (a, b):
                assert rec[2] == "+" and len(rec[1]) == len(rec[3]) == 150 and set(rec[1]) <= set("ACGTN")
            fields.add((m1["run"], m1["flowcell"], m1["lane"], m1["barcode"]))
            names.add(a[0].split()[0])
        assert len(fields) == 1, row  # one platform unit per FASTQ pair
        units[(row["sample"], row["lane"])] = fields.pop()
        pairs_per_sample[row["sample"]] += len(r1)
    assert len(names) == sum(pairs_per_sample.values())  # names unique across the cohort
    assert len(set(units.values())) == 4
    assert units[("COH2", "L001")][2] == "1" and units[("COH2", "L002")][2] == "2"
    assert units[("COH3", "L001")][1] not in {u[1] for k, u in units.items() if k[0] != "COH3"}
    for s, pairs in pairs_per_sample.items():
        depth = pairs * 300 / 16571
        assert 40 <= depth <= 60, (s, depth)  # ~25x per haplotype
        assert provenance["samples"][s]["read_pairs"] == pairs


def test_files_are_deterministic_and_small():
    for path in COHORT.glob("*.fastq.gz"):
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", path.name  # gzip mtime 0
    for path in COHORT.glob("*.vcf.gz"):
        with gzip.open(path, "rt") as fh:
            assert not any(line.startswith("##bcftools") for line in fh), path.name  # no command line / date
    assert sum(p.stat().st_size for p in COHORT.iterdir()) < 3_000_000
