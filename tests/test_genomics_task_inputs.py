"""Bad and real-world inputs to single genomics tasks, each run alone under miniwdl in the real image.

A bad input must end the task early with one line naming the problem and the fix, and leave no output behind;
a real-world but well-formed input (UCSC-style BED, hostile file names) must just work. Running one task keeps
each case to a single small container.
"""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, settings
from conftest import RunTask, TaskFailed

DATA = settings.INPUTS_DIR / "genomics"
CONTIG = "NC_001807.4"
LENGTH = 16571

pytestmark = pytest.mark.containers


@pytest.fixture(scope="module")
def genomics_image(podman_ready: None) -> str:
    return containers.publish_local(containers.get("genomics"))


@pytest.fixture(scope="module")
def run_task(run_task: RunTask, genomics_image: str):
    """The shared ``run_task`` shaped for these tests: (True, outputs, run dir), or (False, the task's error line,
    run dir)."""

    def _run(wdl: str, task: str, **inputs: Any) -> tuple[bool, str | dict[str, Any], Path]:
        try:
            done = run_task(settings.WDL_DIR / "tasks" / wdl, task, {**inputs, "docker_image": genomics_image})
        except TaskFailed as failed:
            return False, failed.line, failed.run_dir
        return True, done.outputs, done.run_dir

    return _run


def fastq_records(mate: int) -> list[list[str]]:
    lines = gzip.open(DATA / f"sample_R{mate}.fastq.gz", "rt").read().splitlines()
    return [lines[i:i + 4] for i in range(0, len(lines), 4)]


def write_fastq(path: Path, records: list[list[str]]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.writelines(line + "\n" for rec in records for line in rec)
    return path


def split_reads(run_task, tmp_path: Path, r1: Path, r2: Path, **extra: Any):
    inputs: dict[str, Any] = {"fastq_1": str(r1), "fastq_2": str(r2), "lane_id": "S1",
                              "fastq_names": ["fastq_r1", "fastq_r2"], "cpu": 1, "memory_gb": 1}
    return run_task("alignment.wdl", "split_lane", **{**inputs, **extra})


# --- FASTQ: one pass over both mates ------------------------------------------------------------------------


def _swap_two(recs: list[list[str]]) -> list[list[str]]:
    recs[100], recs[101] = recs[101], recs[100]
    return recs


def _short_quality(recs: list[list[str]]) -> list[list[str]]:
    recs[6][3] = recs[6][3][:-1]
    return recs


def _illumina_names(recs: list[list[str]], mate: int) -> list[list[str]]:
    """CASAVA 1.8 headers: '@<name> <mate>:N:0:ACGT', no /1 /2."""
    for rec in recs:
        rec[0] = rec[0].rsplit("/", 1)[0] + f" {mate}:N:0:ACGTACGT"
    return recs


FASTQ_CASES = {
    # name: (change to R1, change to R2, expected error or None for success)
    "mates out of order": (None, _swap_two,
                           "fastq_r1 and fastq_r2 are out of sync at read 101: 'hap1_101' in fastq_r1 but 'hap1_102' "
                           "in fastq_r2: give both mates of every pair in the same order (the two files of one "
                           "paired run)"),
    "quality shorter than sequence": (_short_quality, None,
                                      "fastq_r1 'R1.fastq.gz' read 7 (line 28): the quality has 149 characters "
                                      "but the sequence 150: the file is damaged, copy or export it again"),
    "windows line ends": (None, lambda recs: [[line + "\r" for line in rec] for rec in recs],
                          "fastq_r2 'R2.fastq.gz' has Windows line ends (CRLF): convert it first (dos2unix, or "
                          "tr -d '\\r')"),
    "no reads in the first mates": (lambda recs: [], None,
                                    "fastq_r1 'R1.fastq.gz' holds no reads: give the reads of the sample"),
    "second mate file given twice": ("same", None,
                                     "fastq_r1 and fastq_r2 hold the same reads (read 1 is identical in both): "
                                     "give the second mates as fastq_r2"),
}


@pytest.mark.parametrize("case", sorted(FASTQ_CASES))
def test_bad_fastq_pairs(run_task, tmp_path, case):
    change1, change2, expected = FASTQ_CASES[case]
    r2 = write_fastq(tmp_path / "R2.fastq.gz", change2(fastq_records(2)) if change2 else fastq_records(2))
    if change1 == "same":
        r1 = write_fastq(tmp_path / "R1.fastq.gz", fastq_records(2))
    else:
        r1 = write_fastq(tmp_path / "R1.fastq.gz", change1(fastq_records(1)) if change1 else fastq_records(1))
    ok, message, run_dir = split_reads(run_task, tmp_path, r1, r2)
    assert not ok and message == expected
    assert not list(run_dir.rglob("shard_*")) and not list(run_dir.rglob("*read_counts.tsv"))
    assert not list(run_dir.rglob("*fastp.json"))


def test_mates_checked_through_illumina_comments_and_hostile_names(run_task, tmp_path):
    """CASAVA 1.8 headers (no /1 /2, a comment per mate) pair up; quote, space and $() in file names just work,
    and the read group takes the sample name."""
    folder = tmp_path / "it's a $(touch PWNED) dir"
    folder.mkdir()
    recs1, recs2 = fastq_records(1)[:400], fastq_records(2)[:400]
    r1 = write_fastq(folder / "R1 it's $(touch PWNED).fastq.gz", _illumina_names(recs1, 1))
    r2 = write_fastq(folder / "R2 `touch PWNED`.fastq.gz", _illumina_names(recs2, 2))
    ok, index_outputs, _ = run_task("reference.wdl", "index_reference",
                                    reference_fasta=str(DATA / "reference.fa"), memory_gb=1)
    assert ok, index_outputs
    assert isinstance(index_outputs, dict)
    ok, outputs, run_dir = split_reads(run_task, tmp_path, r1, r2)
    assert ok, outputs
    assert isinstance(outputs, dict)
    counts = Path(outputs["split_lane.read_counts"]).read_text()
    assert counts == "fastq_r1\t400\nfastq_r2\t400\nafter_fastp\t400\n"
    shards = [outputs["split_lane.shards_1"][0], outputs["split_lane.shards_2"][0]]
    ok, aligned, run_dir2 = run_task("alignment.wdl", "align_shard", reads=shards,
                                     reference_fasta=str(DATA / "reference.fa"),
                                     aligner_index=index_outputs["index_reference.aligner_index"],
                                     sample_name="S1", read_group="S1", cpu=1, memory_gb=1)
    assert ok, aligned
    assert isinstance(aligned, dict)
    assert not list(tmp_path.rglob("PWNED")) and not list(run_dir.rglob("PWNED")) and not list(run_dir2.rglob("PWNED"))


def align_shard(run_task, tmp_path: Path, n: int = 200, **extra: Any):
    """align_shard on the first ``n`` pairs of the bundled sample, named as split_lane names a shard."""
    r1 = write_fastq(tmp_path / "shard_0001_R1.fq.gz", fastq_records(1)[:n])
    r2 = write_fastq(tmp_path / "shard_0001_R2.fq.gz", fastq_records(2)[:n])
    inputs: dict[str, Any] = {"reads": [str(r1), str(r2)], "reference_fasta": str(DATA / "reference.fa"),
                              "aligner_index": [], "sample_name": "S1", "read_group": "S1", "cpu": 1, "memory_gb": 1}
    return run_task("alignment.wdl", "align_shard", **{**inputs, **extra})


def test_sample_name_is_checked_in_the_task(run_task, tmp_path):
    """For Cromwell users who bypass the CLI: the task refuses a name that would become a path or shell code."""
    ok, message, run_dir = align_shard(run_task, tmp_path, sample_name="x';touch PWNED;: '")
    assert not ok and message == ("sample_name 'x';touch PWNED;: '' may hold only letters, digits, '.', '_' and '-' "
                                  "(at most 64, not starting with . _ -): rename it")
    assert not list(run_dir.rglob("PWNED"))


# --- Reference FASTA ------------------------------------------------------------------------------------------


def test_duplicate_contig_names_in_reference(run_task, tmp_path):
    seq = "".join(DATA.joinpath("reference.fa").read_text().splitlines()[1:])
    ref = tmp_path / "two copies.fa"
    ref.write_text(f">{CONTIG} first\n{seq[:5000]}\n>other\n{seq[5000:9000]}\n>{CONTIG} again\n{seq[9000:]}\n")
    ok, message, run_dir = run_task("reference.wdl", "index_reference", reference_fasta=str(ref), memory_gb=1)
    assert not ok and message == (f"reference_fasta 'two copies.fa' names contig '{CONTIG}' twice (lines 1 and 5): "
                                  "give every sequence a unique name")
    assert not list(run_dir.rglob("index/*"))


def test_duplicate_contig_names_with_a_prebuilt_index(run_task, genomics_image, tmp_path):
    """bwa indexes a FASTA with a repeated name without a word; the alignment's header then holds the name twice."""
    seq = "".join(DATA.joinpath("reference.fa").read_text().splitlines()[1:])
    (tmp_path / "ref").mkdir()
    ref = tmp_path / "ref" / "dup.fa"
    ref.write_text(f">{CONTIG}\n{seq[:9000]}\n>{CONTIG}\n{seq[9000:]}\n")
    subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{ref.parent}:/d",
                    genomics_image, "bwa", "index", "/d/dup.fa"], check=True, capture_output=True, timeout=300)
    index = [str(p) for p in sorted(ref.parent.glob("dup.fa.*"))]
    assert len(index) == 5
    ok, message, run_dir = align_shard(run_task, tmp_path, reference_fasta=str(ref), aligner_index=index)
    assert not ok and message == (f"reference_fasta names contig '{CONTIG}' more than once: give every sequence a "
                                  "unique name and rebuild the index")
    assert not (run_dir / "work" / "shard.bam").exists()


# --- Targets BED ----------------------------------------------------------------------------------------------


def cds_targets() -> list[tuple[str, int, int, str]]:
    out = []
    for line in (DATA / "targets.bed").read_text().splitlines():
        chrom, start, end, name = line.split("\t")
        out.append((chrom, int(start), int(end), name))
    return out


def ucsc_bed(path: Path) -> Path:
    """The CDS targets as a UCSC browser export: track/browser lines, 6 columns, CRLF, shuffled; some lines
    space-separated (as spreadsheets write them)."""
    rows = cds_targets()
    random.Random(8).shuffle(rows)
    lines = ['browser position NC_001807.4:1-16571', 'track name="CDS" description="mito CDS" visibility=2',
             "# exported by hand"]
    for i, (chrom, start, end, name) in enumerate(rows):
        sep = " " if i % 4 == 0 else "\t"
        lines.append(sep.join([chrom, str(start), str(end), name, "0", "+"]))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


#: Merged total of the 13 CDS (inputs/genomics/targets.bed), counted by hand: ND1 957, ND2 1042, COX1 1542,
#: COX2 684, ATP8+ATP6+COX3 (8366-9988, overlapping) 1622, ND3 346, ND4L+ND4 (10470-12138) 1668,
#: ND5+ND6 (12337-14674, touching) 2337, CYTB 1135.
CDS_MERGED_BP = 957 + 1042 + 1542 + 684 + 1622 + 346 + 1668 + 2337 + 1135


def split(run_task, bed: Path, padding: int = 0):
    fai = bed.parent / "reference.fa.fai"
    fai.write_text(f"{CONTIG}\t{LENGTH}\t13\t70\t71\n")
    return run_task("variant_calling.wdl", "split_regions", reference_fai=str(fai), targets_bed=str(bed),
                    target_padding=padding, scatter_count=3)


def test_ucsc_style_bed_is_read_right(run_task, tmp_path):
    ok, outputs, _ = split(run_task, ucsc_bed(tmp_path / "cds (UCSC).bed"))
    assert ok, outputs
    assert isinstance(outputs, dict)
    intervals = [ln.split("\t") for ln in Path(outputs["split_regions.intervals"]).read_text().splitlines()]
    assert intervals[:3] == [[CONTIG, "3307", "4264"], [CONTIG, "4470", "5512"], [CONTIG, "5904", "7446"]]
    assert [CONTIG, "8366", "9988"] in intervals and [CONTIG, "12337", "14674"] in intervals
    assert sum(int(e) - int(s) for _, s, e in intervals) == CDS_MERGED_BP == 11333
    shards = [Path(p).read_text().splitlines() for p in outputs["split_regions.regions"]]
    assert len(shards) == 3
    assert sum(int(e) - int(s) for shard in shards for _, s, e in (ln.split("\t") for ln in shard)) == 11333


def test_padding_is_clipped_to_the_contig(run_task, tmp_path):
    bed = tmp_path / "ends.bed"
    bed.write_text(f"{CONTIG}\t0\t10\n{CONTIG}\t16561\t16571\n")
    ok, outputs, _ = split(run_task, bed, padding=50)
    assert ok, outputs
    assert isinstance(outputs, dict)
    assert Path(outputs["split_regions.intervals"]).read_text() == f"{CONTIG}\t0\t60\n{CONTIG}\t16511\t16571\n"


BED_ERRORS = {
    "chr prefix": (f"chr{CONTIG}\t100\t200\n",
                   f"line 1 names contig chr{CONTIG}, but the reference names it {CONTIG}: remove the chr prefix "
                   '(e.g. sed "s/^chr//")'),
    "header without #": (f"chrom\tstart\tend\n{CONTIG}\t100\t200\n",
                         "line 1 is not a BED interval (chrom, start, end; whole numbers): remove it or start it "
                         "with #"),
    "other assembly": (f"{CONTIG}\t100\t200\n{CONTIG}\t16500\t16600\n",
                       f"line 2 ends at 16600, past the end of {CONTIG} (16571 bp): is the BED for another "
                       "reference build?"),
    "start after end": (f"{CONTIG}\t300\t200\n", "line 1 has start 300 after end 200: fix or remove the line"),
    "empty": ("track name=nothing\n", "has no intervals: give at least one chrom<TAB>start<TAB>end line"),
}


@pytest.mark.parametrize("case", sorted(BED_ERRORS))
def test_bad_targets_bed(run_task, tmp_path, case):
    text, expected = BED_ERRORS[case]
    bed = tmp_path / "my targets.bed"
    bed.write_text(text)
    ok, message, run_dir = split(run_task, bed)
    assert not ok and message == f"targets_bed 'my targets.bed' {expected}"
    assert not list(run_dir.rglob("intervals.bed")) and not list(run_dir.rglob("region_*.bed"))
