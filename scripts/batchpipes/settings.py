"""Paths and names shared by the helpers; each can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from . import REPO_ROOT

#: Where local state lives: the registry's blobs, miniwdl configuration, run folders.
CACHE_DIR = Path(os.environ.get("BATCHPIPES_CACHE", Path.home() / ".cache" / "batchpipes"))
#: The registry on the loopback interface that serves built images to miniwdl.
LOCAL_REGISTRY = os.environ.get("BATCHPIPES_LOCAL_REGISTRY", "127.0.0.1:5000")
#: Repository prefix of every image: ``<registry>/<IMAGE_NAMESPACE>/<name>:<content hash>``.
IMAGE_NAMESPACE = "batchpipes"
#: The base image the Dockerfiles name by default (``ARG BASE_IMAGE``).
BASE_IMAGE = "debian:bookworm-slim"
# The Debian mirror (debootstrap, build argument DEBIAN_MIRROR) comes from the machine's apt sources:
# batchpipes.apt_sources.debian_mirror() (override: BATCHPIPES_DEBIAN_MIRROR).

REPO_ROOT = REPO_ROOT
CONTAINERS_DIR = REPO_ROOT / "containers"
WDL_DIR = REPO_ROOT / "wdl"
INPUTS_DIR = REPO_ROOT / "inputs"
