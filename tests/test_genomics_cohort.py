"""The cohort workflow (wdl/genomics_cohort.wdl) end to end under miniwdl in real containers, on the simulated
cohort of inputs/genomics/cohort/ (3 samples, COH2 in two lanes; shared, partly shared and private variants with a
per-sample truth): joint calls checked per sample against the truth (recall, precision, genotype concordance,
private variants only in their sample), read groups through the merge, duplicates marked per library, a
single-end lane, the results folders, MultiQC, and the N+1 rerun under the call cache."""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from batchpipes import evaluate, local, settings, workflows

COHORT = settings.INPUTS_DIR / "genomics" / "cohort"
DATA = settings.INPUTS_DIR / "genomics"
SAMPLES = ("COH1", "COH2", "COH3")
#: Read pairs of each lane (inputs/genomics/cohort/provenance.json).
LANE_PAIRS = {"COH1.L001": 2750, "COH2.L001": 1513, "COH2.L002": 1237, "COH3.L001": 2750}


def out(run: local.RunResult, name: str) -> Any:
    return run.outputs[f"genomics_cohort.{name}"]


def samtools(image: str, folder: Path, *args: str) -> str:
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{folder}:/d:ro",
                           image, *args], capture_output=True, text=True, check=True, timeout=300)
    return proc.stdout


def image_of(run: local.RunResult, call: str) -> str:
    folder = next(p for p in sorted(run.run_dir.rglob(f"call-{call}*")) if (p / "inputs.json").is_file())
    return str(json.loads((folder / "inputs.json").read_text())["docker_image"])


@pytest.fixture(scope="module")
def cohort_run(podman_ready, tmp_path_factory):
    """The bundled cohort as a user runs it: `batchpipes run genomics --samples inputs/genomics/cohort/samples.tsv`
    (the other inputs from inputs/genomics_cohort.local.json: bcftools, 1000 pairs per shard, per-sample VCFs)."""
    runs = tmp_path_factory.mktemp("cli-cohort")
    proc = subprocess.run([str(settings.REPO_ROOT / ".venv" / "bin" / "batchpipes"), "run", "genomics", "--samples",
                           str(COHORT / "samples.tsv"), "--no-cache", "--dir", str(runs)],
                          capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    log = proc.stderr.splitlines()
    assert any(line.endswith("samples_summary: 3 samples, 4 lanes (4 paired, 0 single-end)") for line in log), log
    assert log[-1].endswith(f"results (indexes beside their files): {printed['results']}"), log[-1]
    return local.RunResult(Path(printed["dir"]), printed["outputs"], Path(printed["results"]))


@pytest.fixture(scope="module")
def freebayes_run(run_workflow):
    """Exome mode (the 13 CDS as targets) with freebayes and minimap2."""
    return run_workflow("genomics_cohort", caller="freebayes", aligner="minimap2", per_sample_vcfs=False,
                        targets_bed=str(DATA / "targets.bed"))


@pytest.mark.parametrize("which", ["bcftools", "freebayes"])
def test_joint_calls_match_each_samples_truth(cohort_run, freebayes_run, which):
    run = cohort_run if which == "bcftools" else freebayes_run
    targets = evaluate.read_bed(DATA / "targets.bed") if which == "freebayes" else None
    report = evaluate.compare_cohort(COHORT / "truth_cohort.vcf.gz", Path(out(run, "vcf")), regions=targets)
    assert sorted(report.samples) == list(SAMPLES)
    for sample in SAMPLES:
        snp, indel = report.accuracy[sample]["snp"], report.accuracy[sample]["indel"]
        assert snp.recall is not None and snp.recall >= 0.98, (which, sample, snp.line())
        assert snp.precision is not None and snp.precision >= 0.98, (which, sample, snp.line())
        assert indel.recall is not None and indel.recall >= 0.90, (which, sample, indel.line())
        assert indel.precision is not None and indel.precision >= 0.90, (which, sample, indel.line())
        conc = report.concordance[sample]
        assert conc.rate is not None and conc.rate >= 0.95, (which, sample, conc.mismatches)
        private = report.private[sample]
        assert private.ok and private.found == private.variants >= (10 if targets is None else 3), \
            (which, sample, private.found, private.variants, private.elsewhere)


def test_exome_mode_calls_and_callable_regions_stay_in_the_targets(freebayes_run):
    targets = evaluate.Regions([(c, max(0, s - 50), e + 50) for c, s, e in evaluate.read_bed(DATA / "targets.bed")])
    calls = evaluate.read_variants(Path(out(freebayes_run, "vcf")))
    assert calls and all(targets.contains(k[0], k[1]) for k in calls)
    for path in [*out(freebayes_run, "callable_beds"), out(freebayes_run, "cohort_callable_bed")]:
        for chrom, start, end in evaluate.read_bed(Path(path)):
            assert targets.contains(chrom, start + 1) and targets.contains(chrom, end), (path, start, end)
    first = Path(out(freebayes_run, "cohort_callable_summary")).read_text().splitlines()[0]
    assert re.fullmatch(r"COH: \d+ bp callable in all 3 samples \(\d+\.\d\d% of \d+ bp\)", first), first
    assert int(first.rsplit(" of ", 1)[1].split()[0]) < 16571  # the padded targets, not the genome


def test_cohort_vcf_has_every_samples_genotype_depth_and_allele_depths(cohort_run):
    text = gzip.open(out(cohort_run, "vcf"), "rt").read()
    header = next(line for line in text.splitlines() if line.startswith("#CHROM"))
    assert sorted(header.split("\t")[9:]) == list(SAMPLES)
    records = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    assert len(records) >= 55
    for rec in records:
        keys = rec[8].split(":")
        assert {"GT", "AD", "DP"} <= set(keys), rec[8]
        for column in rec[9:]:
            fields = dict(zip(keys, column.split(":"), strict=True))
            if fields["GT"] not in ("./.", "."):
                assert int(fields["DP"]) > 0 and len(fields["AD"].split(",")) == len(rec[4].split(",")) + 1


def test_per_sample_vcfs_are_the_samples_own_calls(cohort_run):
    names = out(cohort_run, "sample_names")
    assert names == list(SAMPLES)  # the sheet's order
    for sample, path in zip(names, out(cohort_run, "sample_vcfs"), strict=True):
        assert Path(path).name == f"{sample}.vcf.gz"
        acc = evaluate.compare(COHORT / f"truth_{sample}.vcf.gz", Path(path))
        assert acc["snp"].recall == acc["snp"].precision == 1.0, acc["snp"].line()
        assert acc["indel"].recall is not None and acc["indel"].recall >= 0.9, acc["indel"].line()


def test_read_groups_survive_the_merge(cohort_run):
    bams = dict(zip(out(cohort_run, "sample_names"), out(cohort_run, "bams"), strict=True))
    image = image_of(cohort_run, "merge_sample")
    bam = Path(bams["COH2"]).resolve()  # miniwdl's out/ holds links: mount the file's own folder
    header = samtools(image, bam.parent, "samtools", "view", "-H", f"/d/{bam.name}")
    groups = sorted(line for line in header.splitlines() if line.startswith("@RG"))
    assert groups == ["@RG\tID:COH2.L001\tSM:COH2\tPL:ILLUMINA\tLB:COH2-lib1",
                      "@RG\tID:COH2.L002\tSM:COH2\tPL:ILLUMINA\tLB:COH2-lib1"]
    tags = samtools(image, bam.parent, "samtools", "view", "-F", "0x900", f"/d/{bam.name}")
    per_group: dict[str, int] = {}
    for line in tags.splitlines():
        m = re.search(r"\tRG:Z:(\S+)", line)
        assert m, line[:80]
        per_group[m[1]] = per_group.get(m[1], 0) + 1
    # every read of each lane, in its lane's read group (fastp trims but drops no pair of these reads)
    assert per_group == {rg: 2 * n for rg, n in LANE_PAIRS.items() if rg.startswith("COH2.")}


def test_lanes_were_aligned_as_shards(cohort_run):
    """1000 pairs per shard: each lane is at least ceil(pairs / 1000) shards, each its own align_shard job."""
    shards = [p for p in cohort_run.run_dir.rglob("call-align_shard*") if (p / "inputs.json").is_file()]
    assert len(shards) >= sum(math.ceil(n / 1000) for n in LANE_PAIRS.values())
    counts = [Path(c) for lane in out(cohort_run, "read_counts") for c in lane]
    assert sorted(c.name for c in counts) == sorted(f"{rg}.read_counts.tsv" for rg in LANE_PAIRS)
    for path in counts:
        rows = dict(line.split("\t") for line in path.read_text().splitlines())
        rg = path.name.removesuffix(".read_counts.tsv")
        assert rows == {"fastq_1": str(LANE_PAIRS[rg]), "fastq_2": str(LANE_PAIRS[rg]),
                        "after_fastp": str(LANE_PAIRS[rg])}


def test_results_folders_hold_each_sample_and_the_cohort(cohort_run):
    results = cohort_run.results_dir
    assert results is not None and results.name == "results"
    assert sorted(p.name for p in results.iterdir()) == [*SAMPLES, "cohort"]
    for sample in SAMPLES:
        names = {p.name for p in (results / sample).iterdir()}
        assert {f"{sample}.bam", f"{sample}.bam.bai", f"{sample}.vcf.gz", f"{sample}.vcf.gz.tbi",
                f"{sample}.callable.bed.gz", f"{sample}.callable.bed.gz.tbi", f"{sample}.markdup.txt"} <= names
    cohort = {p.name for p in (results / "cohort").iterdir()}
    assert {"COH.vcf.gz", "COH.vcf.gz.tbi", "COH.ann.vcf.gz", "COH.ann.vcf.gz.tbi", "COH.multiqc.html",
            "COH.callable.bed.gz", "COH.callable.bed.gz.tbi"} <= cohort
    assert not any(name.endswith(".bam") for name in cohort)


def test_multiqc_reports_every_tool_for_every_sample(cohort_run):
    html = Path(out(cohort_run, "multiqc_report"))
    assert html.name == "COH.multiqc.html" and "MultiQC" in html.read_text(errors="replace")[:20000]
    data = json.loads(Path(out(cohort_run, "multiqc_data")).read_text())
    seen = {sample for table in data["report_general_stats_data"] for sample in table}
    assert set(LANE_PAIRS) <= seen  # fastp, one row per lane (read group)
    assert set(SAMPLES) <= seen  # samtools and mosdepth, per sample
    modules = {name for section in data.get("report_data_sources", {}) for name in [section.lower()]}
    assert {"fastp", "samtools", "mosdepth", "bcftools", "snpeff"} <= modules, modules


def test_cohort_callable_is_callable_in_every_sample(cohort_run):
    beds = [evaluate.read_bed(Path(p)) for p in out(cohort_run, "callable_beds")]
    cohort = evaluate.Regions(evaluate.read_bed(Path(out(cohort_run, "cohort_callable_bed"))))
    samples = [evaluate.Regions(bed) for bed in beds]
    for pos in range(1, 16572, 7):
        in_all = all(r.contains("NC_001807.4", pos) for r in samples)
        assert cohort.contains("NC_001807.4", pos) == in_all, pos
    first = Path(out(cohort_run, "cohort_callable_summary")).read_text().splitlines()[0]
    assert re.fullmatch(r"COH: \d+ bp callable in all 3 samples \(\d+\.\d\d% of 16571 bp\)", first), first


def _reads(mate: int, n: int | None = None) -> list[str]:
    lines = gzip.open(COHORT / f"COH1_L001_R{mate}.fastq.gz", "rt").read().splitlines(keepends=True)
    return lines[: 4 * n] if n else lines


def _copy_named(path: Path, lines: list[str], tag: str) -> Path:
    """The same reads under other names (a re-sequenced library: same fragments, other read names)."""
    with gzip.open(path, "wt") as fh:
        for i, line in enumerate(lines):
            fh.write(f"@{tag}{line[1:]}" if i % 4 == 0 else line)
    return path


def _lane(rg: str, library: str, r1: Path, r2: Path | None = None) -> dict[str, Any]:
    lane: dict[str, Any] = {"read_group": rg, "library": library, "platform": "ILLUMINA", "fastq_1": str(r1)}
    if r2 is not None:
        lane["fastq_2"] = str(r2)
    return lane


def _flagstat_duplicates(run: local.RunResult, sample: str) -> tuple[int, int]:
    names = out(run, "sample_names")
    path = Path(out(run, "flagstats")[names.index(sample)])
    text = path.read_text()
    total = int(re.search(r"^(\d+) \+ \d+ in total", text, re.M)[1])  # type: ignore[index]
    dups = int(re.search(r"^(\d+) \+ \d+ duplicates", text, re.M)[1])  # type: ignore[index]
    return dups, total


def test_duplicates_are_marked_within_a_library_and_single_end_lanes_align(run_workflow, tmp_path):
    """The same fragments in two lanes: duplicates of each other in one library; not across two libraries (a
    second library is other molecules, whatever the positions). And a single-end sample goes through."""
    r1, r2 = _reads(1, 800), _reads(2, 800)
    files = {f"{tag}_R{m}": _copy_named(tmp_path / f"{tag}_R{m}.fq.gz", r, tag)
             for tag in ("a", "b", "c", "d") for m, r in ((1, r1), (2, r2))}
    se = _copy_named(tmp_path / "se.fq.gz", _reads(1), "se")
    samples = [
        {"name": "ONELIB", "lanes": [_lane("ONELIB.L1", "libA", files["a_R1"], files["a_R2"]),
                                     _lane("ONELIB.L2", "libA", files["b_R1"], files["b_R2"])]},
        {"name": "TWOLIBS", "lanes": [_lane("TWOLIBS.L1", "libA", files["c_R1"], files["c_R2"]),
                                      _lane("TWOLIBS.L2", "libB", files["d_R1"], files["d_R2"])]},
        {"name": "SINGLE", "lanes": [_lane("SINGLE.L1", "SINGLE", se)]},
    ]
    run = run_workflow("genomics_cohort", samples=samples, per_sample_vcfs=False)
    dups, total = _flagstat_duplicates(run, "ONELIB")
    assert total == 3200 and dups >= 0.45 * total, (dups, total)
    dups, total = _flagstat_duplicates(run, "TWOLIBS")
    assert total == 3200 and dups <= 0.02 * total, (dups, total)
    names = out(run, "sample_names")
    counts = Path(out(run, "read_counts")[names.index("SINGLE")][0]).read_text()
    assert counts == "fastq_1\t2750\nafter_fastp\t2750\n"
    stats = evaluate.stats_summary(Path(out(run, "samtools_stats")[names.index("SINGLE")]))
    assert stats["reads mapped"] >= 0.95 * 2750 and stats.get("reads paired", 0) == 0, stats
    assert out(run, "samples_summary") == "3 samples, 5 lanes (4 paired, 1 single-end)"


def test_an_added_sample_reruns_only_its_own_alignment(podman_ready, tmp_path):
    """N + 1 under the call cache: the first samples' lane, shard, merge and QC jobs are cache hits; the new
    sample's are not; the joint calling reruns (its inputs changed)."""
    flow = workflows.get("genomics_cohort")
    base = json.loads((settings.INPUTS_DIR / "genomics_cohort.local.json").read_text())
    copies = tmp_path / "data"  # fresh paths: no hit from an earlier session's cache
    shutil.copytree(COHORT, copies)
    for name in ("reference.fa", "annotation.gbk.gz"):
        shutil.copy(DATA / name, copies / name)
    samples = json.loads(json.dumps(base["genomics_cohort.samples"]).replace("genomics/cohort/", f"{copies}/"))
    by_name = {s["name"]: s for s in samples}
    common = {**base, "genomics_cohort.reference_fasta": str(copies / "reference.fa"),
              "genomics_cohort.annotation": str(copies / "annotation.gbk.gz")}

    def run(names: list[str], folder: str) -> local.RunResult:
        path = tmp_path / f"{folder}.json"
        path.write_text(json.dumps({**common, "genomics_cohort.samples": [by_name[n] for n in names]}))
        inputs = local.prepare_inputs(flow, path, {})
        return local.run(flow, inputs, run_dir=tmp_path / folder, call_cache=True)

    run(["COH1", "COH3"], "first")
    second = run(["COH1", "COH3", "COH2"], "second")
    log = (second.run_dir / "workflow.log").read_text()
    hits = set(re.findall(r"t:call-([a-z_]+)-(\d+)\S* NOTICE done \(cached\)", log))
    for task in ("split_lane", "align_shard", "merge_sample", "alignment_qc", "callable_regions"):
        assert {(task, "0"), (task, "1")} <= hits, (task, sorted(hits))
        assert (task, "2") not in hits, (task, sorted(hits))
        ran = [p for p in second.run_dir.glob(f"call-{task}-2*") if (p / "stderr.txt").is_file()]
        assert ran, f"the new sample's {task} did not run"
    assert not any(t in ("call_variants", "merge_vcfs", "multiqc") for t, _ in hits), sorted(hits)
    assert "t:call-index_reference NOTICE done (cached)" in log  # and the reference's index is reused


@pytest.mark.parametrize(("change", "expected"), [
    ({"name": "x';touch PWNED;: '"}, "check_samples: sample name 'x';touch PWNED;: '' may hold only letters"),
    ({"read_group": "COH1.L001\tLB:evil"}, "check_samples: lane 1 has 7 fields, not 6: a value holds a tab"),
    ({"platform": "HiSeq $(touch PWNED)"}, "platform 'HiSeq $(touch PWNED)' is not a SAM platform"),
])
def test_a_cohort_given_as_json_is_checked_by_its_first_task(run_workflow, tmp_path, change, expected):
    """Cromwell users (and `-i` users) write the samples JSON themselves: check_samples refuses what the sheet
    check would, before any read is touched, and nothing runs a value."""
    base = json.loads((settings.INPUTS_DIR / "genomics_cohort.local.json").read_text())
    samples = json.loads(json.dumps(base["genomics_cohort.samples"]).replace("genomics/cohort/", f"{COHORT}/"))
    key = "name" if "name" in change else next(iter(change))
    if key == "name":
        samples[0]["name"] = change["name"]
    else:
        samples[0]["lanes"][0][key] = change[key]
    from batchpipes.errors import UserError

    with pytest.raises(UserError) as info:
        run_workflow("genomics_cohort", samples=samples)
    assert expected in str(info.value), str(info.value)
    assert "failed in check_samples" in str(info.value)
    assert not list(tmp_path.rglob("PWNED")) and not (settings.REPO_ROOT / "PWNED").exists()
