"""The AWS Batch multi-node entrypoint for real: two podman containers on a private podman network
play the main node and a child node (AWS_BATCH_JOB_* variables as AWS Batch sets them), rendezvous,
and run one ``mpirun gmx_mpi mdrun`` across both; missing nodes end with the timeout error."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from batchpipes import containers

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
    """Containers on one podman network, all removed afterwards."""

    def __init__(self, image: str, root: Path) -> None:
        self.image = image
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.network = f"bp-mnp-{self.tag}"
        self.names: list[str] = []
        subprocess.run(["podman", "network", "create", self.network], check=True, capture_output=True)

    def start(self, index: int, num_nodes: int, main_address: str | None, *extra: str,
              timeout: int = 120) -> str:
        name = f"{self.network}-node{index}"
        env = {"AWS_BATCH_JOB_NUM_NODES": num_nodes, "AWS_BATCH_JOB_NODE_INDEX": index,
               "AWS_BATCH_JOB_MAIN_NODE_INDEX": 0, "AWS_BATCH_JOB_ID": f"job-{self.tag}#{index}",
               "MNP_RENDEZVOUS_TIMEOUT": timeout, "MNP_SLOTS": 1}
        if main_address:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = main_address
        cmd = ["podman", "run", "-d", "--name", name, "--network", self.network,
               "-v", f"{self.root / 'in'}:/in:ro", "-v", f"{self.root / 'out'}:/out"]
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

    def wait(self, name: str, seconds: float = 300) -> tuple[int, str]:
        rc = subprocess.run(["podman", "wait", name], check=True, capture_output=True, text=True,
                            timeout=seconds).stdout.strip()
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, check=False)
        return int(rc), logs.stdout + logs.stderr

    def close(self) -> None:
        for name in self.names:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True, check=False)


@pytest.fixture(scope="module")
def image(podman_ready: None) -> str:
    return containers.build(containers.get("gromacs"))


@pytest.fixture()
def cluster(image: str, tmp_path: Path) -> Iterator[Cluster]:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    subprocess.run(["podman", "run", "--rm", "-v", f"{tmp_path}:/data", image, "bash", "-c", MAKE_TPR],
                   check=True, capture_output=True)
    c = Cluster(image, tmp_path)
    yield c
    c.close()


def test_two_nodes_rendezvous_and_run_mdrun(cluster: Cluster) -> None:
    main = cluster.start(0, 2, None, "--output-uri", "/out", "--", "gmx_mpi", "mdrun", "-s", "topol.tpr",
                         "-deffnm", "md", "-ntomp", "1")
    child = cluster.start(1, 2, cluster.address(main))
    rc, main_log = cluster.wait(main)
    child_rc, child_log = cluster.wait(child, 60)
    assert rc == 0, main_log[-3000:]
    assert child_rc == 0 and "main node finished with status 0" in child_log, child_log
    assert re.search(r"node 1 joined from [0-9.]+ with 1 slot", main_log)
    md_log = (cluster.root / "out" / "md.log").read_text()
    # two ranks, one per container: GROMACS sees two physical nodes
    assert "Using 2 MPI processes" in md_log
    assert re.search(r"Running on 2 nodes with total", md_log), md_log[:3000]
    assert re.search(r"^\s*Statistics over 201 steps", md_log, re.M)
    assert (cluster.root / "out" / "md.gro").stat().st_size > 0


def test_missing_child_node_times_out(cluster: Cluster) -> None:
    main = cluster.start(0, 3, None, "--", "gmx_mpi", "mdrun", "-s", "topol.tpr", timeout=4)
    child = cluster.start(1, 3, cluster.address(main), timeout=4)
    rc, log = cluster.wait(main, 60)
    child_rc, child_log = cluster.wait(child, 60)
    assert rc == 1
    errors = [ln for ln in log.splitlines() if ln.startswith("ERROR:")]
    assert errors == ["ERROR: rendezvous timed out after 4 s: 1 of 2 child node(s) joined, missing node index(es) 2: "
                      "check that those nodes started and that the security group allows TCP 2223 and 2222 "
                      "between the job's nodes"], log
    assert child_rc == 1 and "ERROR: the main node gave up: rendezvous timed out" in child_log


def test_child_without_main_node_times_out(cluster: Cluster) -> None:
    child = cluster.start(1, 2, "127.0.0.1", timeout=3)
    rc, log = cluster.wait(child, 60)
    assert rc == 1
    assert re.search(r"^ERROR: could not reach the main node at 127\.0\.0\.1:2223 \(.*\): check that the main node "
                     "started", log, re.M), log
