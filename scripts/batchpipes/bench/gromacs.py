"""GROMACS: ns/day of the workflow's production task under miniwdl vs the same task program run directly.

Runs wdl/gromacs.wdl once (no call cache) with the bundled ubiquitin system. Then, on that run's
production .tpr, alternately: the workflow's production task alone under miniwdl (``local.run(...,
task="production")``, podman, as in the workflow) and the task's own program, ``gromacs-tasks production``,
started directly with ``podman run`` in the same image on the same cores (the same convert-tpr and mdrun
command lines: nothing here copies them), ``--repeats`` times each (alternating, so load from other processes
hits both alike). Prints the medians of mdrun's ns/day for both, their ratio (target: task >= 0.95 x direct),
and the wall times (task overhead: localisation, container start under miniwdl, output collection).

SIMD builds: on two systems of different size, that production .tpr (the ubiquitin system) and a cubic SPC/E water
box (``--water-box-nm``, made in the image with gmx solvate, a short EM and grompp), ``gromacs-tasks production``
runs alternately with ``--simd auto`` (the build containers/shared/gmx_simd.py picks for this CPU) and ``--simd
SSE4.1`` (Debian's gmx), same .tpr, steps and cores, ``--simd-repeats`` times each. Prints each build's ns/day
(with the level its md.log reports and the system's atom count) and their ratio per system.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from .. import containers, local, settings, workflows
from ..podman import as_invoker, podman

log = logging.getLogger(__name__)

TASKS = settings.WDL_DIR / "tasks" / "gromacs.wdl"
TASK = "production"
#: The production task's builds compared: the one gmx_simd.py picks, and Debian's gmx (gromacs-tasks --simd values).
SIMD_BUILDS = ("auto", "SSE4.1")
#: The larger system: an SPC/E water box of edge $1 nm (OPLS-AA), 100 EM steps (flexible water), then a production-like .tpr (the
#: workflow's production settings: 2 fs, PME, V-rescale, C-rescale) writing frames every $3 steps; $2 cores.
WATER_BOX = r"""set -eu
cd /bench
gmx solvate -cs spc216.gro -box "$1" "$1" "$1" -o water.gro
{ printf '#include "oplsaa.ff/%s.itp"\n' forcefield spce
  printf '[ system ]\nSPC/E water\n[ molecules ]\nSOL %d\n' $(( $(sed -n 2p water.gro) / 3 )); } > water.top
printf '%s\n' integrator=steep nsteps=100 define=-DFLEXIBLE cutoff-scheme=Verlet coulombtype=PME rcoulomb=1.0 rvdw=1.0 > em.mdp
gmx grompp -f em.mdp -c water.gro -p water.top -o em.tpr
gmx mdrun -s em.tpr -deffnm em -ntmpi 1 -ntomp "$2"
printf '%s\n' integrator=md dt=0.002 nstlog=1000 nstcalcenergy=50 nstenergy=500 "nstxout-compressed=$3" \
  cutoff-scheme=Verlet nstlist=10 coulombtype=PME rcoulomb=1.0 rvdw=1.0 fourierspacing=0.16 DispCorr=EnerPres \
  constraints=h-bonds tcoupl=V-rescale tc-grps=System tau-t=0.1 ref-t=300 gen-vel=yes gen-temp=300 gen-seed=1 \
  pcoupl=C-rescale tau-p=1.0 compressibility=4.5e-5 ref-p=1.0 > md.mdp
gmx grompp -f md.mdp -c em.gro -p water.top -o water.tpr
"""


class Run(NamedTuple):
    """One direct run of the production program: mdrun's ns/day, wall seconds, and from its md.log the SIMD level
    of the build that ran and the atom count."""

    ns_per_day: float
    wall_s: float
    simd: str
    atoms: int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=3000,
                   help="production steps of each run (default: 3000 = 6 ps at 2 fs)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each kind after the workflow (default: 2)")
    p.add_argument("--cpu", type=int, default=2, help="cores (OpenMP threads) of both runs (default: 2)")
    p.add_argument("--inputs", type=Path, default=settings.INPUTS_DIR / "gromacs.local.json",
                   help="workflow inputs (default: inputs/gromacs.local.json)")
    p.add_argument("--simd-repeats", type=int, default=2,
                   help="runs of each SIMD build (auto, Debian's SSE4.1) on each system (default: 2; 0 skips them)")
    p.add_argument("--water-box-nm", type=float, default=8.0,
                   help="edge of the larger system, a cubic SPC/E water box (default: 8.0 nm, about 51,000 atoms; "
                        "the ubiquitin system has about 18,900)")
    p.add_argument("--simd-only", action="store_true",
                   help="skip the task-vs-direct repeats (the workflow still runs once for its .tpr)")


def task_defaults() -> dict[str, Any]:
    """The literal defaults of the production task's inputs (what the task runs with unless given)."""
    task = next(t for t in workflows.load(TASKS).tasks if t.name == TASK)
    return {d.name: d.expr.literal.value for d in task.inputs or [] if d.expr is not None and d.expr.literal}


def log_field(log_text: str, pattern: str) -> str:
    """The first group of ``pattern`` in an mdrun log, "" without a match."""
    found = re.search(pattern, log_text, re.M)
    return found.group(1) if found else ""


def direct_run(image: str, tpr: Path, steps: int, cpu: int, simd: str = "auto") -> Run:
    """``gromacs-tasks production`` (the task's program) in ``image`` with podman alone, with the SIMD build
    ``simd``. Its String and File values reach it in one-line files, as the engine's write_lines files."""
    with tempfile.TemporaryDirectory(prefix="bench-gromacs-") as tmp:
        work = Path(tmp)
        (work / "bench.tpr").write_bytes(tpr.read_bytes())
        values = {"name": "bench\n", "tpr": "/bench/bench.tpr\n", "resume_checkpoint": "", "simd": f"{simd}\n"}
        for key, text in values.items():
            (work / f"{key}.txt").write_text(text)
        files = [arg for key in values for arg in (f"--{key}", f"/bench/{key}.txt")]
        numbers = {"nsteps": steps, "checkpoint_minutes": task_defaults()["checkpoint_minutes"], "cpu": cpu}
        start = time.monotonic()
        subprocess.run([*podman(), "run", "--rm", *as_invoker(), "-v", f"{work}:/bench", "-w", "/bench", image,
                        "gromacs-tasks", TASK, *files, *(arg for k, v in numbers.items() for arg in (f"--{k}", str(v))),
                        "--gpu", "false"], check=True, capture_output=True)
        wall = time.monotonic() - start
        log_text = (work / "bench.md.log").read_text(errors="replace")
        return Run(float((work / "ns_per_day.txt").read_text()), wall,
                   log_field(log_text, r"^SIMD instructions:\s+(\S+)"), int(log_field(log_text, r"There are: (\d+) Atoms") or 0))


def water_box(image: str, edge_nm: float, cpu: int, frame_steps: int, work: Path) -> Path:
    """The larger system's production-like .tpr, made in ``image`` with Debian's gmx (:data:`WATER_BOX`)."""
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([*podman(), "run", "--rm", *as_invoker(), "-v", f"{work}:/bench", "-w", "/bench", image,
                    "bash", "-c", WATER_BOX, "water-box", str(edge_nm), str(cpu), str(frame_steps)],
                   check=True, capture_output=True)
    return work / "water.tpr"


def simd_comparison(image: str, systems: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """Each system's production with the build gmx_simd picks and with Debian's, alternating (the order swapped
    every repeat): ns/day of each, the levels the logs report, the atoms and the ratio auto / Debian."""
    report: dict[str, Any] = {}
    for label, tpr in systems.items():
        runs: dict[str, list[Run]] = {build: [] for build in SIMD_BUILDS}
        for i in range(args.simd_repeats):
            for build in SIMD_BUILDS if i % 2 == 0 else reversed(SIMD_BUILDS):
                log.info("%s: repeat %d/%d, --simd %s", label, i + 1, args.simd_repeats, build)
                runs[build].append(direct_run(image, tpr, args.steps, args.cpu, build))
        medians = {build: statistics.median(r.ns_per_day for r in runs[build]) for build in SIMD_BUILDS}
        report[label] = {
            "atoms": runs["auto"][0].atoms,
            **{f"{build}_build": sorted({r.simd for r in runs[build]}) for build in SIMD_BUILDS},
            **{f"{build}_ns_per_day": [r.ns_per_day for r in runs[build]] for build in SIMD_BUILDS},
            "ns_per_day_ratio_auto_over_debian": round(medians["auto"] / medians["SSE4.1"], 3),
        }
    return report


def task_run(tpr: Path, steps: int, cpu: int, work: Path) -> tuple[float, float]:
    """The workflow's production task alone under miniwdl (its pinned image): (ns/day, wall seconds)."""
    inputs = {f"{TASK}.tpr": str(tpr), f"{TASK}.nsteps": steps, f"{TASK}.name": "bench", f"{TASK}.cpu": cpu}
    start = time.monotonic()
    result = local.run(workflows.Workflow(TASK, TASKS), inputs, run_dir=work, call_cache=False, task=TASK)
    wall = time.monotonic() - start
    return float(result.outputs[f"{TASK}.ns_per_day"]), wall


def main(args: argparse.Namespace) -> int:
    flow = workflows.get("gromacs")
    overrides = {"gromacs.production_steps": args.steps, "gromacs.production_cpu": args.cpu,
                 "gromacs.frame_interval_steps": max(args.steps // 10, 1)}
    inputs = local.prepare_inputs(flow, args.inputs, overrides)
    with tempfile.TemporaryDirectory(prefix="bench-gromacs-run-") as tmp:
        log.info("workflow run: production %d steps on %d cores", args.steps, args.cpu)
        result = local.run(flow, inputs, run_dir=Path(tmp), call_cache=False)
        first_ns_day = float(result.outputs["gromacs.ns_per_day"])
        tpr = Path(result.outputs["gromacs.production_tpr"]).resolve()
        image = containers.build(containers.get("gromacs"))
        task_runs: list[tuple[float, float]] = []
        direct_runs: list[Run] = []
        for i in range(0 if args.simd_only else args.repeats):
            log.info("repeat %d/%d: production task (miniwdl), then its program directly", i + 1, args.repeats)
            task_runs.append(task_run(tpr, args.steps, args.cpu, Path(tmp) / f"task-{i}"))
            direct_runs.append(direct_run(image, tpr, args.steps, args.cpu))
        simd: dict[str, Any] = {}
        if args.simd_repeats > 0:
            water = water_box(image, args.water_box_nm, args.cpu, max(args.steps // 10, 1), Path(tmp) / "water")
            simd = simd_comparison(image, {"ubiquitin": tpr, f"water_box_{args.water_box_nm:g}nm": water}, args)
    report: dict[str, Any] = {
        "atoms_steps_cores": f"ubiquitin system, {args.steps} steps, {args.cpu} cores",
        "workflow_run_ns_per_day": first_ns_day,
    }
    if direct_runs:
        report.update(task_vs_direct(task_runs, direct_runs))
    if simd:
        report["simd_builds_auto_vs_debian"] = simd
    print(json.dumps(report, indent=2))
    return 0


def task_vs_direct(task_runs: list[tuple[float, float]], direct_runs: list[Run]) -> dict[str, Any]:
    """The workflow's task against its program run directly: ns/day and wall time, medians and ratios."""
    task_ns = statistics.median(r[0] for r in task_runs)
    direct_ns = statistics.median(r[0] for r in direct_runs)
    task_wall = statistics.median(r[1] for r in task_runs)
    direct_wall = statistics.median(r[1] for r in direct_runs)
    return {
        "task_ns_per_day": [r[0] for r in task_runs],
        "direct_ns_per_day": [r[0] for r in direct_runs],
        "ns_per_day_ratio_task_over_direct": round(task_ns / direct_ns, 3),
        "task_wall_s_median": round(task_wall, 1),
        "direct_container_wall_s_median": round(direct_wall, 1),
        "wall_ratio_task_over_direct": round(task_wall / direct_wall, 3),
    }
