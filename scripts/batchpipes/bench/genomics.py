"""Genomics: the workflow under miniwdl vs the same task commands run one after another, without the engine.

The baseline ("bare") is each task's own command, rendered from its WDL by miniwdl's expression evaluator with
the same inputs (its write_lines files included) and run with bash in a plain container of the task's image, one
task after another: the tools and the installed scripts (``genomics-tasks``, ``snpeff-tasks``) exactly as the
tasks run them, never a copy of their command lines. Prints both wall times and their ratio (target: workflow <=
1.10 x bare), and how long the two branches after alignment (QC, and variant calling + annotation) ran at the same
time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import WDL
from WDL.runtime.task import _task_decl_eval_order

from .. import containers, local, podman, settings, workflows
from ..errors import UserError

log = logging.getLogger(__name__)
DATA = settings.INPUTS_DIR / "genomics"
TASKS = settings.WDL_DIR / "tasks"


class _HostStdLib(WDL.StdLib.Base):
    """The WDL standard library on host paths (the bare containers mount the work folder at the same path)."""

    def _devirtualize_filename(self, filename: str) -> str:
        return filename

    def _virtualize_filename(self, filename: str) -> str:
        return filename


def render_command(wdl: Path, task_name: str, inputs: dict[str, Any], write_dir: Path) -> tuple[str, str]:
    """The task's command (bash) and docker image for ``inputs`` (un-prefixed names), as miniwdl evaluates them;
    write_lines/write_json files go to ``write_dir``."""
    task = next(t for t in WDL.load(str(wdl)).tasks if t.name == task_name)
    env = WDL.values_from_json(inputs, task.available_inputs)
    write_dir.mkdir(parents=True, exist_ok=True)
    stdlib = _HostStdLib(task.effective_wdl_version, write_dir=str(write_dir))
    for decl in _task_decl_eval_order(d for d in (task.inputs or []) + task.postinputs if not env.has_binding(d.name)):
        value = decl.expr.eval(env, stdlib).coerce(decl.type) if decl.expr is not None else WDL.Value.Null()
        env = env.bind(decl.name, value)
    command = task.command.eval(env, stdlib, dedent=True).value
    return command, str(env["docker_image"].value)


class BareTasks:
    """Run task commands in sequence, each in its own folder under ``work``/bare, in the task's image."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "bare"
        self.images: dict[str, str] = {}

    def image(self, pinned: str) -> str:
        name = pinned.split("/", 1)[-1].split(":", 1)[0]
        if name not in self.images:
            self.images[name] = containers.build(containers.get(name))
        return self.images[name]

    def run(self, wdl: str, task: str, inputs: dict[str, Any], folder: str | None = None) -> Path:
        here = self.root / (folder or task)
        command, pinned = render_command(TASKS / wdl, task, inputs, here / ".inputs")
        proc = subprocess.run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(),
                               "-v", f"{self.work}:{self.work}", "-w", str(here), self.image(pinned),
                               "bash", "-c", command], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise UserError(f"bare {task} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        return here


def _bare(work: Path, sample: str, cpu: int, shards: int) -> float:
    """The tasks the workflow runs for these inputs, in one sequence; seconds."""
    local_inputs = json.loads((settings.INPUTS_DIR / "genomics.local.json").read_text())
    genome, codon = local_inputs["genomics.snpeff_genome"], local_inputs["genomics.codon_table"]
    bare = BareTasks(work)
    for name in ("genomics", "snpeff"):  # built outside the timed region
        bare.images[name] = containers.build(containers.get(name))
    ref = str(work / "reference.fa")
    started = time.monotonic()
    idx = bare.run("reference.wdl", "index_reference", {"reference_fasta": ref})
    fai = str(idx / "reference.fa.fai")
    aln = bare.run("alignment.wdl", "align_reads", {
        "fastq_r1": str(work / "R1.fastq.gz"), "fastq_r2": str(work / "R2.fastq.gz"), "reference_fasta": ref,
        "aligner_index": [str(p) for p in sorted((idx / "index").iterdir())], "sample_name": sample, "cpu": cpu})
    bam = {"bam": str(aln / f"{sample}.bam"), "bai": str(aln / f"{sample}.bam.bai")}
    split = bare.run("variant_calling.wdl", "split_regions", {"reference_fai": fai, "scatter_count": shards})
    bare.run("qc.wdl", "alignment_qc", {**bam, "reference_fasta": ref, "sample_name": sample})
    bare.run("qc.wdl", "callable_regions", {**bam, "reference_fai": fai, "sample_name": sample})
    vcfs = []
    for region in sorted((split / "regions").glob("region_*.bed")):
        shard = bare.run("variant_calling.wdl", "call_variants", {**bam, "reference_fasta": ref, "reference_fai": fai,
                                                                   "regions_bed": str(region)}, f"call_{region.stem}")
        vcfs.append(str(shard / f"{region.stem}.vcf.gz"))
    merged = bare.run("variant_calling.wdl", "merge_vcfs", {"vcfs": vcfs, "reference_fasta": ref,
                                                            "reference_fai": fai, "sample_name": sample})
    db = bare.run("annotation.wdl", "build_snpeff_db", {"annotation": str(work / "annotation.gbk.gz"),
                                                        "reference_fasta": ref, "reference_fai": fai,
                                                        "genome_name": genome, "codon_table": codon})
    bare.run("annotation.wdl", "annotate_variants", {"vcf": str(merged / f"{sample}.vcf.gz"),
                                                     "database": str(db / "snpeff_db.tar.gz"), "genome_name": genome,
                                                     "sample_name": sample})
    return time.monotonic() - started


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=8,
                   help="replicate the bundled read pairs this many times (renamed) to amortise start-up")
    p.add_argument("--cpu", type=int, default=2, help="threads for alignment in both runs")
    p.add_argument("--shards", type=int, default=4, help="variant-calling shards in both runs")


def _scaled_reads(work: Path, scale: int) -> tuple[Path, Path]:
    out = []
    for mate in (1, 2):
        lines = gzip.open(DATA / f"sample_R{mate}.fastq.gz", "rt").read().splitlines(keepends=True)
        path = work / f"R{mate}.fastq.gz"
        with gzip.open(path, "wt", compresslevel=1) as fh:
            for copy in range(scale):
                for i, line in enumerate(lines):
                    fh.write(f"@c{copy}_{line[1:]}" if i % 4 == 0 else line)
        out.append(path)
    return out[0], out[1]


_EVENT = re.compile(r"^(\S+ \S+) wdl\.w:\S+ NOTICE (ready|finish) :: job: \"call-([a-z_]+)")


def branch_intervals(run_dir: Path) -> dict[str, tuple[float, float]]:
    """(first ready, last finish) per task name, in seconds, from miniwdl's workflow.log."""
    spans: dict[str, list[float]] = {}
    for line in (run_dir / "workflow.log").read_text().splitlines():
        m = _EVENT.match(line)
        if m:
            t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            spans.setdefault(m[3], []).append(t)
    return {k: (min(v), max(v)) for k, v in spans.items()}


def main(args: argparse.Namespace) -> int:
    flow = workflows.get("genomics")
    with tempfile.TemporaryDirectory(prefix="batchpipes-bench-") as tmp:
        work = Path(tmp)
        r1, r2 = _scaled_reads(work, args.scale)
        for name in ("reference.fa", "annotation.gbk.gz"):
            (work / name).write_bytes((DATA / name).read_bytes())
        inputs = local.prepare_inputs(flow, settings.INPUTS_DIR / "genomics.local.json", {
            "genomics.fastq_r1": str(r1), "genomics.fastq_r2": str(r2),
            "genomics.align_cpu": args.cpu, "genomics.scatter_count": args.shards})
        inputs = local.resolve_images(flow, inputs)  # build/push outside the timed region
        log.info("bare task commands: %d read pairs", 3300 * args.scale)
        bare = _bare(work, str(inputs["genomics.sample_name"]), args.cpu, args.shards)
        log.info("workflow under miniwdl")
        started = time.monotonic()
        result = local.run(flow, inputs, run_dir=work / "runs", call_cache=False)
        wf = time.monotonic() - started
        spans = branch_intervals(result.run_dir)
        n_tasks = len(list(result.run_dir.glob("call-*")))
    qc = spans["alignment_qc"]
    calling = (min(spans["call_variants"][0], spans["build_snpeff_db"][0]), spans["annotate_variants"][1])
    overlap = max(0.0, min(qc[1], calling[1]) - max(qc[0], calling[0]))
    print(f"read pairs        {3300 * args.scale}")
    print(f"bare tasks        {bare:7.1f} s  (the tasks' own commands in sequence, one container each)")
    print(f"workflow          {wf:7.1f} s  (miniwdl, {n_tasks} task containers)")
    print(f"ratio             {wf / bare:7.2f} x  (target <= 1.10)")
    print(f"QC branch         {qc[1] - qc[0]:7.1f} s; calling+annotation branch {calling[1] - calling[0]:.1f} s; "
          f"overlap {overlap:.1f} s")
    print(f"snpEff database built during alignment: "
          f"{spans['build_snpeff_db'][0] < spans['align_reads'][1]}")
    return 0
