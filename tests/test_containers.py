"""The local container toolchain: cached builds by content hash, the registry on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess

import pytest
from batchpipes import containers, settings


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
