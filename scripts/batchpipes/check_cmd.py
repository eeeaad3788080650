"""``batchpipes check``: static checks of the WDL, the inputs JSON and the image pins."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from . import settings, wdl_safety, workflows
from .errors import UserError
from .images_cmd import stale_pins

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="miniwdl check --strict every WDL file, validate every inputs JSON, "
                       "check image pins and the shell-safety of every command",
                       description="Static checks: miniwdl check --strict (with shellcheck) on every WDL "
                       "file, every inputs/*.json against its workflow, WDL image pins against containers/.")
    p.set_defaults(func=_check)


def wdl_files() -> list[Path]:
    return sorted(settings.WDL_DIR.rglob("*.wdl"))


def miniwdl_check(path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "WDL", "check", "--strict", str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        problems = [ln.strip() for ln in detail if "(Ln " in ln] or detail[-1:]
        raise UserError(f"miniwdl check --strict {path.relative_to(settings.REPO_ROOT)}: {' | '.join(problems)}")


def inputs_files() -> list[Path]:
    return sorted(settings.INPUTS_DIR.glob("*.json"))


def validate_inputs_file(path: Path) -> workflows.Workflow:
    """Check an inputs JSON against its workflow (local files must exist; .aws. templates name s3:// URIs)."""
    data = workflows.read_json(path)
    flow = workflows.workflow_for_inputs(path, data)
    remote = ".aws." in path.name
    workflows.validate(flow, data, source=str(path.relative_to(settings.REPO_ROOT)),
                       base_dir=path.resolve().parent, check_files=not remote)
    return flow


def _check(args: argparse.Namespace) -> int:
    for path in wdl_files():
        miniwdl_check(path)
        log.info("ok  miniwdl check --strict %s", path.relative_to(settings.REPO_ROOT))
        unsafe = wdl_safety.violations(path)
        if unsafe:
            raise UserError(f"{unsafe[0]} ({len(unsafe)} such placeholder(s) in this file)")
        log.info("ok  no String or File pasted into a command: %s", path.relative_to(settings.REPO_ROOT))
    for path in inputs_files():
        flow = validate_inputs_file(path)
        log.info("ok  %s matches %s", path.relative_to(settings.REPO_ROOT), flow.path.relative_to(settings.REPO_ROOT))
    problems = stale_pins()
    if problems:
        raise UserError("; ".join(problems))
    log.info("ok  WDL image pins match containers/")
    return 0
