#!/usr/bin/env python3
"""AWS Batch multi-node parallel (MNP) entrypoint: rendezvous of the nodes, then one ``mpirun``.

Usage: ``mnp-entrypoint [options] -- gmx_mpi mdrun -s topol.tpr -deffnm md -cpi md.cpt``

AWS Batch starts the same container on every node of the job and tells each node who it is:
``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``, ``AWS_BATCH_JOB_NUM_NODES``, and, on
the child nodes only, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.

* The main node makes an ssh key pair for this job only (in a private temporary folder: nothing is
  baked into the image) and listens on a TCP port (``MNP_PORT``, 2223).
* Each child makes its own ssh host key, connects, and both sides prove that they hold the job's
  rendezvous secret (below). Only then does the main node hand over the job's public key, and only
  then does the child start sshd (public-key only, on a high port) trusting just that key, and say
  it is ready. The child's address is the address its connection came from; its host key came with
  its proof, so the main node checks host keys strictly.
* When every child has joined, the main node writes the MPI host file and runs
  ``mpirun ... COMMAND`` over ssh; it then sends the exit status to every child, which stops sshd and
  exits with it. The job's exit status is the main node's.
* Every wait is bounded: a child that never joins, or a main node that never answers, ends the
  node with one ``ERROR:`` line naming the node indexes and the port to open.

Security model of the rendezvous (issue 8)
------------------------------------------
Anyone on the network can reach the rendezvous port, so nothing is given for a connection alone:

* **Per-job secret, never on the wire.** ``MNP_SECRET_URI`` names an s3:// object (or, for local
  runs, a file) holding at least 32 random bytes. ``batchpipes aws mnp submit`` makes a fresh one
  for every submission under ``<input-uri>.batchpipes-mnp/`` (SSE-encrypted; the job role already
  reads the input prefix, so every node can read it and nobody needs new permissions) and deletes it
  when the job has ended. DescribeJobs shows only the object's URI, never the secret: that is why
  the secret is not an environment value. Whoever cannot read that object (another account's or
  another role's workload in the VPC, a stray host in the subnet) cannot join, and cannot pose as
  the main node. Whoever can read the input prefix could also change the inputs: the secret does
  not try to protect against them.
* **Challenge/response both ways.** The main node sends a fresh random nonce; the child answers
  with its own nonce, its node index, slots and ssh host key and an HMAC-SHA256 over all of them and
  both nonces; the main node answers with the job's public key and an HMAC over the key and both
  nonces. Each side checks with a constant-time compare before it trusts anything from the other,
  so a child never starts sshd for, nor runs commands of, an impostor main node, and the main node
  never gives the key to, nor writes a host key of, an impostor child. The final exit status (and an
  abort) is signed the same way. Fresh nonces on both sides make a recorded exchange useless.
* **Concurrent, short handshakes.** Each connection is served by its own thread with a
  ``MNP_HANDSHAKE_TIMEOUT`` (10 s) deadline per step, at most 64 at a time, so an idle or slow
  connection cannot delay the real nodes; the whole rendezvous stays bounded by
  ``MNP_RENDEZVOUS_TIMEOUT``.
* **Job subnet only.** The main node accepts connections only from its own subnet (the network of
  the interface that holds its private address; AWS Batch gives every MNP node an ENI in the
  subnet of its instance), or from ``MNP_ALLOWED_NETWORKS`` (comma-separated CIDRs) when set, and
  logs every refusal.

Optional S3 staging: ``MNP_INPUT_URI`` (an s3:// prefix or local folder copied into the work
folder of every node before the run, since every MPI rank checks its input files) and
``MNP_OUTPUT_URI`` (where the main node's work folder goes afterwards, and where checkpoints
``*.cpt`` and mdrun's numbered outputs ``*.partNNNN.*`` are uploaded every
``MNP_CHECKPOINT_UPLOAD_SECONDS`` during the run; on a retry the checkpoints are downloaded again, so
``mdrun -cpi -noappend`` continues into the next part, and the parts of the lost attempt stay in S3).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROTOCOL = "batchpipes-mnp-2"
#: The least secret length accepted (bytes of the secret object, e.g. 64 hex digits from mnp-submit).
SECRET_MIN_BYTES = 32
#: Handshakes served at once; more connections than this are refused straight away.
MAX_HANDSHAKES = 64
#: Longest handshake message (a host key and two nonces fit in well under 2 KiB).
HANDSHAKE_MAX_BYTES = 16384

NONCE_RE = re.compile(r"[0-9a-f]{64}")
SSH_KEY_RE = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp[0-9]+|ssh-rsa) [A-Za-z0-9+/]+={0,3}"
                        r"( [A-Za-z0-9@._:+-]{1,200})?")  # type, key, optional comment: one known_hosts line


class RendezvousError(RuntimeError):
    """A node could not take part; the message is the one line printed after ``ERROR:``."""


class Busy(RendezvousError):
    """The main node had too many handshakes in progress: connect again."""


#: What the main node tells a connection beyond MAX_HANDSHAKES (the child then tries again).
BUSY = "too many connections in progress"


class Refused(RuntimeError):
    """The main node refuses one connection (the job goes on); the message says why."""


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
    p.add_argument("--handshake-timeout", type=float,
                   default=float(os.environ.get("MNP_HANDSHAKE_TIMEOUT", "10")),
                   help="seconds one connection may take per handshake step (MNP_HANDSHAKE_TIMEOUT)")
    p.add_argument("--secret-uri", default=os.environ.get("MNP_SECRET_URI", ""),
                   help="s3:// object or file holding the job's rendezvous secret (MNP_SECRET_URI)")
    p.add_argument("--allowed-networks", default=os.environ.get("MNP_ALLOWED_NETWORKS", ""),
                   help="CIDRs the main node accepts nodes from; default: its own subnet (MNP_ALLOWED_NETWORKS)")
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


# -- the job's rendezvous secret ---------------------------------------------------------------------


def load_secret(uri: str, client: Any = None) -> bytes:
    """The secret bytes of ``uri`` (an s3:// object or a file), surrounding whitespace stripped.

    Read once into memory and never written anywhere, logged or sent.
    """
    if not uri:
        raise RendezvousError(
            "MNP_SECRET_URI is not set: every node needs the job's rendezvous secret; submit with "
            "'batchpipes aws mnp submit' (it makes one per job) or point MNP_SECRET_URI at an s3:// object "
            f"or file holding at least {SECRET_MIN_BYTES} random bytes")
    fix = "check MNP_SECRET_URI and that every node can read it"
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            import boto3
            import botocore.exceptions

            s3 = client or boto3.client("s3")
            try:
                data = bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except botocore.exceptions.ClientError as exc:
                error = exc.response.get("Error", {})
                raise RendezvousError(
                    f"cannot read the rendezvous secret {uri}: {error.get('Code', '?')} "
                    f"({error.get('Message', 'no message')}): {fix} (the job role needs s3:GetObject on it; "
                    "mnp-submit deletes it when the job has ended)") from None
            except botocore.exceptions.BotoCoreError as exc:
                raise RendezvousError(f"cannot read the rendezvous secret {uri}: {exc}: {fix}") from None
        except ImportError:
            raise RendezvousError(f"cannot read the rendezvous secret {uri}: boto3 is not installed") from None
    else:
        try:
            data = Path(uri).read_bytes()
        except OSError as exc:
            raise RendezvousError(f"cannot read the rendezvous secret {uri}: {exc.strerror}: {fix}") from None
    data = data.strip()
    if len(data) < SECRET_MIN_BYTES:
        raise RendezvousError(
            f"the rendezvous secret {uri} holds {len(data)} byte(s), fewer than {SECRET_MIN_BYTES}: let "
            "mnp-submit make it, or write one with 'openssl rand -hex 32'")
    return data


def sign(secret: bytes, label: str, *fields: object) -> str:
    """HMAC-SHA256 (hex) of ``label`` and ``fields`` (JSON-encoded, so no two field lists collide)."""
    message = json.dumps([PROTOCOL, label, *fields], separators=(",", ":"), ensure_ascii=True)
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, given: object, label: str, *fields: object) -> bool:
    """Constant-time check that ``given`` is :func:`sign` of the same label and fields."""
    if not isinstance(given, str) or not given.isascii():
        return False
    return hmac.compare_digest(sign(secret, label, *fields).encode(), given.encode())


# -- the job's subnet --------------------------------------------------------------------------------

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


def interface_networks() -> list[tuple[str, ipaddress.IPv4Interface]]:
    """(interface name, address/netmask) of every interface with an IPv4 address (Linux ioctls)."""
    import fcntl

    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                address = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)[20:24])
                netmask = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), _SIOCGIFNETMASK, request)[20:24])
            except OSError:  # no IPv4 address on this interface
                continue
            found.append((name, ipaddress.IPv4Interface(f"{address}/{netmask}")))
    finally:
        probe.close()
    return found


def allowed_networks(override: str, address: str) -> tuple[list[ipaddress.IPv4Network], str]:
    """The networks the main node accepts nodes from, and where they came from (for the log).

    ``override`` (MNP_ALLOWED_NETWORKS): comma-separated CIDRs. Else the network of the interface
    holding ``address``, this node's private address.
    """
    if override.strip():
        networks = []
        for item in override.split(","):
            try:
                networks.append(ipaddress.IPv4Network(item.strip(), strict=False))
            except ValueError:
                raise RendezvousError(
                    f"MNP_ALLOWED_NETWORKS has '{item.strip()}', not an IPv4 network: give CIDRs such as "
                    "10.0.0.0/16, separated by commas") from None
        return networks, "MNP_ALLOWED_NETWORKS"
    for name, interface in interface_networks():
        if str(interface.ip) == address:
            return [interface.network], f"the subnet of {name}"
    raise RendezvousError(
        f"cannot tell this node's subnet: its address {address} is on no interface: set MNP_ALLOWED_NETWORKS "
        "to the CIDR(s) of the job's subnet(s)")


def peer_allowed(peer: str, networks: list[ipaddress.IPv4Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


# -- line-delimited JSON over TCP -------------------------------------------------------------------


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall((json.dumps({"protocol": PROTOCOL, **message}) + "\n").encode())


def receive(conn: socket.socket, deadline: float, what: str, max_bytes: int = 1 << 20) -> dict[str, Any]:
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
        if len(data) > max_bytes:
            raise RendezvousError(f"message too long while waiting for {what}")
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
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


def printable(value: object, limit: int = 200) -> str:
    """``value`` as one line of printable text (a peer's words go into our one-line errors)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(value))[:limit]


def _int_field(message: dict[str, Any], name: str) -> int:
    value = message.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(f"malformed answer ({name} is not a whole number)")
    return value


# -- ssh ---------------------------------------------------------------------------------------------


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"batchpipes-mnp-{job_id()}",
                    "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def start_sshd(state: Path, port: int, job_public_key: str, wait: float = 10.0) -> subprocess.Popen[bytes]:
    """sshd on ``port`` trusting only ``job_public_key`` (host key made by :func:`keygen` beforehand);
    returns once it accepts connections."""
    host_key = state / "ssh_host_ed25519_key"
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
    if os.geteuid() == 0:  # sshd's privilege separation folder; an unprivileged sshd runs without it
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    subprocess.run([sshd, "-t", "-f", str(config)], check=True)
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)])
    deadline = time.monotonic() + wait
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
        process.kill()
        raise RendezvousError(f"sshd did not start on port {port}: is the port taken? set MNP_SSH_PORT")


def login_user() -> str:
    """The user every node runs as (the same image and job definition): mpirun logs in as it."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        raise RendezvousError(f"user id {os.getuid()} has no name in /etc/passwd, so ssh cannot log in as it: run "
                              "the job as a user of the image (root or batchpipes)") from None


# -- the handshake -----------------------------------------------------------------------------------


class Node:
    """A child node that proved the secret; ``nonces`` sign the messages sent to it later."""

    def __init__(self, index: int, address: str, slots: int, host_key: str, conn: socket.socket,
                 nonces: tuple[str, str]) -> None:
        self.index, self.address, self.slots, self.host_key = index, address, slots, host_key
        self.conn = conn
        self.nonces = nonces


def refuse(conn: socket.socket, reason: str) -> None:
    """Tell the peer why (nothing secret in it), then close."""
    try:
        conn.settimeout(1.0)
        send(conn, {"refused": reason})
    except OSError:
        pass
    conn.close()


def serve_handshake(conn: socket.socket, peer: str, secret: bytes, job: str, public_key: str,
                    claim: Callable[[int], str | None], timeout: float) -> Node:
    """The main node's side of one connection: challenge, check the child's proof, prove the secret
    with the job's public key, wait for "ready". ``claim(index)`` reserves a node index (or returns why
    not). Raises Refused (the caller closes the connection and releases the claim)."""
    nonce_m = secrets.token_hex(32)
    try:
        send(conn, {"challenge": nonce_m})
        hello = receive(conn, time.monotonic() + timeout, "the answer to the challenge", HANDSHAKE_MAX_BYTES)
    except (RendezvousError, OSError) as exc:
        raise Refused(str(exc) if isinstance(exc, RendezvousError) else f"connection failed: {exc}") from None
    index = _int_field(hello, "node_index")
    slots = _int_field(hello, "slots")
    nonce_c, host_key, mac = hello.get("nonce"), hello.get("host_key"), hello.get("mac")
    if not isinstance(nonce_c, str) or not NONCE_RE.fullmatch(nonce_c) or nonce_c == nonce_m:
        raise Refused("malformed answer (nonce)")
    if not isinstance(host_key, str) or not SSH_KEY_RE.fullmatch(host_key):
        raise Refused("malformed answer (host key)")
    if not verify(secret, mac, "child", job, nonce_m, nonce_c, index, slots, host_key):
        raise Refused("its answer does not prove this job's rendezvous secret (not a node of this job, or a "
                      "node that read another MNP_SECRET_URI)")
    if not 1 <= slots <= 1_000_000:
        raise Refused(f"node {index} claims {slots} slots")
    why = claim(index)
    if why:
        raise Refused(why)
    try:
        send(conn, {"public_key": public_key, "mac": sign(secret, "main", job, nonce_m, nonce_c, index, public_key)})
        ready = receive(conn, time.monotonic() + timeout, f"node {index} to start sshd", HANDSHAKE_MAX_BYTES)
    except (RendezvousError, OSError) as exc:
        raise Refused(str(exc) if isinstance(exc, RendezvousError) else f"connection failed: {exc}") from None
    if not verify(secret, ready.get("mac"), "ready", job, nonce_m, nonce_c, index):
        raise Refused(f"node {index}'s ready message does not prove the secret")
    return Node(index, peer, slots, host_key, conn, (nonce_m, nonce_c))


def join_handshake(conn: socket.socket, secret: bytes, job: str, index: int, slots: int, host_key: str,
                   timeout: float, start_ssh: Callable[[str], None], main: str = "the main node") -> tuple[str, str]:
    """A child's side: answer the challenge with a proof, check the main node's proof before trusting
    its public key, ``start_ssh(public_key)``, say ready. Returns the nonces (they sign the result)."""
    challenge = receive(conn, time.monotonic() + timeout, f"the challenge of {main}", HANDSHAKE_MAX_BYTES)
    if challenge.get("refused") == BUSY:
        raise Busy(f"{main} refused this node: {BUSY}")
    if "refused" in challenge:
        raise RendezvousError(f"{main} refused this node: {printable(challenge['refused'])}")
    nonce_m = challenge.get("challenge")
    if not isinstance(nonce_m, str) or not NONCE_RE.fullmatch(nonce_m):
        raise RendezvousError(f"{main} sent a malformed challenge")
    nonce_c = secrets.token_hex(32)
    send(conn, {"node_index": index, "slots": slots, "host_key": host_key, "nonce": nonce_c,
                "mac": sign(secret, "child", job, nonce_m, nonce_c, index, slots, host_key)})
    offer = receive(conn, time.monotonic() + timeout, f"the job key from {main}", HANDSHAKE_MAX_BYTES)
    if "refused" in offer:
        raise RendezvousError(f"{main} refused this node: {printable(offer['refused'])}")
    public_key = offer.get("public_key")
    if not isinstance(public_key, str) or not verify(secret, offer.get("mac"), "main", job, nonce_m, nonce_c, index,
                                                     public_key):
        raise RendezvousError(
            f"{main} did not prove this job's rendezvous secret: it is not this job's main node, or the nodes "
            "read different secrets (MNP_SECRET_URI)")
    if not SSH_KEY_RE.fullmatch(public_key):
        raise RendezvousError(f"{main} sent a malformed public key")
    start_ssh(public_key)
    send(conn, {"mac": sign(secret, "ready", job, nonce_m, nonce_c, index)})
    return nonce_m, nonce_c


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


class Gathering:
    """The main node's rendezvous: every connection in its own thread, joined children collected."""

    def __init__(self, secret: bytes, job: str, public_key: str, expected: set[int],
                 networks: list[ipaddress.IPv4Network], handshake_timeout: float) -> None:
        self.secret, self.job, self.public_key = secret, job, public_key
        self.expected = expected
        self.networks = networks
        self.handshake_timeout = handshake_timeout
        self.lock = threading.Lock()
        self.joined: dict[int, Node] = {}
        self.claimed: set[int] = set()
        self.closed = False
        self.complete = threading.Event()
        self.slots = threading.BoundedSemaphore(MAX_HANDSHAKES)
        if not expected:
            self.complete.set()

    def claim(self, index: int) -> str | None:
        with self.lock:
            if self.closed:
                return "the rendezvous is over"
            if index not in self.expected:
                return f"node index {index} is not a child node of this job"
            if index in self.claimed:
                return f"node {index} has already joined"
            self.claimed.add(index)
            return None

    def accept(self, conn: socket.socket, peer: str) -> None:
        """Check the address and start a handshake thread (or refuse at once)."""
        if not peer_allowed(peer, self.networks):
            log(f"refused a connection from {peer}: outside the job's network "
                f"{', '.join(map(str, self.networks))}")
            refuse(conn, "this address is outside the main node's network")
            return
        if not self.slots.acquire(blocking=False):
            log(f"refused a connection from {peer}: {MAX_HANDSHAKES} handshakes already in progress")
            refuse(conn, BUSY)
            return
        threading.Thread(target=self.handle, args=(conn, peer), daemon=True).start()

    def handle(self, conn: socket.socket, peer: str) -> None:
        index: int | None = None

        def claim(i: int) -> str | None:
            nonlocal index
            why = self.claim(i)
            if why is None:
                index = i
            return why

        try:
            keepalive(conn)
            node = serve_handshake(conn, peer, self.secret, self.job, self.public_key, claim, self.handshake_timeout)
            with self.lock:
                if self.closed:
                    raise Refused("the rendezvous is over")
                self.joined[node.index] = node
                count = len(self.joined)
                if self.expected <= set(self.joined):
                    self.complete.set()
            log(f"node {node.index} joined from {peer} with {node.slots} slot(s) ({count}/{len(self.expected)})")
        except (Refused, OSError) as exc:
            if index is not None:
                with self.lock:
                    self.claimed.discard(index)
            log(f"refused a connection from {peer}: {exc}")
            refuse(conn, str(exc))
        except Exception as exc:  # a hostile peer must not end the main node, nor leak a thread slot
            if index is not None:
                with self.lock:
                    self.claimed.discard(index)
            log(f"refused a connection from {peer}: unexpected {type(exc).__name__}")
            conn.close()
        finally:
            self.slots.release()

    def close(self) -> dict[int, Node]:
        with self.lock:
            self.closed = True
            return dict(self.joined)


def gather(server: socket.socket, gathering: Gathering, timeout: float, port: int, ssh_port: int
           ) -> dict[int, Node]:
    """Accept connections until every child has joined; return node index -> Node."""
    deadline = time.monotonic() + timeout
    while not gathering.complete.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            joined = gathering.close()
            for node in joined.values():
                reason = "rendezvous timed out"
                try:
                    send(node.conn, {"abort": reason, "mac": sign(gathering.secret, "abort", gathering.job,
                                                                   *node.nonces, node.index, reason)})
                except OSError:
                    pass
            missing = sorted(gathering.expected - set(joined))
            raise RendezvousError(
                f"rendezvous timed out after {timeout:g} s: {len(joined)} of {len(gathering.expected)} child "
                f"node(s) joined, missing node index(es) {', '.join(map(str, missing))}: check that those nodes "
                f"started and that the security group allows TCP {port} and {ssh_port} between the job's nodes")
        server.settimeout(min(left, 0.2))
        try:
            conn, address = server.accept()
        except TimeoutError:
            continue
        gathering.accept(conn, str(address[0]))
    return gathering.close()


def run_main(args: argparse.Namespace, num_nodes: int, main_index: int) -> int:
    if not args.command:
        raise RendezvousError("no command given: mnp-entrypoint [options] -- gmx_mpi mdrun ...")
    secret = load_secret(args.secret_uri)
    login_user()
    me = own_address()
    networks, source = allowed_networks(args.allowed_networks, me)
    state = Path(tempfile.mkdtemp(prefix="mnp-"))
    state.chmod(0o700)
    public_key = keygen(state / "id_ed25519")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stage_in(workdir)

    joined: dict[int, Node] = {}
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", args.port))
    server.listen(128)
    log(f"main node: waiting up to {args.timeout:g} s for {num_nodes - 1} child node(s) on TCP {args.port}; "
        f"accepting nodes from {', '.join(map(str, networks))} ({source})")
    gathering = Gathering(secret, job_id(), public_key, set(range(num_nodes)) - {main_index}, networks,
                          args.handshake_timeout)
    started = time.monotonic()
    try:
        joined = gather(server, gathering, args.timeout, args.port, args.ssh_port)
    finally:
        server.close()
    log(f"rendezvous complete in {time.monotonic() - started:.1f} s")

    hosts = [(me, args.slots)] + [(joined[i].address, joined[i].slots) for i in sorted(joined)]
    hostfile = state / "hostfile"
    hostfile.write_text("".join(f"{addr} slots={slots}\n" for addr, slots in hosts))
    (state / "known_hosts").write_text(
        "".join(f"[{n.address}]:{args.ssh_port} {n.host_key}\n" for n in joined.values()))
    ssh_config = state / "ssh_config"
    ssh_config.write_text(
        f"Host *\n  Port {args.ssh_port}\n  User {login_user()}\n  IdentityFile {state / 'id_ed25519'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {state / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  ConnectTimeout 30\n  LogLevel ERROR\n")
    ranks = args.ranks_per_node
    threads = max(1, min(s for _a, s in hosts) // ranks)
    mpirun = ["mpirun", "--hostfile", str(hostfile), "-np", str(ranks * len(hosts)),
              "--map-by", f"ppr:{ranks}:node", "--bind-to", "none",
              "--mca", "plm_rsh_agent", f"ssh -F {ssh_config}",
              # only the main node holds the job key: it starts every remote daemon itself (no tree spawn)
              "--mca", "plm_rsh_no_tree_spawn", "1",
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
                send(node.conn, {"done": rc, "mac": sign(secret, "done", job_id(), *node.nonces, node.index, rc)})
                node.conn.close()
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


def wait_result(conn: socket.socket, secret: bytes, job: str, index: int, nonces: tuple[str, str],
                seconds: float) -> int:
    """The main node's signed exit status (or abort)."""
    result = receive(conn, time.monotonic() + seconds, "the main node's result")
    if "abort" in result:
        reason = result["abort"]
        if not verify(secret, result.get("mac"), "abort", job, *nonces, index, reason):
            raise RendezvousError("got an abort message that does not prove the job's secret: ignoring the run")
        raise RendezvousError(f"the main node gave up: {printable(reason)}")
    rc = result.get("done")
    if not isinstance(rc, int) or not verify(secret, result.get("mac"), "done", job, *nonces, index, rc):
        raise RendezvousError("got a result message that does not prove the job's secret: treating the run as failed")
    return rc


def run_child(args: argparse.Namespace, index: int) -> int:
    main_address = os.environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "")
    if not main_address:
        raise RendezvousError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on child node "
                              f"{index}: run this entrypoint as an AWS Batch multi-node job")
    secret = load_secret(args.secret_uri)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)  # mpirun starts this node's ranks there
    stage_in(workdir, checkpoints=False)  # every rank's command line names the inputs: they must exist here too
    state = Path(tempfile.mkdtemp(prefix="mnp-"))
    state.chmod(0o700)
    host_key = " ".join(keygen(state / "ssh_host_ed25519_key").split(" ")[:2])
    sshd: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + args.timeout
    conn = connect_main(main_address, args.port, deadline)
    try:
        while True:
            try:
                nonces = join_handshake(
                    conn, secret, job_id(), index, args.slots, host_key, args.handshake_timeout,
                    lambda key: sshd.append(start_sshd(state, args.ssh_port, key)),
                    main=f"the main node at {main_address}:{args.port}")
                break
            except Busy as exc:  # a flood of other connections: try again while the rendezvous lasts
                conn.close()
                if time.monotonic() + 1 > deadline:
                    raise RendezvousError(str(exc)) from None
                log(f"{exc}; trying again")
                time.sleep(1)
                conn = connect_main(main_address, args.port, deadline)
        log(f"joined the main node at {main_address}; serving ssh on port {args.ssh_port}")
        rc = wait_result(conn, secret, job_id(), index, nonces, args.max_run_seconds)
        log(f"main node finished with status {rc}")
        return rc
    except OSError as exc:
        raise RendezvousError(f"lost the connection to the main node at {main_address}:{args.port}: {exc}") from None
    finally:
        for process in sshd:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
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


#: mdrun's numbered outputs under -noappend (``md.part0001.xtc``): each attempt writes its own part.
PART_OUTPUT = re.compile(r"\.part\d{4}\.[A-Za-z0-9]+$")


def changed_outputs(workdir: Path, seen: dict[Path, float]) -> list[Path]:
    """The checkpoints and numbered part outputs changed since ``seen`` (path -> mtime), parts first: a retry
    restores only the checkpoints and continues into the next part, so the parts of a lost attempt survive only
    if they were uploaded during it, and a checkpoint must never be newer in S3 than the outputs it follows."""
    found = [p for p in sorted(workdir.iterdir()) if p.is_file() and (p.suffix == ".cpt" or PART_OUTPUT.search(p.name))]
    fresh = [p for p in found if seen.get(p) != p.stat().st_mtime]
    return sorted(fresh, key=lambda p: p.suffix == ".cpt")


def upload_checkpoints(workdir: Path, stop: threading.Event) -> None:
    """Every ``MNP_CHECKPOINT_UPLOAD_SECONDS`` (600) while mdrun runs: upload what :func:`changed_outputs` gives."""
    target = os.environ.get("MNP_OUTPUT_URI")
    period = float(os.environ.get("MNP_CHECKPOINT_UPLOAD_SECONDS", "600"))
    if not target:
        return
    seen: dict[Path, float] = {}
    while not stop.wait(period):
        fresh = changed_outputs(workdir, seen)
        if fresh:
            stamps = {p: p.stat().st_mtime for p in fresh}  # before the upload: a later write is sent next time
            try:
                upload_files(fresh, target)
                seen.update(stamps)
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
