"""A ``moto_server`` on a free 127.0.0.1 port: the AWS stand-in for end-to-end tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..errors import UserError


def start_moto_server(log_path: Path, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto_server (from this Python's environment) on loopback; return (process, endpoint URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise UserError(f"moto_server did not start: see {log_path}") from None
            time.sleep(0.2)
