"""The local container toolchain: cached builds by content hash, package locks, the unprivileged task user,
the registry on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from batchpipes import cli, containers, local, settings
from batchpipes.errors import UserError

LOCAL_IMAGES = [i for i in containers.discover().values() if i.local_build]
ALL_IMAGES = list(containers.discover().values())

#: The brief's own query (no status filter): in a freshly built image every package dpkg knows is installed.
PLAIN_QUERY = ["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"]


def podman_out(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout


# -- builds ------------------------------------------------------------------------------------------


@pytest.mark.containers
def test_build_is_cached_by_content_hash(podman_ready, caplog: pytest.LogCaptureFixture) -> None:
    image = containers.get("genomics")
    first = containers.build(image)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="batchpipes.containers"):
        again = containers.build(image)
    assert again == first == f"localhost/batchpipes/genomics:{image.tag}"
    messages = [r.getMessage() for r in caplog.records]
    assert f"image {first} is cached" in messages and not any("building" in m for m in messages)


@pytest.mark.containers
def test_images_are_served_from_the_local_registry(podman_ready) -> None:
    image = containers.get("genomics")
    ref = containers.publish_local(image)
    assert ref == f"{settings.LOCAL_REGISTRY}/batchpipes/genomics:{image.tag}"
    assert containers.in_registry(image)
    # what miniwdl does before every task: pull from the registry
    subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], check=True, capture_output=True)


@pytest.mark.containers
def test_image_runs_the_tools(podman_ready) -> None:
    ref = containers.build(containers.get("genomics"))
    out = subprocess.run(["podman", "run", "--rm", ref, "bash", "-c",
                          "samtools --version | head -1; bcftools --version | head -1; freebayes --version"],
                         capture_output=True, text=True, check=True).stdout
    assert "samtools 1.16" in out and "bcftools 1.16" in out and "v1.3.6" in out


# -- package locks -----------------------------------------------------------------------------------


@pytest.fixture()
def throwaway(tmp_path: Path, podman_ready: None) -> Iterator[containers.Image]:
    """A tiny image folder built from the same bootstrapped base: its packages stage installs nothing, so its
    lock is the base image's packages. Its images are removed afterwards."""
    name = f"locktest{os.getpid()}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        "ARG BASE_IMAGE=debian:bookworm-slim\n"
        "FROM ${BASE_IMAGE} AS packages\n"
        "RUN echo 'nothing beyond the base image' > /etc/motd\n\n"
        + containers.dockerfile_lock_check(name) + containers.dockerfile_user()
        + f"USER {containers.TASK_USER}\nWORKDIR /work\nCMD [\"bash\"]\n")
    yield containers.Image(name=name, context=folder)
    refs = podman_out("images", "--format", "{{.Repository}}:{{.Tag}}", f"localhost/batchpipes/{name}").split()
    if refs:
        subprocess.run(["podman", "rmi", "-f", *refs], capture_output=True, check=False)


def lock_entries(image: containers.Image) -> list[str]:
    return [ln for ln in image.lock_path.read_text().splitlines() if ln and not ln.startswith("#")]


@pytest.mark.containers
def test_lock_is_written_and_checked_by_the_build(throwaway: containers.Image) -> None:
    image = throwaway
    with pytest.raises(UserError) as missing:
        containers.build(image)
    assert str(missing.value) == (f"{image.context}/packages.lock is missing: run 'batchpipes images lock "
                                  f"{image.name}' and review the packages it lists")

    assert containers.write_lock(image) is True
    base = containers.ensure_base_image()
    in_base = podman_out("run", "--rm", base, *PLAIN_QUERY).split()
    assert lock_entries(image) == sorted(in_base) and len(in_base) > 50
    assert image.lock_path.read_text().startswith(f"# {image.context}/packages.lock: every Debian package")

    ref = containers.build(image)
    assert containers.image_exists(ref)
    assert podman_out("run", "--rm", ref, "cat", containers.LOCK_IN_IMAGE) == image.lock_path.read_text()
    assert sorted(podman_out("run", "--rm", ref, *PLAIN_QUERY).split()) == lock_entries(image)
    good = image.lock_path.read_text()

    # a stale lock: one version differs, a package is missing, a package is extra
    bash = next(e for e in lock_entries(image) if e.startswith("bash="))
    version = bash.split("=", 1)[1]
    cases = {
        good.replace(f"\n{bash}\n", "\nbash=0.0-0\n"):
            f"bash is locked at 0.0-0 but {version} is installed",
        good.replace(f"\n{bash}\n", "\n"):
            f"{bash} is installed but not locked",
        good + "zzz-not-there=1.0-1\n":
            "zzz-not-there=1.0-1 is locked but not installed",
    }
    for text, difference in cases.items():
        image.lock_path.write_text(text)
        with pytest.raises(UserError) as stale:
            containers.build(image)
        assert str(stale.value) == (f"containers/{image.name}/packages.lock does not match the packages "
                                    f"installed: {difference}; run 'batchpipes images lock {image.name}' "
                                    "and review the change")
        assert not containers.image_exists(image.ref(None)), "nothing may be tagged for a failed build"


@pytest.mark.containers
def test_building_and_locking_twice_gives_the_same_tag(throwaway: containers.Image) -> None:
    image = throwaway
    containers.write_lock(image)
    tag, lock = image.tag, image.lock_path.read_bytes()
    first = containers.build(image, force=True)
    assert containers.write_lock(image) is False, "an unchanged package set must not rewrite the lock"
    assert image.lock_path.read_bytes() == lock
    second = containers.build(image, force=True)
    assert first == second == f"localhost/batchpipes/{image.name}:{tag}" and image.tag == tag
    assert podman_out("image", "inspect", "--format", "{{.Labels}}", second).count(tag) == 1


@pytest.mark.containers
@pytest.mark.parametrize("image", LOCAL_IMAGES, ids=lambda i: i.name)
def test_every_lock_is_the_package_set_of_its_built_image(image: containers.Image, podman_ready: None) -> None:
    ref = containers.build(image)
    installed = sorted(podman_out("run", "--rm", ref, *PLAIN_QUERY).split())
    assert lock_entries(image) == installed
    assert podman_out("run", "--rm", ref, "cat", containers.LOCK_IN_IMAGE) == image.lock_path.read_text()


def test_missing_or_malformed_locks_are_reported(tmp_path: Path) -> None:
    for name, lock in {"nolock": None, "bad": "# comment\nsamtools 1.16\n", "empty": "# none yet\n",
                       "gpu": "# written on the build host\n", "ok": "bash=5.2.15-2+b7\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE} AS packages\n")
        if lock is not None:
            (tmp_path / name / "packages.lock").write_text(lock)
    (tmp_path / "gpu" / "image.toml").write_text("local_build = false\n")
    problems = containers.lock_problems(containers.discover(tmp_path))
    assert problems == [
        f"{tmp_path}/bad/packages.lock:2: 'samtools 1.16' is not a 'package=version' line: "
        "run 'batchpipes images lock bad' to rewrite the file",
        f"{tmp_path}/empty/packages.lock lists no packages (run: batchpipes images lock empty)",
        f"{tmp_path}/nolock/packages.lock is missing (run: batchpipes images lock nolock)",
    ]


def test_repository_locks_are_present() -> None:
    assert containers.lock_problems() == []


def test_check_pins_reports_a_missing_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(settings.CONTAINERS_DIR, tmp_path / "containers")
    (tmp_path / "containers" / "readsim" / "packages.lock").unlink()
    monkeypatch.setattr(settings, "CONTAINERS_DIR", tmp_path / "containers")
    assert cli.main(["images", "check-pins"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: containers/readsim/packages.lock is missing (run: batchpipes images lock readsim)")
    assert len(err.splitlines()) == 1


def test_gpu_image_lock_refuses_here_and_its_build_fails_until_written() -> None:
    image = containers.get("gromacs-cuda")
    assert not image.local_build
    assert lock_entries(image) == [], "an unwritten GPU lock makes the GPU build fail at the check"
    with pytest.raises(UserError) as refused:
        containers.write_lock(image)
    assert str(refused.value) == (
        "image 'gromacs-cuda' is not built on this machine (image.toml: local_build = false): run 'batchpipes "
        "images lock --build-host gromacs-cuda' on its build host and commit containers/gromacs-cuda/packages.lock")


@pytest.mark.parametrize("image", ALL_IMAGES, ids=lambda i: i.name)
def test_dockerfile_checks_its_lock_and_drops_root(image: containers.Image) -> None:
    text = (image.context / "Dockerfile").read_text()
    assert containers.dockerfile_lock_check(image.name) in text, "lock check missing or edited"
    assert "\nFROM ${BASE_IMAGE} AS packages\n" in text
    before = [ln for ln in text.split(containers.dockerfile_lock_check(image.name))[0].splitlines()
              if ln.strip() and not ln.lstrip().startswith("#")]
    assert not before[-1].endswith("\\"), "the lock check must follow the end of the packages RUN, not sit in it"
    after_check = text.split(containers.dockerfile_lock_check(image.name))[1]
    assert "apt-get install" not in after_check and "dpkg -i" not in after_check, \
        "packages installed after the lock check escape the lock"
    users = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
    if image.name in containers.ROOT_USER_EXCEPTIONS:
        assert not users or users[-1] in ("0", "root")
    else:
        assert containers.dockerfile_user() in text
        assert users and users[-1] == containers.TASK_USER
        assert not [ln for ln in text.split(f"USER {containers.TASK_USER}")[-1].splitlines()
                    if ln.startswith("RUN ")], "RUN after USER would run as the task user"


# -- the unprivileged task user ----------------------------------------------------------------------


@pytest.mark.containers
@pytest.mark.parametrize("image", LOCAL_IMAGES, ids=lambda i: i.name)
def test_images_run_as_an_unprivileged_user(image: containers.Image, podman_ready: None) -> None:
    ref = containers.build(image)
    user = containers.default_user(ref)
    if image.name in containers.ROOT_USER_EXCEPTIONS:
        assert user in ("", "0", "root", "0:0")
        return
    assert user == containers.TASK_USER
    out = podman_out("run", "--rm", ref, "bash", "-c", "id -u; id -g; touch /work/x && echo writable; echo $HOME")
    uid = str(containers.TASK_UID)
    assert out.split() == [uid, uid, "writable", "/home/batchpipes"]


def test_task_run_args_hand_only_writable_mounts_to_the_task_user() -> None:
    args = ["run", "--rm", "--workdir", "/mnt/miniwdl_task_container/work", "--cpus", "2",
            "-v", "/runs/x/call-a/stdout.txt:/mnt/miniwdl_task_container/stdout.txt",
            "-v", "/runs/x/call-a/work:/mnt/miniwdl_task_container/work",
            "-v", "/runs/x/call-a/command:/mnt/miniwdl_task_container/command:ro",
            "-v", "/data/it's $(x).fq:/mnt/miniwdl_task_container/work/_miniwdl_inputs/0/it's $(x).fq:ro",
            "-v", "/cache:/cache:z",
            "127.0.0.1:5000/batchpipes/genomics:abc", "/bin/sh", "-c", "bash ../command"]
    out = containers.task_run_args(args)
    assert out == args[:6] + [
        "-v", "/runs/x/call-a/stdout.txt:/mnt/miniwdl_task_container/stdout.txt:U",
        "-v", "/runs/x/call-a/work:/mnt/miniwdl_task_container/work:U",
        "-v", "/runs/x/call-a/command:/mnt/miniwdl_task_container/command:ro",
        "-v", "/data/it's $(x).fq:/mnt/miniwdl_task_container/work/_miniwdl_inputs/0/it's $(x).fq:ro",
        "-v", "/cache:/cache:z,U",
    ] + args[-4:]
    for other in (["pull", "x"], ["--version"], ["inspect", "-v", "a:b"], []):
        assert containers.task_run_args(other) == other


TASK_WDL = """version 1.0
task write_as_task_user {
  input {
    File reads
    String image
  }
  command <<<
    set -euo pipefail
    mapfile -t f < ~{write_lines([reads])}
    id -u > uid.txt
    mkdir -p sub
    wc -c < "${f[0]}" > sub/size.txt
  >>>
  output {
    Int uid = read_int("uid.txt")
    File size = "sub/size.txt"
  }
  runtime { docker: image }
}
"""


@pytest.mark.containers
def test_a_task_writes_its_outputs_as_the_image_user(tmp_path: Path, podman_ready: None) -> None:
    """miniwdl (as root here) runs the task as the image's user in a task folder created by root: it writes."""
    assert os.geteuid() == 0, "this machine runs the suite as root; the non-root path uses miniwdl's as_user"
    image = containers.publish_local(containers.get("genomics"))
    wdl = tmp_path / "t.wdl"
    wdl.write_text(TASK_WDL)
    reads = tmp_path / "it's a $(read) file.fq"
    reads.write_text("@r1\nACGT\n+\nIIII\n")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"reads": str(reads), "image": image}))
    cfg = local.miniwdl_config(call_cache=False)
    assert json.dumps(containers.task_podman_exe()) in cfg.read_text()
    proc = subprocess.run([sys.executable, "-m", "WDL", "run", str(wdl), "-i", str(inputs), "--dir",
                           str(tmp_path / "run"), "--cfg", str(cfg), "--no-cache", "--error-json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = json.loads(proc.stdout)["outputs"]
    assert outputs["write_as_task_user.uid"] == containers.TASK_UID
    size = Path(outputs["write_as_task_user.size"])
    assert size.read_text().strip() == str(reads.stat().st_size)
    assert size.resolve().stat().st_uid == containers.TASK_UID
    assert reads.stat().st_uid == 0, "the task's input must not be handed to the task user"

    # an input only root can read: one line before the task starts, naming the file and the fix
    reads.chmod(0o600)
    proc = subprocess.run([sys.executable, "-m", "WDL", "run", str(wdl), "-i", str(inputs), "--dir",
                           str(tmp_path / "run2"), "--cfg", str(cfg), "--no-cache", "--error-json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert local.task_error(error) == (
        f"write_as_task_user: input {reads} is not readable by the task user (uid {containers.TASK_UID}): "
        "make it readable ('chmod a+r', and a+x on folders) or run batchpipes as a non-root user")
    assert not list((tmp_path / "run2").glob("*/work/uid.txt")), "the task must not have started"


def test_unreadable_inputs_are_found_by_the_task_users_permissions(tmp_path: Path) -> None:
    paths = {}
    for name, mode, owner in [("open", 0o644, 0), ("private", 0o600, 0), ("mine", 0o600, 1000),
                              ("group", 0o640, None), ("dir", 0o750, 0), ("opendir", 0o755, 0)]:
        path = tmp_path / name
        if "dir" in name:
            path.mkdir()
        else:
            path.write_text("x")
        os.chown(path, 0 if owner is None else owner, 1000 if owner is None else 0)
        path.chmod(mode)
        paths[name] = str(path)
    args = ["run", "--rm", *[a for p in paths.values() for a in ("-v", f"{p}:/in/{Path(p).name}:ro")],
            "-v", f"{tmp_path}:/work", "img", "/bin/sh", "-c", "true"]
    assert containers.unreadable_inputs(args, (1000, 1000)) == [paths["private"], paths["dir"]]
    assert containers.unreadable_inputs(args, (1001, None)) == [paths["private"], paths["mine"],
                                                                 paths["group"], paths["dir"]]
