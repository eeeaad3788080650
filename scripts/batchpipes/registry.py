"""The registry on 127.0.0.1 that serves the built images to miniwdl (Debian's ``docker-registry``)."""

from __future__ import annotations

import logging
import re
import subprocess
import time
import urllib.error
import urllib.request
from typing import Protocol

from . import settings
from .errors import UserError
from .podman import PODMAN_HINT
from .proc import require

log = logging.getLogger(__name__)


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


class Stored(Protocol):
    """What names an image in a registry (a :class:`batchpipes.containers.Image`)."""

    @property
    def repository(self) -> str: ...

    @property
    def tag(self) -> str: ...


def in_registry(image: Stored, registry: str = settings.LOCAL_REGISTRY) -> bool:
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
