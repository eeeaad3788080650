"""A ``moto_server`` on a free 127.0.0.1 port: the AWS stand-in for end-to-end tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..errors import UserError

#: How long a started moto_server must stay alive after it answers: one that lost its port to another process
#: (the free port found is free only until someone binds it) exits within this, while the answer came from the
#: other server.
SETTLE_S = 1.5


def start_moto_server(log_path: Path, timeout: float = 30, attempts: int = 5) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto_server (from this Python's environment) on loopback; return (process, endpoint URL). The server
    that answers must be the one started (parallel test workers each start one): if it dies because the port was
    taken meanwhile, another free port is tried."""
    for _ in range(attempts):
        started = _start_once(log_path, timeout)
        if started is not None:
            return started
    raise UserError(f"moto_server did not keep a port after {attempts} attempts: see {log_path}")


def _start_once(log_path: Path, timeout: float) -> tuple[subprocess.Popen[bytes], str] | None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    with log_path.open("ab") as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                if time.monotonic() > deadline:
                    raise UserError(f"moto_server did not start: see {log_path}") from None
                return None
            time.sleep(0.2)
    try:
        proc.wait(timeout=SETTLE_S)
    except subprocess.TimeoutExpired:
        return proc, url
    return None  # it exited: what answered was another process on that port
