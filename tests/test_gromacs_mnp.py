"""The AWS Batch multi-node entrypoint (containers/gromacs/mnp_entrypoint.py).

First the rendezvous protocol in-process (the entrypoint imported as a module, real TCP sockets on
127.0.0.1, real ssh-keygen keys): both sides prove the per-job secret, impostors and idle
connections do not join or delay anyone, addresses outside the allowed networks are refused.

Then for real: podman containers of the gromacs image on a private podman network play the main
node and child nodes (AWS_BATCH_JOB_* variables as AWS Batch sets them), while this test process
plays the impostors from the network's gateway address; the nodes rendezvous and run one
``mpirun gmx_mpi mdrun`` across both; missing nodes end with the timeout error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, settings
from scriptload import load_script

ENTRYPOINT = settings.REPO_ROOT / "containers" / "shared" / "mnp_entrypoint.py"
JOB = "8d1f6c2a-5b7e-4c1d-9f3a-2e6b0c9d4a71"


ep = load_script(ENTRYPOINT, "mnp_entrypoint_under_test")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A real ed25519 job public key (with its comment) and host key (without), as the nodes send them."""
    folder = tmp_path_factory.mktemp("keys")
    made = []
    for name in ("id_ed25519", "ssh_host_ed25519_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"batchpipes-mnp-{JOB}",
                        "-f", str(folder / name)], check=True)
        made.append((folder / f"{name}.pub").read_text().strip())
    return made[0], " ".join(made[1].split()[:2])


SECRET = secrets.token_hex(32).encode()


def no_claims(index: int) -> str | None:
    return None


def serve_one(secret: bytes, public_key: str, timeout: float = 5.0) -> tuple[socket.socket, threading.Thread,
                                                                             dict[str, Any]]:
    """A socket pair whose far end runs the main node's side of the handshake in a thread."""
    main_end, child_end = socket.socketpair()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["node"] = ep.serve_handshake(main_end, "10.0.0.7", secret, JOB, public_key, no_claims, timeout)
        except ep.Refused as exc:
            outcome["refused"] = str(exc)
            ep.refuse(main_end, str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    return child_end, thread, outcome


# -- the handshake, in-process --------------------------------------------------------------------------


def test_handshake_with_the_secret_proves_both_sides(keys: tuple[str, str]) -> None:
    public_key, host_key = keys
    conn, thread, outcome = serve_one(SECRET, public_key)
    started: list[str] = []
    nonces = ep.join_handshake(conn, SECRET, JOB, 1, 4, host_key, 5.0, started.append)
    thread.join(5)
    node = outcome["node"]
    assert started == [public_key]  # sshd is started for the job key the main node proved
    assert (node.index, node.slots, node.host_key, node.address) == (1, 4, host_key, "10.0.0.7")
    assert node.nonces == nonces and nonces[0] != nonces[1]
    assert all(re.fullmatch(r"[0-9a-f]{64}", n) for n in nonces)
    # the signed exit status reaches the child; a forged one is not believed
    ep.send(node.conn, {"done": 3, "mac": ep.sign(SECRET, "done", JOB, *node.nonces, 1, 3)})
    assert ep.wait_result(conn, SECRET, JOB, 1, nonces, 5) == 3
    ep.send(node.conn, {"done": 0, "mac": ep.sign(b"x" * 32, "done", JOB, *node.nonces, 1, 0)})
    with pytest.raises(ep.RendezvousError, match="^got a result message that does not prove the job's secret"):
        ep.wait_result(conn, SECRET, JOB, 1, nonces, 5)


def transcript(conn: socket.socket) -> str:
    """Everything the main node sent on ``conn`` until it closed."""
    conn.settimeout(5)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data.decode()


@pytest.mark.parametrize("secret", [None, b"0" * 64, SECRET[:-1] + b"x"], ids=["no-secret", "wrong", "one-off"])
def test_impostor_is_refused_and_never_sees_the_key(secret: bytes | None, keys: tuple[str, str]) -> None:
    public_key, host_key = keys
    conn, thread, outcome = serve_one(SECRET, public_key)
    if secret is None:  # what the old protocol accepted: echo the job id, claim an index
        challenge = ep.receive(conn, time.monotonic() + 5, "challenge")
        ep.send(conn, {"job": JOB, "node_index": 1, "slots": 1, "host_key": host_key,
                       "nonce": challenge["challenge"][::-1], "mac": "0" * 64})
    else:
        with pytest.raises(ep.RendezvousError) as info:
            ep.join_handshake(conn, secret, JOB, 1, 1, host_key, 5.0, pytest.fail)
        assert str(info.value) == ("the main node refused this node: its answer does not prove this job's rendezvous "
                                   "secret (not a node of this job, or a node that read another MNP_SECRET_URI)")
    thread.join(5)
    assert outcome["refused"].startswith("its answer does not prove this job's rendezvous secret")
    assert public_key.split()[1] not in transcript(conn)
    assert JOB not in transcript(conn)


def test_child_refuses_an_impostor_main_node(keys: tuple[str, str]) -> None:
    public_key, host_key = keys
    conn, thread, outcome = serve_one(b"f" * 64, public_key)  # "main node" without the job's secret
    with pytest.raises(ep.RendezvousError) as info:
        ep.join_handshake(conn, SECRET, JOB, 1, 1, host_key, 5.0, pytest.fail, main="the main node at 10.0.0.5:2223")
    thread.join(5)
    assert "refused" in outcome  # and the real main node would not have accepted this child either
    # the child gives up at the first proof the impostor cannot give; sshd is never started (pytest.fail)
    assert str(info.value) == ("the main node at 10.0.0.5:2223 refused this node: its answer does not prove this job's "
                               "rendezvous secret (not a node of this job, or a node that read another MNP_SECRET_URI)")


def test_child_checks_the_main_nodes_proof_before_trusting_its_key(keys: tuple[str, str]) -> None:
    """An impostor main node that lets anyone in (it does not check proofs) still cannot prove the secret."""
    public_key, host_key = keys
    main_end, child_end = socket.socketpair()

    def impostor() -> None:
        ep.send(main_end, {"challenge": secrets.token_hex(32)})
        hello = ep.receive(main_end, time.monotonic() + 5, "hello")
        ep.send(main_end, {"public_key": public_key, "mac": hello["mac"]})  # replaying the child's own proof

    thread = threading.Thread(target=impostor)
    thread.start()
    with pytest.raises(ep.RendezvousError) as info:
        ep.join_handshake(child_end, SECRET, JOB, 1, 1, host_key, 5.0, pytest.fail,
                          main="the main node at 10.0.0.5:2223")
    thread.join(5)
    assert str(info.value) == ("the main node at 10.0.0.5:2223 did not prove this job's rendezvous secret: it is not "
                               "this job's main node, or the nodes read different secrets (MNP_SECRET_URI)")


def test_a_hostile_refusal_stays_one_line(keys: tuple[str, str]) -> None:
    main_end, child_end = socket.socketpair()
    ep.send(main_end, {"refused": "no\nERROR: fake second line\x1b[2J" + "x" * 500})
    with pytest.raises(ep.RendezvousError) as info:
        ep.join_handshake(child_end, SECRET, JOB, 1, 1, keys[1], 5.0, pytest.fail)
    message = str(info.value)
    assert message.startswith("the main node refused this node: no?ERROR: fake second line?[2Jxxx")
    assert message.isprintable() and len(message) < 260


def test_proofs_bind_every_field() -> None:
    nonce_m, nonce_c = secrets.token_hex(32), secrets.token_hex(32)
    mac = ep.sign(SECRET, "main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA")
    assert ep.verify(SECRET, mac, "main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA")
    for changed in [("child", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA"),   # reflected as a child's proof
                    ("main", "other-job", nonce_m, nonce_c, 1, "ssh-ed25519 AAAA"),
                    ("main", JOB, nonce_c, nonce_m, 1, "ssh-ed25519 AAAA"),     # nonces swapped
                    ("main", JOB, nonce_m, nonce_c, 2, "ssh-ed25519 AAAA"),
                    ("main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAB")]:   # a key swapped in transit
        assert not ep.verify(SECRET, mac, *changed)
    assert not ep.verify(SECRET, mac.upper(), "main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA")
    assert not ep.verify(SECRET, None, "main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA")
    assert not ep.verify(SECRET, "é" * 64, "main", JOB, nonce_m, nonce_c, 1, "ssh-ed25519 AAAA")


# -- the rendezvous over TCP, in-process ------------------------------------------------------------


class Rendezvous:
    """The main node's gather() in a thread on 127.0.0.1, as run_main runs it."""

    def __init__(self, public_key: str, expected: set[int], networks: str = "127.0.0.0/8",
                 handshake_timeout: float = 30.0, timeout: float = 60.0) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.port = self.server.getsockname()[1]
        nets = [ipaddress.IPv4Network(networks)]
        self.gathering = ep.Gathering(SECRET, JOB, public_key, expected, nets, handshake_timeout)
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(timeout,))
        self.started = time.monotonic()
        self.thread.start()

    def _run(self, timeout: float) -> None:
        try:
            self.result["joined"] = ep.gather(self.server, self.gathering, timeout, self.port, 2222)
        except ep.RendezvousError as exc:
            self.result["error"] = str(exc)
        self.result["seconds"] = time.monotonic() - self.started

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def child(self, index: int, host_key: str, secret: bytes = SECRET) -> tuple[threading.Thread, dict[str, Any]]:
        outcome: dict[str, Any] = {}

        def run() -> None:
            conn = self.connect()
            try:
                outcome["nonces"] = ep.join_handshake(conn, secret, JOB, index, 2, host_key, 10.0,
                                                      lambda key: outcome.setdefault("key", key))
                outcome["rc"] = ep.wait_result(conn, secret, JOB, index, outcome["nonces"], 30)
            except ep.RendezvousError as exc:
                outcome["error"] = str(exc)
            outcome["done_at"] = time.monotonic()

        thread = threading.Thread(target=run)
        thread.start()
        return thread, outcome

    def close(self) -> None:
        self.thread.join(70)
        self.server.close()


def test_idle_connections_and_impostors_do_not_delay_the_real_nodes(keys: tuple[str, str],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    public_key, host_key = keys
    rendezvous = Rendezvous(public_key, {1, 2}, handshake_timeout=30.0)
    idle = [rendezvous.connect() for _ in range(5)]  # connect, then say nothing (the handshake allows 30 s)
    silent = rendezvous.connect()
    silent.sendall(b'{"protocol": "batchpipes-mnp-2", "node_index"')  # a half message, never finished
    impostors = [rendezvous.child(1, host_key, secret=b"not-the-secret" * 3), rendezvous.child(2, host_key,
                                                                                              secret=b"z" * 64)]
    for thread, _ in impostors:
        thread.join(10)
    begin = time.monotonic()
    real = [rendezvous.child(1, host_key), rendezvous.child(2, host_key)]
    while "joined" not in rendezvous.result and time.monotonic() - begin < 20:
        time.sleep(0.01)
    took = time.monotonic() - begin
    assert "joined" in rendezvous.result, rendezvous.result
    assert took < 2.0, f"the real nodes needed {took:.2f} s with idle connections open"
    for conn in idle:  # all still open and unanswered: the main node never waited for them
        conn.setblocking(False)
        assert json.loads(conn.recv(65536, socket.MSG_PEEK))["challenge"]
    joined = rendezvous.result["joined"]
    assert sorted(joined) == [1, 2] and all(n.host_key == host_key for n in joined.values())
    for node in joined.values():
        ep.send(node.conn, {"done": 0, "mac": ep.sign(SECRET, "done", JOB, *node.nonces, node.index, 0)})
    for thread, outcome in real:
        thread.join(10)
        assert outcome.get("rc") == 0 and outcome["key"] == public_key, outcome
    for _thread, outcome in impostors:
        assert outcome["error"].startswith("the main node refused this node: its answer does not prove")
        assert "key" not in outcome
    for conn in [*idle, silent]:  # closing them ends their handshakes at once (no 30 s wait)
        conn.close()
    log = ""
    while log.count("refused a connection from 127.0.0.1: conn") < 6 and time.monotonic() - begin < 20:
        time.sleep(0.05)
        log += capsys.readouterr().err
    assert len(re.findall(r"refused a connection from 127\.0\.0\.1: connection (closed|failed)", log)) == 6, log
    assert len(re.findall(r"refused a connection from 127\.0\.0\.1: its answer does not prove this job's "
                          r"rendezvous secret", log)) == 2, log
    assert re.search(r"node 2 joined from 127\.0\.0\.1 with 2 slot\(s\) \(\d/2\)", log)
    rendezvous.close()
    # a late node after the rendezvous closed would be refused, not added (the main node runs mpirun now)
    assert rendezvous.gathering.claim(1) == "the rendezvous is over"


def test_a_flood_of_connections_is_bounded(keys: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    public_key, host_key = keys
    monkeypatch.setattr(ep, "MAX_HANDSHAKES", 2)
    rendezvous = Rendezvous(public_key, {1}, timeout=20.0)
    held = [rendezvous.connect() for _ in range(2)]
    for conn in held:  # wait until both handshakes run (each has sent its challenge)
        assert json.loads(conn.recv(65536))["challenge"]
    conn = rendezvous.connect()
    with pytest.raises(ep.Busy) as info:
        ep.join_handshake(conn, SECRET, JOB, 1, 1, host_key, 5.0, pytest.fail)
    assert str(info.value) == "the main node refused this node: too many connections in progress"
    held.pop().close()  # one slot frees up: a real node gets in
    time.sleep(0.2)
    thread, outcome = rendezvous.child(1, host_key)
    while "joined" not in rendezvous.result and thread.is_alive():
        time.sleep(0.01)
    assert sorted(rendezvous.result["joined"]) == [1]
    node = rendezvous.result["joined"][1]
    ep.send(node.conn, {"done": 0, "mac": ep.sign(SECRET, "done", JOB, *node.nonces, 1, 0)})
    thread.join(10)
    assert outcome["rc"] == 0
    held[0].close()
    rendezvous.close()
    log = ""
    while log.count("connection closed while waiting") < 2 and time.monotonic() - rendezvous.started < 20:
        time.sleep(0.05)
        log += capsys.readouterr().err
    assert "mnp[?]: refused a connection from 127.0.0.1: 2 handshakes already in progress" in log.splitlines()


def test_connections_from_outside_the_allowed_networks_are_refused(keys: tuple[str, str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    public_key, host_key = keys
    rendezvous = Rendezvous(public_key, {1}, networks="10.0.1.0/24", timeout=3.0)
    thread, outcome = rendezvous.child(1, host_key)  # the right secret, the wrong address
    thread.join(10)
    rendezvous.close()
    assert outcome["error"] == "the main node refused this node: this address is outside the main node's network"
    assert "key" not in outcome
    assert rendezvous.result["error"].startswith("rendezvous timed out after 3 s: 0 of 1 child node(s) joined, "
                                                 "missing node index(es) 1: ")
    assert "mnp[?]: refused a connection from 127.0.0.1: outside the job's network 10.0.1.0/24" in \
        capsys.readouterr().err.splitlines()


def test_a_node_index_joins_once(keys: tuple[str, str]) -> None:
    public_key, host_key = keys
    rendezvous = Rendezvous(public_key, {1, 2}, timeout=4.0)
    first, first_outcome = rendezvous.child(1, host_key)
    while 1 not in rendezvous.gathering.joined and first.is_alive():
        time.sleep(0.01)
    second, second_outcome = rendezvous.child(1, host_key)  # the secret, but index 1 is taken
    outsider, outsider_outcome = rendezvous.child(5, host_key)  # no such child in a 3-node job
    second.join(10)
    outsider.join(10)
    rendezvous.close()
    first.join(40)
    assert second_outcome["error"] == "the main node refused this node: node 1 has already joined"
    assert outsider_outcome["error"] == "the main node refused this node: node index 5 is not a child node of this job"
    assert rendezvous.result["error"].startswith("rendezvous timed out after 4 s: 1 of 2 child node(s) joined, "
                                                 "missing node index(es) 2: ")
    assert first_outcome["error"] == "the main node gave up: rendezvous timed out"  # a signed abort


# -- the job's subnet -----------------------------------------------------------------------------------


def test_own_subnet_matches_ip_addr() -> None:
    """The networks derived with ioctls are the ones `ip -o -4 addr` shows."""
    shown = {}
    listing = subprocess.run(["ip", "-o", "-4", "addr"], check=True, capture_output=True, text=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        shown[fields[1]] = ipaddress.IPv4Interface(fields[3])
    derived = dict(ep.interface_networks())
    me = ep.own_address()
    (name,) = [n for n, i in shown.items() if str(i.ip) == me]
    common = shown.keys() & derived.keys()  # podman bridges of other tests may come and go meanwhile
    assert {"lo", name} <= common and all(derived[k] == shown[k] for k in common)
    networks, source = ep.allowed_networks("", me)
    assert networks == [shown[name].network] and source == f"the subnet of {name}"


@pytest.mark.parametrize("given, expected", [
    ("10.0.0.0/16", ["10.0.0.0/16"]),
    (" 10.0.1.0/24 , 10.0.2.5/24", ["10.0.1.0/24", "10.0.2.0/24"]),
    ("192.168.7.7", ["192.168.7.7/32"]),
])
def test_allowed_networks_override(given: str, expected: list[str]) -> None:
    networks, source = ep.allowed_networks(given, "203.0.113.9")
    assert [str(n) for n in networks] == expected and source == "MNP_ALLOWED_NETWORKS"
    assert ep.peer_allowed(expected[0].split("/")[0], networks)
    assert ep.peer_allowed("::ffff:" + expected[0].split("/")[0], networks)
    assert not ep.peer_allowed("203.0.113.9", networks) and not ep.peer_allowed("not-an-ip", networks)


@pytest.mark.parametrize("given, bad", [("10.0.0.0/33", "10.0.0.0/33"), ("10.0.0.0/16,", ""),
                                        ("subnet-0abc", "subnet-0abc"), ("fd00::/8", "fd00::/8")])
def test_allowed_networks_refuses_junk(given: str, bad: str) -> None:
    with pytest.raises(ep.RendezvousError) as info:
        ep.allowed_networks(given, "10.0.0.5")
    assert str(info.value) == (f"MNP_ALLOWED_NETWORKS has '{bad}', not an IPv4 network: give CIDRs such as "
                               "10.0.0.0/16, separated by commas")


def test_address_on_no_interface() -> None:
    with pytest.raises(ep.RendezvousError) as info:
        ep.allowed_networks("", "198.51.100.77")
    assert str(info.value) == ("cannot tell this node's subnet: its address 198.51.100.77 is on no interface: set "
                               "MNP_ALLOWED_NETWORKS to the CIDR(s) of the job's subnet(s)")


# -- the secret ------------------------------------------------------------------------------------------


@pytest.fixture()
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[int], Path]:
    def _set(index: int) -> Path:
        for key, value in {"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": str(index),
                           "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0", "AWS_BATCH_JOB_ID": f"{JOB}#{index}",
                           "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
                           "MNP_PORT": "9", "MNP_RENDEZVOUS_TIMEOUT": "1"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("MNP_SECRET_URI", raising=False)
        return tmp_path / "work"
    return _set


@pytest.mark.parametrize("index", [0, 1], ids=["main", "child"])
def test_missing_secret_stops_the_node_before_the_rendezvous(index: int, node_env: Callable[[int], Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    work = node_env(index)
    assert ep.main(["--workdir", str(work), "--", "gmx_mpi", "mdrun"]) == 1
    assert capsys.readouterr().err.strip() == (
        "ERROR: MNP_SECRET_URI is not set: every node needs the job's rendezvous secret; submit with 'batchpipes aws "
        "mnp submit' (it makes one per job) or point MNP_SECRET_URI at an s3:// object or file holding at "
        "least 32 random bytes")
    assert not work.exists()  # nothing staged, no port opened


@pytest.mark.parametrize("content, message", [
    (None, "ERROR: cannot read the rendezvous secret {path}: No such file or directory: check MNP_SECRET_URI and "
           "that every node can read it"),
    (b"  hunter2\n", "ERROR: the rendezvous secret {path} holds 7 byte(s), fewer than 32: let mnp-submit make it, "
                     "or write one with 'openssl rand -hex 32'"),
    (b"", "ERROR: the rendezvous secret {path} holds 0 byte(s), fewer than 32: let mnp-submit make it, "
          "or write one with 'openssl rand -hex 32'"),
])
def test_unusable_secret_file(content: bytes | None, message: str, node_env: Callable[[int], Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    work = node_env(0)
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    assert ep.main(["--workdir", str(work), "--secret-uri", str(path), "--", "gmx_mpi", "mdrun"]) == 1
    assert capsys.readouterr().err.strip() == message.format(path=path)
    assert not work.exists()


def test_secret_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET.decode() + "\n")
    assert ep.load_secret(str(path)) == SECRET


# -- real containers on a podman network ---------------------------------------------------------------

MAKE_TPR = r"""
set -euo pipefail
cd /data
gmx -quiet solvate -cs spc216.gro -box 3.2 3.2 3.2 -o water.gro > solvate.log 2>&1
n=$(( ($(wc -l < water.gro) - 3) / 3 ))
printf '#include "oplsaa.ff/%s.itp"\n' forcefield spce > topol.top
printf '[ system ]\nwater\n[ molecules ]\nSOL %d\n' "$n" >> topol.top
printf '%s\n' 'integrator = md' 'nsteps = 200' 'dt = 0.002' 'cutoff-scheme = Verlet' 'coulombtype = PME' \
  'rcoulomb = 1.0' 'rvdw = 1.0' 'tcoupl = V-rescale' 'tc-grps = System' 'tau-t = 0.1' 'ref-t = 300' \
  'gen-vel = yes' 'constraints = h-bonds' 'nstcalcenergy = 100' 'nstenergy = 100' > md.mdp
gmx -quiet grompp -f md.mdp -c water.gro -p topol.top -o /data/in/topol.tpr > grompp.log 2>&1
"""


class Cluster:
    """Containers on one podman network, all removed afterwards. This test process reaches them from
    the network's gateway address, which is inside the network's subnet."""

    def __init__(self, image: str, root: Path) -> None:
        self.image = image
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.job = f"job-{self.tag}"
        self.network = f"bp-mnp-{self.tag}"
        self.names: list[str] = []
        self.secret = root / "secret"
        self.secret.write_text(secrets.token_hex(32) + "\n")
        subprocess.run(["podman", "network", "create", self.network], check=True, capture_output=True)
        subnet, gateway = subprocess.run(
            ["podman", "network", "inspect", "-f", "{{range .Subnets}}{{.Subnet}} {{.Gateway}}{{end}}", self.network],
            check=True, capture_output=True, text=True).stdout.split()
        self.subnet = ipaddress.IPv4Network(subnet)
        self.gateway = gateway

    def start(self, index: int, num_nodes: int, main_address: str | None, *extra: str, timeout: int = 120,
              secret: bool = True, **env_extra: object) -> str:
        name = f"{self.network}-node{index}"
        env: dict[str, object] = {
            "AWS_BATCH_JOB_NUM_NODES": num_nodes, "AWS_BATCH_JOB_NODE_INDEX": index,
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": 0, "AWS_BATCH_JOB_ID": f"{self.job}#{index}",
            "MNP_RENDEZVOUS_TIMEOUT": timeout, "MNP_SLOTS": 1, **env_extra}
        if main_address:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = main_address
        cmd = ["podman", "run", "-d", "--name", name, "--network", self.network,
               "-v", f"{self.root / 'in'}:/in:ro", "-v", f"{self.root / 'out'}:/out"]
        if secret:
            cmd += ["-v", f"{self.secret}:/run/mnp-secret:ro"]
            env["MNP_SECRET_URI"] = "/run/mnp-secret"
        for key, value in env.items():
            cmd += ["-e", f"{key}={value}"]
        subprocess.run(cmd + [self.image, "mnp-entrypoint", "--input-uri", "/in", *extra], check=True,
                       capture_output=True)
        self.names.append(name)
        return name

    def address(self, name: str) -> str:
        fmt = '{{(index .NetworkSettings.Networks "' + self.network + '").IPAddress}}'
        return subprocess.run(["podman", "inspect", "-f", fmt, name], check=True, capture_output=True,
                              text=True).stdout.strip()

    def logs(self, name: str) -> str:
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, check=False)
        return logs.stdout + logs.stderr

    def wait_log(self, name: str, pattern: str, seconds: float = 120) -> float:
        """Poll the logs of ``name`` until ``pattern`` shows; returns when (time.monotonic())."""
        deadline = time.monotonic() + seconds
        while not re.search(pattern, self.logs(name), re.M):
            assert time.monotonic() < deadline, f"no {pattern!r} in the log of {name}: {self.logs(name)}"
            time.sleep(0.1)
        return time.monotonic()

    def wait(self, name: str, seconds: float = 300) -> tuple[int, str]:
        rc = subprocess.run(["podman", "wait", name], check=True, capture_output=True, text=True,
                            timeout=seconds).stdout.strip()
        return int(rc), self.logs(name)

    def close(self) -> None:
        for name in self.names:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True, check=False)


@pytest.fixture(scope="module")
def image(podman_ready: None) -> str:
    return containers.build(containers.get("gromacs"))


@pytest.fixture()
def cluster(image: str, tmp_path: Path) -> Iterator[Cluster]:
    for folder in (tmp_path, tmp_path / "in", tmp_path / "out"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)  # the image's user need not be root
    subprocess.run(["podman", "run", "--rm", "-v", f"{tmp_path}:/data", image, "bash", "-c", MAKE_TPR],
                   check=True, capture_output=True)
    c = Cluster(image, tmp_path)
    yield c
    c.close()


def test_two_nodes_run_mdrun_despite_impostors_and_idle_connections(cluster: Cluster, keys: tuple[str, str]) -> None:
    _public_key, host_key = keys
    main = cluster.start(0, 2, None, "--output-uri", "/out", "--", "gmx_mpi", "mdrun", "-s", "topol.tpr",
                         "-deffnm", "md", "-ntomp", "1", MNP_HANDSHAKE_TIMEOUT=45)
    main_ip = cluster.address(main)
    cluster.wait_log(main, "waiting up to 120 s for 1 child node")
    idle = socket.create_connection((main_ip, 2223), timeout=10)  # says nothing; the main node allows it 45 s
    for wrong in (b"w" * 64, None):  # one with a wrong secret, one with none (old protocol: echo the job id)
        conn = socket.create_connection((main_ip, 2223), timeout=10)
        if wrong is None:
            ep.receive(conn, time.monotonic() + 10, "challenge")
            ep.send(conn, {"job": cluster.job, "node_index": 1, "slots": 1, "host_key": host_key,
                           "nonce": secrets.token_hex(32)})
            assert "refused" in ep.receive(conn, time.monotonic() + 10, "refusal")
        else:
            with pytest.raises(ep.RendezvousError, match="^the main node refused this node: its answer does not"):
                ep.join_handshake(conn, wrong, cluster.job, 1, 1, host_key, 10, pytest.fail)
        conn.close()
    child_started = time.monotonic()
    child = cluster.start(1, 2, main_ip)
    joined_at = cluster.wait_log(main, r"node 1 joined from [0-9.]+ with 1 slot", 60)
    child_ip = cluster.address(child)
    # the real child joined while the idle connection is still open and unanswered: a main node that
    # served connections one at a time would still be waiting for it (and would have refused it first)
    idle.setblocking(False)
    pending = idle.recv(65536, socket.MSG_PEEK).decode()
    assert pending.count("\n") == 1 and json.loads(pending)["challenge"] and "refused" not in pending
    assert joined_at - child_started < 30, f"child joined {joined_at - child_started:.1f} s after it started"
    rc, main_log = cluster.wait(main)
    child_rc, child_log = cluster.wait(child, 60)
    idle.close()
    assert rc == 0, main_log[-3000:]
    assert child_rc == 0 and "main node finished with status 0" in child_log, child_log
    assert f"accepting nodes from {cluster.subnet} (the subnet of eth0)" in main_log
    refusals = re.findall(rf"refused a connection from {re.escape(cluster.gateway)}: (.*)", main_log)
    assert refusals[:2] == 2 * ["its answer does not prove this job's rendezvous secret (not a node of this job, or "
                                "a node that read another MNP_SECRET_URI)"], main_log
    assert re.search(rf"host file: {re.escape(main_ip)} \(1 slots\), {re.escape(child_ip)} \(1 slots\)$",
                     main_log, re.M)
    md_log = (cluster.root / "out" / "md.log").read_text()
    # two ranks, one per container: GROMACS sees two physical nodes
    assert "Using 2 MPI processes" in md_log
    assert re.search(r"Running on 2 nodes with total", md_log), md_log[:3000]
    assert re.search(r"^\s*Statistics over 201 steps", md_log, re.M)
    assert (cluster.root / "out" / "md.gro").stat().st_size > 0
    assert not (cluster.root / "out" / "mnp-secret").exists() and cluster.secret.read_text().strip() not in main_log


def test_missing_child_times_out_and_outsiders_are_refused(cluster: Cluster) -> None:
    # every address of the podman network but its gateway, i.e. this test process, may join
    inside = ",".join(map(str, cluster.subnet.address_exclude(ipaddress.IPv4Network(f"{cluster.gateway}/32"))))
    main = cluster.start(0, 3, None, "--", "gmx_mpi", "mdrun", "-s", "topol.tpr", timeout=15,
                         MNP_ALLOWED_NETWORKS=inside)
    main_ip = cluster.address(main)
    cluster.wait_log(main, "waiting up to 15 s for 2 child node")
    conn = socket.create_connection((main_ip, 2223), timeout=10)
    with pytest.raises(ep.RendezvousError) as info:  # the right secret from the wrong address
        ep.join_handshake(conn, cluster.secret.read_text().strip().encode(), cluster.job, 2, 1,
                          "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvQ", 10, pytest.fail)
    assert str(info.value) == "the main node refused this node: this address is outside the main node's network"
    child = cluster.start(1, 3, main_ip, timeout=15)
    rc, log = cluster.wait(main, 60)
    child_rc, child_log = cluster.wait(child, 60)
    assert rc == 1
    assert f"refused a connection from {cluster.gateway}: outside the job's network {inside.replace(',', ', ')}" in log
    assert re.search(r"accepting nodes from .* \(MNP_ALLOWED_NETWORKS\)$", log, re.M)
    errors = [ln for ln in log.splitlines() if ln.startswith("ERROR:")]
    assert errors == ["ERROR: rendezvous timed out after 15 s: 1 of 2 child node(s) joined, missing node index(es) 2: "
                      "check that those nodes started and that the security group allows TCP 2223 and 2222 "
                      "between the job's nodes"], log
    assert child_rc == 1 and "ERROR: the main node gave up: rendezvous timed out" in child_log


def test_child_without_main_node_or_secret(cluster: Cluster) -> None:
    child = cluster.start(1, 2, "127.0.0.1", timeout=3)
    unkeyed = cluster.start(2, 3, "127.0.0.1", timeout=3, secret=False)
    rc, log = cluster.wait(child, 60)
    assert rc == 1
    assert re.search(r"^ERROR: could not reach the main node at 127\.0\.0\.1:2223 \(.*\): check that the main node "
                     "started", log, re.M), log
    rc, log = cluster.wait(unkeyed, 60)
    assert rc == 1
    assert [ln for ln in log.splitlines() if ln.startswith("ERROR:")] == [
        "ERROR: MNP_SECRET_URI is not set: every node needs the job's rendezvous secret; submit with 'batchpipes aws "
        "mnp submit' (it makes one per job) or point MNP_SECRET_URI at an s3:// object or file holding at "
        "least 32 random bytes"]


# -- mdrun arguments of the multi-node job: a retry restores only the checkpoint -------------------------------


def test_default_mdrun_args_continue_without_appending() -> None:
    from batchpipes.aws import mnp

    args = mnp.DEFAULT_COMMAND[mnp.DEFAULT_COMMAND.index("mdrun") + 1:]
    assert args[args.index("-cpi") + 1] == "md.cpt" and "-noappend" in args and "-append" not in args
    container = mnp.job_definition("d", "img:1", 2, 2, 2048)["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert container["command"] == mnp.DEFAULT_COMMAND


@pytest.mark.parametrize("mdrun_args, accepted", [
    ("-deffnm md -cpi md.cpt -noappend -cpt 15", True),
    ("-deffnm md -cpt 15", True),  # no -cpi: a retry starts over, nothing to append to
    ("-deffnm md -cpi md.cpt -cpt 15", False),  # the old default: mdrun appends by default
    ("-deffnm md -cpi md.cpt -append", False),
    ("-deffnm md -cpi md.cpt -noappend -append", False),
])
def test_mdrun_args_with_cpi_need_noappend(mdrun_args: str, accepted: bool, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    from batchpipes import cli

    rc = cli.main(["aws", "mnp", "definition", "--image", "img:1", "--input-uri", "s3://bkt/run/in/",
                   "--output-uri", "s3://bkt/run/out/", "--mdrun-args", mdrun_args])
    out, err = capsys.readouterr()
    if accepted:
        assert rc == 0, err
        command = json.loads(out)["nodeProperties"]["nodeRangeProperties"][0]["container"]["command"]
        assert command[command.index("mdrun") + 1:] == ["-s", "topol.tpr", *mdrun_args.split()]
    else:
        assert rc == 2 and out == ""
        (line,) = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert line.startswith(f"error: mdrun arguments '{mdrun_args}' use -cpi ")
        assert line.endswith("mdrun refuses to append to the missing outputs: " +
                             ("use -noappend" if "-append" in mdrun_args.split() else "add -noappend"))


def test_cli_default_mdrun_args_are_the_library_default(capsys: pytest.CaptureFixture[str]) -> None:
    from batchpipes import cli
    from batchpipes.aws import mnp

    assert cli.main(["aws", "mnp", "definition", "--image", "img:1", "--input-uri", "s3://bkt/in/",
                     "--output-uri", "s3://bkt/out/"]) == 0
    command = json.loads(capsys.readouterr().out)["nodeProperties"]["nodeRangeProperties"][0]["container"]["command"]
    assert command[-len(mnp.DEFAULT_MDRUN_ARGS):] == mnp.DEFAULT_MDRUN_ARGS


RESTART = r"""
set -uo pipefail
cd /data
# the first attempt, with the default arguments: no md.cpt yet, so a new simulation, numbered (md.part0001.*)
gmx -quiet mdrun -s in/topol.tpr -deffnm md -ntomp 1 -nsteps 100 -cpi md.cpt -noappend > first.out 2>&1 \
    || { cat first.out; exit 10; }
mkdir retry && cp in/topol.tpr md.cpt retry/  # what a retried attempt gets back: the inputs and *.cpt
cd retry
gmx -quiet mdrun -s topol.tpr -deffnm md -ntomp 1 -cpi md.cpt > append.out 2>&1
echo "append rc=$?"
gmx -quiet mdrun -s topol.tpr -deffnm md -ntomp 1 -cpi md.cpt -noappend > noappend.out 2>&1
echo "noappend rc=$?"
ls
"""


@pytest.mark.containers
def test_gromacs_refuses_to_append_after_a_checkpoint_only_restore(image: str, tmp_path: Path) -> None:
    """Real GROMACS: a restart that has only md.cpt fails with appending and continues with -noappend."""
    for folder in (tmp_path, tmp_path / "in"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)
    subprocess.run(["podman", "run", "--rm", "-v", f"{tmp_path}:/data", image, "bash", "-c", MAKE_TPR],
                   check=True, capture_output=True)
    run = subprocess.run(["podman", "run", "--rm", "-v", f"{tmp_path}:/data", image, "bash", "-c", RESTART],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    first = sorted(p.name for p in tmp_path.glob("md.*") if p.suffix != ".mdp")
    assert first == ["md.cpt", "md.part0001.edr", "md.part0001.gro", "md.part0001.log"], first
    retried = sorted(p.name for p in (tmp_path / "retry").glob("md.part*"))
    assert retried == ["md.part0002.edr", "md.part0002.gro", "md.part0002.log"], retried
    assert re.search(r"^append rc=[1-9]", run.stdout, re.M), run.stdout
    appended = (tmp_path / "retry" / "append.out").read_text()
    assert "md.part0001.log" in appended and re.search(r"not present|missing", appended, re.I), appended[-2000:]
    assert "noappend rc=0" in run.stdout, (tmp_path / "retry" / "noappend.out").read_text()[-2000:]
    part_log = (tmp_path / "retry" / "md.part0002.log").read_text()
    assert re.search(r"^\s*Statistics over 101 steps", part_log, re.M), part_log[-2000:]
    # the checkpoint keeps its name (no part number), so the next retry finds md.cpt again
    assert (tmp_path / "retry" / "md.cpt").stat().st_size > 0 and (tmp_path / "retry" / "md.part0002.gro").exists()


def test_parts_and_checkpoints_are_uploaded_during_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While mdrun runs, the numbered outputs of this attempt go to MNP_OUTPUT_URI with the checkpoints, parts
    first: a retry restores only md.cpt and writes md.part0002.*, so md.part0001.* must already be there."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    for name in ("topol.tpr", "md.mdp", "md.part0001.xtc", "md.part0001.edr", "md.part0001.log", "md.cpt",
                 "md_prev.cpt", "md.xtc.bak", "notes.part1.txt"):
        (work / name).write_text(name)
    seen: dict[Path, float] = {}
    first = [p.name for p in ep.changed_outputs(work, seen)]
    assert first == ["md.part0001.edr", "md.part0001.log", "md.part0001.xtc", "md.cpt", "md_prev.cpt"]
    seen.update({work / n: (work / n).stat().st_mtime for n in first})
    assert ep.changed_outputs(work, seen) == []
    (work / "md.part0001.xtc").write_text("more frames")
    later = (work / "md.part0001.xtc").stat().st_mtime + 5
    os.utime(work / "md.part0001.xtc", (later, later))
    assert [p.name for p in ep.changed_outputs(work, seen)] == ["md.part0001.xtc"]

    monkeypatch.setenv("MNP_OUTPUT_URI", str(out))
    monkeypatch.setenv("MNP_CHECKPOINT_UPLOAD_SECONDS", "0.05")
    stop = threading.Event()
    uploader = threading.Thread(target=ep.upload_checkpoints, args=(work, stop), daemon=True)
    uploader.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (out / "md.cpt").exists():
        time.sleep(0.05)
    stop.set()
    uploader.join(5)
    assert sorted(p.name for p in out.iterdir()) == ["md.cpt", "md.part0001.edr", "md.part0001.log",
                                                      "md.part0001.xtc", "md_prev.cpt"]
    assert (out / "md.part0001.xtc").read_text() == "more frames"
