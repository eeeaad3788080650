"""Ctrl-C and SIGTERM during ``batchpipes run``: the task containers stop before the CLI exits, the exit status
says which signal, and nothing is published.

A task's shell is PID 1 in its container and ignores the SIGTERM that podman forwards, so without the CLI's
own clean-up a long step (here: an energy minimisation that cannot converge) goes on running after the CLI is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batchpipes import settings
from batchpipes.task_containers import containers_under

pytestmark = pytest.mark.containers

# An energy minimisation that runs for minutes: a force tolerance no system reaches, many steps.
LONG_EM = ["--set", "em_steps=500000", "--set", 'em_mdp_overrides=["emtol = 0.001"]']


def start_run(tmp_path: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "batchpipes.cli", "run", "gromacs", "--no-cache", "--dir", str(tmp_path), *LONG_EM]
    return subprocess.Popen(cmd, cwd=settings.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_minimisation(proc: subprocess.Popen[str], tmp_path: Path, limit_s: float = 240) -> None:
    """Until the minimisation task's container runs (the step that would outlive the CLI)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run ended early: {proc.communicate()[1][-2000:]}"
        if list(tmp_path.glob("*/call-minimize")) and containers_under(tmp_path):
            time.sleep(2)  # mdrun is running, not starting
            if containers_under(tmp_path):
                return
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the minimisation task never started")


@pytest.mark.parametrize(("send", "status"), [("ctrl-c", 130), ("sigterm", 143)])
def test_interrupt_stops_task_containers(podman_ready: None, tmp_path: Path, send: str, status: int) -> None:
    proc = start_run(tmp_path)
    wait_for_minimisation(proc, tmp_path)
    running = containers_under(tmp_path)
    assert running, "a task container should be running before the signal"
    t0 = time.monotonic()
    if send == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: every process of the foreground group
    else:
        proc.send_signal(signal.SIGTERM)  # what `kill PID` or a batch scheduler sends: the CLI alone
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the CLI did not exit within 60 s of {send}")
    elapsed = time.monotonic() - t0
    left = containers_under(tmp_path)  # checked at once: the CLI must have stopped them before exiting
    assert left == [], f"task containers still running after the CLI exited: {left}"
    assert proc.returncode == status, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted: stopped the run and "), last
    assert "task container(s); nothing was published" in last
    print(f"{send}: the CLI exited {elapsed:.1f} s after the signal, {len(running)} container(s) were running")
    assert elapsed < 30, f"took {elapsed:.1f} s to stop"
    assert not list(tmp_path.glob("*/results")), "an interrupted run must publish nothing"
