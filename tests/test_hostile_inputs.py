"""Hostile values for every String and File input of every workflow, before anything runs.

One table: each top-level String/File input of each workflow, with the class of check that guards it. Every input
gets four hostile values (a quote, a command substitution, a newline, a space). Names, choices, image references
and queue ARNs must be refused with one line naming the input; free text and file names must be accepted as they
are (they reach the shell only through files: tests/test_shell_safety.py), except a newline, which no input may
hold. A new input without a row fails test_every_string_and_file_input_has_a_row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import WDL
from batchpipes import local, settings, workflows

HOSTILE = {
    "quote": "O'Brien x",
    "subst": "x$(touch pwned)`id`",
    "newline": "a\nb",
    "space": "a b",
}

NAME = "may hold only letters, digits"  # the pattern_help of every name input
CHOICE = "choose one of"
IMAGE = "not a container image reference"
ARN = "not an AWS Batch job queue ARN"
ACCEPT = None

#: (workflow, input) -> what a hostile value (other than a newline) meets.
TABLE: dict[tuple[str, str], str | None] = {
    ("genomics", "sample_name"): NAME,
    ("genomics", "snpeff_genome"): NAME,
    ("genomics", "codon_table"): "is not a snpEff codon table name",
    ("genomics", "aligner"): CHOICE,
    ("genomics", "caller"): CHOICE,
    ("genomics", "genomics_image"): IMAGE,
    ("genomics", "snpeff_image"): IMAGE,
    ("genomics", "fastq_r1"): ACCEPT,
    ("genomics", "fastq_r2"): ACCEPT,
    ("genomics", "reference_fasta"): ACCEPT,
    ("genomics", "reference_fai"): ACCEPT,
    ("genomics", "aligner_index"): ACCEPT,
    ("genomics", "annotation"): ACCEPT,
    ("genomics", "targets_bed"): ACCEPT,
    ("genomics_cohort", "cohort_name"): NAME,
    ("genomics_cohort", "snpeff_genome"): NAME,
    ("genomics_cohort", "codon_table"): "is not a snpEff codon table name",
    ("genomics_cohort", "aligner"): CHOICE,
    ("genomics_cohort", "caller"): CHOICE,
    ("genomics_cohort", "genomics_image"): IMAGE,
    ("genomics_cohort", "snpeff_image"): IMAGE,
    ("genomics_cohort", "multiqc_image"): IMAGE,
    ("genomics_cohort", "reference_fasta"): ACCEPT,
    ("genomics_cohort", "reference_fai"): ACCEPT,
    ("genomics_cohort", "aligner_index"): ACCEPT,
    ("genomics_cohort", "annotation"): ACCEPT,
    ("genomics_cohort", "targets_bed"): ACCEPT,
    ("gromacs", "structure"): ACCEPT,
    ("gromacs", "name"): NAME,
    ("gromacs", "force_field"): "is not a force field name",
    ("gromacs", "water_model"): "is not a water model name",
    ("gromacs", "box_type"): CHOICE,
    ("gromacs", "em_mdp"): ACCEPT,
    ("gromacs", "nvt_mdp"): ACCEPT,
    ("gromacs", "npt_mdp"): ACCEPT,
    ("gromacs", "production_mdp"): ACCEPT,
    ("gromacs", "em_mdp_overrides"): ACCEPT,
    ("gromacs", "nvt_mdp_overrides"): ACCEPT,
    ("gromacs", "npt_mdp_overrides"): ACCEPT,
    ("gromacs", "production_mdp_overrides"): ACCEPT,
    ("gromacs", "resume_checkpoint"): ACCEPT,
    ("gromacs", "resume_tpr"): ACCEPT,
    ("gromacs", "gromacs_image"): IMAGE,
    ("gromacs", "gromacs_cuda_image"): IMAGE,
    ("gromacs", "gpu_queue_arn"): ARN,
    ("gromacs", "cpu_queue_arn"): ARN,
    ("gromacs", "chains"): "is not a chain ID",
    ("gromacs", "altloc"): "is not an alternate location",
    ("gromacs", "keep_heterogens"): "is not a residue name",
    ("gromacs", "simd"): CHOICE,
    ("hevc", "source"): ACCEPT,
    ("hevc", "output_name"): NAME,
    ("hevc", "encoder"): CHOICE,
    ("hevc", "profile"): CHOICE,
    ("hevc", "preset"): "is not a preset name",
    ("hevc", "rate_control"): CHOICE,
    ("hevc", "intermediate"): CHOICE,
    ("hevc", "audio"): CHOICE,
    ("hevc", "container"): CHOICE,
    ("hevc", "verify_mode"): CHOICE,
    ("hevc", "expected_resolution"): "give WIDTHxHEIGHT",
    ("hevc", "ffmpeg_image"): IMAGE,
    ("hevc", "gpu_queue_arn"): ARN,
    ("hevc", "cpu_queue_arn"): ARN,
}


def _string_or_file(ty: WDL.Type.Base) -> bool:
    if isinstance(ty, WDL.Type.Array):
        return _string_or_file(ty.item_type)
    return isinstance(ty, WDL.Type.String | WDL.Type.File | WDL.Type.Directory)


def _inputs(pipeline: str) -> dict[str, WDL.Type.Base]:
    doc = workflows.load(workflows.get(pipeline).path)
    assert doc.workflow is not None
    return {b.name: b.value.type for b in doc.workflow.available_inputs
            if "." not in b.name and _string_or_file(b.value.type)}


def test_every_string_and_file_input_has_a_row() -> None:
    found = {(p, name) for p in workflows.known() for name in _inputs(p)}
    assert found - TABLE.keys() == set(), "inputs without a row in TABLE"
    assert TABLE.keys() - found == set(), "rows for inputs that no longer exist"


def _absolute(value: Any) -> Any:
    """Relative paths of the bundled inputs (also inside a cohort's samples) made absolute."""
    if isinstance(value, str) and (settings.INPUTS_DIR / value).is_file():
        return str(settings.INPUTS_DIR / value)
    if isinstance(value, list):
        return [_absolute(v) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v) for k, v in value.items()}
    return value


def _bundled(pipeline: str) -> dict[str, Any]:
    """The bundled local inputs with absolute paths."""
    data = json.loads((settings.INPUTS_DIR / f"{pipeline}.local.json").read_text())
    return {k: _absolute(v) for k, v in data.items() if not k.startswith("#")}


def _hostile_file(tmp_path: Path, text: str, like: Path | None) -> str:
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    path = folder / f"{text}.dat"
    if like is not None and like.is_file():
        shutil.copy(like, path)
    else:
        path.write_text("x\n")
    return str(path)


ROWS = [(p, name, kind) for (p, name) in sorted(TABLE) for kind in HOSTILE]


@pytest.mark.parametrize(("pipeline", "name", "kind"), ROWS, ids=[f"{p}.{n}-{k}" for p, n, k in ROWS])
def test_hostile_value(tmp_path: Path, expect_user_error, pipeline: str, name: str, kind: str) -> None:
    ty = _inputs(pipeline)[name]
    text = HOSTILE[kind]
    data = _bundled(pipeline)
    key = f"{pipeline}.{name}"
    is_file = "File" in str(ty)
    if is_file:
        if kind == "newline":
            value: Any = f"/tmp/{text}.dat"  # a path cannot be created to match: the check must come first
        else:
            current = data.get(key)
            value = _hostile_file(tmp_path, text, Path(current) if isinstance(current, str) else None)
    else:
        value = text
    if isinstance(ty, WDL.Type.Array):
        value = [value]
    data[key] = value
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(data))
    flow = workflows.get(pipeline)
    expected = "holds a newline" if kind == "newline" else TABLE[(pipeline, name)]
    if expected is None:
        resolved = local.prepare_inputs(flow, path, {})
        got = resolved[key]
        got = got[0] if isinstance(got, list) else got
        if is_file:
            assert Path(got).is_file() and Path(got).name == f"{text}.dat"
        else:
            assert got == text  # accepted unchanged: it reaches the tasks only as data
        return
    message = expect_user_error(local.prepare_inputs, flow, path, {})
    assert key in message, message
    assert expected in message, message


def test_hostile_value_given_with_set_names_set(tmp_path: Path, expect_user_error) -> None:
    message = expect_user_error(local.prepare_inputs, workflows.get("genomics"),
                                settings.INPUTS_DIR / "genomics.local.json", {"genomics.sample_name": "O'Brien"})
    assert message.startswith("--set: genomics.sample_name is \"O'Brien\": "), message
