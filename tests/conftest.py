"""Shared fixtures. Tests that need containers set podman and the local registry up themselves."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, local, settings, workflows
from batchpipes.errors import UserError

REPO = settings.REPO_ROOT


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """podman, runc config and the registry on 127.0.0.1 (scripts/bootstrap.sh installs them)."""
    for exe in ("podman", "docker-registry", "debootstrap"):
        if shutil.which(exe) is None:
            pytest.fail(f"{exe} is not installed: run scripts/bootstrap.sh first")
    containers.start_registry()


RunWorkflow = Callable[..., local.RunResult]


@pytest.fixture(scope="session")
def run_workflow(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> RunWorkflow:
    """Run a pipeline under miniwdl in real containers, as ``batchpipes run`` does (no call cache)."""

    def _run(pipeline: str, inputs: Path | dict[str, Any] | None = None, **overrides: Any) -> local.RunResult:
        flow = workflows.get(pipeline)
        run_dir = tmp_path_factory.mktemp(f"run-{pipeline}")
        if isinstance(inputs, dict):
            path = run_dir / "given.inputs.json"
            path.write_text(json.dumps(inputs))
        else:
            path = inputs or settings.INPUTS_DIR / f"{pipeline}.local.json"
        prefixed = {f"{pipeline}.{k}": v for k, v in overrides.items()}
        validated = local.prepare_inputs(flow, path, prefixed)
        return local.run(flow, validated, run_dir=run_dir, call_cache=False)

    return _run


@pytest.fixture()
def expect_user_error() -> Callable[..., str]:
    """Call ``fn`` and return the UserError message it must raise."""

    def _expect(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
        with pytest.raises(UserError) as info:
            fn(*args, **kwargs)
        message = str(info.value)
        assert "\n" not in message, f"error message is not one line: {message!r}"
        return message

    return _expect


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """A ``moto_server`` on 127.0.0.1 (a free port) for end-to-end runs of the AWS commands.

    Yields the endpoint URL. Tests point boto3 at it with ``AWS_ENDPOINT_URL`` (botocore reads it) and
    fake credentials; nothing leaves the machine.
    """
    import os

    from batchpipes.aws.moto_local import start_moto_server

    try:
        proc, url = start_moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log")
    except UserError as exc:
        pytest.fail(str(exc))
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    os.environ.pop("AWS_ENDPOINT_URL", None)


FAKE_REGION = "eu-west-1"


@pytest.fixture()
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials and region for in-process moto (``mock_aws``): no profile, no endpoint. Returns the region."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": FAKE_REGION,
        "AWS_DEFAULT_REGION": FAKE_REGION,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return FAKE_REGION


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, fake_aws: str, moto_endpoint: str) -> str:
    """Environment for a CLI run against moto_server: fake credentials and region, the endpoint; state reset."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint
