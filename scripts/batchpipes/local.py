"""Local runs: miniwdl with the podman backend, images served from the registry on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import containers, settings, workflows
from .errors import UserError
from .images_cmd import PIN_RE

log = logging.getLogger(__name__)


def miniwdl_config(call_cache: bool = True) -> Path:
    """Write the miniwdl configuration for podman and return its path."""
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    exe = ["podman"] if os.geteuid() == 0 else ["sudo", "-n", "podman"]
    cfg = settings.CACHE_DIR / "miniwdl.cfg"
    cfg.write_text(
        "# written by batchpipes: miniwdl on podman, images from the local registry\n"
        "[scheduler]\ncontainer_backend = podman\nfail_fast = true\n\n"
        f"[podman]\nexe = {json.dumps(exe)}\n\n"
        "[call_cache]\n"
        f"put = {str(call_cache).lower()}\nget = {str(call_cache).lower()}\n"
        f"dir = {settings.CACHE_DIR / 'miniwdl_call_cache'}\n\n"
        "[file_io]\nallow_any_input = true\n"
    )
    return cfg


def resolve_images(flow: workflows.Workflow, inputs: dict[str, Any]) -> dict[str, Any]:
    """Point every pinned ``batchpipes/<name>:<tag>`` image input at the local registry.

    Inputs left at their WDL default, or set to a pinned ``batchpipes/...`` reference, are built
    (if not cached) and pushed; any other image reference is left alone for miniwdl to pull.
    """
    doc = workflows.load(flow.path)
    assert doc.workflow is not None
    images = containers.discover()
    out = dict(inputs)
    for decl in doc.workflow.inputs or []:
        if not decl.name.endswith("_image") or decl.expr is None:
            continue
        key = f"{doc.workflow.name}.{decl.name}"
        value = str(out.get(key, "")) or str(decl.expr.literal.value if decl.expr.literal else "")
        m = PIN_RE.fullmatch(f'"{value}"')
        if m is None:
            if key in out:
                continue  # a reference of the user's own: leave it
            raise UserError(f"{flow.path.name}: default of {decl.name} is not a pinned batchpipes image")
        name = m["name"]
        if name not in images:
            raise UserError(f"{key} names unknown image '{value}': known images are "
                            f"{', '.join(sorted(images))} (folders under containers/)")
        if images[name].tag != m["tag"]:
            raise UserError(f"{key} is {value} but containers/{name} is at {images[name].tag}: "
                            "run 'batchpipes images pin' or give the current tag")
        if not images[name].local_build:
            log.info("%s: %s needs a GPU build host; it is not built here (used only by GPU runs)", key, value)
            continue
        out[key] = containers.publish_local(images[name])
    return out


@dataclass
class RunResult:
    run_dir: Path
    outputs: dict[str, Any]


def task_error(error: dict[str, Any]) -> str:
    """One line for a failed miniwdl run: the task's own ERROR line when it printed one."""
    cause = error.get("cause") or {}
    where = str(cause.get("run") or error.get("run") or "").removeprefix("call-")
    stderr_file = cause.get("stderr_file") or error.get("stderr_file")
    if stderr_file and Path(stderr_file).is_file():
        lines = [ln.strip() for ln in Path(stderr_file).read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR:")]
        if errors:
            return f"{where}: {errors[-1][len('ERROR:'):].strip()}"
        if lines:
            return f"{where}: {lines[-1]} (full log: {stderr_file})"
    message = cause.get("message") or error.get("message") or "workflow failed"
    return f"{where}: {message}".lstrip(": ")


def run(
    flow: workflows.Workflow,
    inputs: dict[str, Any],
    *,
    run_dir: Path,
    call_cache: bool = True,
    verbose: bool = False,
) -> RunResult:
    """Run ``flow`` with validated ``inputs`` under miniwdl; raise UserError with the task's message."""
    inputs = resolve_images(flow, inputs)
    containers.start_registry()
    cfg = miniwdl_config(call_cache)
    run_dir.mkdir(parents=True, exist_ok=True)
    # miniwdl keeps its own copy (inputs.json in the run folder); this one is removed after the run.
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f".{flow.name}.inputs.", dir=run_dir,
                                     delete=False) as fh:
        json.dump(inputs, fh, indent=2)
    inputs_file = Path(fh.name)
    cmd = [sys.executable, "-m", "WDL", "run", str(flow.path), "-i", str(inputs_file),
           "--dir", str(run_dir), "--cfg", str(cfg), "--error-json"]
    if not call_cache:
        cmd.append("--no-cache")
    if verbose:
        cmd.append("--verbose")
    log.info("miniwdl run %s (logs under %s)", flow.path.relative_to(settings.REPO_ROOT), run_dir)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE,
                              text=True, env=env, check=False)
    finally:
        inputs_file.unlink(missing_ok=True)
    try:
        result = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        result = {}
    if proc.returncode != 0:
        if result.get("error"):
            raise UserError(f"{flow.name} failed in {task_error(result)}")
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["see the miniwdl log"]
        raise UserError(f"{flow.name} failed: {tail[0]}")
    return RunResult(run_dir=Path(result.get("dir", run_dir)), outputs=result.get("outputs", {}))


def prepare_inputs(flow: workflows.Workflow, inputs_path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    data = workflows.read_json(inputs_path)
    data.update(overrides)
    bases = [Path.cwd(), inputs_path.resolve().parent, settings.REPO_ROOT]
    shown = inputs_path.resolve()
    source = str(shown.relative_to(Path.cwd())) if shown.is_relative_to(Path.cwd()) else str(inputs_path)
    return workflows.validate(flow, data, source=source, base_dirs=bases)


__all__ = ["run", "prepare_inputs", "RunResult", "miniwdl_config"]
