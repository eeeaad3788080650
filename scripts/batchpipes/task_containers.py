"""The podman containers of one local run: found by their mounts, stopped on an interrupt."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _podman(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    # the same podman as the tasks': root's store (through sudo for a user, as miniwdl does)
    exe = ["podman"] if os.geteuid() == 0 else ["sudo", "-n", "podman"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, check=False, timeout=timeout)


def containers_under(folder: Path) -> list[str]:
    """IDs of the running containers with a bind mount inside ``folder`` (a run's folder: every miniwdl task
    container mounts its working directory from there)."""
    ids = _podman("ps", "-q", "--no-trunc").stdout.split()
    if not ids:
        return []
    proc = _podman("inspect", *ids)
    try:
        found = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        found = []
    folder = folder.resolve()
    mine = []
    for info in found:
        sources = [Path(m.get("Source") or "/") for m in info.get("Mounts") or []]
        if any(s == folder or s.is_relative_to(folder) for s in sources):
            mine.append(str(info.get("Id")))
    return mine


def stop_containers_under(folder: Path, *, also: Callable[[], None] | None = None, limit_s: float = 30) -> int:
    """Stop every container under ``folder`` until two sweeps half a second apart find none (a scheduler that is
    shutting down may start one more); ``also`` is called before each sweep. Returns how many were stopped."""
    stopped: set[str] = set()
    quiet = 0
    deadline = time.monotonic() + limit_s
    while quiet < 2 and time.monotonic() < deadline:
        if also is not None:
            also()
        ids = containers_under(folder)
        if ids:
            quiet = 0
            log.info("stopping %d task container(s)", len(ids))
            _podman("stop", "--time", "1", *ids, timeout=60)
            stopped.update(ids)
        else:
            quiet += 1
        time.sleep(0.5)
    return len(stopped)


__all__ = ["containers_under", "stop_containers_under"]
