"""The local container toolchain: cached builds by content hash, package locks, the unprivileged task user,
the registry on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from batchpipes import (
    apt_sources,
    base_image,
    cli,
    containers,
    images,
    local,
    locks,
    podman,
    podman_shim,
    registry,
    settings,
)
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
    assert registry.in_registry(image)
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
        + locks.dockerfile_lock_check(name) + containers.dockerfile_user()
        + f"USER {containers.TASK_USER}\nWORKDIR /work\nCMD [\"bash\"]\n")
    shared = tmp_path / containers.SHARED_DIR  # the lock check is a shared file, as for the real images
    shared.mkdir()
    shutil.copy(settings.CONTAINERS_DIR / containers.SHARED_DIR / locks.LOCK_CHECK_SCRIPT, shared)
    yield containers.Image(name=name, context=folder, shared=(locks.LOCK_CHECK_SCRIPT,))
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

    assert locks.write_lock(image) is True
    base = base_image.ensure_base_image()
    in_base = podman_out("run", "--rm", base, *PLAIN_QUERY).split()
    assert lock_entries(image) == sorted(in_base) and len(in_base) > 50
    assert image.lock_path.read_text().startswith(f"# {image.context}/packages.lock: every Debian package")

    ref = containers.build(image)
    assert podman.image_exists(ref)
    assert podman_out("run", "--rm", ref, "cat", locks.LOCK_IN_IMAGE) == image.lock_path.read_text()
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
        assert not podman.image_exists(image.ref(None)), "nothing may be tagged for a failed build"


@pytest.mark.containers
def test_building_and_locking_twice_gives_the_same_tag(throwaway: containers.Image) -> None:
    image = throwaway
    locks.write_lock(image)
    tag, lock = image.tag, image.lock_path.read_bytes()
    first = containers.build(image, force=True)
    assert locks.write_lock(image) is False, "an unchanged package set must not rewrite the lock"
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
    assert podman_out("run", "--rm", ref, "cat", locks.LOCK_IN_IMAGE) == image.lock_path.read_text()


def test_missing_or_malformed_locks_are_reported(tmp_path: Path) -> None:
    for name, lock in {"nolock": None, "bad": "# comment\nsamtools 1.16\n", "empty": "# none yet\n",
                       "gpu": "# written on the build host\n", "ok": "bash=5.2.15-2+b7\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text("ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE} AS packages\n")
        if lock is not None:
            (tmp_path / name / "packages.lock").write_text(lock)
    (tmp_path / "gpu" / "image.toml").write_text("local_build = false\n")
    problems = locks.lock_problems(containers.discover(tmp_path))
    assert problems == [
        f"{tmp_path}/bad/packages.lock:2: 'samtools 1.16' is not a 'package=version' line: "
        "run 'batchpipes images lock bad' to rewrite the file",
        f"{tmp_path}/empty/packages.lock lists no packages (run: batchpipes images lock empty)",
        f"{tmp_path}/nolock/packages.lock is missing (run: batchpipes images lock nolock)",
    ]


def test_repository_locks_are_present() -> None:
    assert locks.lock_problems() == []


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
        locks.write_lock(image)
    assert str(refused.value) == (
        "image 'gromacs-cuda' is not built on this machine (image.toml: local_build = false): run 'batchpipes "
        "images lock --build-host gromacs-cuda' on its build host and commit containers/gromacs-cuda/packages.lock")


@pytest.mark.parametrize("image", ALL_IMAGES, ids=lambda i: i.name)
def test_dockerfile_checks_its_lock_and_drops_root(image: containers.Image) -> None:
    text = (image.context / "Dockerfile").read_text()
    assert locks.dockerfile_lock_check(image.name) in text, "lock check missing or edited"
    assert "\nFROM ${BASE_IMAGE} AS packages\n" in text
    before = [ln for ln in text.split(locks.dockerfile_lock_check(image.name))[0].splitlines()
              if ln.strip() and not ln.lstrip().startswith("#")]
    assert not before[-1].endswith("\\"), "the lock check must follow the end of the packages RUN, not sit in it"
    after_check = text.split(locks.dockerfile_lock_check(image.name))[1]
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
    user = podman.default_user(ref)
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
    out = podman_shim.task_run_args(args)
    assert out == args[:6] + [
        "-v", "/runs/x/call-a/stdout.txt:/mnt/miniwdl_task_container/stdout.txt:U",
        "-v", "/runs/x/call-a/work:/mnt/miniwdl_task_container/work:U",
        "-v", "/runs/x/call-a/command:/mnt/miniwdl_task_container/command:ro",
        "-v", "/data/it's $(x).fq:/mnt/miniwdl_task_container/work/_miniwdl_inputs/0/it's $(x).fq:ro",
        "-v", "/cache:/cache:z,U",
    ] + args[-4:]
    for other in (["pull", "x"], ["--version"], ["inspect", "-v", "a:b"], []):
        assert podman_shim.task_run_args(other) == other


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
    assert json.dumps(podman_shim.task_podman_exe()) in cfg.read_text()
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
    assert podman_shim.unreadable_inputs(args, (1000, 1000)) == [paths["private"], paths["dir"]]
    assert podman_shim.unreadable_inputs(args, (1001, None)) == [paths["private"], paths["mine"],
                                                                 paths["group"], paths["dir"]]


# -- shared files of several images (containers/shared/, image.toml: shared = [...]) -------------------


def _shared_tree(tmp_path: Path) -> Path:
    """containers/ with containers/shared/{entry.py,lib/util.sh} and an image 'a' that uses both."""
    root = tmp_path / "containers"
    (root / "shared" / "lib").mkdir(parents=True)
    (root / "shared" / "entry.py").write_text("print('entry')\n")
    (root / "shared" / "lib" / "util.sh").write_text("echo util\n")
    (root / "shared" / "unused.txt").write_text("not named by any image\n")
    (root / "a").mkdir()
    (root / "a" / "Dockerfile").write_text("ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE} AS packages\n"
                                           "COPY shared/entry.py /usr/local/bin/entry\n")
    (root / "a" / "image.toml").write_text('shared = ["entry.py", "lib/util.sh"]\n')
    return root


def test_shared_files_are_in_the_context_and_the_hash(tmp_path: Path) -> None:
    root = _shared_tree(tmp_path)
    image = containers.discover(root)["a"]
    assert set(containers.discover(root)) == {"a"}, "containers/shared/ is not an image"
    assert image.shared == ("entry.py", "lib/util.sh")
    assert sorted(image.context_files()) == ["Dockerfile", "image.toml", "shared/entry.py", "shared/lib/util.sh"]
    first = image.tag
    ctx = containers.write_context(image, tmp_path / "ctx")
    assert sorted(p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()) == \
        ["Dockerfile", "image.toml", "shared/entry.py", "shared/lib/util.sh"]
    assert (ctx / "shared" / "entry.py").read_text() == "print('entry')\n"
    assert containers.content_hash(ctx) == first, "the tag is the hash of the context a plain docker build gets"

    (root / "shared" / "unused.txt").write_text("changed\n")
    assert image.tag == first, "a shared file the image does not name is not part of it"
    (root / "shared" / "lib" / "util.sh").write_text("echo changed\n")
    assert image.tag != first
    with containers.build_context(image) as built_from:
        assert built_from != image.context
        assert (built_from / "shared" / "lib" / "util.sh").read_text() == "echo changed\n"
    assert not built_from.exists(), "the temporary context is removed"


@pytest.mark.containers
def test_an_image_builds_with_its_shared_files(throwaway: containers.Image) -> None:
    shared = throwaway.context.parent / "shared"
    (shared / "hello.sh").write_text("#!/bin/sh\necho shared hello\n")
    (shared / "hello.sh").chmod(0o755)
    dockerfile = throwaway.context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY shared/hello.sh /usr/local/bin/hello\n")
    image = dataclasses.replace(throwaway, shared=(*throwaway.shared, "hello.sh"))
    locks.write_lock(image)
    ref = containers.build(image)
    assert ref == f"localhost/batchpipes/{image.name}:{image.tag}" and image.tag != throwaway.tag
    assert podman_out("run", "--rm", ref, "hello") == "shared hello\n"


def test_an_image_without_shared_files_builds_from_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "Dockerfile").write_text("ARG BASE_IMAGE=debian:bookworm-slim\n"
                                                   "FROM ${BASE_IMAGE} AS packages\n")
    image = containers.discover(tmp_path)["plain"]
    assert image.shared == ()
    with containers.build_context(image) as ctx:
        assert ctx == image.context
    assert image.tag == containers.content_hash(image.context)


def test_a_missing_shared_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = _shared_tree(tmp_path)
    (root / "shared" / "entry.py").unlink()
    image = containers.discover(root)["a"]
    expected = (f"{root}/a/image.toml: shared file 'entry.py' is not in {root}/shared/ "
                "(add it there or drop it from 'shared')")
    with pytest.raises(UserError) as missing:
        image.tag  # noqa: B018 - the tag needs every shared file
    assert str(missing.value) == expected
    monkeypatch.setattr(settings, "CONTAINERS_DIR", root)
    assert cli.main(["images", "context", "a", str(tmp_path / "ctx")]) == 2
    assert capsys.readouterr().err == ("error: containers/a/image.toml: shared file 'entry.py' is not in "
                                       "containers/shared/ (add it there or drop it from 'shared')\n")
    assert not (tmp_path / "ctx").exists(), "nothing is written"


@pytest.mark.parametrize("value", ['"entry.py"', '["../a/Dockerfile"]', '["/etc/passwd"]', "[1]"])
def test_a_bad_shared_entry_is_refused(tmp_path: Path, value: str) -> None:
    root = _shared_tree(tmp_path)
    (root / "a" / "image.toml").write_text(f"shared = {value}\n")
    with pytest.raises(UserError, match=r"image.toml: .*shared"):
        containers.discover(root)


def test_context_command_writes_the_context_and_prints_the_docker_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BATCHPIPES_DEBIAN_MIRROR", "http://internal.example/debian")
    image = containers.get("readsim")
    assert cli.main(["images", "context", "readsim", str(tmp_path / "ctx")]) == 0
    assert capsys.readouterr().out == ("docker build --build-arg DEBIAN_MIRROR=http://internal.example/debian "
                                       f"-t batchpipes/readsim:{image.tag} {tmp_path}/ctx\n")
    assert containers.content_hash(tmp_path / "ctx") == image.tag
    assert containers.docker_build_commands(image, "ecr.example/x:1", "ctx dir") == [
        "batchpipes images context readsim 'ctx dir'", "docker build -t ecr.example/x:1 'ctx dir'"]


def test_context_command_refuses_a_folder_with_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    assert cli.main(["images", "context", "readsim", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path} is not an empty folder: give a new or empty folder "
                                       "for the build context\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# -- the Debian mirror, from this machine's apt sources --------------------------------------------------


def _etc_apt(tmp_path: Path, sources_list: str | None = None, **parts: str) -> Path:
    """An /etc/apt with ``sources.list`` and ``sources.list.d/<name>`` files (``name__ext`` keyword: name.ext)."""
    etc = tmp_path / "etc-apt"
    (etc / "sources.list.d").mkdir(parents=True)
    if sources_list is not None:
        (etc / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (etc / "sources.list.d" / name.replace("__", ".")).write_text(text)
    return etc


DEB822 = """\
# a comment before the first stanza
Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: https://mirror.example/debian/
 http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_a_one_line_sources_list(tmp_path: Path) -> None:
    etc = _etc_apt(tmp_path, "# deb http://commented.example/debian bookworm main\n"
                   "deb-src http://src.example/debian bookworm main\n"
                   "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian/ bookworm main\n"
                   "deb http://sec.example/debian-security bookworm-security main # trailing comment\n")
    assert apt_sources.debian_mirror(etc, env={}) == "http://one.example/debian"
    assert apt_sources.security_mirror(etc, env={}) == "http://sec.example/debian-security"


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    etc = _etc_apt(tmp_path, None, debian__sources=DEB822)
    assert [s.type for s in apt_sources.read_sources(etc)] == ["deb-src", "deb", "deb"]
    assert apt_sources.debian_mirror(etc, env={}) == "https://mirror.example/debian", "the entry's first URI"
    assert apt_sources.security_mirror(etc, env={}) == "http://security.example/debian-security"


def test_mirror_order_disabled_entries_and_other_suites(tmp_path: Path) -> None:
    etc = _etc_apt(
        tmp_path, "deb http://other.example/ubuntu noble main\n",
        a_off__sources="Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n",
        b_other__list="deb http://trixie.example/debian trixie main\n",
        c_first__list="deb cdrom:[Debian 12]/ bookworm main\ndeb [ trusted=yes ] http://c.example/debian bookworm\n",
        d_later__sources="Types: deb\nURIs: http://d.example/debian\nSuites: bookworm\n",
        e_ignored__disabled="deb http://disabled.example/debian bookworm main\n")
    assert apt_sources.debian_mirror(etc, env={}) == "http://c.example/debian"
    assert apt_sources.security_mirror(etc, env={}) == "http://c.example/debian-security", \
        "without a bookworm-security entry: debian-security beside the main mirror"


def test_mirror_environment_and_fallback(tmp_path: Path) -> None:
    empty = _etc_apt(tmp_path)
    assert apt_sources.debian_mirror(empty, env={}) == "http://deb.debian.org/debian"
    assert apt_sources.security_mirror(empty, env={}) == "http://deb.debian.org/debian-security"
    etc = _etc_apt(tmp_path / "x", None, debian__sources=DEB822)
    env = {"BATCHPIPES_DEBIAN_MIRROR": "http://internal.example/debian/"}
    assert apt_sources.debian_mirror(etc, env) == "http://internal.example/debian"
    assert apt_sources.security_mirror(etc, env) == "http://internal.example/debian-security"
    env["BATCHPIPES_DEBIAN_SECURITY_MIRROR"] = "http://internal.example/sec"
    assert apt_sources.security_mirror(etc, env) == "http://internal.example/sec"


def test_builds_get_the_mirror_as_a_build_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHPIPES_DEBIAN_MIRROR", "http://internal.example/debian")
    assert containers.build_args("localhost/debian:bookworm-slim") == [
        "--build-arg", "BASE_IMAGE=localhost/debian:bookworm-slim",
        "--build-arg", "DEBIAN_MIRROR=http://internal.example/debian"]
    assert containers.build_args(None) == ["--build-arg", "DEBIAN_MIRROR=http://internal.example/debian"]


# -- pins: batchpipes/<name>:<content hash> in the WDL -------------------------------------------------


def test_a_pinned_value_resolves_to_its_image_only_at_the_current_tag() -> None:
    found = containers.discover()
    genomics = found["genomics"]
    assert images.resolve_pinned(genomics.pinned, "wf.genomics_image", found) == genomics
    assert images.resolve_pinned("quay.io/biocontainers/samtools:1.16", "wf.genomics_image", found) is None
    assert images.resolve_pinned("batchpipes/genomics:latest", "wf.genomics_image", found) is None
    with pytest.raises(UserError) as stale:
        images.resolve_pinned("batchpipes/genomics:000000000000", "wf.genomics_image", found)
    assert str(stale.value) == (f"wf.genomics_image is batchpipes/genomics:000000000000 but containers/genomics is "
                                f"at {genomics.tag}: run 'batchpipes images pin' or give the current tag")
    with pytest.raises(UserError) as unknown:
        images.resolve_pinned("batchpipes/nosuch:000000000000", "wf.x_image", found)
    assert str(unknown.value) == ("wf.x_image names unknown image 'batchpipes/nosuch:000000000000': known images are "
                                  f"{', '.join(sorted(found))} (folders under containers/)")


def test_repin_rewrites_the_tags_of_known_images_only(tmp_path: Path) -> None:
    found = containers.discover()
    wdl = tmp_path / "tasks" / "x.wdl"
    wdl.parent.mkdir()
    text = ('String a_image = "batchpipes/genomics:000000000000"\n'
            'String b_image = "batchpipes/nosuch:000000000000"\n'
            'String c_image = "ubuntu:22.04"\n')
    wdl.write_text(text)
    assert len(images.stale_pins(tmp_path, found)) == 2
    assert images.repin(tmp_path, found) == [wdl]
    assert wdl.read_text() == text.replace("genomics:000000000000", f"genomics:{found['genomics'].tag}")
    assert images.stale_pins(tmp_path, found) == [f"{wdl}:2: image 'nosuch' has no folder under containers/"]
    assert images.repin(tmp_path, found) == [], "nothing left to rewrite"
