"""The container engine on this machine: podman (docker only where a GPU build host has no podman)."""

from __future__ import annotations

import os
import shutil
import subprocess

from .proc import require, run

PODMAN_HINT = "run scripts/bootstrap.sh (installs podman, runc and debootstrap)"


def podman() -> list[str]:
    require("podman", PODMAN_HINT)
    return ["podman"]


def engine() -> list[str]:
    """podman, or docker where there is no podman (a GPU build host): for ``images lock --build-host``."""
    if shutil.which("podman") is None and shutil.which("docker") is not None:
        return ["docker"]
    return podman()


def image_exists(ref: str) -> bool:
    return subprocess.run(podman() + ["image", "exists", ref], check=False).returncode == 0


def default_user(ref: str) -> str:
    """The image's default user (``.Config.User``; empty means root)."""
    out = run(podman() + ["image", "inspect", "--format", "{{.Config.User}}", ref],
              what=f"inspecting {ref}", capture=True).stdout.decode().strip()
    return out


def as_invoker() -> list[str]:
    """``podman run`` options for a container that works in the invoking user's folders (test data,
    benchmarks): run it as that user, so it can write there and its files are the invoker's."""
    return ["--user", f"{os.getuid()}:{os.getgid()}"]
