"""Shared fixtures. Tests that need containers set podman and the local registry up themselves."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from batchpipes import local, registry, settings, workflows
from batchpipes.errors import Interrupted, UserError

REPO = settings.REPO_ROOT


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """podman, runc config and the registry on 127.0.0.1 (scripts/bootstrap.sh installs them)."""
    for exe in ("podman", "docker-registry", "debootstrap"):
        if shutil.which(exe) is None:
            pytest.fail(f"{exe} is not installed: run scripts/bootstrap.sh first")
    registry.start_registry()


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


RunTask = Callable[..., local.RunResult]


class TaskFailed(UserError):
    """A task started by ``run_task`` failed: the one-line message ``<task> failed in <task>: <its ERROR line>``
    and the task's run folder (``work/``, ``stderr.txt``), for tests that check what it left behind."""

    def __init__(self, message: str, run_dir: Path) -> None:
        super().__init__(message)
        self.run_dir = run_dir

    @property
    def line(self) -> str:
        """The task's own ERROR line."""
        return str(self).partition(": ")[2]

    @property
    def work(self) -> Path:
        return self.run_dir / "work"

    @property
    def error_lines(self) -> list[str]:
        """Every ``ERROR:`` line the task wrote to its stderr (a task prints exactly one)."""
        stderr = self.run_dir / "stderr.txt"
        text = stderr.read_text(errors="replace") if stderr.is_file() else ""
        return [line for line in text.splitlines() if line.startswith("ERROR:")]


@pytest.fixture(scope="session")
def run_task(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> RunTask:
    """Run ONE task of a WDL file under miniwdl in real containers (no call cache): for tests of a task's own
    checks, without running the whole workflow. ``inputs`` are the task's input names, unprefixed; File inputs are
    paths. Returns the RunResult; a failing task raises :class:`TaskFailed` (a UserError) with its ERROR line, as
    ``run_workflow`` does."""

    def _run(wdl: Path | str, task: str, inputs: dict[str, Any]) -> local.RunResult:
        path = Path(wdl) if Path(wdl).is_absolute() else REPO / wdl
        flow = workflows.Workflow(task, path)
        run_dir = tmp_path_factory.mktemp(f"task-{task}")
        prefixed = {f"{task}.{k}": str(v) if isinstance(v, Path) else v for k, v in inputs.items()}
        try:
            return local.run(flow, prefixed, run_dir=run_dir, call_cache=False, task=task)
        except UserError as exc:
            if isinstance(exc, Interrupted):
                raise
            runs = sorted(p for p in run_dir.iterdir() if p.is_dir())
            raise TaskFailed(str(exc), runs[-1] if runs else run_dir) from exc

    return _run


def pytest_configure(config: pytest.Config) -> None:
    """In the fast lane (``-m "not containers"``) podman and docker are replaced on PATH by a command that fails
    loudly, so a test that runs containers without saying so (the ``podman_ready`` fixture) is caught."""
    if config.option.markexpr.replace(" ", "") != "notcontainers":
        return
    import os
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="batchpipes-fast-lane-"))
    for exe in ("podman", "docker"):
        shim = folder / exe
        shim.write_text(f"#!/bin/sh\necho 'fast lane: {exe} is not available; a test that runs containers must use "
                        "the podman_ready fixture (it then runs in the containers lane)' >&2\nexit 97\n")
        shim.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs podman (the ``podman_ready`` fixture, directly or through ``run_workflow``,
    ``run_task`` or another fixture) is in the ``containers`` lane; the rest is the fast lane
    (``pytest -m "not containers"``)."""
    for item in items:
        if "podman_ready" in getattr(item, "fixturenames", ()) and item.get_closest_marker("containers") is None:
            item.add_marker(pytest.mark.containers)


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
def stage_session(fake_aws: str) -> Iterator[Any]:
    """An in-process moto S3 with the bucket ``stage-bkt`` (the staging tests' target), as a boto3 session."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s = boto3.session.Session(region_name=fake_aws)
        s.client("s3").create_bucket(Bucket="stage-bkt", CreateBucketConfiguration={"LocationConstraint": fake_aws})
        yield s


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, fake_aws: str, moto_endpoint: str) -> str:
    """Environment for a CLI run against moto_server: fake credentials and region, the endpoint; state reset."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


def stop_build_instance_when_launched(ec2: Any, stop_event: threading.Event) -> threading.Thread:
    """Play the part of the AMI user-data's final poweroff (moto runs no user-data): stop the build instance
    (tag batchpipes:role=ami-build) once it runs."""

    def run() -> None:
        while not stop_event.is_set():
            found = ec2.describe_instances(Filters=[
                {"Name": "tag:batchpipes:role", "Values": ["ami-build"]},
                {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
            for r in found:
                ec2.stop_instances(InstanceIds=[i["InstanceId"] for i in r["Instances"]])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
