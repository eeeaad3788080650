"""GROMACS: ns/day of the workflow's production task vs bare ``gmx mdrun`` on the same run input.

Runs wdl/gromacs.wdl once (no call cache) with the bundled ubiquitin system. Then, on that run's
production .tpr, alternately: the workflow's production task (miniwdl, podman, as in the workflow)
and bare ``gmx mdrun`` in the same image on the same cores, ``--repeats`` times each (alternating,
so load from other processes hits both alike). Prints the medians of mdrun's ns/day for both, their
ratio (target: task >= 0.95 x bare), and the wall times (task overhead: localisation, container
start, output collection).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import containers, local, settings, workflows

log = logging.getLogger(__name__)

PERFORMANCE_RE = re.compile(r"^Performance:\s+([0-9.]+)", re.M)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=3000,
                   help="production steps of each run (default: 3000 = 6 ps at 2 fs)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each kind after the workflow (default: 2)")
    p.add_argument("--cpu", type=int, default=2, help="cores (OpenMP threads) of both runs (default: 2)")
    p.add_argument("--inputs", type=Path, default=settings.INPUTS_DIR / "gromacs.local.json",
                   help="workflow inputs (default: inputs/gromacs.local.json)")


def bare_mdrun(image: str, tpr: Path, cpu: int) -> tuple[float, float]:
    """``gmx mdrun`` on ``tpr`` in ``image``: (ns/day, wall seconds of the container run)."""
    with tempfile.TemporaryDirectory(prefix="bench-gromacs-") as tmp:
        work = Path(tmp)
        (work / "bench.tpr").write_bytes(tpr.read_bytes())
        start = time.monotonic()
        subprocess.run(["podman", "run", "--rm", *containers.as_invoker(), "-v", f"{work}:/bench", "-w", "/bench", image,
                        "gmx", "-quiet", "mdrun", "-s", "bench.tpr", "-deffnm", "bare", "-ntmpi", "1",
                        "-ntomp", str(cpu)], check=True, capture_output=True)
        wall = time.monotonic() - start
        found = PERFORMANCE_RE.search((work / "bare.log").read_text())
        if not found:
            raise RuntimeError("bare mdrun wrote no Performance line")
        return float(found.group(1)), wall


def task_mdrun(image: str, tpr: Path, steps: int, cpu: int, work: Path) -> tuple[float, float]:
    """The workflow's production task alone under miniwdl: (ns/day, wall seconds)."""
    inputs = work / "production.inputs.json"
    inputs.write_text(json.dumps({"tpr": str(tpr), "nsteps": steps, "name": "bench", "cpu": cpu,
                                  "docker_image": image}))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "WDL", "run", str(settings.WDL_DIR / "tasks" / "gromacs.wdl"),
                           "--task", "production", "-i", str(inputs), "--dir", str(work), "--no-cache",
                           "--cfg", str(local.miniwdl_config(call_cache=False))],
                          capture_output=True, text=True, check=True)
    wall = time.monotonic() - start
    return float(json.loads(proc.stdout)["outputs"]["production.ns_per_day"]), wall


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
        gromacs = containers.get("gromacs")
        registry_image = containers.publish_local(gromacs)
        image = containers.build(gromacs)
        task_runs: list[tuple[float, float]] = []
        bare_runs: list[tuple[float, float]] = []
        for i in range(args.repeats):
            log.info("repeat %d/%d: production task (miniwdl), then bare gmx mdrun", i + 1, args.repeats)
            work = Path(tmp) / f"task-{i}"
            work.mkdir()
            task_runs.append(task_mdrun(registry_image, tpr, args.steps, args.cpu, work))
            bare_runs.append(bare_mdrun(image, tpr, args.cpu))
    task_ns = statistics.median(r[0] for r in task_runs)
    bare_ns = statistics.median(r[0] for r in bare_runs)
    task_wall = statistics.median(r[1] for r in task_runs)
    bare_wall = statistics.median(r[1] for r in bare_runs)
    report = {
        "atoms_steps_cores": f"ubiquitin system, {args.steps} steps, {args.cpu} cores",
        "workflow_run_ns_per_day": first_ns_day,
        "task_ns_per_day": [r[0] for r in task_runs],
        "bare_ns_per_day": [r[0] for r in bare_runs],
        "ns_per_day_ratio_task_over_bare": round(task_ns / bare_ns, 3),
        "task_wall_s_median": round(task_wall, 1),
        "bare_container_wall_s_median": round(bare_wall, 1),
        "wall_ratio_task_over_bare": round(task_wall / bare_wall, 3),
    }
    print(json.dumps(report, indent=2))
    return 0
