"""GROMACS: ns/day of the workflow's production task under miniwdl vs the same task program run directly.

Runs wdl/gromacs.wdl once (no call cache) with the bundled ubiquitin system. Then, on that run's
production .tpr, alternately: the workflow's production task alone under miniwdl (``local.run(...,
task="production")``, podman, as in the workflow) and the task's own program, ``gromacs-tasks production``,
started directly with ``podman run`` in the same image on the same cores (the same convert-tpr and mdrun
command lines: nothing here copies them), ``--repeats`` times each (alternating, so load from other processes
hits both alike). Prints the medians of mdrun's ns/day for both, their ratio (target: task >= 0.95 x direct),
and the wall times (task overhead: localisation, container start under miniwdl, output collection).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import containers, local, settings, workflows
from ..podman import as_invoker, podman

log = logging.getLogger(__name__)

TASKS = settings.WDL_DIR / "tasks" / "gromacs.wdl"
TASK = "production"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=3000,
                   help="production steps of each run (default: 3000 = 6 ps at 2 fs)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each kind after the workflow (default: 2)")
    p.add_argument("--cpu", type=int, default=2, help="cores (OpenMP threads) of both runs (default: 2)")
    p.add_argument("--inputs", type=Path, default=settings.INPUTS_DIR / "gromacs.local.json",
                   help="workflow inputs (default: inputs/gromacs.local.json)")


def task_defaults() -> dict[str, Any]:
    """The literal defaults of the production task's inputs (what the task runs with unless given)."""
    task = next(t for t in workflows.load(TASKS).tasks if t.name == TASK)
    return {d.name: d.expr.literal.value for d in task.inputs or [] if d.expr is not None and d.expr.literal}


def direct_run(image: str, tpr: Path, steps: int, cpu: int) -> tuple[float, float]:
    """``gromacs-tasks production`` (the task's program) in ``image`` with podman alone: (ns/day, wall seconds).
    Its String and File values reach it in one-line files, as the engine's write_lines files."""
    with tempfile.TemporaryDirectory(prefix="bench-gromacs-") as tmp:
        work = Path(tmp)
        (work / "bench.tpr").write_bytes(tpr.read_bytes())
        values = {"name": "bench\n", "tpr": "/bench/bench.tpr\n", "resume_checkpoint": ""}
        for key, text in values.items():
            (work / f"{key}.txt").write_text(text)
        files = [arg for key in values for arg in (f"--{key}", f"/bench/{key}.txt")]
        numbers = {"nsteps": steps, "checkpoint_minutes": task_defaults()["checkpoint_minutes"], "cpu": cpu}
        start = time.monotonic()
        subprocess.run([*podman(), "run", "--rm", *as_invoker(), "-v", f"{work}:/bench", "-w", "/bench", image,
                        "gromacs-tasks", TASK, *files, *(arg for k, v in numbers.items() for arg in (f"--{k}", str(v))),
                        "--gpu", "false"], check=True, capture_output=True)
        wall = time.monotonic() - start
        return float((work / "ns_per_day.txt").read_text()), wall


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
        direct_runs: list[tuple[float, float]] = []
        for i in range(args.repeats):
            log.info("repeat %d/%d: production task (miniwdl), then its program directly", i + 1, args.repeats)
            task_runs.append(task_run(tpr, args.steps, args.cpu, Path(tmp) / f"task-{i}"))
            direct_runs.append(direct_run(image, tpr, args.steps, args.cpu))
    task_ns = statistics.median(r[0] for r in task_runs)
    direct_ns = statistics.median(r[0] for r in direct_runs)
    task_wall = statistics.median(r[1] for r in task_runs)
    direct_wall = statistics.median(r[1] for r in direct_runs)
    report = {
        "atoms_steps_cores": f"ubiquitin system, {args.steps} steps, {args.cpu} cores",
        "workflow_run_ns_per_day": first_ns_day,
        "task_ns_per_day": [r[0] for r in task_runs],
        "direct_ns_per_day": [r[0] for r in direct_runs],
        "ns_per_day_ratio_task_over_direct": round(task_ns / direct_ns, 3),
        "task_wall_s_median": round(task_wall, 1),
        "direct_container_wall_s_median": round(direct_wall, 1),
        "wall_ratio_task_over_direct": round(task_wall / direct_wall, 3),
    }
    print(json.dumps(report, indent=2))
    return 0
