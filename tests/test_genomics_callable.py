"""Blind spots are reported: a reference with a duplicated segment, run end to end in real containers.

The reference is the bundled mitochondrion with 1,500 bp of 16S rRNA sequence (1700-3200) replaced by a copy of
6100-7600 (COX1), so the genome keeps its length and contig name but holds that segment twice. The bundled reads
are reused: those of 6100-7600 now map equally well to both copies (MAPQ 0) and the callers skip them, apart from
the edges of the segment, where the mate in unique sequence places the pair. The run's files are named with a
quote, a space and $(...), which must just work.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from batchpipes import cli, evaluate, settings

DATA = settings.INPUTS_DIR / "genomics"
COPY_FROM, COPY_TO, SEGMENT = 6100, 1700, 1500
FRAGMENT = 400  # simulated fragment length: pairs reach this far into a repeat from unique sequence

pytestmark = pytest.mark.containers


def duplicated_reference(path: Path) -> None:
    lines = DATA.joinpath("reference.fa").read_text().splitlines()
    seq = "".join(lines[1:])
    dup = seq[:COPY_TO] + seq[COPY_FROM:COPY_FROM + SEGMENT] + seq[COPY_TO + SEGMENT:]
    assert len(dup) == len(seq)
    path.write_text(lines[0] + "\n" + "\n".join(dup[i:i + 70] for i in range(0, len(dup), 70)) + "\n")


@pytest.fixture(scope="module")
def dup_run(run_workflow, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "it's a $(touch PWNED) folder"
    folder.mkdir()
    ref = folder / "mito dup's $(touch PWNED).fa"
    duplicated_reference(ref)
    r1, r2 = folder / "reads 'R1' $(id).fastq.gz", folder / "reads R2 `id`.fastq.gz"
    r1.write_bytes((DATA / "sample_R1.fastq.gz").read_bytes())
    r2.write_bytes((DATA / "sample_R2.fastq.gz").read_bytes())
    result = run_workflow("genomics", reference_fasta=str(ref), fastq_r1=str(r1), fastq_r2=str(r2))
    return result, folder


def out(run, name: str) -> Path:
    return Path(run.outputs[f"genomics.{name}"])


def test_duplicated_segment_is_not_callable(dup_run):
    run, _ = dup_run
    bed = evaluate.read_bed(out(run, "callable_bed"))
    ok = evaluate.Regions(bed)
    # the copy placed in 16S: no pair places its reads there (their mates came from the replaced sequence)
    inside_copy = [p for p in range(COPY_TO + 1, COPY_TO + SEGMENT + 1) if ok.contains("NC_001807.4", p)]
    assert not inside_copy, inside_copy[:10]
    # the original: not callable but for the edges that pairs reach from unique sequence
    core = range(COPY_FROM + FRAGMENT + 1, COPY_FROM + SEGMENT - FRAGMENT + 1)
    assert not [p for p in core if ok.contains("NC_001807.4", p)]
    # unique sequence far from the segment and the contig ends stays callable
    unique = [p for p in range(8000, 16000) if ok.contains("NC_001807.4", p)]
    assert len(unique) >= 0.99 * 8000


def test_callable_summary_numbers(dup_run, tmp_path):
    run, _ = dup_run
    sentence, values = evaluate.callable_summary(out(run, "callable_summary"))
    bed_bp = sum(e - s for _, s, e in evaluate.read_bed(out(run, "callable_bed")))
    m = re.fullmatch(r"SIM001: (\d+) bp \((\d+\.\d\d)%\) of the genome not callable \(fewer than 4 reads with "
                     r"MAPQ >= 20\); (\d+) of 16571 bp callable", sentence)
    assert m, sentence
    not_callable = int(m[1])
    assert not_callable == 16571 - bed_bp == int(values["not_callable_bp"])
    assert int(m[3]) == bed_bp == int(values["callable_bp"])
    assert m[2] == f"{100 * not_callable / 16571:.2f}"
    assert not_callable >= SEGMENT + (SEGMENT - 2 * FRAGMENT)
    assert int(values["no_coverage_bp"]) + int(values["low_coverage_bp"]) == not_callable
    assert values["scope"] == "genome" and values["total_bp"] == "16571"
    # the same count from another tool: bases with fewer than 4 reads of MAPQ >= 20 (samtools depth)
    bam = out(run, "bam")
    image = json.loads((run.run_dir / "call-merge_sample" / "inputs.json").read_text())["docker_image"]
    depth = subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v",
                            f"{bam.resolve().parent}:/data:ro", image, "samtools", "depth", "-a", "-s", "-Q", "20",
                            f"/data/{bam.resolve().name}"], capture_output=True, text=True, check=True, timeout=300)
    rows = [line.split("\t") for line in depth.stdout.splitlines()]
    assert len(rows) == 16571
    assert sum(int(r[2]) < 4 for r in rows) == not_callable
    # the task log says it too
    log = (run.run_dir / "call-callable_regions" / "stderr.txt").read_text()
    assert f"callable regions: {sentence}" in log


def test_evaluate_inside_and_outside_callable(dup_run, capsys):
    run, _ = dup_run
    truth = DATA / "truth.vcf.gz"
    bed = evaluate.read_bed(out(run, "callable_bed"))
    ok = evaluate.Regions(bed)
    outside = [k for k in evaluate.read_variants(truth, pass_only=False) if not ok.contains(k[0], k[1])]
    snps_out = sum(evaluate.is_snp(k) for k in outside)
    indels_out = len(outside) - snps_out
    assert snps_out >= 2 and indels_out >= 2, outside  # the duplicated segment holds truth variants
    assert cli.main(["evaluate", "--truth", str(truth), "--calls", str(out(run, "vcf")),
                     "--callable", str(out(run, "callable_bed"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"callable regions: {sum(e - s for _, s, e in bed)} bp in SIM001.callable.bed.gz"
    # nothing is called where reads are MAPQ 0: recall 0, precision n/a (not 1.000)
    assert lines[5] == f"snp   not callable recall 0.000 precision n/a (TP 0, FP 0, FN {snps_out})"
    assert lines[6] == f"indel not callable recall 0.000 precision n/a (TP 0, FP 0, FN {indels_out})"
    assert lines[3].startswith("snp   callable     recall 1.000 ")
    # the blind spot is what lowers the overall recall
    assert lines[0].startswith("snp   recall ") and not lines[0].startswith("snp   recall 1.000")


def test_hostile_file_names_just_work(dup_run):
    run, folder = dup_run
    counts = out(run, "read_counts").read_text()
    assert counts == "fastq_r1\t3300\nfastq_r2\t3300\nafter_fastp\t3300\n"
    assert not list(run.run_dir.rglob("PWNED")) and not list(folder.parent.rglob("PWNED"))
    assert not (settings.REPO_ROOT / "PWNED").exists()
