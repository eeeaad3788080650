"""A ``moto_server`` on a free 127.0.0.1 port: the AWS stand-in for end-to-end tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..errors import UserError

#: How long to wait, after the port answers, for the started moto_server to be the one listening on it or to exit.
SETTLE_S = 30.0


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
    # The answer may come from another process on that port (the free port found is free only until someone binds
    # it). Ours is the one whose open files include the socket listening on the port; one that lost the port exits.
    settle = time.monotonic() + SETTLE_S
    while time.monotonic() < settle:
        if proc.poll() is not None:
            return None
        if listens_on(proc.pid, port):
            return proc, url
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return None


def listening_inodes(port: int, proc_net: Path = Path("/proc/net")) -> set[str]:
    """Socket inodes in LISTEN state on a local TCP port (IPv4 and IPv6), from Linux's /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        table = proc_net / name
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port``."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if str(fd.readlink()) in wanted:
                return True
        except OSError:
            continue
    return False
