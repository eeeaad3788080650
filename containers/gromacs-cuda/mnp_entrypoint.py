#!/usr/bin/env python3
"""AWS Batch multi-node parallel (MNP) entrypoint: rendezvous of the nodes, then one ``mpirun``.

Usage: ``mnp-entrypoint [options] -- gmx_mpi mdrun -s topol.tpr -deffnm md -cpi md.cpt``

AWS Batch starts the same container on every node of the job and tells each node who it is:
``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``, ``AWS_BATCH_JOB_NUM_NODES``, and, on
the child nodes only, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.

* The main node makes an ssh key pair for this job only (in a private temporary folder: nothing is
  baked into the image), listens on a TCP port, and hands the public key to each child that joins.
* Each child makes its own ssh host key, starts sshd (public-key only, on a high port) trusting only
  that job key, and answers with its node index, its slots and its host key (so the main node checks
  host keys strictly). The child's address is the address its connection came from.
* When every child has joined, the main node writes the MPI host file and runs
  ``mpirun ... COMMAND`` over ssh; it then sends the exit status to every child, which stops sshd and
  exits with it. The job's exit status is the main node's.
* Every wait is bounded: a child that never joins, or a main node that never answers, ends the
  node with one ``ERROR:`` line naming the node indexes and the port to open.

Optional S3 staging: ``MNP_INPUT_URI`` (an s3:// prefix or local folder copied into the work
folder of every node before the run, since every MPI rank checks its input files) and
``MNP_OUTPUT_URI`` (where the main node's work folder goes afterwards, and where checkpoints
``*.cpt`` are uploaded every ``MNP_CHECKPOINT_UPLOAD_SECONDS`` during the run; on a retry after a
Spot interruption they are downloaded again, so ``mdrun -cpi`` continues).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROTOCOL = "batchpipes-mnp-1"


class RendezvousError(RuntimeError):
    """A node could not take part; the message is the one line printed after ``ERROR:``."""


def log(message: str) -> None:
    print(f"mnp[{os.environ.get('AWS_BATCH_JOB_NODE_INDEX', '?')}]: {message}", file=sys.stderr, flush=True)


# -- settings from the environment ------------------------------------------------------------------


def env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        if default is None:
            raise RendezvousError(f"{name} is not set: run this entrypoint as an AWS Batch multi-node job "
                                  "(or set the AWS_BATCH_JOB_* variables yourself)")
        return default
    try:
        return int(raw)
    except ValueError:
        raise RendezvousError(f"{name} is '{raw}', not a whole number") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mnp-entrypoint", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=int(os.environ.get("MNP_PORT", "2223")),
                   help="TCP port of the rendezvous on the main node (MNP_PORT)")
    p.add_argument("--ssh-port", type=int, default=int(os.environ.get("MNP_SSH_PORT", "2222")),
                   help="sshd port on the child nodes (MNP_SSH_PORT)")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("MNP_RENDEZVOUS_TIMEOUT", "600")),
                   help="seconds to wait for every node to join (MNP_RENDEZVOUS_TIMEOUT)")
    p.add_argument("--slots", type=int, default=int(os.environ.get("MNP_SLOTS", "0")) or os.cpu_count() or 1,
                   help="cores of this node (MNP_SLOTS; default: all)")
    p.add_argument("--ranks-per-node", type=int, default=int(os.environ.get("MNP_RANKS_PER_NODE", "1")),
                   help="MPI ranks per node; OpenMP threads per rank = slots / ranks (MNP_RANKS_PER_NODE)")
    p.add_argument("--workdir", default=os.environ.get("MNP_WORKDIR", "/work/mnp"),
                   help="working folder of the main node's command (MNP_WORKDIR)")
    p.add_argument("--input-uri", default=os.environ.get("MNP_INPUT_URI", ""),
                   help="s3:// prefix or folder whose files are copied into the work folder (MNP_INPUT_URI)")
    p.add_argument("--output-uri", default=os.environ.get("MNP_OUTPUT_URI", ""),
                   help="s3:// prefix or folder for the results and periodic checkpoints (MNP_OUTPUT_URI)")
    p.add_argument("--max-run-seconds", type=float,
                   default=float(os.environ.get("MNP_MAX_RUN_SECONDS", "604800")),
                   help="upper bound on a child's wait for the main node's result (MNP_MAX_RUN_SECONDS)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the MPI program and its arguments")
    args = p.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    for name, value in (("MNP_INPUT_URI", args.input_uri), ("MNP_OUTPUT_URI", args.output_uri)):
        if value:
            os.environ[name] = value  # read by the staging helpers below
    return args


# -- line-delimited JSON over TCP -------------------------------------------------------------------


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def receive(conn: socket.socket, deadline: float, what: str) -> dict[str, Any]:
    """One JSON line from ``conn`` before ``deadline`` (time.monotonic())."""
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RendezvousError(f"timed out waiting for {what}")
        conn.settimeout(min(left, 30.0))
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise RendezvousError(f"connection closed while waiting for {what}")
        data += chunk
        if len(data) > 1 << 20:
            raise RendezvousError(f"message too long while waiting for {what}")
    try:
        message = json.loads(data)
    except json.JSONDecodeError:
        raise RendezvousError(f"malformed message while waiting for {what}") from None
    if not isinstance(message, dict) or message.get("protocol") != PROTOCOL:
        raise RendezvousError(f"unexpected message while waiting for {what}")
    return message


def keepalive(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 8)):
        if hasattr(socket, opt):
            conn.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


def job_id() -> str:
    """The job id shared by all nodes (AWS_BATCH_JOB_ID is ``<job id>#<node index>`` on MNP nodes)."""
    return os.environ.get("AWS_BATCH_JOB_ID", "local").split("#")[0]


# -- ssh ---------------------------------------------------------------------------------------------


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"batchpipes-mnp-{job_id()}",
                    "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def start_sshd(state: Path, port: int, job_public_key: str) -> subprocess.Popen[bytes]:
    host_key = state / "ssh_host_ed25519_key"
    keygen(host_key)
    authorized = state / "authorized_keys"
    authorized.write_text(job_public_key + "\n")
    authorized.chmod(0o600)
    config = state / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 0.0.0.0\nHostKey {host_key}\nPidFile {state / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nX11Forwarding no\n"
        "AllowTcpForwarding no\nPermitTunnel no\nMaxStartups 100:30:200\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    subprocess.run([sshd, "-t", "-f", str(config)], check=True)
    return subprocess.Popen([sshd, "-D", "-e", "-f", str(config)])


# -- the main node -----------------------------------------------------------------------------------


def own_address(towards: str = "10.255.255.255") -> str:
    """This node's private address: the source address of a route out (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((towards, 9))
        return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostbyname(socket.gethostname())
    finally:
        probe.close()


def gather(args: argparse.Namespace, num_nodes: int, main_index: int, public_key: str,
           server: socket.socket) -> dict[int, dict[str, Any]]:
    """Accept every child node; return node index -> {address, slots, host_key, conn}."""
    expected = set(range(num_nodes)) - {main_index}
    joined: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + args.timeout
    while expected - set(joined):
        left = deadline - time.monotonic()
        if left <= 0:
            missing = sorted(expected - set(joined))
            for node in joined.values():
                try:
                    send(node["conn"], {"protocol": PROTOCOL, "abort": "rendezvous timed out"})
                except OSError:
                    pass
            raise RendezvousError(
                f"rendezvous timed out after {args.timeout:g} s: {len(joined)} of {len(expected)} child node(s) "
                f"joined, missing node index(es) {', '.join(map(str, missing))}: check that those nodes started "
                f"and that the security group allows TCP {args.port} and {args.ssh_port} between the job's nodes")
        server.settimeout(min(left, 5.0))
        try:
            conn, (peer, _port) = server.accept()
        except TimeoutError:
            continue
        try:
            keepalive(conn)
            send(conn, {"protocol": PROTOCOL, "job": job_id(), "public_key": public_key})
            hello = receive(conn, min(deadline, time.monotonic() + 120), "a child's answer")
            index = int(hello.get("node_index", -1))
            if hello.get("job") != job_id():
                raise RendezvousError(f"node from {peer} belongs to job {hello.get('job')!r}, not {job_id()!r}")
            if index not in expected or index in joined:
                raise RendezvousError(f"node from {peer} claims index {index}, which is not an expected child")
            joined[index] = {"address": peer, "slots": int(hello["slots"]), "host_key": str(hello["host_key"]),
                             "conn": conn}
            log(f"node {index} joined from {peer} with {hello['slots']} slot(s) "
                f"({len(joined)}/{len(expected)})")
        except (RendezvousError, KeyError, ValueError, OSError) as exc:
            log(f"rejected a connection from {peer}: {exc}")
            conn.close()
    return joined


def run_main(args: argparse.Namespace, num_nodes: int, main_index: int) -> int:
    if not args.command:
        raise RendezvousError("no command given: mnp-entrypoint [options] -- gmx_mpi mdrun ...")
    state = Path(tempfile.mkdtemp(prefix="mnp-"))
    state.chmod(0o700)
    public_key = keygen(state / "id_ed25519")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stage_in(workdir)

    joined: dict[int, dict[str, Any]] = {}
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", args.port))
    server.listen(max(num_nodes, 8))
    log(f"main node: waiting up to {args.timeout:g} s for {num_nodes - 1} child node(s) on TCP {args.port}")
    try:
        joined = gather(args, num_nodes, main_index, public_key, server)
    finally:
        server.close()

    me = own_address(next(iter(joined.values()))["address"]) if joined else "127.0.0.1"
    hosts = [(me, args.slots)] + [(joined[i]["address"], joined[i]["slots"]) for i in sorted(joined)]
    hostfile = state / "hostfile"
    hostfile.write_text("".join(f"{addr} slots={slots}\n" for addr, slots in hosts))
    (state / "known_hosts").write_text(
        "".join(f"[{n['address']}]:{args.ssh_port} {n['host_key']}\n" for n in joined.values()))
    ssh_config = state / "ssh_config"
    ssh_config.write_text(
        f"Host *\n  Port {args.ssh_port}\n  User root\n  IdentityFile {state / 'id_ed25519'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {state / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  ConnectTimeout 30\n  LogLevel ERROR\n")
    ranks = args.ranks_per_node
    threads = max(1, min(s for _a, s in hosts) // ranks)
    mpirun = ["mpirun", "--hostfile", str(hostfile), "-np", str(ranks * len(hosts)),
              "--map-by", f"ppr:{ranks}:node", "--bind-to", "none",
              "--mca", "plm_rsh_agent", f"ssh -F {ssh_config}",
              "--mca", "btl_tcp_if_exclude", "lo,docker0",
              "--mca", "oob_tcp_if_exclude", "lo,docker0",
              *[a for v in ("PATH", "LD_LIBRARY_PATH", "GMX_MAXBACKUP") if v in os.environ for a in ("-x", v)],
              "-x", f"OMP_NUM_THREADS={threads}", "--wdir", str(workdir), *args.command]
    log("host file: " + ", ".join(f"{a} ({s} slots)" for a, s in hosts))
    log("running: " + " ".join(mpirun))
    stop = threading.Event()
    uploader = threading.Thread(target=upload_checkpoints, args=(workdir, stop), daemon=True)
    uploader.start()
    rc = 1
    try:
        rc = subprocess.run(mpirun, cwd=workdir, check=False, env=dict(os.environ, OMP_NUM_THREADS=str(threads))
                            ).returncode
    finally:
        stop.set()
        uploader.join(timeout=60)
        for node in joined.values():
            try:
                send(node["conn"], {"protocol": PROTOCOL, "done": rc})
                node["conn"].close()
            except OSError:
                pass
        shutil.rmtree(state, ignore_errors=True)
    stage_out(workdir)
    if rc != 0:
        log(f"ERROR: mpirun exited with status {rc}")
    return rc


# -- a child node ------------------------------------------------------------------------------------


def connect_main(address: str, port: int, deadline: float) -> socket.socket:
    last = "no attempt"
    delay = 0.5
    while time.monotonic() < deadline:
        try:
            conn = socket.create_connection((address, port), timeout=10)
            keepalive(conn)
            return conn
        except OSError as exc:
            last = str(exc)
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 10.0)
    raise RendezvousError(f"could not reach the main node at {address}:{port} ({last}): check that the main node "
                          f"started and that the security group allows TCP {port} between the job's nodes")


def run_child(args: argparse.Namespace, index: int) -> int:
    main_address = os.environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "")
    if not main_address:
        raise RendezvousError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on child node "
                              f"{index}: run this entrypoint as an AWS Batch multi-node job")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)  # mpirun starts this node's ranks there
    stage_in(workdir, checkpoints=False)  # every rank's command line names the inputs: they must exist here too
    deadline = time.monotonic() + args.timeout
    conn = connect_main(main_address, args.port, deadline)
    offer = receive(conn, deadline, "the main node's job key")
    if offer.get("job") != job_id():
        raise RendezvousError(f"the main node at {main_address} runs job {offer.get('job')!r}, not {job_id()!r}")
    state = Path(tempfile.mkdtemp(prefix="mnp-"))
    state.chmod(0o700)
    sshd = start_sshd(state, args.ssh_port, str(offer["public_key"]))
    try:
        host_key = (state / "ssh_host_ed25519_key.pub").read_text().split(" ")[:2]
        send(conn, {"protocol": PROTOCOL, "job": job_id(), "node_index": index, "slots": args.slots,
                    "host_key": " ".join(host_key)})
        log(f"joined the main node at {main_address}; serving ssh on port {args.ssh_port}")
        result = receive(conn, time.monotonic() + args.max_run_seconds, "the main node's result")
        if "abort" in result:
            raise RendezvousError(f"the main node gave up: {result['abort']}")
        rc = int(result.get("done", 1))
        log(f"main node finished with status {rc}")
        return rc
    finally:
        sshd.terminate()
        try:
            sshd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sshd.kill()
        conn.close()
        shutil.rmtree(state, ignore_errors=True)


# -- S3 staging (main node) --------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


def download_prefix(uri: str, dest: Path, client: Any = None, suffixes: tuple[str, ...] = ()) -> list[Path]:
    """Copy every object under an s3:// prefix (or the files of a local folder) into ``dest``."""
    got = []
    if not uri.startswith("s3://"):
        for src in sorted(Path(uri).glob("*")):
            if src.is_file() and (not suffixes or src.name.endswith(suffixes)):
                shutil.copy2(src, dest / src.name)
                got.append(dest / src.name)
        return got
    import boto3

    s3 = client or boto3.client("s3")
    bucket, prefix = _split_s3(uri)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if not name or "/" in name or (suffixes and not name.endswith(suffixes)):
                continue
            s3.download_file(bucket, obj["Key"], str(dest / name))
            got.append(dest / name)
    return got


def upload_files(paths: list[Path], uri: str, client: Any = None) -> None:
    if not uri.startswith("s3://"):
        Path(uri).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy2(path, Path(uri) / path.name)
        return
    import boto3

    s3 = client or boto3.client("s3")
    bucket, prefix = _split_s3(uri)
    for path in paths:
        s3.upload_file(str(path), bucket, prefix + path.name, ExtraArgs={"ServerSideEncryption": "AES256"})


def stage_in(workdir: Path, checkpoints: bool = True) -> None:
    source = os.environ.get("MNP_INPUT_URI")
    if source:
        got = download_prefix(source, workdir)
        log(f"staged {len(got)} input file(s) from {source}")
    target = os.environ.get("MNP_OUTPUT_URI")
    if target and checkpoints:  # a retry after a Spot interruption: continue from the last uploaded checkpoint
        cpts = download_prefix(target, workdir, suffixes=(".cpt",))
        if cpts:
            log(f"found checkpoint(s) of an earlier attempt: {', '.join(p.name for p in cpts)}")


def upload_checkpoints(workdir: Path, stop: threading.Event) -> None:
    target = os.environ.get("MNP_OUTPUT_URI")
    period = float(os.environ.get("MNP_CHECKPOINT_UPLOAD_SECONDS", "600"))
    if not target:
        return
    seen: dict[Path, float] = {}
    while not stop.wait(period):
        fresh = [p for p in workdir.glob("*.cpt") if seen.get(p) != p.stat().st_mtime]
        if fresh:
            try:
                upload_files(fresh, target)
                seen.update({p: p.stat().st_mtime for p in fresh})
            except Exception as exc:  # keep the run going; the next period tries again
                log(f"checkpoint upload failed: {exc}")


def stage_out(workdir: Path) -> None:
    target = os.environ.get("MNP_OUTPUT_URI")
    if target:
        files = [p for p in sorted(workdir.iterdir()) if p.is_file()]
        upload_files(files, target)
        log(f"uploaded {len(files)} file(s) to {target}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        num_nodes = env_int("AWS_BATCH_JOB_NUM_NODES")
        index = env_int("AWS_BATCH_JOB_NODE_INDEX")
        main_index = env_int("AWS_BATCH_JOB_MAIN_NODE_INDEX", 0)
        if not 0 <= index < num_nodes or not 0 <= main_index < num_nodes:
            raise RendezvousError(f"node index {index} / main node index {main_index} outside 0..{num_nodes - 1}")
        if index == main_index:
            return run_main(args, num_nodes, main_index)
        return run_child(args, index)
    except RendezvousError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
