"""The base image every Dockerfile starts from (``ARG BASE_IMAGE``): pulled, or bootstrapped with debootstrap
from the Debian mirror of this machine's apt sources (:mod:`batchpipes.apt_sources`) where it cannot be pulled."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

from . import apt_sources, settings
from .errors import UserError
from .podman import PODMAN_HINT, image_exists, podman
from .proc import require, run

log = logging.getLogger(__name__)

#: Label of a base image this module bootstrapped, and the value of the current recipe (with security updates).
BASE_LABEL = "io.batchpipes.base"
BASE_RECIPE = "debootstrap-minbase+bookworm-security+upgrade"


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
            podman() + ["image", "inspect", "--format", f'{{{{index .Labels "{BASE_LABEL}"}}}}', candidates[1]],
            capture_output=True, text=True, check=False).stdout.strip()
        if recipe == BASE_RECIPE:
            return candidates[1]
        log.info("%s was bootstrapped without security updates: bootstrapping it again", candidates[1])
    log.info("pulling %s", settings.BASE_IMAGE)
    pulled = subprocess.run(
        podman() + ["pull", "-q", candidates[0]], capture_output=True, check=False, timeout=300
    )
    if pulled.returncode == 0:
        return candidates[0]
    log.info("cannot pull %s; bootstrapping it with debootstrap from %s",
             settings.BASE_IMAGE, apt_sources.debian_mirror())
    return bootstrap_base_image(candidates[1])


def bootstrap_base_image(ref: str) -> str:
    """Build a minimal Debian 12 root file system with debootstrap and import it as ``ref``.

    Like Docker's ``debian:bookworm-slim`` it names bookworm, bookworm-updates and bookworm-security,
    and its packages are upgraded to the newest of those (debootstrap alone knows one suite).
    """
    require("debootstrap", PODMAN_HINT)
    mirror, suite = apt_sources.debian_mirror(), apt_sources.SUITE
    with tempfile.TemporaryDirectory(prefix="batchpipes-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", suite, rootfs, mirror],
            what=f"debootstrap of Debian {suite} from {mirror}", capture=True)
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {mirror} {suite} main\n"
            f"deb {mirror} {suite}-updates main\n"
            f"deb {apt_sources.security_mirror()} {suite}-security main\n"
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        rootfs_ref = f"{ref}-rootfs"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            podman() + ["import", "--change", "CMD [\"bash\"]", "-", rootfs_ref],
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
        run(podman() + ["build", "--network", "host", "-t", ref, "-f", containerfile, context],
            what="upgrading the bootstrapped base image", capture=True)
        subprocess.run(podman() + ["rmi", rootfs_ref], capture_output=True, check=False)
    return ref
