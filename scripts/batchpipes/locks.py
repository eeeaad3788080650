"""Package locks: ``containers/<name>/packages.lock`` lists every Debian package of the image.

Each line is ``name=version``, as ``dpkg-query`` reports it. The Dockerfile copies the lock into the image
and, once the packages are installed, fails the build with one line if the installed set differs
(:func:`dockerfile_lock_check`): the content-hash tag therefore pins the binaries too. :func:`write_lock`
(``batchpipes images lock``) builds the ``packages`` stage afresh and writes the lock.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path

from . import containers, settings
from .base_image import ensure_base_image
from .containers import LOCK_FILE, Image
from .errors import UserError
from .podman import engine, podman
from .proc import run

log = logging.getLogger(__name__)

#: Where the image keeps its copy of the lock.
LOCK_IN_IMAGE = "/usr/share/batchpipes/packages.lock"
#: The check every image runs on its lock (a file of ``containers/shared/``), and where the image keeps it.
LOCK_CHECK_SCRIPT = "check-packages-lock.sh"
LOCK_CHECK_IN_IMAGE = f"/usr/share/batchpipes/{LOCK_CHECK_SCRIPT}"
#: The Dockerfile stage that installs the packages (``FROM ${BASE_IMAGE} AS packages``): what a lock records.
PACKAGES_STAGE = "packages"
#: Every installed package as ``name=version``: the same query the Dockerfiles run.
DPKG_QUERY = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}=${Version}\\n"]
_LOCK_LINE = re.compile(r"[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+")


def parse_dpkg_query(output: str) -> list[str]:
    """``name=version`` of every installed package in :data:`DPKG_QUERY` output, sorted."""
    return sorted(line.split()[1] for line in output.splitlines()
                  if line.startswith("ii ") and len(line.split()) == 2)


def installed_packages(ref: str, engine: list[str] | None = None) -> list[str]:
    """The packages installed in image ``ref`` (``name=version``, sorted), read with dpkg-query."""
    out = run((engine or podman()) + ["run", "--rm", "--network", "none", "--user", "0:0", ref, *DPKG_QUERY],
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
    engine_cmd = engine()
    base_args = containers.build_args((base or ensure_base_image()) if image.local_build else None)
    scratch = f"localhost/{settings.IMAGE_NAMESPACE}-lock/{image.name}:{os.getpid()}"
    log.info("locking %s: installing its packages afresh", image.name)
    try:
        with containers.build_context(image) as context:
            containers.run_build(engine_cmd + ["build", "--network", "host", "--no-cache", "--target", PACKAGES_STAGE,
                                               *base_args, "-t", scratch, str(context)], image)
        packages = installed_packages(scratch, engine_cmd)
    finally:
        subprocess.run(engine_cmd + ["rmi", "-f", scratch], capture_output=True, check=False)
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
    for image in (images if images is not None else containers.discover()).values():
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
    """The lines every Dockerfile carries right after its ``packages`` stage: copy the lock into the image and run
    ``containers/shared/check-packages-lock.sh``, which fails the build with one line naming the first difference
    unless the installed packages are exactly the locked ones (the image lists the script in image.toml
    ``shared``)."""
    return (
        f"FROM {PACKAGES_STAGE}\n"
        f"COPY {LOCK_FILE} {LOCK_IN_IMAGE}\n"
        f"COPY shared/{LOCK_CHECK_SCRIPT} {LOCK_CHECK_IN_IMAGE}\n"
        f"RUN sh {LOCK_CHECK_IN_IMAGE} {name} {LOCK_IN_IMAGE}\n"
    )
