"""Genomics: the workflow vs its bare task commands; a cohort vs single-sample runs; sharded vs unsharded alignment;
our alignment+sort per core vs bare bwa mem | samtools sort, at two input sizes.

Reads: the bundled pairs (inputs/genomics, 3,300 pairs of 2x150 on the 16.6 kb human mitochondrion) replicated
``--scale`` times with renamed read names, so that container start-up is a small share of what is measured (the
share is printed: podman's start-up of one container, measured here, times the containers run, over the wall time).

Parts (``--parts``, all by default; each prints what it measured and the ratio; nothing asserts a time):

* ``workflow``: wdl/genomics.wdl under miniwdl vs the same tasks' own commands one after another ("bare"): each
  task's command rendered from its WDL by miniwdl's expression evaluator with the same inputs (its write_lines
  files included) and run with bash in a plain container of the task's image, never a copy of its command lines
  (index_reference, split_lane, each align_shard, merge_sample, split_regions, alignment_qc, callable_regions, each
  call_variants, merge_vcfs, build_snpeff_db, annotate_variants). Target: workflow <= 1.10 x bare. Also how long
  the branches after merge_sample (QC; calling + annotation) ran at the same time, and how much of the snpEff
  database build ran during the alignment phase.
* ``sharding``: the same workflow on the same reads with ``--align-shards`` alignment shards vs one
  (reads_per_shard huge), split_lane on one thread in both (fastp writes at least one shard per thread), sharded
  first: wall times, the alignment phase (split_lane start to merge_sample end) and their ratios.
  On this machine all shards share its cores, so this shows the cost of sharding (more containers, a merge); on AWS
  each shard is a job on its own instance (parallelism, and a Spot reclaim loses one shard, not the sample).
* ``cohort``: genomics_cohort with ``--cohort-samples`` samples (one run) vs as many genomics runs (one each, one
  after another), the same reads in both (each sample: the scaled reads under its own read names); with the tasks
  each side ran once per sample or once per cohort (reference index, snpEff database, calling jobs).
* ``align``: per core, our alignment+sort (split_lane, align_shard, merge_sample: the tasks' commands, bare,
  ``--cpu`` threads each, reads_per_shard huge: one shard per fastp thread) vs ``bwa mem -t C | samtools sort -@ C`` in the same image on the same reads, at
  each ``--sizes`` scale (alternating, ``--repeats`` times): seconds, pairs/s/core, ratio, and how each grows from
  the smallest to the largest size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
#: Read pairs in the bundled sample (inputs/genomics/sample_R1.fastq.gz).
BUNDLED_PAIRS = 3300
#: reads_per_shard of an unsharded run: more pairs than any benchmark writes.
ONE_SHARD = 1_000_000_000
#: split_lane's smallest reads_per_shard (fastp --split_by_lines takes at least 4,000 lines).
MIN_READS_PER_SHARD = 1000
PARTS = ("workflow", "sharding", "cohort", "align")


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


# ---- pure parts: logs, shard sizes, ratios -------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpan:
    """One task container of a miniwdl run: the task's name and when its container ran (seconds since the epoch)."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \S+ NOTICE (task setup|podman run|done)\b(.*)$")
_SETUP_NAME = re.compile(r':: name: "([^"]+)"')


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def parse_task_log(text: str) -> TaskSpan | None:
    """The span of one miniwdl task.log: from its container's start ("podman run"; "task setup" when there is none)
    to "done"; None for a task that did not finish."""
    name, setup, start, end = "", None, None, None
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if not m:
            continue
        t = _stamp(m[1])
        if m[2] == "task setup":
            found = _SETUP_NAME.search(m[3])
            name, setup = (found[1] if found else name), t
        elif m[2] == "podman run" and start is None:
            start = t
        elif m[2] == "done":
            end = t
    begin = start if start is not None else setup
    if not name or begin is None or end is None:
        return None
    return TaskSpan(name, begin, end)


def task_spans(run_dir: Path) -> list[TaskSpan]:
    """Every finished task of a miniwdl run folder, from the task.log files under it."""
    spans = (parse_task_log(p.read_text(errors="replace")) for p in sorted(run_dir.rglob("task.log")))
    return [s for s in spans if s is not None]


def by_task(spans: Iterable[TaskSpan]) -> dict[str, list[TaskSpan]]:
    out: dict[str, list[TaskSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def interval(spans: Sequence[TaskSpan]) -> tuple[float, float]:
    """(first start, last end) of some tasks."""
    return min(s.start for s in spans), max(s.end for s in spans)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds two intervals share (0 when they do not meet)."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def reads_per_shard(pairs: int, shards: int) -> int:
    """The reads_per_shard that cuts ``pairs`` into at most ``shards`` shards of about equal size."""
    if pairs < 1 or shards < 1:
        raise ValueError(f"pairs and shards must be positive, not {pairs} and {shards}")
    return math.ceil(pairs / shards)


def pairs_per_core_second(pairs: int, seconds: float, cpu: int) -> float:
    return pairs / (seconds * cpu)


def startup_share(containers_run: int, startup_s: float, wall_s: float) -> float:
    """The share of ``wall_s`` that ``containers_run`` container start-ups of ``startup_s`` each would take."""
    return containers_run * startup_s / wall_s


@dataclass(frozen=True)
class Growth:
    """How a cost grows from a small input to a large one."""

    size_ratio: float     # large / small input
    time_ratio: float     # large / small seconds
    per_pair_ratio: float  # seconds per pair, large / small (1.0: linear)
    exponent: float       # time ~ size ** exponent


def growth(small_size: float, small_s: float, large_size: float, large_s: float) -> Growth:
    if not 0 < small_size < large_size or small_s <= 0 or large_s <= 0:
        raise ValueError("growth needs two positive sizes in increasing order and positive times")
    size_ratio, time_ratio = large_size / small_size, large_s / small_s
    return Growth(size_ratio, time_ratio, time_ratio / size_ratio, math.log(time_ratio) / math.log(size_ratio))


def alternate(first: str, second: str, repeats: int) -> list[str]:
    """ABBA order: each kind runs first as often as the other (load drift hits both alike)."""
    return [x for i in range(repeats) for x in ((first, second) if i % 2 == 0 else (second, first))]


def cohort_inputs(samples: Sequence[tuple[str, Path, Path]], work: Path, settings_: dict[str, Any]) -> dict[str, Any]:
    """genomics_cohort inputs: one single-lane paired sample per (name, R1, R2), the reference and annotation in
    ``work``, plus ``settings_`` (un-prefixed input names)."""
    return {
        "genomics_cohort.samples": [
            {"name": name, "lanes": [{"read_group": f"{name}.L001", "library": name, "platform": "ILLUMINA",
                                      "fastq_1": str(r1), "fastq_2": str(r2)}]}
            for name, r1, r2 in samples],
        "genomics_cohort.reference_fasta": str(work / "reference.fa"),
        "genomics_cohort.annotation": str(work / "annotation.gbk.gz"),
        **{f"genomics_cohort.{k}": v for k, v in settings_.items()},
    }


def scale_reads(out_dir: Path, scale: int, prefix: str = "c") -> tuple[Path, Path]:
    """The bundled pairs ``scale`` times, read names made unique (``@<prefix><copy>_<name>``), gzip level 1."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for mate in (1, 2):
        with gzip.open(DATA / f"sample_R{mate}.fastq.gz", "rt") as src:
            lines = src.read().splitlines(keepends=True)
        path = out_dir / f"R{mate}.fastq.gz"
        with gzip.open(path, "wt", compresslevel=1) as fh:
            for copy in range(scale):
                for i, line in enumerate(lines):
                    fh.write(f"@{prefix}{copy}_{line[1:]}" if i % 4 == 0 else line)
        out.append(path)
    return out[0], out[1]


# ---- runs ----------------------------------------------------------------------------------------------------------

class BareTasks:
    """Run task commands in sequence, each in its own folder under ``work``/bare, in the task's image; ``times``
    records (task, seconds) of every container."""

    def __init__(self, work: Path, root: str = "bare") -> None:
        self.work = work
        self.root = work / root
        self.images: dict[str, str] = {}
        self.times: list[tuple[str, float]] = []

    def image(self, pinned: str) -> str:
        name = pinned.split("/", 1)[-1].split(":", 1)[0]
        if name not in self.images:
            self.images[name] = containers.build(containers.get(name))
        return self.images[name]

    def run(self, wdl: str, task: str, inputs: dict[str, Any], folder: str | None = None) -> Path:
        here = self.root / (folder or task)
        command, pinned = render_command(TASKS / wdl, task, inputs, here / ".inputs")
        image = self.image(pinned)
        started = time.monotonic()
        _podman_run(self.work, here, image, command, f"bare {task}")
        self.times.append((task, time.monotonic() - started))
        return here

    def seconds(self, *tasks: str) -> float:
        return sum(s for t, s in self.times if not tasks or t in tasks)


def _podman_run(work: Path, here: Path, image: str, command: str, what: str) -> None:
    here.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(),
                           "-v", f"{work}:{work}", "-w", str(here), image, "bash", "-c", command],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"{what} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def _startup(image: str, times: int = 5) -> float:
    """Median seconds of ``podman run --rm`` of a command that does nothing, in ``image``."""
    seconds = []
    for _ in range(times):
        started = time.monotonic()
        subprocess.run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(), image, "true"],
                       capture_output=True, check=True)
        seconds.append(time.monotonic() - started)
    return statistics.median(seconds)


def _align_chain(bare: BareTasks, reads: tuple[Path, Path], index: Path, sample: str, rps: int, align_cpu: int,
                 cpu: int | None) -> Path:
    """split_lane, each align_shard (``align_cpu`` threads), merge_sample: the tasks' commands, bare; the
    merge_sample folder. ``cpu``: threads of split_lane and merge_sample (None: the tasks' defaults, as genomics.wdl
    runs them)."""
    threads = {} if cpu is None else {"cpu": cpu}
    split = bare.run("alignment.wdl", "split_lane", {
        "fastq_1": str(reads[0]), "fastq_2": str(reads[1]), "lane_id": sample,
        "fastq_names": ["fastq_r1", "fastq_r2"], "reads_per_shard": rps, **threads})
    bams = []
    for r1 in sorted((split / "shards").glob("shard_*_R1.fq.gz")):
        r2 = r1.with_name(r1.name.replace("_R1.", "_R2."))
        shard = bare.run("alignment.wdl", "align_shard", {
            "reads": [str(r1), str(r2)], "reference_fasta": str(bare.work / "reference.fa"),
            "aligner_index": [str(p) for p in sorted((index / "index").iterdir())], "sample_name": sample,
            "read_group": sample, "cpu": align_cpu}, f"align_{r1.name.split('_R1')[0]}")
        bams.append(str(shard / "shard.bam"))
    return bare.run("alignment.wdl", "merge_sample", {"bams": bams, "sample_name": sample, **threads})


def _bare(bare: BareTasks, reads: tuple[Path, Path], sample: str, cpu: int, shards: int, rps: int) -> float:
    """The tasks genomics.wdl runs for these inputs, in one sequence; seconds."""
    local_inputs = json.loads((settings.INPUTS_DIR / "genomics.local.json").read_text())
    genome, codon = local_inputs["genomics.snpeff_genome"], local_inputs["genomics.codon_table"]
    work = bare.work
    ref = str(work / "reference.fa")
    started = time.monotonic()
    idx = bare.run("reference.wdl", "index_reference", {"reference_fasta": ref})
    fai = str(idx / "reference.fa.fai")
    merged = _align_chain(bare, reads, idx, sample, rps, cpu, None)
    bam = {"bam": str(merged / f"{sample}.bam"), "bai": str(merged / f"{sample}.bam.bai")}
    split = bare.run("variant_calling.wdl", "split_regions", {"reference_fai": fai, "scatter_count": shards})
    bare.run("qc.wdl", "alignment_qc", {**bam, "reference_fasta": ref, "sample_name": sample})
    bare.run("qc.wdl", "callable_regions", {**bam, "reference_fai": fai, "sample_name": sample})
    vcfs = []
    for region in sorted((split / "regions").glob("region_*.bed")):
        shard = bare.run("variant_calling.wdl", "call_variants", {
            "bams": [bam["bam"]], "bais": [bam["bai"]], "reference_fasta": ref, "reference_fai": fai,
            "regions_bed": str(region)}, f"call_{region.stem}")
        vcfs.append(str(shard / f"{region.stem}.vcf.gz"))
    vcf = bare.run("variant_calling.wdl", "merge_vcfs", {"vcfs": vcfs, "reference_fasta": ref,
                                                         "reference_fai": fai, "sample_name": sample})
    db = bare.run("annotation.wdl", "build_snpeff_db", {"annotation": str(work / "annotation.gbk.gz"),
                                                        "reference_fasta": ref, "reference_fai": fai,
                                                        "genome_name": genome, "codon_table": codon})
    bare.run("annotation.wdl", "annotate_variants", {"vcf": str(vcf / f"{sample}.vcf.gz"),
                                                     "database": str(db / "snpeff_db.tar.gz"), "genome_name": genome,
                                                     "sample_name": sample})
    return time.monotonic() - started


@dataclass(frozen=True)
class FlowRun:
    """One workflow run under miniwdl: wall seconds and its task containers."""

    wall: float
    spans: list[TaskSpan]

    def tasks(self, *names: str) -> list[TaskSpan]:
        return [s for s in self.spans if s.name in names]


def _run_flow(flow: workflows.Workflow, inputs: dict[str, Any], work: Path) -> FlowRun:
    started = time.monotonic()
    result = local.run(flow, inputs, run_dir=work / "runs", call_cache=False)
    return FlowRun(time.monotonic() - started, task_spans(result.run_dir))


def _single_inputs(sample: str, reads: tuple[Path, Path], rps: int, args: argparse.Namespace,
                   **more: Any) -> dict[str, Any]:
    flow = workflows.get("genomics")
    inputs = local.prepare_inputs(flow, settings.INPUTS_DIR / "genomics.local.json", {
        "genomics.sample_name": sample, "genomics.fastq_r1": str(reads[0]), "genomics.fastq_r2": str(reads[1]),
        "genomics.align_cpu": args.cpu, "genomics.scatter_count": args.shards, "genomics.reads_per_shard": rps,
        **{f"genomics.{k}": v for k, v in more.items()}})
    return local.resolve_images(flow, inputs)  # build/push outside the timed region


ALIGN_TASKS = ("split_lane", "align_shard", "merge_sample")


def _share(n: int, startup: float, wall: float) -> str:
    s = startup_share(n, startup, wall)
    return f"{s:.1%} ({n} containers x {startup:.2f} s / {wall:.1f} s){'' if s < 0.10 else '  NOT under 10%'}"


def _emit(lines: Sequence[str]) -> None:
    print("\n".join(lines), flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)")
    p.add_argument("--scale", type=int, default=64,
                   help="workflow, sharding, cohort: replicate the bundled 3,300 read pairs this many times (renamed) "
                        "per sample (default: 64)")
    p.add_argument("--cpu", type=int, default=2, help="threads for alignment in every run (default: 2)")
    p.add_argument("--shards", type=int, default=4, help="variant-calling shards in every run (default: 4)")
    p.add_argument("--align-shards", type=int, default=4,
                   help="alignment shards of a sharded run: reads_per_shard = pairs / this, rounded up (default: 4)")
    p.add_argument("--cohort-samples", type=int, default=3, help="samples of the cohort part (default: 3)")
    p.add_argument("--sizes", default="32,128",
                   help="align part: comma-separated scales, at least two, increasing (default: 32,128)")
    p.add_argument("--repeats", type=int, default=2,
                   help="align part: runs of each kind per size, alternating ABBA (default: 2)")


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in parts if x not in PARTS]
    if unknown or not parts:
        raise UserError(f"--parts {args.parts!r}: give some of {','.join(PARTS)}")
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        raise UserError(f"--sizes {args.sizes!r}: give increasing whole scales, e.g. 16,64") from None
    if len(sizes) < 2 or sizes != sorted(set(sizes)) or sizes[0] < 1:
        raise UserError(f"--sizes {args.sizes!r}: give at least two increasing scales, e.g. 16,64")
    for name in ("scale", "cpu", "shards", "align_shards", "cohort_samples", "repeats"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} is {getattr(args, name)}: give 1 or more")
    if reads_per_shard(BUNDLED_PAIRS * args.scale, args.align_shards) < MIN_READS_PER_SHARD:
        raise UserError(f"--scale {args.scale} with --align-shards {args.align_shards} makes shards under "
                        f"{MIN_READS_PER_SHARD} pairs (split_lane's minimum): raise --scale or lower --align-shards")
    return parts, sizes


def main(args: argparse.Namespace) -> int:
    parts, sizes = _check_args(args)
    genomics_image = containers.build(containers.get("genomics"))
    flow = workflows.get("genomics")
    with tempfile.TemporaryDirectory(prefix="batchpipes-bench-") as tmp:
        work = Path(tmp)
        for name in ("reference.fa", "annotation.gbk.gz"):
            (work / name).write_bytes((DATA / name).read_bytes())
        startup = _startup(genomics_image)
        _emit([f"container start-up  {startup:.2f} s  (podman run --rm of a no-op in the genomics image, median of 5)"])
        pairs = BUNDLED_PAIRS * args.scale
        rps = reads_per_shard(pairs, args.align_shards)
        if "workflow" in parts or "sharding" in parts:
            reads = scale_reads(work / "reads", args.scale)
            inputs = _single_inputs("SIM001", reads, rps, args)
            # fastp writes at least one shard per thread: one split_lane thread, so that one shard is one shard.
            one_thread = _single_inputs("SIM001", reads, rps, args, split_cpu=1)
            if "workflow" in parts:
                bare = BareTasks(work)
                for name in ("genomics", "snpeff"):  # built outside the timed region
                    bare.images[name] = containers.build(containers.get(name))
                log.info("workflow part: bare task commands, %d read pairs", pairs)
                bare_s = _bare(bare, reads, "SIM001", args.cpu, args.shards, rps)
                log.info("workflow part: the workflow under miniwdl")
                _emit(_workflow_lines(pairs, rps, bare, bare_s, _run_flow(flow, inputs, work), startup))
            if "sharding" in parts:
                log.info("sharding part: reads_per_shard %d", rps)
                sharded = _run_flow(flow, one_thread, work)
                log.info("sharding part: one alignment shard")
                unsharded = _run_flow(flow, {**one_thread, "genomics.reads_per_shard": ONE_SHARD}, work)
                _emit(_sharding_lines(pairs, rps, sharded, unsharded, startup))
        if "cohort" in parts:
            _emit(_cohort(work, args, rps, startup))
        if "align" in parts:
            _emit(_align(work, args, sizes, startup, genomics_image))
    return 0


def _workflow_lines(pairs: int, rps: int, bare: BareTasks, bare_s: float, wf: FlowRun, startup: float) -> list[str]:
    qc = interval(wf.tasks("alignment_qc", "callable_regions"))
    calling = interval(wf.tasks("call_variants", "merge_vcfs", "annotate_variants"))
    shards, db = interval(wf.tasks("align_shard")), interval(wf.tasks("build_snpeff_db"))
    phase = interval(wf.tasks(*ALIGN_TASKS))
    return [
        "",
        f"== workflow vs bare task commands ({pairs} read pairs, reads_per_shard {rps}: "
        f"{len(wf.tasks('align_shard'))} align_shard jobs)",
        f"bare tasks        {bare_s:7.1f} s  (the tasks' own commands in sequence, one container each)",
        f"workflow          {wf.wall:7.1f} s  (miniwdl, {len(wf.spans)} task containers)",
        f"ratio             {wf.wall / bare_s:7.2f} x  (target <= 1.10)",
        f"alignment (bare)  split_lane {bare.seconds('split_lane'):.1f} s, align_shard {bare.seconds('align_shard'):.1f} s"
        f" ({sum(1 for t, _ in bare.times if t == 'align_shard')} jobs), merge_sample "
        f"{bare.seconds('merge_sample'):.1f} s",
        f"QC branch         {qc[1] - qc[0]:7.1f} s; calling+annotation branch {calling[1] - calling[0]:.1f} s; "
        f"overlap {overlap(qc, calling):.1f} s",
        f"snpEff database built while the reads were aligned: {overlap(db, phase):.1f} s of its {db[1] - db[0]:.1f} s "
        f"in the alignment phase (split_lane start to merge_sample end), {overlap(db, shards):.1f} s beside "
        f"align_shard jobs",
        f"start-up share    bare {_share(len(bare.times), startup, bare_s)}",
        f"                  workflow {_share(len(wf.spans), startup, wf.wall)}",
    ]


def _sharding_lines(pairs: int, rps: int, sharded: FlowRun, unsharded: FlowRun, startup: float) -> list[str]:
    out = ["", f"== sharded vs unsharded alignment (genomics.wdl, {pairs} read pairs; sharded: reads_per_shard {rps}, "
               f"unsharded: {ONE_SHARD}; split_lane cpu 1 in both (fastp writes a shard per thread); sharded first)"]
    phases = []
    for label, run in (("sharded", sharded), ("unsharded", unsharded)):
        phase = interval(run.tasks(*ALIGN_TASKS))
        phases.append(phase[1] - phase[0])
        jobs = run.tasks("align_shard")
        out.append(f"{label:10s} workflow {run.wall:6.1f} s; alignment phase (split_lane start to merge_sample end) "
                   f"{phases[-1]:6.1f} s; {len(jobs)} align_shard jobs, {sum(s.seconds for s in jobs):.1f} container-s;"
                   f" start-up share {_share(len(run.spans), startup, run.wall)}")
    out += [f"ratio sharded / unsharded: workflow {sharded.wall / unsharded.wall:.2f} x, alignment phase "
            f"{phases[0] / phases[1]:.2f} x",
            "note: here every shard shares this machine's cores, so this is the cost of sharding (more containers, a "
            "merge); on AWS each shard is its own Batch job on its own instance (parallel), and a Spot reclaim "
            "reruns one shard, not the sample"]
    return out


def _cohort(work: Path, args: argparse.Namespace, rps: int, startup: float) -> list[str]:
    n, pairs = args.cohort_samples, BUNDLED_PAIRS * args.scale
    samples = [(f"S{k + 1}", *scale_reads(work / "cohort" / f"S{k + 1}", args.scale, f"s{k + 1}c")) for k in range(n)]
    singles: list[FlowRun] = []
    flow = workflows.get("genomics_cohort")
    data = cohort_inputs(samples, work, {
        "cohort_name": "BENCH", "snpeff_genome": "human_mt_NC_001807", "codon_table": "Vertebrate_Mitochondrial",
        "caller": "bcftools", "scatter_count": args.shards, "reads_per_shard": rps, "per_sample_vcfs": True,
        "align_cpu": args.cpu, "align_memory_gb": 2})
    cohort_in = local.resolve_images(flow, workflows.validate(flow, data, source="cohort part"))
    single_in = [_single_inputs(name, (r1, r2), rps, args) for name, r1, r2 in samples]
    cohort: FlowRun | None = None
    for k, (name, _, _) in enumerate(samples):  # single 1, the cohort, singles 2..N: load drift hits both
        log.info("cohort part: single-sample run %s", name)
        singles.append(_run_flow(workflows.get("genomics"), single_in[k], work))
        if k == 0:
            log.info("cohort part: the cohort run (%d samples)", n)
            cohort = _run_flow(flow, cohort_in, work)
    assert cohort is not None
    single_s = sum(r.wall for r in singles)
    single_spans = [s for r in singles for s in r.spans]
    out = ["", f"== cohort of {n} vs {n} single-sample runs ({pairs} read pairs per sample, the same reads under "
               f"each sample's names; reads_per_shard {rps}; {args.shards} calling shards)",
           f"{n} single runs    {single_s:7.1f} s  (genomics.wdl, one after another: "
           f"{', '.join(f'{r.wall:.1f}' for r in singles)} s; {len(single_spans)} task containers)",
           f"1 cohort run      {cohort.wall:7.1f} s  (genomics_cohort.wdl, {len(cohort.spans)} task containers)",
           f"ratio             {cohort.wall / single_s:7.2f} x  (cohort / singles)",
           f"start-up share    singles {_share(len(single_spans), startup, single_s)}",
           f"                  cohort {_share(len(cohort.spans), startup, cohort.wall)}",
           "per task: jobs and container-seconds, singles vs cohort"]
    s_by, c_by = by_task(single_spans), by_task(cohort.spans)
    for name in sorted(set(s_by) | set(c_by), key=lambda t: -sum(x.seconds for x in s_by.get(t, []))):
        s, c = s_by.get(name, []), c_by.get(name, [])
        out.append(f"  {name:18s} {len(s):3d} jobs {sum(x.seconds for x in s):7.1f} s   |  {len(c):3d} jobs "
                   f"{sum(x.seconds for x in c):7.1f} s")
    return out


def _bare_bwa(work: Path, here: Path, image: str, reads: tuple[Path, Path], index: Path, cpu: int) -> float:
    """bwa mem -t C | samtools sort -@ C in one container of ``image``; seconds."""
    prefix = index / "index" / "reference.fa"
    command = (f"set -euo pipefail; mkdir -p tmp; bwa mem -t {cpu} '{prefix}' '{reads[0]}' '{reads[1]}' 2> bwa.err "
               f"| samtools sort -@ {cpu} -T tmp/sort -o bare.bam -")
    started = time.monotonic()
    _podman_run(work, here, image, command, "bare bwa mem | samtools sort")
    return time.monotonic() - started


def _align(work: Path, args: argparse.Namespace, sizes: list[int], startup: float, image: str) -> list[str]:
    cpu = args.cpu
    setup = BareTasks(work, "align/index")
    index = setup.run("reference.wdl", "index_reference", {"reference_fasta": str(work / "reference.fa")})
    rows: dict[int, dict[str, float]] = {}
    for size in sizes:
        pairs = BUNDLED_PAIRS * size
        reads = scale_reads(work / "align" / f"x{size}", size)
        ours: list[BareTasks] = []
        bare: list[float] = []
        for i, kind in enumerate(alternate("ours", "bare", args.repeats)):
            log.info("align part: scale %d, %s (%d)", size, kind, i + 1)
            if kind == "ours":
                chain = BareTasks(work, f"align/x{size}/ours{i}")
                _align_chain(chain, reads, index, "SIM001", ONE_SHARD, cpu, cpu)
                ours.append(chain)
            else:
                bare.append(_bare_bwa(work, work / "align" / f"x{size}" / f"bare{i}", image, reads, index, cpu))
        rows[size] = {
            "pairs": pairs, "ours": statistics.median(c.seconds() for c in ours), "bare": statistics.median(bare),
            "jobs": len(ours[0].times),
            **{t: statistics.median(c.seconds(t) for c in ours) for t in ALIGN_TASKS}}
    out = ["", f"== our alignment+sort vs bare bwa mem | samtools sort (genomics image, same reads, {cpu} threads each; "
               f"ours: split_lane, align_shard per shard (fastp writes one shard per thread), merge_sample; "
               f"median of {args.repeats} alternating run(s) each, ours first)",
           f"{'scale':>5s} {'pairs':>8s} {'ours s':>7s} {'bare s':>7s} {'ratio':>6s} {'ours p/s/core':>13s} "
           f"{'bare p/s/core':>13s}  ours by task (s; align_shard alone p/s/core)  start-up share ours / bare"]
    for size, r in rows.items():
        p = int(r["pairs"])
        out.append(f"{size:5d} {p:8d} {r['ours']:7.1f} {r['bare']:7.1f} {r['ours'] / r['bare']:6.2f} "
                   f"{pairs_per_core_second(p, r['ours'], cpu):13.0f} {pairs_per_core_second(p, r['bare'], cpu):13.0f}"
                   f"  split_lane {r['split_lane']:.1f}, align_shard {r['align_shard']:.1f} "
                   f"({pairs_per_core_second(p, r['align_shard'], cpu):.0f}), merge_sample {r['merge_sample']:.1f}"
                   f"  {startup_share(int(r['jobs']), startup, r['ours']):.1%} ({int(r['jobs'])} containers) / "
                   f"{startup_share(1, startup, r['bare']):.1%}")
    lo, hi = sizes[0], sizes[-1]
    for kind in ("ours", "bare", "align_shard"):
        g = growth(lo, rows[lo][kind], hi, rows[hi][kind])
        out.append(f"growth x{g.size_ratio:g} pairs ({lo} -> {hi}): {kind:11s} time x{g.time_ratio:.2f}, "
                   f"per pair x{g.per_pair_ratio:.2f} (time ~ size^{g.exponent:.2f})")
    return out
