"""Where input values come from and how they are read: paths relative to the inputs JSON, ``--set`` named as the
source of its errors, resource bounds, control characters, local-run path limits, and the results folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from batchpipes import local, results, settings, workflows
from batchpipes.run_cmd import parse_overrides

BUNDLED = settings.INPUTS_DIR / "genomics"


def write_inputs(folder: Path, **values: object) -> Path:
    """A genomics inputs JSON in ``folder`` with the bundled data by absolute path, changed by ``values``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads((settings.INPUTS_DIR / "genomics.local.json").read_text())
    data = {k: str(settings.INPUTS_DIR / v) if isinstance(v, str) and (settings.INPUTS_DIR / v).is_file() else v
            for k, v in data.items()}
    data.update({f"genomics.{k}": v for k, v in values.items()})
    path = folder / "my.inputs.json"
    path.write_text(json.dumps(data))
    return path


def test_relative_path_is_read_from_the_json_folder_not_the_cwd(tmp_path: Path, monkeypatch) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "cwd"
    path = write_inputs(project, fastq_r1="reads/R1.fastq.gz")
    (project / "reads").mkdir()
    (project / "reads" / "R1.fastq.gz").write_bytes((BUNDLED / "sample_R1.fastq.gz").read_bytes())
    (elsewhere / "reads").mkdir(parents=True)
    (elsewhere / "reads" / "R1.fastq.gz").write_bytes(b"an impostor with the same name")
    monkeypatch.chdir(elsewhere)
    resolved = local.prepare_inputs(workflows.get("genomics"), path, {})
    assert resolved["genomics.fastq_r1"] == str(project / "reads" / "R1.fastq.gz")


def test_relative_path_absent_beside_the_json_is_an_error_even_if_in_the_cwd(tmp_path: Path, monkeypatch,
                                                                              expect_user_error) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "cwd"
    path = write_inputs(project, fastq_r1="R1.fastq.gz")
    elsewhere.mkdir()
    (elsewhere / "R1.fastq.gz").write_bytes(b"not the one")
    monkeypatch.chdir(elsewhere)
    message = expect_user_error(local.prepare_inputs, workflows.get("genomics"), path, {})
    assert message == (f"{path}: genomics.fastq_r1 names file 'R1.fastq.gz', which does not exist in {project} "
                       "(relative paths in an inputs file are read from the file's own folder)")


def test_set_paths_are_read_from_the_cwd_and_errors_name_set(tmp_path: Path, monkeypatch, expect_user_error) -> None:
    path = write_inputs(tmp_path / "project")
    monkeypatch.chdir(BUNDLED)
    flow = workflows.get("genomics")
    resolved = local.prepare_inputs(flow, path, parse_overrides(["genomics.fastq_r2=sample_R1.fastq.gz"]))
    assert resolved["genomics.fastq_r2"] == str(BUNDLED / "sample_R1.fastq.gz")
    message = expect_user_error(local.prepare_inputs, flow, path, parse_overrides(["genomics.fastq_r2=nope.fq"]))
    assert message.startswith("--set: genomics.fastq_r2 names file 'nope.fq', which does not exist in "), message
    assert message.endswith("(relative paths given with --set are read from the current directory)")
    message = expect_user_error(local.prepare_inputs, flow, path, parse_overrides(["scatter_count=four"]))
    assert message.startswith("--set: "), message
    assert "scatter_count" in message
    message = expect_user_error(local.prepare_inputs, flow, path, parse_overrides(["caller=gatk"]))
    assert message == "--set: genomics.caller is 'gatk': choose one of bcftools, freebayes"


@pytest.mark.parametrize(("name", "value", "bounds"), [
    ("merge_sample.disk_gb", 100000, "1 to 16384"),
    ("align_cpu", 0, "1 to 192"),
    ("align_cpu", 1000, "1 to 192"),
    ("align_memory_gb", 65536, "1 to 4096"),
    ("call_variants.memory_gb", -1, "1 to 4096"),
])
def test_absurd_resource_requests_are_refused(tmp_path: Path, expect_user_error, name: str, value: int,
                                              bounds: str) -> None:
    path = write_inputs(tmp_path, **{name: value})
    message = expect_user_error(local.prepare_inputs, workflows.get("genomics"), path, {})
    kind = name.rpartition('.')[2].removeprefix('align_')
    assert message == (f"{path}: genomics.{name} is {value}: give {bounds} "
                       f"(the bounds on {kind} requests, see docs/troubleshooting.md)")


def test_sane_resource_requests_pass(tmp_path: Path) -> None:
    path = write_inputs(tmp_path, **{"merge_sample.disk_gb": 16384, "align_cpu": 96, "align_memory_gb": 768})
    resolved = local.prepare_inputs(workflows.get("genomics"), path, {})
    assert resolved["genomics.merge_sample.disk_gb"] == 16384


@pytest.mark.parametrize(("text", "what"), [("SIM\r001", "a carriage return"), ("SIM\x00", "a NUL byte"),
                                            ("SIM\x1b[2J", "a control character")])
def test_control_characters_are_refused(tmp_path: Path, expect_user_error, text: str, what: str) -> None:
    path = write_inputs(tmp_path, sample_name=text)
    message = expect_user_error(local.prepare_inputs, workflows.get("genomics"), path, {})
    assert message.startswith(f"{path}: genomics.sample_name holds {what} at character "), message


def test_colon_in_a_local_path_is_refused_before_podman(tmp_path: Path, expect_user_error) -> None:
    odd = tmp_path / "run:1"
    odd.mkdir()
    (odd / "R1.fq.gz").write_bytes((BUNDLED / "sample_R1.fastq.gz").read_bytes())
    path = write_inputs(tmp_path, fastq_r1=str(odd / "R1.fq.gz"))
    flow = workflows.get("genomics")
    inputs = local.prepare_inputs(flow, path, {})
    message = expect_user_error(local.run, flow, inputs, run_dir=tmp_path / "runs")
    assert message.startswith(f"genomics.fastq_r1 names '{odd / 'R1.fq.gz'}', whose path holds ':'"), message
    assert not (tmp_path / "runs").exists(), "nothing may be created before the check"
    wf = workflows.load(flow.path).workflow
    assert wf is not None
    local.check_local_paths(wf, {"genomics.caller": str(odd / "R1.fq.gz")})  # a String is not mounted: no refusal


def test_results_folder_links_outputs_with_indexes_beside_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = {}
    for key, rel in [("bam", "bam/S1.bam"), ("bai", "bai/S1.bam.bai"), ("vcf", "vcf/S1.vcf.gz"),
                     ("vcf_index", "vcf_index/S1.vcf.gz.tbi"), ("a_stats", "a/stats.txt"), ("b_stats", "b/stats.txt")]:
        f = out / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(key)
        files[f"genomics.{key}"] = str(f)
    files["genomics.maybe"] = None
    flow = workflows.get("genomics")
    folder = results.publish(flow, {"genomics.sample_name": "S1"}, tmp_path, files)
    assert folder == tmp_path / "results" / "S1"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["S1.bam", "S1.bam.bai", "S1.vcf.gz", "S1.vcf.gz.tbi", "b_stats.stats.txt", "stats.txt"]
    assert (folder / "stats.txt").read_text() == "a_stats" and (folder / "b_stats.stats.txt").read_text() == "b_stats"
    assert os.stat(folder / "S1.bam").st_ino == os.stat(out / "bam" / "S1.bam").st_ino  # a link, not a copy
    assert not list((tmp_path / "results").glob(".*")), "no partial folder may be left"


def test_results_folder_falls_back_to_the_workflow_name(tmp_path: Path) -> None:
    flow = workflows.get("hevc")
    assert results.folder_name(flow, {"hevc.output_name": "clip_1"}) == "clip_1"
    assert results.folder_name(flow, {}) == "hevc"
    assert results.folder_name(workflows.get("gromacs"), {"gromacs.name": "1aki"}) == "1aki"


def test_each_run_gets_a_new_folder_and_last_points_at_it(tmp_path: Path) -> None:
    first = local.new_run_dir(tmp_path, "genomics")
    second = local.new_run_dir(tmp_path, "genomics")
    assert first != second and first.is_dir() and second.is_dir()
    assert (tmp_path / "_LAST").resolve() == second
    assert not list(tmp_path.glob("._LAST*")), "no temporary link may be left"
