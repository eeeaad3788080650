"""Publishing a finished run's outputs where a user can use them: ``<run>/results/<name>/``.

miniwdl puts each output in a folder of its own (``out/bam/x.bam``, ``out/bai/x.bam.bai``), so no tool finds an
index beside its file. Here every output file is linked (or copied across file systems) into one folder named
after the sample or system (the first of RESULT_FOLDER_INPUTS the workflow has), so ``samtools view x.bam chrM:1-100``
and ``bcftools view -r`` work on the published paths. The folder appears whole or not at all: it is filled under a
temporary name and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import UserError
from .workflows import NAME_PATTERN, Workflow

log = logging.getLogger(__name__)

#: Inputs that name what a run is about, in order of preference; the results folder takes the first one's value.
RESULT_FOLDER_INPUTS = ("sample_name", "name", "output_name")
NAME_RE = re.compile(NAME_PATTERN.lstrip("^").rstrip("$"))


def folder_name(flow: Workflow, inputs: dict[str, Any]) -> str:
    for key in RESULT_FOLDER_INPUTS:
        value = inputs.get(f"{flow.name}.{key}")
        if isinstance(value, str) and NAME_RE.fullmatch(value):
            return value
    return flow.name


def _files(value: Any) -> list[Path]:
    if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
        return [Path(value)]
    if isinstance(value, list):
        return [f for item in value for f in _files(item)]
    if isinstance(value, dict):
        return [f for item in value.values() for f in _files(item)]
    return []


def _place(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=False)
        return
    try:
        os.link(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def publish(flow: Workflow, inputs: dict[str, Any], run_dir: Path, outputs: dict[str, Any]) -> Path:
    """Link every output file of a finished run into ``run_dir/results/<name>/``; return that folder."""
    name = folder_name(flow, inputs)
    final = run_dir / "results" / name
    staging = run_dir / "results" / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    placed: dict[str, str] = {}
    for key, value in outputs.items():
        for src in _files(value):
            target = src.name
            if target in placed and placed[target] != str(src.resolve()):
                target = f"{key.rpartition('.')[2]}.{src.name}"
            if target in placed:
                continue
            _place(src, staging / target)
            placed[target] = str(src.resolve())
    if final.exists():
        raise UserError(f"{final} exists already: give a new run folder")
    staging.rename(final)
    log.info("results: %s (%d files)", final, len(placed))
    return final


__all__ = ["RESULT_FOLDER_INPUTS", "folder_name", "publish"]


#: The outputs whose JSON may carry a ``warnings`` list.
WARNING_REPORTS = frozenset({"summary", "report_json"})


def run_warnings(outputs: dict[str, Any]) -> list[str]:
    """The warnings a run's JSON reports carry (an output named ``summary`` or ``report_json`` whose ``warnings`` list
    is not empty, e.g. GROMACS's energy minimisation allowed to go on unconverged, HDR10 metadata hevc_nvenc could not
    carry): what the CLI repeats in its final message, so that a result that went on despite a problem is never
    reported as clean."""
    found: list[str] = []
    for key, value in sorted(outputs.items()):
        if key.rpartition(".")[2] not in WARNING_REPORTS or not isinstance(value, str) or not value.endswith(".json"):
            continue
        try:
            data = json.loads(Path(value).read_text())
        except (OSError, ValueError):
            continue
        warnings = data.get("warnings") if isinstance(data, dict) else None
        if isinstance(warnings, list):
            found += [str(w) for w in warnings]
    return found
