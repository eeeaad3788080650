"""Container images: the catalog of ``containers/``, content-hash tags, build contexts, podman builds.

Every folder ``containers/<name>/`` holds a Dockerfile that starts ``ARG BASE_IMAGE`` /
``FROM ${BASE_IMAGE} AS packages``. Its tag is the first 12 hex digits of the SHA-256 of its build context:
the folder's files plus the files of ``containers/shared/`` its ``image.toml`` names (``shared = [...]``),
which the build finds under ``shared/`` (paths and bytes). An unchanged context is never rebuilt and a
changed one always is. The same Dockerfiles build with ``docker build`` on any machine that can pull
``debian:bookworm-slim``, from the folder ``batchpipes images context NAME DIR`` writes.

Around it: :mod:`~batchpipes.locks` (``packages.lock``), :mod:`~batchpipes.base_image` (the Debian base),
:mod:`~batchpipes.podman_shim` (miniwdl's podman), :mod:`~batchpipes.registry` (the registry on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import apt_sources, settings
from .base_image import ensure_base_image
from .errors import UserError
from .podman import image_exists, podman
from .proc import run
from .registry import in_registry, start_registry

log = logging.getLogger(__name__)

#: The folder beside the image folders with the files several images copy (``shared = [...]`` in image.toml).
SHARED_DIR = "shared"
#: The file in ``containers/<name>/`` that lists the image's packages (see :mod:`batchpipes.locks`).
LOCK_FILE = "packages.lock"
#: The user every image runs its tasks as (``USER`` in the Dockerfiles): numeric, so runtimes can check it,
#: and far above the uids hosts give their first accounts (1000, 1001, ...), so the files a root run hands
#: to it (podman's :U) belong to no host user.
TASK_UID = 10001
TASK_USER = f"{TASK_UID}:{TASK_UID}"
#: Images allowed to keep root as their default user, with the reason (docs/local.md: "Tasks run as an
#: unprivileged user").
ROOT_USER_EXCEPTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Image:
    """One ``containers/<name>`` folder."""

    name: str
    context: Path
    #: False for images that need hardware this machine lacks (CUDA builds): checked statically only.
    local_build: bool = True
    description: str = ""
    #: Files of ``containers/shared/`` the image copies (``shared = [...]`` in image.toml), by relative path.
    shared: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return _hash(self.context_files())

    def context_files(self) -> dict[str, Path]:
        """The build context, relative path -> file: the image folder plus its shared files under ``shared/``."""
        files = _folder_files(self.context)
        root = self.context.parent / SHARED_DIR
        for name in self.shared:
            where = f"{self.shown}/image.toml: shared file '{name}'"
            if not root.joinpath(name).is_file():
                raise UserError(f"{where} is not in {_shown(root)}/ (add it there or drop it from 'shared')")
            if f"{SHARED_DIR}/{name}" in files:
                raise UserError(f"{where} clashes with {self.shown}/{SHARED_DIR}/{name}: rename the image's own file")
            files[f"{SHARED_DIR}/{name}"] = root / name
        return files

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
        return _shown(self.context)


def _shown(folder: Path) -> str:
    return f"containers/{folder.name}" if folder.parent == settings.CONTAINERS_DIR else str(folder)


def _in_context(rel: PurePosixPath) -> bool:
    """Whether a file belongs to a build context: not in a cache folder or hidden (``__pycache__``, ``.mypy_cache``,
    ``.ruff_cache``, an editor's ``.x.swp``: what tools leave in a working copy and a fresh clone lacks, so that the
    tag of a checkout with them equals the tag CI computes), and no compiled Python (``*.pyc``)."""
    return not any(part == "__pycache__" or part.startswith(".") for part in rel.parts) and rel.suffix != ".pyc"


def _folder_files(folder: Path) -> dict[str, Path]:
    """Every file of the build context under ``folder`` by relative path (:func:`_in_context`)."""
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return {rel: p for rel, p in files.items() if _in_context(PurePosixPath(rel))}


def _hash(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files, key=lambda r: PurePosixPath(r).parts):
        digest.update(rel.encode() + b"\0")
        digest.update(files[rel].read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def content_hash(folder: Path) -> str:
    """SHA-256 (12 hex digits) over the relative paths and bytes of every file in ``folder``; an image's
    tag is this hash of its build context (:meth:`Image.context_files`)."""
    return _hash(_folder_files(folder))


def write_context(image: Image, dest: Path) -> Path:
    """Write the build context of ``image`` (its folder plus its shared files under ``shared/``) into the new
    or empty folder ``dest``: what ``docker build`` needs on a machine without batchpipes' builder."""
    files = image.context_files()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} is not an empty folder: give a new or empty folder for the build context")
    for rel, src in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def docker_build_commands(image: Image, ref: str, folder: str) -> list[str]:
    """Shell commands that build ``image`` as ``ref`` with plain docker, from a checkout of this repository with
    batchpipes installed (a GPU build host): write the build context to ``folder``, then ``docker build`` it."""
    return [shlex.join(["batchpipes", "images", "context", image.name, folder]),
            shlex.join(["docker", "build", "-t", ref, folder])]


@contextlib.contextmanager
def build_context(image: Image) -> Iterator[Path]:
    """The folder to build ``image`` from: its own folder, or a temporary copy with its shared files."""
    if not image.shared:
        yield image.context
        return
    with tempfile.TemporaryDirectory(prefix=f"batchpipes-context-{image.name}-") as tmp:
        yield write_context(image, Path(tmp))


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
            shared=_shared_names(meta.get("shared", []), f"{_shown(dockerfile.parent)}/image.toml"),
        )
    return images


def _shared_names(value: object, where: str) -> tuple[str, ...]:
    """The ``shared`` list of an image.toml: relative paths inside ``containers/shared/``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: 'shared' must be a list of file names under containers/shared/")
    for name in value:
        path = PurePosixPath(name)
        if not name or path.is_absolute() or ".." in path.parts or str(path) != name:
            raise UserError(f"{where}: shared file '{name}' must be a plain relative path under containers/shared/")
    return tuple(value)


def get(name: str) -> Image:
    images = discover()
    if name not in images:
        known = ", ".join(sorted(images)) or "none"
        raise UserError(f"unknown image '{name}': known images are {known} (folders under containers/)")
    return images[name]


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
    cmd = podman() + ["build", "--network", "host", *build_args(base), *host_ca_secret(),
                      "--label", f"org.opencontainers.image.revision={image.tag}", "-t", local]
    with build_context(image) as context:
        try:
            run_build(cmd + [str(context)], image)
        except LockMismatch:
            # The layer cache may hold the packages of an earlier build: install afresh before believing it.
            log.info("%s: cached packages differ from %s; building again without the layer cache",
                     image.name, LOCK_FILE)
            run_build(cmd + ["--no-cache", str(context)], image)
    return local


#: The build host's CA bundle, given to builds as the secret ``host-ca``: a RUN step that downloads over TLS (the
#: ffmpeg image's pip stage) trusts what this host trusts, e.g. a proxy's re-signing CA. A secret is mounted only
#: while its RUN step runs: it is in neither the image nor its content-hash tag; the download's hash pin, not TLS,
#: fixes the bytes.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def host_ca_secret(bundle: Path = HOST_CA_BUNDLE) -> list[str]:
    """``podman build`` options that hand the host's CA bundle to the build as the secret ``host-ca`` (none when the
    host has no bundle there)."""
    return ["--secret", f"id=host-ca,src={bundle}"] if bundle.is_file() else []


def build_args(base: str | None) -> list[str]:
    """``--build-arg`` options of every build: the base image (None: the Dockerfile's default) and the Debian
    mirror of this machine's apt sources (``ARG DEBIAN_MIRROR`` in Dockerfiles that download from it)."""
    args = ["--build-arg", f"BASE_IMAGE={base}"] if base else []
    return args + ["--build-arg", f"DEBIAN_MIRROR={apt_sources.debian_mirror()}"]


class LockMismatch(UserError):
    """The installed packages differ from ``packages.lock`` (the Dockerfile's check failed)."""


def run_build(cmd: list[str], image: Image) -> None:
    """Run a build command; a failure is one line: the lock mismatch (:class:`LockMismatch`) or the last error."""
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


def dockerfile_user(uid: int = TASK_UID) -> str:
    """The lines that create the unprivileged task user and its writable /work (before ``USER``)."""
    return (
        f"RUN groupadd --gid {uid} batchpipes \\\n"
        f" && useradd --uid {uid} --gid {uid} --create-home --shell /bin/bash batchpipes \\\n"
        f" && install -d -o {uid} -g {uid} -m 0755 /work\n"
    )


def publish_local(image: Image, registry: str = settings.LOCAL_REGISTRY) -> str:
    """Build (if needed) and push ``image`` to the loopback registry; return the pullable reference."""
    start_registry(registry)
    remote = image.ref(registry)
    if in_registry(image, registry):
        log.info("image %s is in the local registry", remote)
        return remote
    local = build(image)
    run(podman() + ["push", "-q", "--tls-verify=false", local, f"docker://{remote}"],
        what=f"pushing '{image.name}' to {registry}", capture=True)
    return remote


