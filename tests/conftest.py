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
