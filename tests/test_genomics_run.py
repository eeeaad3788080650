"""The genomics workflow end to end under miniwdl in real containers, checked against the truth set."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from batchpipes import evaluate, settings

DATA = settings.INPUTS_DIR / "genomics"
GENES = {"ND1", "ND2", "COX1", "COX2", "ATP8", "ATP6", "COX3", "ND3", "ND4L", "ND4", "ND5", "ND6", "CYTB"}


@pytest.fixture(scope="module")
def wgs_run(run_workflow):
    """Whole-genome mode, bcftools, bwa, no prebuilt index (the workflow builds it)."""
    return run_workflow("genomics")


@pytest.fixture(scope="module")
def exome_run(run_workflow):
    """Exome mode with freebayes and minimap2."""
    return run_workflow("genomics", caller="freebayes", aligner="minimap2",
                        targets_bed=str(DATA / "targets.bed"), target_padding=0, scatter_count=3)


def out(run, name: str) -> Path:
    return Path(run.outputs[f"genomics.{name}"])


def test_variants_match_truth(wgs_run):
    acc = evaluate.compare(DATA / "truth.vcf.gz", out(wgs_run, "vcf"))
    assert acc["snp"].recall >= 0.98, acc["snp"].line()
    assert acc["snp"].precision >= 0.98, acc["snp"].line()
    assert acc["indel"].recall >= 0.90, acc["indel"].line()


def test_vcf_is_indexed_and_sorted(wgs_run):
    vcf, tbi = out(wgs_run, "vcf"), out(wgs_run, "vcf_index")
    assert vcf.read_bytes()[:2] == b"\x1f\x8b" and tbi.stat().st_size > 0
    positions = [int(ln.split("\t")[1]) for ln in gzip.open(vcf, "rt") if not ln.startswith("#")]
    assert positions == sorted(positions) and len(positions) == len(set(positions))


def test_annotation_names_genes(wgs_run):
    ann = out(wgs_run, "annotated_vcf")
    genes = evaluate.annotated_genes(ann)
    assert len(GENES & genes) >= 10, genes
    records = [ln for ln in gzip.open(ann, "rt") if not ln.startswith("#")]
    assert records and all("ANN=" in r for r in records)
    assert not any("ERROR_CHROMOSOME_NOT_FOUND" in r or "ERROR_OUT_OF_CHROMOSOME_RANGE" in r for r in records)
    # mitochondrial codon table in use: coding changes are classified, not all "MODIFIER"
    assert any("missense_variant" in r or "synonymous_variant" in r for r in records)


def test_alignment_stats(wgs_run):
    assert evaluate.mapped_fraction(out(wgs_run, "samtools_stats")) >= 0.95
    flag = json.loads(out(wgs_run, "flagstat_json").read_text())
    passed = flag["QC-passed reads"]
    assert passed["total"] == 6600 and passed["properly paired %"] >= 95
    bam = out(wgs_run, "bam")
    assert bam.read_bytes()[:2] == b"\x1f\x8b" and out(wgs_run, "bai").stat().st_size > 0
    counts = dict(line.split("\t") for line in out(wgs_run, "read_counts").read_text().splitlines())
    assert counts == {"fastq_r1": "3300", "fastq_r2": "3300"}


def test_index_built_when_absent(wgs_run):
    calls = {p.name for p in wgs_run.run_dir.iterdir() if p.is_dir()}
    assert any(c.startswith("call-index_reference") for c in calls), calls


def test_exome_mode_calls_only_targets(exome_run):
    calls = evaluate.read_variants(out(exome_run, "vcf"))
    targets = evaluate.read_bed(DATA / "targets.bed")
    assert calls, "no calls in exome mode"
    outside = [k for k in calls if not any(c == k[0] and s < k[1] <= e for c, s, e in targets)]
    assert not outside, outside
    acc = evaluate.compare(DATA / "truth.vcf.gz", out(exome_run, "vcf"), regions=targets)
    assert acc["snp"].recall >= 0.98 and acc["snp"].precision >= 0.98, acc["snp"].line()
    assert acc["indel"].recall >= 0.90, acc["indel"].line()
    assert out(exome_run, "target_stats").read_text().startswith("# This file was produced by samtools stats")


def test_prebuilt_index_is_used(run_workflow, wgs_run, tmp_path):
    """Given a .fai and bwa index, the workflow skips index_reference."""
    index_dirs = [p for p in wgs_run.run_dir.glob("call-index_reference/work/index/*")]
    fai = next(wgs_run.run_dir.glob("call-index_reference/work/*.fai"))
    result = run_workflow("genomics", reference_fai=str(fai), aligner_index=[str(p) for p in index_dirs])
    assert not list(result.run_dir.glob("call-index_reference"))
    acc = evaluate.compare(DATA / "truth.vcf.gz", out(result, "vcf"))
    assert acc["snp"].recall >= 0.98


def test_cli_run_as_in_the_readme(tmp_path):
    """`batchpipes run genomics` (the README's first command) prints the run folder and outputs as JSON."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("batchpipes")
    proc = subprocess.run([str(exe), "run", "genomics", "--dir", str(tmp_path), "--no-cache"],
                          capture_output=True, text=True, cwd=settings.REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert Path(result["dir"]).parent == tmp_path
    acc = evaluate.compare(DATA / "truth.vcf.gz", Path(result["outputs"]["genomics.vcf"]))
    assert acc["snp"].recall >= 0.98 and acc["indel"].recall >= 0.90
    assert "genomics finished" in proc.stderr
