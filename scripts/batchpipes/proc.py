"""Running external commands with logging and clear failures."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import ToolError, UserError

log = logging.getLogger(__name__)


def require(exe: str, hint: str) -> str:
    """Return the path of ``exe`` or raise a UserError carrying ``hint``."""
    path = shutil.which(exe)
    if path is None:
        raise UserError(f"'{exe}' is not installed: {hint}")
    return path


def run(
    cmd: Sequence[str | Path],
    *,
    what: str,
    capture: bool = False,
    cwd: Path | None = None,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd``; on failure raise ToolError naming ``what`` and the last stderr line."""
    args = [str(c) for c in cmd]
    log.debug("$ %s", " ".join(args))
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            input=input_bytes,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise UserError(f"{what}: '{args[0]}' is not installed (run scripts/bootstrap.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{what}: timed out after {timeout:.0f} s ({' '.join(args[:3])} ...)") from exc
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        for ln in tail[-20:]:
            log.debug("  %s", ln)
        last = tail[-1].strip() if tail else f"exit status {proc.returncode}"
        raise ToolError(f"{what} failed: {last}")
    return proc
