"""Local runs: miniwdl with the podman backend, images served from the registry on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import WDL

from . import containers, images, podman_shim, registry, results, settings, task_containers, workflows
from .errors import Interrupted, UserError
from .proc import stop_signals_handled

log = logging.getLogger(__name__)


def miniwdl_config(call_cache: bool = True) -> Path:
    """Write the miniwdl configuration for podman and return its path."""
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cfg = settings.CACHE_DIR / "miniwdl.cfg"
    cfg.write_text(
        "# written by batchpipes: miniwdl on podman, images from the local registry\n"
        "[scheduler]\ncontainer_backend = podman\nfail_fast = true\n\n"
        + podman_shim.miniwdl_podman_config()  # tasks run as the image's unprivileged user
        + "[call_cache]\n"
        f"put = {str(call_cache).lower()}\nget = {str(call_cache).lower()}\n"
        f"dir = {settings.CACHE_DIR / 'miniwdl_call_cache'}\n\n"
        "[file_io]\nallow_any_input = true\n"
    )
    return cfg


def _executable(flow: workflows.Workflow, task: str | None) -> WDL.Tree.Workflow | WDL.Tree.Task:
    """The workflow of ``flow``'s file, or its task ``task``."""
    doc = workflows.load(flow.path)
    if task is None:
        assert doc.workflow is not None
        return doc.workflow
    for candidate in doc.tasks:
        if candidate.name == task:
            return candidate
    raise UserError(f"{flow.path.name} has no task '{task}': its tasks are "
                    f"{', '.join(t.name for t in doc.tasks) or 'none'}")


def resolve_images(flow: workflows.Workflow, inputs: dict[str, Any], task: str | None = None) -> dict[str, Any]:
    """Point every pinned ``batchpipes/<name>:<tag>`` image input (of the workflow, or of ``task``) at the
    local registry.

    Inputs left at their WDL default, or set to a pinned ``batchpipes/...`` reference, are built
    (if not cached) and pushed; any other image reference is left alone for miniwdl to pull.
    """
    found = containers.discover()
    out = dict(inputs)
    for key, value, given in workflows.image_inputs(_executable(flow, task), inputs):
        image = images.resolve_pinned(value, key, found)
        if image is None:
            if given:
                continue  # a reference of the user's own: leave it
            raise UserError(f"{flow.path.name}: default of {key.rpartition('.')[2]} is not a pinned batchpipes image")
        if not image.local_build:
            log.info("%s: %s needs a GPU build host; it is not built here (used only by GPU runs)", key, value)
            continue
        out[key] = containers.publish_local(image)
    return out


@dataclass
class RunResult:
    run_dir: Path
    outputs: dict[str, Any]
    #: ``run_dir/results/<name>/``: every output file, indexes beside their files (None until published).
    results_dir: Path | None = None


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


def new_run_dir(parent: Path, name: str) -> Path:
    """A fresh ``parent/<YYYYMMDD_HHMMSS>_<name>`` folder (miniwdl's naming), made here so that this process
    knows which containers are its own."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{time.strftime('%Y%m%d_%H%M%S')}_{name}"
        try:
            path.mkdir()
            break
        except FileExistsError:
            time.sleep(0.5)
    # parent/_LAST -> the newest run (miniwdl makes it only for folders it names itself)
    link = parent / f"._LAST.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(path.name)
    os.replace(link, parent / "_LAST")
    return path


def check_local_paths(exe: WDL.Tree.Workflow | WDL.Tree.Task, inputs: dict[str, Any]) -> None:
    """Local-run limits of podman that would otherwise fail deep inside miniwdl."""

    def check(key: str, value: WDL.Value.File | WDL.Value.Directory) -> str:
        path = str(value.value)
        if path.startswith("/") and ":" in path and Path(path).exists():
            raise UserError(f"{key} names '{path}', whose path holds ':', which podman cannot mount: rename the "
                            "file or give a link to it without ':' (on AWS such names are fine)")
        return path

    workflows.map_files(exe, inputs, check)


def _run_miniwdl(cmd: list[str], run_dir: Path, verbose: bool) -> tuple[int, str, str]:
    """Run miniwdl in its own session; on SIGINT or SIGTERM stop it and every task container it started.

    miniwdl's own interrupt handling ends the ``podman run`` clients, but a task's shell is PID 1 in its container
    and ignores the SIGTERM podman forwards, so a long step (mdrun, bwa) would go on running. Here the containers
    whose mounts lie in this run's folder are stopped before this returns.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    signals: list[int] = []  # SIGINT/SIGTERM received during the run, recorded instead of stopping this process
    with stop_signals_handled(lambda signum, _frame: signals.append(signum)):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE,
                                text=True, env=env, start_new_session=True)
        out, err = "", ""
        while True:
            try:
                out, err = proc.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if signals:
                    break
        if not signals:
            return proc.returncode, out or "", err or ""
        signum = signals[0]
        log.warning("%s: stopping the workflow and its task containers", signal.Signals(signum).name)
        stopped = task_containers.stop_containers_under(run_dir, also=lambda: _interrupt(proc))
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stopped += task_containers.stop_containers_under(run_dir)
    raise Interrupted(f"interrupted: stopped the run and {stopped} task container(s); nothing was published "
                      f"(logs in {run_dir})", status=128 + signum)


def _interrupt(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)


def run(
    flow: workflows.Workflow,
    inputs: dict[str, Any],
    *,
    run_dir: Path,
    call_cache: bool = True,
    verbose: bool = False,
    task: str | None = None,
) -> RunResult:
    """Run ``flow`` with validated ``inputs`` under miniwdl in a new folder under ``run_dir``; raise UserError
    with the task's message, or Interrupted (after stopping every task container) on SIGINT/SIGTERM.

    With ``task``, run only that task of ``flow``'s file (inputs keyed ``<task>.<input>``); nothing is published.
    """
    check_local_paths(_executable(flow, task), inputs)
    inputs = resolve_images(flow, inputs, task)
    registry.start_registry()
    cfg = miniwdl_config(call_cache)
    name = task or flow.name
    here = new_run_dir(run_dir, name)
    # miniwdl keeps its own copy (inputs.json in the run folder); this one is removed after the run.
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f".{name}.inputs.", dir=here,
                                     delete=False) as fh:
        json.dump(inputs, fh, indent=2)
    inputs_file = Path(fh.name)
    cmd = [sys.executable, "-m", "WDL", "run", str(flow.path), "-i", str(inputs_file),
           "--dir", f"{here}/.", "--cfg", str(cfg), "--error-json"]
    if task is not None:
        cmd += ["--task", task]
    if not call_cache:
        cmd.append("--no-cache")
    if verbose:
        cmd.append("--verbose")
    log.info("miniwdl run %s (logs under %s)", flow.path.relative_to(settings.REPO_ROOT), here)
    try:
        returncode, stdout, stderr = _run_miniwdl(cmd, here, verbose)
    finally:
        inputs_file.unlink(missing_ok=True)
    try:
        result = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        result = {}
    if returncode != 0:
        if result.get("error"):
            raise UserError(f"{name} failed in {task_error(result)}")
        tail = stderr.strip().splitlines()[-1:] or ["see the miniwdl log"]
        raise UserError(f"{name} failed: {tail[0]}")
    done = RunResult(run_dir=Path(result.get("dir", here)), outputs=result.get("outputs", {}))
    if task is None:
        done.results_dir = results.publish(flow, inputs, done.run_dir, done.outputs)
    return done


def prepare_inputs(flow: workflows.Workflow, inputs_path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The inputs JSON plus ``--set`` overrides, validated; relative paths in the JSON are read from its own
    folder, relative paths given with ``--set`` from the current directory."""
    data = workflows.read_json(inputs_path)
    shown = inputs_path.resolve()
    source = str(shown.relative_to(Path.cwd())) if shown.is_relative_to(Path.cwd()) else str(inputs_path)
    return workflows.validate(flow, data, source=source, base_dir=shown.parent, overrides=overrides)


__all__ = ["run", "prepare_inputs", "RunResult", "miniwdl_config"]
