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


#: The folder of a cohort's own results (joint VCF, MultiQC report), beside one folder per sample.
COHORT_FOLDER = "cohort"
#: The output that names a cohort's samples, in the order of its per-sample outputs.
SAMPLE_NAMES_OUTPUT = "sample_names"


def _fill(folder: Path, outputs: dict[str, Any]) -> int:
    """Link the files of ``outputs`` into ``folder`` (two files of one name: the second prefixed by its output's
    name); return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    placed: dict[str, str] = {}
    for key, value in outputs.items():
        for src in _files(value):
            target = src.name
            if target in placed and placed[target] != str(src.resolve()):
                target = f"{key.rpartition('.')[2]}.{src.name}"
            if target in placed:
                continue
            _place(src, folder / target)
            placed[target] = str(src.resolve())
    return len(placed)


def cohort_folders(flow: Workflow, outputs: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """For a cohort run (an output ``sample_names``): the outputs of each sample's folder (per-sample outputs are
    arrays in the order of sample_names) and of ``cohort/``; None for a single-sample run."""
    names = outputs.get(f"{flow.name}.{SAMPLE_NAMES_OUTPUT}")
    if not isinstance(names, list) or not all(isinstance(n, str) and NAME_RE.fullmatch(n) for n in names):
        return None
    if COHORT_FOLDER in names:
        raise UserError(f"a sample is named '{COHORT_FOLDER}', the folder of the cohort's results: rename it")
    folders: dict[str, dict[str, Any]] = {name: {} for name in names}
    folders[COHORT_FOLDER] = {}
    for key, value in outputs.items():
        if key.endswith(f".{SAMPLE_NAMES_OUTPUT}"):
            continue
        if isinstance(value, list) and len(value) == len(names):
            for name, item in zip(names, value, strict=True):
                folders[name][key] = item
        else:
            folders[COHORT_FOLDER][key] = value
    return folders


def publish(flow: Workflow, inputs: dict[str, Any], run_dir: Path, outputs: dict[str, Any]) -> Path:
    """Link every output file of a finished run into ``run_dir/results/<name>/`` (a cohort: one folder per sample
    and ``cohort/``); return that folder (a cohort: ``run_dir/results``)."""
    folders = cohort_folders(flow, outputs)
    if folders is not None:
        final = run_dir / "results"
        staging = run_dir / ".results.partial"
        if staging.exists():
            shutil.rmtree(staging)
        count = sum(_fill(staging / name, outs) for name, outs in folders.items())
        if final.exists():
            raise UserError(f"{final} exists already: give a new run folder")
        staging.rename(final)
        log.info("results: %s (%d files in %d sample folders and %s/)", final, count, len(folders) - 1, COHORT_FOLDER)
        return final
    name = folder_name(flow, inputs)
    final = run_dir / "results" / name
    staging = run_dir / "results" / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    count = _fill(staging, outputs)
    if final.exists():
        raise UserError(f"{final} exists already: give a new run folder")
    staging.rename(final)
    log.info("results: %s (%d files)", final, count)
    return final


__all__ = ["COHORT_FOLDER", "RESULT_FOLDER_INPUTS", "cohort_folders", "folder_name", "publish"]


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
