"""``batchpipes check``: the WDL linter (:mod:`batchpipes.wdl_lint`), the inputs JSON and the image pins."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import images, settings, wdl_lint, workflows
from .errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="lint every WDL file (miniwdl's linters with ShellCheck, and the project's "
                       "conventions), validate every inputs JSON, check the image pins",
                       description="Static checks: every wdl/**/*.wdl through the WDL linter (miniwdl's lint, "
                       "ShellCheck on the commands, and the batchpipes rules of batchpipes.wdl_lint: meta and "
                       "parameter_meta, runtime attributes, Cromwell AWS routing, pinned images, choices, "
                       "shell safety, command length), every inputs/*.json against its workflow, the WDL image "
                       "pins and package locks against containers/. Prints one line per problem; exit status 2 "
                       "when there is any.")
    p.set_defaults(func=_check)


def wdl_files(wdl_dir: Path | None = None) -> list[Path]:
    return sorted((wdl_dir or settings.WDL_DIR).rglob("*.wdl"))


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


def wdl_problems(wdl_dir: Path | None = None) -> list[str]:
    """One line per problem of the WDL under ``wdl_dir`` (default ``wdl/``): lint, then stale image pins."""
    found = [str(problem) for problem in wdl_lint.lint_files(wdl_files(wdl_dir))]
    return found + images.stale_pins(wdl_dir)


def problems() -> list[str]:
    """Everything ``batchpipes check`` reports, one line each: :func:`wdl_problems` and the inputs JSON."""
    found = wdl_problems()
    for path in inputs_files():
        try:
            validate_inputs_file(path)
        except UserError as exc:
            shown = str(path.relative_to(settings.REPO_ROOT))
            found.append(str(exc) if str(exc).startswith(shown) else f"{shown}: {exc}")
    return found


def _check(args: argparse.Namespace) -> int:
    found = problems()
    for line in found:
        print(line)
    if found:
        log.error("%d problem(s) in %d WDL file(s) and %d inputs file(s)", len(found), len(wdl_files()),
                  len(inputs_files()))
        return 2
    log.info("ok  %d WDL files lint clean, %d inputs files match their workflows, image pins are current",
             len(wdl_files()), len(inputs_files()))
    return 0
