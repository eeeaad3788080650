"""Running external commands with logging and clear failures."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from .errors import ToolError, UserError

log = logging.getLogger(__name__)

#: Signals that stop a run or a staging (exit status 128 + the signal number: 130 for SIGINT, 143 for SIGTERM).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


@contextlib.contextmanager
def stop_signals_handled(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """For the block, SIGINT and SIGTERM call ``handler`` instead of stopping the process; the previous handlers
    come back after it. Only the main thread receives signals: elsewhere nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
