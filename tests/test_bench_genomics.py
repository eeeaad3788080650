"""The pure parts of ``batchpipes bench genomics`` (no containers): the task commands it renders for its bare runs,
the miniwdl logs it reads, the cohort inputs it writes, and its arithmetic."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import pytest
from batchpipes import settings, workflows
from batchpipes.bench import genomics as bench
from batchpipes.errors import UserError

ALIGNMENT = settings.WDL_DIR / "tasks" / "alignment.wdl"

# Recorded: task.log of a shard and of the MultiQC task of `batchpipes run genomics_cohort` on the bundled cohort
# (miniwdl 1.x with the podman backend, 2026-12-02).
SHARD_LOG = """\
2026-12-02 19:16:49.710 wdl.w:genomics_cohort.t:call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq NOTICE task setup :: name: "align_shard", source: "tasks/alignment.wdl", line: 85, column: 1, dir: "/tmp/runs/20261202_191633_genomics_cohort/call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq", thread: 140375401780928
2026-12-02 19:16:49.732 wdl.w:genomics_cohort.t:call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq WARNING ignored runtime settings :: keys: ["disks", "awsBatchRetryAttempts"]
2026-12-02 19:16:50.920 wdl.w:genomics_cohort.t:call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq NOTICE podman run :: pid: 6182, log: "/tmp/runs/20261202_191633_genomics_cohort/call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq/podman.log.txt"
2026-12-02 19:16:52.197 wdl.w:genomics_cohort.t:call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq NOTICE done
"""  # noqa: E501
MULTIQC_LOG = """\
2026-12-02 19:17:14.850 wdl.w:genomics_cohort.t:call-multiqc NOTICE task setup :: name: "multiqc_report", source: "tasks/qc.wdl", line: 267, column: 1, dir: "/tmp/runs/20261202_191633_genomics_cohort/call-multiqc", thread: 140375393388224
2026-12-02 19:17:14.861 wdl.w:genomics_cohort.t:call-multiqc WARNING ignored runtime settings :: keys: ["disks", "awsBatchRetryAttempts"]
2026-12-02 19:17:14.972 wdl.w:genomics_cohort.t:call-multiqc NOTICE podman pull :: image: "127.0.0.1:5000/batchpipes/multiqc:38dea737d058", seconds_waited: 0, seconds_pulling: 0
2026-12-02 19:17:14.975 wdl.w:genomics_cohort.t:call-multiqc NOTICE podman run :: pid: 10972, log: "/tmp/runs/20261202_191633_genomics_cohort/call-multiqc/podman.log.txt"
2026-12-02 19:17:18.301 wdl.w:genomics_cohort.t:call-multiqc NOTICE done
"""  # noqa: E501


def _written(write_dir: Path) -> list[list[str]]:
    """The contents (lines) of the files the engine's write_lines wrote, in any order."""
    return sorted(p.read_text().splitlines() for p in write_dir.rglob("*") if p.is_file())


# ---- rendering the tasks' own commands -----------------------------------------------------------------------------

def test_split_lane_renders_with_the_shard_size_and_the_task_cpu_default(tmp_path: Path) -> None:
    r1, r2 = tmp_path / "my run" / "A_S1_L001_R1_001.fastq.gz", tmp_path / "my run" / "A_S1_L001_R2_001.fastq.gz"
    r1.parent.mkdir()
    r1.write_bytes(b"\x1f\x8b" + bytes(100))
    r2.write_bytes(b"\x1f\x8b" + bytes(100))
    command, image = bench.render_command(ALIGNMENT, "split_lane", {
        "fastq_1": str(r1), "fastq_2": str(r2), "lane_id": "A.L001", "fastq_names": ["fastq_r1", "fastq_r2"],
        "reads_per_shard": 26400}, tmp_path / "w")
    assert image.startswith("batchpipes/genomics:")
    assert "--reads-per-shard 26400 --threads 4 " in command  # the task's cpu default, as genomics.wdl runs it
    assert "--no-trim" not in command
    assert str(r1) not in command  # paths only through the files write_lines wrote
    assert [str(r1), str(r2)] in _written(tmp_path / "w")
    assert ["A.L001"] in _written(tmp_path / "w")


def test_split_lane_without_trimming_and_with_the_bench_threads(tmp_path: Path) -> None:
    r1 = tmp_path / "R1.fq"
    r1.write_text("@r1\nACGT\n+\nIIII\n")
    command, _ = bench.render_command(ALIGNMENT, "split_lane", {
        "fastq_1": str(r1), "lane_id": "L1", "reads_per_shard": bench.ONE_SHARD, "trim_reads": False, "cpu": 2},
        tmp_path / "w")
    assert f"--reads-per-shard {bench.ONE_SHARD} --threads 2 --no-trim" in command
    assert [str(r1)] in _written(tmp_path / "w")  # single-end: one file, no empty line for fastq_2


def test_align_shard_renders_threads_and_read_group_fields(tmp_path: Path) -> None:
    files = []
    for name in ("shard_0001_R1.fq.gz", "shard_0001_R2.fq.gz", "ref.fa", *(f"ref.fa.{e}" for e in
                                                                             ("amb", "ann", "bwt", "pac", "sa"))):
        (tmp_path / name).write_bytes(b"x" * 10)
        files.append(str(tmp_path / name))
    command, _ = bench.render_command(ALIGNMENT, "align_shard", {
        "reads": files[:2], "reference_fasta": files[2], "aligner_index": files[3:], "sample_name": "NA12878",
        "read_group": "NA12878.HXXXXDSXX.1", "cpu": 3}, tmp_path / "w")
    assert re.search(r"bwa mem -t 3\b", command)
    assert re.search(r"samtools sort .*-@ 3\b", command)
    # sample, read group, platform default, aligner default, library defaulting to the sample
    assert ["NA12878", "NA12878.HXXXXDSXX.1", "ILLUMINA", "bwa", "NA12878"] in _written(tmp_path / "w")
    assert files[3:] in _written(tmp_path / "w")


def test_merge_sample_renders_the_bam_list_and_threads(tmp_path: Path) -> None:
    bams = [str(tmp_path / f"align_shard_{i:04d}" / "shard.bam") for i in (1, 2, 3)]
    for b in bams:
        Path(b).parent.mkdir()
        Path(b).write_bytes(b"BAM\x01")
    command, image = bench.render_command(ALIGNMENT, "merge_sample", {"bams": bams, "sample_name": "S-1", "cpu": 2},
                                          tmp_path / "w")
    assert re.search(r"(--threads|-@) 2\b", command)  # the bench's threads reach the tools
    assert not re.search(r"(--threads|-@) 4\b", command)  # not the task's default
    assert bams in _written(tmp_path / "w")
    assert image.startswith("batchpipes/genomics:")


def test_align_reads_is_gone_and_render_names_no_task_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(StopIteration):
        bench.render_command(ALIGNMENT, "align_reads", {}, tmp_path)


# ---- miniwdl logs --------------------------------------------------------------------------------------------------

def test_parse_task_log_spans_the_container_not_the_wait_for_cores() -> None:
    span = bench.parse_task_log(SHARD_LOG)
    assert span is not None and span.name == "align_shard"
    assert span.seconds == pytest.approx(52.197 - 50.920)  # from "podman run" (1.2 s after setup) to "done"
    qc = bench.parse_task_log(MULTIQC_LOG)
    assert qc is not None and qc.name == "multiqc_report"  # the task's name, not the call's (call-multiqc)
    assert qc.seconds == pytest.approx(3.326, abs=1e-3)


def test_parse_task_log_unfinished_or_without_container() -> None:
    assert bench.parse_task_log(SHARD_LOG.rsplit("\n", 2)[0]) is None  # no "done": failed or interrupted
    setup_only = "\n".join(line for line in SHARD_LOG.splitlines() if "podman run" not in line)
    span = bench.parse_task_log(setup_only)
    assert span is not None and span.seconds == pytest.approx(52.197 - 49.710)
    assert bench.parse_task_log("") is None


def test_task_spans_reads_every_task_folder(tmp_path: Path) -> None:
    for folder, text in (("call-align_shard-1-1-L002libraryCOH2l-0-0shard_0001_R1fq", SHARD_LOG),
                         ("call-multiqc", MULTIQC_LOG), ("call-failed", SHARD_LOG.rsplit("\n", 2)[0])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "task.log").write_text(text)
    (tmp_path / "workflow.log").write_text("not a task\n")
    spans = bench.task_spans(tmp_path)
    assert sorted(s.name for s in spans) == ["align_shard", "multiqc_report"]
    grouped = bench.by_task(spans * 2)
    assert len(grouped["align_shard"]) == 2
    first, last = bench.interval(spans)
    assert last - first == pytest.approx(18.301 - 50.920 + 60)  # 19:16:50.920 to 19:17:18.301


def test_overlap_of_intervals() -> None:
    assert bench.overlap((0.0, 10.0), (5.0, 20.0)) == 5.0
    assert bench.overlap((0.0, 10.0), (10.0, 20.0)) == 0.0
    assert bench.overlap((0.0, 3.0), (5.0, 20.0)) == 0.0
    assert bench.overlap((2.0, 3.0), (0.0, 20.0)) == 1.0


# ---- arithmetic ----------------------------------------------------------------------------------------------------

def test_reads_per_shard_never_makes_more_shards_than_asked() -> None:
    assert bench.reads_per_shard(105_600, 4) == 26_400
    for pairs, shards in ((6601, 4), (3300, 7), (10, 3), (1, 1), (400_000_000, 50)):
        rps = bench.reads_per_shard(pairs, shards)
        assert math.ceil(pairs / rps) <= shards
        assert math.ceil(pairs / (rps - 1)) > shards if rps > 1 else True  # and is the smallest that does
    with pytest.raises(ValueError):
        bench.reads_per_shard(0, 4)


def test_growth_linear_and_sublinear() -> None:
    g = bench.growth(16, 10.0, 64, 40.0)
    assert (g.size_ratio, g.time_ratio, g.per_pair_ratio) == (4.0, 4.0, 1.0)
    assert g.exponent == pytest.approx(1.0)
    fixed = bench.growth(8, 6.0, 32, 12.0)  # a fixed cost dominates at the small size
    assert fixed.per_pair_ratio == pytest.approx(0.5) and fixed.exponent == pytest.approx(0.5)
    with pytest.raises(ValueError):
        bench.growth(64, 1.0, 16, 2.0)


def test_per_core_throughput_and_startup_share() -> None:
    assert bench.pairs_per_core_second(105_600, 24.0, 2) == 2200.0
    assert bench.startup_share(17, 0.3, 51.0) == pytest.approx(0.1)


def test_alternate_is_abba() -> None:
    assert bench.alternate("ours", "bare", 1) == ["ours", "bare"]
    assert bench.alternate("ours", "bare", 3) == ["ours", "bare", "bare", "ours", "ours", "bare"]


def test_cohort_inputs_are_accepted_by_the_cohort_workflow(tmp_path: Path) -> None:
    samples = [(f"S{k}", tmp_path / f"S{k}" / "R1.fastq.gz", tmp_path / f"S{k}" / "R2.fastq.gz") for k in (1, 2, 3)]
    data = bench.cohort_inputs(samples, tmp_path, {"cohort_name": "BENCH", "reads_per_shard": 26400,
                                                   "scatter_count": 4, "align_cpu": 2, "per_sample_vcfs": True})
    flow = workflows.get("genomics_cohort")
    checked = workflows.validate(flow, data, source="test", check_files=False)
    lanes = [s["lanes"] for s in checked["genomics_cohort.samples"]]
    assert [lane[0]["read_group"] for lane in lanes] == ["S1.L001", "S2.L001", "S3.L001"]
    assert lanes[1][0]["fastq_2"] == str(tmp_path / "S2" / "R2.fastq.gz")
    assert checked["genomics_cohort.reads_per_shard"] == 26400


def test_split_cpu_can_be_set_for_the_one_shard_run() -> None:
    flow = workflows.get("genomics")
    data = {"genomics.sample_name": "SIM001", "genomics.fastq_r1": "/x/R1.fq.gz", "genomics.fastq_r2": "/x/R2.fq.gz",
            "genomics.reference_fasta": "/x/ref.fa", "genomics.annotation": "/x/a.gbk", "genomics.split_cpu": 1,
            "genomics.reads_per_shard": bench.ONE_SHARD}
    checked = workflows.validate(flow, data, source="test", check_files=False)
    assert checked["genomics.split_cpu"] == 1


@pytest.mark.parametrize(("option", "value"), [("parts", "workflow,speed"), ("parts", ""), ("sizes", "64,16"),
                                               ("sizes", "16"), ("sizes", "16,x"), ("repeats", 0), ("scale", 0),
                                               ("align_shards", 400)])
def test_bad_options_are_one_line_user_errors(option: str, value: object) -> None:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args([])
    setattr(args, option, value)
    with pytest.raises(UserError) as exc:
        bench._check_args(args)
    assert "\n" not in str(exc.value) and "--" in str(exc.value)


def test_default_options_pass() -> None:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    parts, sizes = bench._check_args(p.parse_args([]))
    assert parts == list(bench.PARTS) and sizes == [32, 128]
