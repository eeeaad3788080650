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


#: Merged total of the 13 CDS (inputs/genomics/targets.bed), counted by hand: ND1 957, ND2 1042, COX1 1542,
#: COX2 684, ATP8+ATP6+COX3 (8366-9988, overlapping) 1622, ND3 346, ND4L+ND4 (10470-12138) 1668,
#: ND5+ND6 (12337-14674, touching) 2337, CYTB 1135.
CDS_MERGED_BP = 11333


@pytest.fixture(scope="module")
def exome_run(run_workflow, tmp_path_factory):
    """Exome mode with freebayes and minimap2; the targets as a UCSC browser export (track and browser lines,
    6 columns, CRLF line ends, reverse order)."""
    rows = [line.split("\t") for line in (DATA / "targets.bed").read_text().splitlines()]
    lines = ["browser position NC_001807.4:1-16571", 'track name="CDS" description="mitochondrial CDS"']
    lines += ["\t".join([chrom, start, end, name, "0", "+"]) for chrom, start, end, name in reversed(rows)]
    bed = tmp_path_factory.mktemp("exome") / "cds.ucsc.bed"
    bed.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return run_workflow("genomics", caller="freebayes", aligner="minimap2",
                        targets_bed=str(bed), target_padding=0, scatter_count=3)


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
    assert counts == {"fastq_r1": "3300", "fastq_r2": "3300", "after_fastp": "3300"}


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


def test_exome_target_stats_count_each_base_once(exome_run):
    """BED is 0-based: samtools stats -t (1-based, inclusive) must see start + 1, or every interval gains a base."""
    sn = evaluate.stats_summary(out(exome_run, "target_stats"))
    assert sn["bases inside the target"] == CDS_MERGED_BP


def test_exome_callable_regions_are_within_the_targets(exome_run):
    sentence, values = evaluate.callable_summary(out(exome_run, "callable_summary"))
    assert values["scope"] == "targets" and int(values["total_bp"]) == CDS_MERGED_BP
    bed = evaluate.read_bed(out(exome_run, "callable_bed"))
    targets = evaluate.Regions(evaluate.read_bed(DATA / "targets.bed"))
    assert all(targets.contains(c, s + 1) and targets.contains(c, e) for c, s, e in bed)
    callable_bp = sum(e - s for _, s, e in bed)
    assert int(values["callable_bp"]) == callable_bp >= 0.99 * CDS_MERGED_BP
    not_callable = CDS_MERGED_BP - callable_bp
    assert sentence == (f"SIM001: {not_callable} bp ({100 * not_callable / CDS_MERGED_BP:.2f}%) of the targets not "
                        f"callable (fewer than 4 reads with MAPQ >= 20); {callable_bp} of {CDS_MERGED_BP} bp callable")


def test_callable_regions_of_the_genome(wgs_run):
    sentence, values = evaluate.callable_summary(out(wgs_run, "callable_summary"))
    bed = evaluate.read_bed(out(wgs_run, "callable_bed"))
    callable_bp = sum(e - s for _, s, e in bed)
    assert values["scope"] == "genome" and values["total_bp"] == "16571"
    assert int(values["callable_bp"]) == callable_bp
    # 60x of unique sequence: only the ends of the linearised circle (reads do not wrap) and the bases deleted
    # on both haplotypes (no read base over them) fall short
    assert 16571 - callable_bp <= 200, sentence
    ok = evaluate.Regions(bed)
    truth = evaluate.read_variants(DATA / "truth.vcf.gz", pass_only=False)
    assert all(ok.contains(c, p) for c, p, _, _ in truth)
    assert out(wgs_run, "callable_bed_index").name == "SIM001.callable.bed.gz.tbi"


def test_prebuilt_index_is_used(run_workflow, wgs_run, tmp_path):
    """Given a .fai and bwa index, the workflow skips index_reference."""
    index_dirs = [p for p in wgs_run.run_dir.glob("call-index_reference/work/index/*")]
    fai = next(wgs_run.run_dir.glob("call-index_reference/work/*.fai"))
    result = run_workflow("genomics", reference_fai=str(fai), aligner_index=[str(p) for p in index_dirs])
    assert not list(result.run_dir.glob("call-index_reference"))
    acc = evaluate.compare(DATA / "truth.vcf.gz", out(result, "vcf"))
    assert acc["snp"].recall >= 0.98


def _failed_call_logs(run_root: Path) -> str:
    """The end of miniwdl's workflow log and of every call's stderr under ``run_root``: what a failure message
    needs when the run folder is gone (CI)."""
    parts = []
    for log in sorted(run_root.glob("*/workflow.log")) + sorted(run_root.glob("*/call-*/stderr.txt")):
        parts.append(f"\n--- {log.relative_to(run_root)}\n" + log.read_text(errors="replace")[-1500:])
    return "".join(parts)


def test_cli_run_as_in_the_readme(tmp_path, podman_ready):
    """`batchpipes run genomics` (the README's first command) prints the run folder and outputs as JSON."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("batchpipes")
    proc = subprocess.run([str(exe), "run", "genomics", "--dir", str(tmp_path), "--no-cache"],
                          capture_output=True, text=True, cwd=settings.REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:] + _failed_call_logs(tmp_path)
    result = json.loads(proc.stdout)
    assert Path(result["dir"]).parent == tmp_path
    acc = evaluate.compare(DATA / "truth.vcf.gz", Path(result["outputs"]["genomics.vcf"]))
    assert acc["snp"].recall >= 0.98 and acc["indel"].recall >= 0.90
    assert "genomics finished" in proc.stderr


def test_published_results_work_with_region_queries(wgs_run):
    """runs/<run>/results/<sample>/ holds every output with its index beside it, so samtools and bcftools
    region queries work on the published paths (they need the index next to the file)."""
    import subprocess

    from batchpipes import containers, podman

    folder = wgs_run.results_dir
    assert folder == wgs_run.run_dir / "results" / "SIM001"
    names = {p.name for p in folder.iterdir()}
    for data, index in [("SIM001.bam", "SIM001.bam.bai"), ("SIM001.vcf.gz", "SIM001.vcf.gz.tbi"),
                        ("SIM001.ann.vcf.gz", "SIM001.ann.vcf.gz.tbi"),
                        ("SIM001.callable.bed.gz", "SIM001.callable.bed.gz.tbi")]:
        assert {data, index} <= names, f"{data} or {index} missing from {sorted(names)}"
    image = containers.get("genomics").ref(None)
    script = ("samtools view -c SIM001.bam NC_001807.4:1000-2000 && samtools view -c SIM001.bam && "
              "bcftools view -H -r NC_001807.4:1-5000 SIM001.vcf.gz | wc -l && bcftools view -H SIM001.vcf.gz | wc -l")
    proc = subprocess.run(["podman", "run", "--rm", *podman.as_invoker(), "-v", f"{folder}:/r:ro", "-w", "/r",
                           image, "bash", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    region_reads, all_reads, region_calls, all_calls = (int(x) for x in proc.stdout.split())
    assert 0 < region_reads < all_reads
    truth_in_region = sum(1 for ln in gzip.open(DATA / "truth.vcf.gz", "rt")
                          if not ln.startswith("#") and int(ln.split("\t")[1]) <= 5000)
    assert region_calls >= truth_in_region > 0 and region_calls < all_calls
