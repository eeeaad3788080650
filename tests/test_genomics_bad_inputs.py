"""Bad inputs to the genomics pipeline: each is one clear line naming the problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from batchpipes import cli, local, settings, workflows

DATA = settings.INPUTS_DIR / "genomics"
LOCAL_JSON = settings.INPUTS_DIR / "genomics.local.json"


def inputs_with(tmp_path: Path, **changes: object) -> Path:
    data = json.loads(LOCAL_JSON.read_text())
    for key, value in data.items():  # the copy lives elsewhere: paths relative to inputs/ made absolute
        if isinstance(value, str) and (settings.INPUTS_DIR / value).is_file():
            data[key] = str(settings.INPUTS_DIR / value)
    for key, value in changes.items():
        data[f"genomics.{key}"] = value
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(data))
    return path


def prepare(path: Path) -> dict:
    return local.prepare_inputs(workflows.get("genomics"), path, {})


def test_missing_fastq(tmp_path, expect_user_error):
    msg = expect_user_error(prepare, inputs_with(tmp_path, fastq_r1="inputs/genomics/nope_R1.fastq.gz"))
    assert "genomics.fastq_r1" in msg and "nope_R1.fastq.gz" in msg and "does not exist" in msg


def test_unknown_caller(tmp_path, expect_user_error):
    msg = expect_user_error(prepare, inputs_with(tmp_path, caller="gatk"))
    assert "genomics.caller is 'gatk'" in msg and "bcftools, freebayes" in msg


def test_unknown_aligner(tmp_path, expect_user_error):
    msg = expect_user_error(prepare, inputs_with(tmp_path, aligner="bowtie2"))
    assert "bowtie2" in msg and "bwa, minimap2" in msg


def test_wrong_type(tmp_path, expect_user_error):
    msg = expect_user_error(prepare, inputs_with(tmp_path, scatter_count="four"))
    assert "scatter_count" in msg


def test_unknown_input(tmp_path, expect_user_error):
    msg = expect_user_error(prepare, inputs_with(tmp_path, sample="x"))
    assert "sample" in msg


def test_missing_required_input(tmp_path, expect_user_error):
    data = json.loads(LOCAL_JSON.read_text())
    del data["genomics.reference_fasta"]
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(data))
    msg = expect_user_error(prepare, path)
    assert "reference_fasta" in msg


def test_malformed_json(tmp_path, expect_user_error, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"genomics.sample_name": "x",\n "genomics.caller": bcftools}\n')
    msg = expect_user_error(prepare, path)
    assert "not valid JSON" in msg and "line 2" in msg
    # the CLI turns it into `error: ...` and exit status 2, no traceback
    assert cli.main(["run", "genomics", "-i", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not valid JSON" in err and "Traceback" not in err


def test_unknown_image(tmp_path, expect_user_error):
    path = inputs_with(tmp_path, genomics_image="batchpipes/samtools:0123456789ab")
    msg = expect_user_error(local.resolve_images, workflows.get("genomics"), prepare(path))
    assert "unknown image 'batchpipes/samtools:0123456789ab'" in msg


def test_stale_image_tag(tmp_path, expect_user_error):
    path = inputs_with(tmp_path, genomics_image="batchpipes/genomics:0123456789ab")
    msg = expect_user_error(local.resolve_images, workflows.get("genomics"), prepare(path))
    assert "0123456789ab" in msg and "batchpipes images pin" in msg


ALIGNMENT_WDL = settings.WDL_DIR / "tasks" / "alignment.wdl"
ALIGN_INPUTS = {"fastq_1": str(DATA / "sample_R1.fastq.gz"), "fastq_2": str(DATA / "sample_R2.fastq.gz"),
                "lane_id": "S1", "fastq_names": ["fastq_r1", "fastq_r2"], "cpu": 1, "memory_gb": 1}


# Each bad input below is refused by the first task that reads it: that task alone is run (run_task).


def test_fasta_given_as_fastq(run_task, expect_user_error):
    msg = expect_user_error(run_task, ALIGNMENT_WDL, "split_lane",
                            {**ALIGN_INPUTS, "fastq_1": str(DATA / "reference.fa")})
    assert msg.endswith("split_lane: fastq_r1 'reference.fa' is FASTA, not FASTQ (starts with '>'): give sequencing "
                        "reads with qualities")


def test_mates_with_different_read_counts(run_task, expect_user_error, tmp_path):
    lines = gzip.open(DATA / "sample_R2.fastq.gz", "rt").read().splitlines(keepends=True)
    short = tmp_path / "short_R2.fastq.gz"
    with gzip.open(short, "wt") as fh:
        fh.writelines(lines[: 4 * 3000])
    msg = expect_user_error(run_task, ALIGNMENT_WDL, "split_lane", {**ALIGN_INPUTS, "fastq_2": str(short)})
    assert msg.endswith("split_lane: mates differ in length: fastq_r1 has 3300 reads, fastq_r2 has 3000; give the "
                        "two files of one paired run")


def test_truncated_fastq(run_task, expect_user_error, tmp_path):
    lines = gzip.open(DATA / "sample_R1.fastq.gz", "rt").read().splitlines(keepends=True)
    broken = tmp_path / "broken_R1.fastq"
    broken.write_text("".join(lines[:4 * 10] + lines[4 * 10 + 1:]))  # one line missing
    msg = expect_user_error(run_task, ALIGNMENT_WDL, "split_lane", {**ALIGN_INPUTS, "fastq_1": str(broken)})
    assert msg.endswith("split_lane: fastq_r1 'broken_R1.fastq' is not FASTQ: line 41: record header expected (line "
                        "starting with @)")


def test_gzipped_reference(run_task, expect_user_error, tmp_path):
    ref = tmp_path / "reference.fa.gz"
    ref.write_bytes(gzip.compress((DATA / "reference.fa").read_bytes()))
    msg = expect_user_error(run_task, settings.WDL_DIR / "tasks" / "reference.wdl", "index_reference",
                            {"reference_fasta": str(ref), "memory_gb": 1})
    assert msg.endswith("index_reference: reference_fasta 'reference.fa.gz' is gzip-compressed: give the uncompressed "
                        "FASTA (gunzip it first)")


def test_targets_outside_reference(run_task, expect_user_error, tmp_path):
    bed = tmp_path / "targets.bed"
    bed.write_text("chr1\t100\t200\n")
    fai = tmp_path / "reference.fa.fai"
    fai.write_text("NC_001807.4\t16571\t13\t70\t71\n")
    msg = expect_user_error(run_task, settings.WDL_DIR / "tasks" / "variant_calling.wdl", "split_regions",
                            {"reference_fai": str(fai), "targets_bed": str(bed)})
    assert msg.endswith("split_regions: targets_bed 'targets.bed' line 1 names contig chr1, which is not in the "
                        "reference (NC_001807.4): use the reference's contig names")


def test_unknown_caller_in_the_task(run_task, expect_user_error, tmp_path):
    """For Cromwell users who bypass the CLI: split_regions, the first task to use the caller, is its one check."""
    fai = tmp_path / "reference.fa.fai"
    fai.write_text("NC_001807.4\t16571\t13\t70\t71\n")
    msg = expect_user_error(run_task, settings.WDL_DIR / "tasks" / "variant_calling.wdl", "split_regions",
                            {"reference_fai": str(fai), "caller": "gatk"})
    assert msg.endswith("split_regions: unknown caller 'gatk': choose bcftools or freebayes")


@pytest.mark.parametrize("name", ["O'Brien", "x';touch PWNED;: '", "two words", "$(id)", "-leading", "a" * 65])
def test_sample_name_pattern(tmp_path, expect_user_error, name):
    """sample_name becomes file names and the read group: refused before anything runs unless it matches the
    pattern declared in parameter_meta."""
    msg = expect_user_error(prepare, inputs_with(tmp_path, sample_name=name))
    assert "genomics.sample_name" in msg and "letters, digits" in msg


def test_workflow_is_found_from_the_keys(tmp_path, expect_user_error):
    mine = tmp_path / "my-sample.json"
    mine.write_text(LOCAL_JSON.read_text())
    assert workflows.workflow_for_inputs(mine).name == "genomics"
    unclear = tmp_path / "unclear.json"
    unclear.write_text('{"sample_name": "x"}')
    msg = expect_user_error(workflows.workflow_for_inputs, unclear)
    assert "cannot tell which workflow" in msg
