"""Container images: content-hash tags, package locks, base image bootstrap, podman builds, the local registry.

Every folder ``containers/<name>/`` holds a Dockerfile that starts ``ARG BASE_IMAGE`` /
``FROM ${BASE_IMAGE} AS packages``. Its tag is the first 12 hex digits of the SHA-256 of the folder's
files (paths and bytes), so an unchanged folder is never rebuilt and a changed one always is. The same
Dockerfiles build with ``docker build`` on any machine that can pull ``debian:bookworm-slim``.

``packages.lock`` in each folder lists every Debian package of the image (``name=version``, as
``dpkg-query`` reports it). The Dockerfile copies it into the image and, once the packages are
installed, fails the build with one line if the installed set differs: the content-hash tag therefore
pins the binaries too. :func:`write_lock` (``batchpipes images lock``) builds the ``packages`` stage
afresh and writes the lock.

Task containers run as the unprivileged user :data:`TASK_USER` (``USER 10001:10001`` in every
Dockerfile). For local runs, :func:`task_podman_exe` is miniwdl's ``[podman] exe``: as root it is this
module's podman shim, which adds podman's ``:U`` option to the task's writable bind mounts (the task
folder, stdout.txt, stderr.txt) so that the image's user owns them; as any other user miniwdl runs the
container as that user (``[task_runtime] as_user``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import UserError
from .proc import require, run

log = logging.getLogger(__name__)

PODMAN_HINT = "run scripts/bootstrap.sh (installs podman, runc and debootstrap)"

#: The file in ``containers/<name>/`` that lists the image's packages, and where the image keeps a copy.
LOCK_FILE = "packages.lock"
LOCK_IN_IMAGE = "/usr/share/batchpipes/packages.lock"
#: The Dockerfile stage that installs the packages (``FROM ${BASE_IMAGE} AS packages``): what a lock records.
PACKAGES_STAGE = "packages"
#: The user every image runs its tasks as (``USER`` in the Dockerfiles): numeric, so runtimes can check it,
#: and far above the uids hosts give their first accounts (1000, 1001, ...), so the files a root run hands
#: to it (podman's :U) belong to no host user.
TASK_UID = 10001
TASK_USER = f"{TASK_UID}:{TASK_UID}"
#: Images allowed to keep root as their default user, with the reason (README "Images": exceptions).
ROOT_USER_EXCEPTIONS: dict[str, str] = {}
#: Every installed package as ``name=version``: the same query the Dockerfiles run.
DPKG_QUERY = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}=${Version}\\n"]
_LOCK_LINE = re.compile(r"[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+")


@dataclass(frozen=True)
class Image:
    """One ``containers/<name>`` folder."""

    name: str
    context: Path
    #: False for images that need hardware this machine lacks (CUDA builds): checked statically only.
    local_build: bool = True
    description: str = ""

    @property
    def tag(self) -> str:
        return content_hash(self.context)

    @property
    def repository(self) -> str:
        return f"{settings.IMAGE_NAMESPACE}/{self.name}"

    @property
    def pinned(self) -> str:
        """Registry-less reference, as pinned in the WDL defaults: ``batchpipes/<name>:<tag>``."""
        return f"{self.repository}:{self.tag}"

    def ref(self, registry: str | None) -> str:
        """Full reference in ``registry`` (``None``: the local podman store)."""
        return f"{registry or 'localhost'}/{self.pinned}"

    @property
    def lock_path(self) -> Path:
        return self.context / LOCK_FILE

    @property
    def shown(self) -> str:
        """How messages name the folder: ``containers/<name>`` for the repository's images."""
        root = settings.CONTAINERS_DIR
        return f"containers/{self.name}" if self.context.parent == root else str(self.context)


def content_hash(folder: Path) -> str:
    """SHA-256 (12 hex digits) over the relative paths and bytes of every file in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in rel:
            continue
        digest.update(rel.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def discover(containers_dir: Path | None = None) -> dict[str, Image]:
    """All images under ``containers/``, by name."""
    root = containers_dir or settings.CONTAINERS_DIR
    images: dict[str, Image] = {}
    for dockerfile in sorted(root.glob("*/Dockerfile")):
        meta_path = dockerfile.parent / "image.toml"
        meta = tomllib.loads(meta_path.read_text()) if meta_path.exists() else {}
        name = dockerfile.parent.name
        images[name] = Image(
            name=name,
            context=dockerfile.parent,
            local_build=bool(meta.get("local_build", True)),
            description=str(meta.get("description", "")),
        )
    return images


def get(name: str) -> Image:
    images = discover()
    if name not in images:
        known = ", ".join(sorted(images)) or "none"
        raise UserError(f"unknown image '{name}': known images are {known} (folders under containers/)")
    return images[name]


def _podman() -> list[str]:
    require("podman", PODMAN_HINT)
    return ["podman"]


def _engine() -> list[str]:
    """podman, or docker where there is no podman (a GPU build host): for ``images lock --build-host``."""
    if shutil.which("podman") is None and shutil.which("docker") is not None:
        return ["docker"]
    return _podman()


def image_exists(ref: str) -> bool:
    return subprocess.run(_podman() + ["image", "exists", ref], check=False).returncode == 0


#: Label of a base image this module bootstrapped, and the value of the current recipe (with security updates).
BASE_LABEL = "io.batchpipes.base"
BASE_RECIPE = "debootstrap-minbase+bookworm-security+upgrade"


def security_mirror() -> str:
    """The Debian security archive beside ``settings.DEBIAN_MIRROR`` (``BATCHPIPES_DEBIAN_SECURITY_MIRROR``)."""
    default = settings.DEBIAN_MIRROR.rstrip("/")
    default = default[: -len("/debian")] + "/debian-security" if default.endswith("/debian") \
        else "http://deb.debian.org/debian-security"
    return os.environ.get("BATCHPIPES_DEBIAN_SECURITY_MIRROR", default)


def ensure_base_image() -> str:
    """Return a usable ``debian:bookworm-slim`` reference, pulling or bootstrapping it.

    A bootstrapped base is used only if it was made by the current recipe (:data:`BASE_RECIPE`): one made
    without the security archive is replaced, since its packages would never get security fixes.
    """
    candidates = [f"docker.io/library/{settings.BASE_IMAGE}", f"localhost/{settings.BASE_IMAGE}"]
    if image_exists(candidates[0]):
        return candidates[0]
    if image_exists(candidates[1]):
        recipe = subprocess.run(
            _podman() + ["image", "inspect", "--format", f'{{{{index .Labels "{BASE_LABEL}"}}}}', candidates[1]],
            capture_output=True, text=True, check=False).stdout.strip()
        if recipe == BASE_RECIPE:
            return candidates[1]
        log.info("%s was bootstrapped without security updates: bootstrapping it again", candidates[1])
    log.info("pulling %s", settings.BASE_IMAGE)
    pulled = subprocess.run(
        _podman() + ["pull", "-q", candidates[0]], capture_output=True, check=False, timeout=300
    )
    if pulled.returncode == 0:
        return candidates[0]
    log.info("cannot pull %s; bootstrapping it with debootstrap from %s",
             settings.BASE_IMAGE, settings.DEBIAN_MIRROR)
    return bootstrap_base_image(candidates[1])


def bootstrap_base_image(ref: str) -> str:
    """Build a minimal Debian 12 root file system with debootstrap and import it as ``ref``.

    Like Docker's ``debian:bookworm-slim`` it names bookworm, bookworm-updates and bookworm-security,
    and its packages are upgraded to the newest of those (debootstrap alone knows one suite).
    """
    require("debootstrap", PODMAN_HINT)
    with tempfile.TemporaryDirectory(prefix="batchpipes-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", rootfs, settings.DEBIAN_MIRROR],
            what="debootstrap of Debian bookworm", capture=True)
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {settings.DEBIAN_MIRROR} bookworm main\n"
            f"deb {settings.DEBIAN_MIRROR} bookworm-updates main\n"
            f"deb {security_mirror()} bookworm-security main\n"
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        rootfs_ref = f"{ref}-rootfs"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            _podman() + ["import", "--change", "CMD [\"bash\"]", "-", rootfs_ref],
            stdin=tar.stdout, capture_output=True, check=False,
        )
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise UserError(f"importing the bootstrapped base image failed: {imported.stderr.decode().strip()}")
        containerfile = Path(tmp) / "Containerfile"
        containerfile.write_text(
            f"FROM {rootfs_ref}\n"
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \\\n"
            " && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
            f'LABEL {BASE_LABEL}="{BASE_RECIPE}"\n'
            'CMD ["bash"]\n'
        )
        context = Path(tmp) / "context"  # empty: the rootfs must not be sent as build context
        context.mkdir()
        run(_podman() + ["build", "--network", "host", "-t", ref, "-f", containerfile, context],
            what="upgrading the bootstrapped base image", capture=True)
        subprocess.run(_podman() + ["rmi", rootfs_ref], capture_output=True, check=False)
    return ref


def build(image: Image, *, base: str | None = None, force: bool = False) -> str:
    """Build ``image`` unless the content-hash tag exists already; return the local reference."""
    if not image.local_build:
        raise UserError(
            f"image '{image.name}' needs a GPU build host and is checked statically only here: "
            "build it with docker on a CUDA machine (see its Dockerfile)"
        )
    local = image.ref(None)
    if not force and image_exists(local):
        log.info("image %s is cached", local)
        return local
    if not image.lock_path.is_file():
        raise UserError(f"{image.shown}/{LOCK_FILE} is missing: run 'batchpipes images lock {image.name}' "
                        "and review the packages it lists")
    base = base or ensure_base_image()
    log.info("building %s (base %s)", local, base)
    cmd = _podman() + ["build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                       "--label", f"org.opencontainers.image.revision={image.tag}", "-t", local]
    try:
        _build(cmd + [str(image.context)], image)
    except LockMismatch:
        # The layer cache may hold the packages of an earlier build: install afresh before believing it.
        log.info("%s: cached packages differ from %s; building again without the layer cache",
                 image.name, LOCK_FILE)
        _build(cmd + ["--no-cache", str(image.context)], image)
    return local


class LockMismatch(UserError):
    """The installed packages differ from ``packages.lock`` (the Dockerfile's check failed)."""


def _build(cmd: list[str], image: Image) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    for ln in lines[-40:]:
        log.debug("  %s", ln)
    mismatch = [ln for ln in lines if ln.startswith("ERROR: ") and f"{LOCK_FILE} does not match" in ln]
    if mismatch:
        raise LockMismatch(mismatch[-1][len("ERROR: "):])
    errors = [ln for ln in lines if ln.startswith(("ERROR:", "Error:"))]
    last = (errors or lines or [f"exit status {proc.returncode}"])[-1]
    raise UserError(f"building image '{image.name}' failed: {last}")


# -- package locks ---------------------------------------------------------------------------------


def parse_dpkg_query(output: str) -> list[str]:
    """``name=version`` of every installed package in :data:`DPKG_QUERY` output, sorted."""
    return sorted(line.split()[1] for line in output.splitlines()
                  if line.startswith("ii ") and len(line.split()) == 2)


def installed_packages(ref: str, engine: list[str] | None = None) -> list[str]:
    """The packages installed in image ``ref`` (``name=version``, sorted), read with dpkg-query."""
    out = run((engine or _podman()) + ["run", "--rm", "--network", "none", "--user", "0:0", ref, *DPKG_QUERY],
              what=f"listing the packages of {ref}", capture=True).stdout.decode()
    packages = parse_dpkg_query(out)
    if not packages:
        raise UserError(f"dpkg-query lists no packages in {ref}: is it a Debian-based image?")
    return packages


def read_lock(path: Path) -> list[str]:
    """The ``name=version`` lines of a lock file (comments and blank lines left out), as written."""
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _LOCK_LINE.fullmatch(line):
            raise UserError(f"{path}:{lineno}: '{line}' is not a 'package=version' line: "
                            f"run 'batchpipes images lock {path.parent.name}' to rewrite the file")
        entries.append(line)
    return entries


def lock_text(image: Image, packages: list[str]) -> str:
    return (f"# {image.shown}/{LOCK_FILE}: every Debian package of the image, as dpkg-query reports it.\n"
            f"# Written by 'batchpipes images lock {image.name}'; the Dockerfile fails the build when the\n"
            "# installed packages differ. Do not edit by hand.\n"
            + "".join(f"{p}\n" for p in packages))


def write_lock(image: Image, *, base: str | None = None, build_host: bool = False) -> bool:
    """Build the ``packages`` stage of ``image`` without the layer cache and write its lock.

    Returns True when the lock changed. The lock is replaced atomically, and only when its content
    differs, so locking an unchanged image twice leaves the content-hash tag alone. An image marked
    ``local_build = false`` is locked only with ``build_host=True`` (on its GPU build host), from its
    Dockerfile's own base image, with podman or else docker.
    """
    if not image.local_build and not build_host:
        raise UserError(f"image '{image.name}' is not built on this machine (image.toml: local_build = false): "
                        f"run 'batchpipes images lock --build-host {image.name}' on its build host and commit "
                        f"{image.shown}/{LOCK_FILE}")
    dockerfile = (image.context / "Dockerfile").read_text()
    if not re.search(rf"^FROM\s+\S+\s+AS\s+{PACKAGES_STAGE}\s*$", dockerfile, re.M | re.I):
        raise UserError(f"{image.shown}/Dockerfile has no '{PACKAGES_STAGE}' stage: install the packages "
                        f"in 'FROM ${{BASE_IMAGE}} AS {PACKAGES_STAGE}' (see containers/genomics/Dockerfile)")
    engine = _engine()
    base_args = []
    if image.local_build:
        base_args = ["--build-arg", f"BASE_IMAGE={base or ensure_base_image()}"]
    scratch = f"localhost/{settings.IMAGE_NAMESPACE}-lock/{image.name}:{os.getpid()}"
    log.info("locking %s: installing its packages afresh", image.name)
    try:
        _build(engine + ["build", "--network", "host", "--no-cache", "--target", PACKAGES_STAGE, *base_args,
                         "-t", scratch, str(image.context)], image)
        packages = installed_packages(scratch, engine)
    finally:
        subprocess.run(engine + ["rmi", "-f", scratch], capture_output=True, check=False)
    text = lock_text(image, packages)
    old = image.lock_path.read_text() if image.lock_path.is_file() else None
    if old == text:
        log.info("%s/%s is current (%d packages)", image.shown, LOCK_FILE, len(packages))
        return False
    tmp = image.lock_path.with_name(f".{LOCK_FILE}.tmp")
    tmp.write_text(text)
    tmp.replace(image.lock_path)
    log.info("wrote %s/%s (%d packages)", image.shown, LOCK_FILE, len(packages))
    return True


def lock_problems(images: dict[str, Image] | None = None) -> list[str]:
    """A missing or malformed lock, one line each. A GPU image's unwritten lock (no packages) is allowed:
    its build fails until the lock is written on the build host."""
    problems = []
    for image in (images if images is not None else discover()).values():
        if not image.lock_path.is_file():
            problems.append(f"{image.shown}/{LOCK_FILE} is missing (run: batchpipes images lock {image.name})")
            continue
        try:
            entries = read_lock(image.lock_path)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if not entries and image.local_build:
            problems.append(f"{image.shown}/{LOCK_FILE} lists no packages "
                            f"(run: batchpipes images lock {image.name})")
        elif not entries:
            log.warning("%s/%s lists no packages yet: run 'batchpipes images lock --build-host %s' on its build host",
                        image.shown, LOCK_FILE, image.name)
    return problems


def dockerfile_lock_check(name: str) -> str:
    """The lines every Dockerfile carries right after its ``packages`` stage: copy the lock into the
    image and fail the build, with one line naming the first difference, unless the installed packages
    are exactly the locked ones."""
    return (
        f"FROM {PACKAGES_STAGE}\n"
        f"COPY {LOCK_FILE} {LOCK_IN_IMAGE}\n"
        "RUN dpkg-query -W -f '${db:Status-Abbrev} ${Package}=${Version}\\n' | awk '$1 == \"ii\" { print $2 }' \\\n"
        "      > /tmp/installed \\\n"
        " && first=$(awk -F= 'FNR == NR { if ($0 !~ /^#/ && NF) lock[$1] = substr($0, length($1) + 2); next } \\\n"
        "      { v = substr($0, length($1) + 2) } \\\n"
        "      !($1 in lock) { print $1 \"\\t\" $0 \" is installed but not locked\"; next } \\\n"
        "      lock[$1] != v { print $1 \"\\t\" $1 \" is locked at \" lock[$1] \" but \" v \" is installed\" } \\\n"
        "      { delete lock[$1] } \\\n"
        "      END { for (p in lock) print p \"\\t\" p \"=\" lock[p] \" is locked but not installed\" }' \\\n"
        f"      {LOCK_IN_IMAGE} /tmp/installed | LC_ALL=C sort | head -n 1 | cut -f 2) \\\n"
        " && rm -f /tmp/installed \\\n"
        f" && if [ -n \"$first\" ]; then echo \"ERROR: containers/{name}/{LOCK_FILE} does not match the packages "
        f"installed: $first; run 'batchpipes images lock {name}' and review the change\" >&2; exit 1; fi\n"
    )


def dockerfile_user(uid: int = TASK_UID) -> str:
    """The lines that create the unprivileged task user and its writable /work (before ``USER``)."""
    return (
        f"RUN groupadd --gid {uid} batchpipes \\\n"
        f" && useradd --uid {uid} --gid {uid} --create-home --shell /bin/bash batchpipes \\\n"
        f" && install -d -o {uid} -g {uid} -m 0755 /work\n"
    )


def default_user(ref: str) -> str:
    """The image's default user (``.Config.User``; empty means root)."""
    out = run(_podman() + ["image", "inspect", "--format", "{{.Config.User}}", ref],
              what=f"inspecting {ref}", capture=True).stdout.decode().strip()
    return out


# -- running tasks as the image's user under miniwdl -------------------------------------------------


def as_invoker() -> list[str]:
    """``podman run`` options for a container that works in the invoking user's folders (test data,
    benchmarks): run it as that user, so it can write there and its files are the invoker's."""
    return ["--user", f"{os.getuid()}:{os.getgid()}"]


def task_podman_exe() -> list[str]:
    """miniwdl's ``[podman] exe``: as root, the shim below; otherwise ``sudo -n podman`` (with ``as_user``)."""
    if os.geteuid() == 0:
        return [sys.executable, "-m", "batchpipes.containers"]
    return ["sudo", "-n", "podman"]


def miniwdl_podman_config() -> str:
    """The ``[podman]`` and ``[task_runtime]`` sections of the miniwdl configuration."""
    as_user = os.geteuid() != 0
    return (f"[podman]\nexe = {json.dumps(task_podman_exe())}\n\n"
            "# as root, tasks run as the image's unprivileged user; otherwise as the invoking user\n"
            f"[task_runtime]\nas_user = {str(as_user).lower()}\n\n")


def task_run_args(args: list[str]) -> list[str]:
    """Rewrite miniwdl's ``podman run`` arguments: every writable ``-v`` bind mount gets ``:U``.

    podman then makes the container's user (the image's ``USER``, or ``--user``) own the mounted
    task folder and log files, so an unprivileged task user can write its outputs. Read-only mounts
    (the inputs, the command) are left alone: podman must not take over the user's files. Anything
    other than ``run`` passes through unchanged.
    """
    if not args or args[0] != "run":
        return list(args)
    out = list(args)
    for i in range(1, len(out) - 1):
        if out[i] in ("-v", "--volume"):
            spec = out[i + 1]
            parts = spec.split(":")
            if len(parts) == 2:
                out[i + 1] = f"{spec}:U"
            elif len(parts) == 3 and not {"ro", "U"} & set(parts[2].split(",")):
                out[i + 1] = f"{spec},U"
            elif len(parts) == 3 and os.path.basename(os.path.dirname(parts[0])) == "write_" \
                    and os.path.isfile(parts[0]):
                # miniwdl's write_lines/write_json files (the task's write_/ folder) are 0600 root
                # temporaries: the unprivileged task user must be able to read them.
                os.chmod(parts[0], 0o644)
    return out


def _mounts(args: list[str]) -> list[tuple[str, str, list[str]]]:
    """(host path, container path, options) of every ``-v`` in ``podman run`` arguments."""
    found = []
    for i in range(1, len(args) - 1):
        if args[i] in ("-v", "--volume"):
            host, _, rest = args[i + 1].partition(":")
            target, _, opts = rest.partition(":")
            found.append((host, target, [o for o in opts.split(",") if o]))
    return found


def _numeric_user(spec: str) -> tuple[int, int | None] | None:
    """``uid[:gid]`` of a numeric ``USER``/``--user`` value; None for root, names and empty."""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", spec)
    if m is None or int(m[1]) == 0:
        return None
    return int(m[1]), int(m[2]) if m[2] else None


def unreadable_inputs(args: list[str], user: tuple[int, int | None]) -> list[str]:
    """Host paths of the read-only mounts in ``podman run`` arguments that ``user`` cannot read."""
    import stat

    uid, gid = user
    bad = []
    for host, _target, opts in _mounts(args):
        if "ro" not in opts:
            continue
        try:
            st = os.stat(host)
        except OSError:
            continue  # podman reports a missing source itself
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        if st.st_uid == uid:
            need <<= 6
        elif gid is not None and st.st_gid == gid:
            need <<= 3
        if st.st_mode & need != need:
            bad.append(host)
    return bad


def _shim(argv: list[str]) -> int:
    exe = shutil.which("podman")
    if exe is None:
        print(f"error: 'podman' is not installed: {PODMAN_HINT}", file=sys.stderr)
        return 127
    args = task_run_args(argv)
    if args and args[0] == "run" and len(args) > 4 and args[-3:-1] == ["/bin/sh", "-c"]:
        given = next((args[i + 1] for i in range(len(args) - 1) if args[i] == "--user"), None)
        spec = given if given is not None else subprocess.run(
            [exe, "image", "inspect", "--format", "{{.Config.User}}", args[-4]],
            capture_output=True, text=True, check=False).stdout.strip()
        user = _numeric_user(spec)
        bad = unreadable_inputs(args, user) if user else []
        if user and bad:
            line = (f"ERROR: input {bad[0]} is not readable by the task user (uid {user[0]}): make it readable "
                    "('chmod a+r', and a+x on folders) or run batchpipes as a non-root user")
            print(line, file=sys.stderr)
            stderr_txt = next((h for h, t, o in _mounts(args) if t.endswith("/stderr.txt") and "ro" not in o), "")
            if stderr_txt:
                with open(stderr_txt, "a") as fh:
                    fh.write(line + "\n")
            return 1
    os.execv(exe, [exe, *args])
    return 127  # not reached


# -- the registry on 127.0.0.1 -------------------------------------------------------------------


def registry_up(registry: str = settings.LOCAL_REGISTRY) -> bool:
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_registry(registry: str = settings.LOCAL_REGISTRY) -> None:
    """Start Debian's ``docker-registry`` on ``registry`` (a loopback address) unless it answers."""
    if registry_up(registry):
        return
    host = registry.split(":")[0]
    if not re.fullmatch(r"127\.\d+\.\d+\.\d+|localhost", host):
        raise UserError(f"the local registry must listen on a loopback address, not '{registry}'")
    exe = require("docker-registry", PODMAN_HINT)
    state = settings.CACHE_DIR / "registry"
    state.mkdir(parents=True, exist_ok=True)
    config = state / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {state / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {registry}\n"
    )
    logfile = (state / "registry.log").open("ab")
    subprocess.Popen([exe, "serve", str(config)], stdout=logfile, stderr=logfile, start_new_session=True)
    for _ in range(50):
        if registry_up(registry):
            log.info("local registry listening on %s", registry)
            return
        time.sleep(0.2)
    raise UserError(f"the local registry did not start on {registry}: see {state / 'registry.log'}")


def in_registry(image: Image, registry: str = settings.LOCAL_REGISTRY) -> bool:
    req = urllib.request.Request(
        f"http://{registry}/v2/{image.repository}/manifests/{image.tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def publish_local(image: Image, registry: str = settings.LOCAL_REGISTRY) -> str:
    """Build (if needed) and push ``image`` to the loopback registry; return the pullable reference."""
    start_registry(registry)
    remote = image.ref(registry)
    if in_registry(image, registry):
        log.info("image %s is in the local registry", remote)
        return remote
    local = build(image)
    run(_podman() + ["push", "-q", "--tls-verify=false", local, f"docker://{remote}"],
        what=f"pushing '{image.name}' to {registry}", capture=True)
    return remote


if __name__ == "__main__":  # miniwdl's podman: ``python -m batchpipes.containers run ...``
    sys.exit(_shim(sys.argv[1:]))
