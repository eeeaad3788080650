"""Container images: content-hash tags, base image bootstrap, podman builds, the local registry.

Every folder ``containers/<name>/`` holds a Dockerfile that starts ``ARG BASE_IMAGE`` /
``FROM ${BASE_IMAGE}``. Its tag is the first 12 hex digits of the SHA-256 of the folder's files
(paths and bytes), so an unchanged folder is never rebuilt and a changed one always is. The same
Dockerfiles build with ``docker build`` on any machine that can pull ``debian:bookworm-slim``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
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


def image_exists(ref: str) -> bool:
    return subprocess.run(_podman() + ["image", "exists", ref], check=False).returncode == 0


def ensure_base_image() -> str:
    """Return a usable ``debian:bookworm-slim`` reference, pulling or bootstrapping it."""
    candidates = [f"docker.io/library/{settings.BASE_IMAGE}", f"localhost/{settings.BASE_IMAGE}"]
    for ref in candidates:
        if image_exists(ref):
            return ref
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
    """Build a minimal Debian 12 root file system with debootstrap and import it as ``ref``."""
    require("debootstrap", PODMAN_HINT)
    with tempfile.TemporaryDirectory(prefix="batchpipes-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", rootfs, settings.DEBIAN_MIRROR],
            what="debootstrap of Debian bookworm", capture=True)
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {settings.DEBIAN_MIRROR} bookworm main\n"
            f"deb {settings.DEBIAN_MIRROR} bookworm-updates main\n"
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            _podman() + ["import", "--change", "CMD [\"bash\"]", "-", ref],
            stdin=tar.stdout, capture_output=True, check=False,
        )
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise UserError(f"importing the bootstrapped base image failed: {imported.stderr.decode().strip()}")
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
    base = base or ensure_base_image()
    log.info("building %s (base %s)", local, base)
    run(_podman() + ["build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                     "--label", f"org.opencontainers.image.revision={image.tag}",
                     "-t", local, str(image.context)],
        what=f"building image '{image.name}'", capture=True)
    return local


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
