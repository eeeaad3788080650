"""Workflows of the package and validation of inputs JSON against them (miniwdl's own type checker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import WDL

from . import files, settings
from .errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workflow:
    name: str
    path: Path


def known() -> dict[str, Workflow]:
    """Top-level workflows: every ``wdl/*.wdl`` that declares a workflow."""
    found = {}
    for path in sorted(settings.WDL_DIR.glob("*.wdl")):
        found[path.stem] = Workflow(path.stem, path)
    return found


def get(name: str) -> Workflow:
    flows = known()
    if name not in flows:
        raise UserError(f"unknown pipeline '{name}': choose one of {', '.join(sorted(flows))}")
    return flows[name]


@cache
def load(path: Path) -> WDL.Document:
    try:
        return WDL.load(str(path), check_quant=True)
    except WDL.Error.SyntaxError as exc:
        raise UserError(f"{path}: WDL syntax error at line {exc.pos.line}: {exc}") from exc
    except (WDL.Error.ValidationError, WDL.Error.MultipleValidationErrors) as exc:
        raise UserError(f"{path}: WDL does not type-check: {exc}") from exc


def workflow_for_inputs(inputs_path: Path, data: dict[str, Any] | None = None) -> Workflow:
    """The workflow an inputs JSON is for: from its keys (``genomics.fastq_r1``), else its file name
    (``inputs/genomics.local.json`` belongs to ``wdl/genomics.wdl``). ``data``: the file, already read."""
    flows = known()
    keys = read_json(inputs_path) if data is None else data
    prefixes = {key.split(".")[0] for key in keys if "." in key and not key.startswith("#")}
    if len(prefixes) == 1 and (name := prefixes.pop()) in flows:
        return flows[name]
    name = inputs_path.name.split(".")[0]
    if name in flows:
        return flows[name]
    raise UserError(f"cannot tell which workflow '{inputs_path}' is for: prefix its keys with the workflow "
                    f"name ({', '.join(sorted(flows))}), e.g. \"genomics.fastq_r1\"")


def read_json(path: Path) -> dict[str, Any]:
    """An inputs JSON: an object of ``"workflow.input": value`` pairs."""
    data = files.read_json(path, "inputs file")
    if not isinstance(data, dict):
        raise UserError(f"inputs file '{path}' must hold a JSON object of \"workflow.input\": value pairs")
    return data


def _choices(doc: WDL.Document) -> dict[str, list[str]]:
    """Inputs whose parameter_meta declares ``choices``: the allowed values."""
    assert doc.workflow is not None
    out = {}
    for name, meta in doc.workflow.parameter_meta.items():
        if isinstance(meta, dict) and isinstance(meta.get("choices"), list):
            out[name] = [str(c) for c in meta["choices"]]
    return out


def validate(
    flow: Workflow,
    data: dict[str, Any],
    *,
    source: str,
    base_dirs: list[Path] | None = None,
    check_files: bool = True,
) -> dict[str, Any]:
    """Check ``data`` against the workflow's inputs and return it with absolute local paths.

    Raises UserError naming the first problem: unknown input, missing required input, wrong type,
    a value outside the declared choices, or a local file that does not exist. ``s3://`` and other
    URIs are accepted as they are (checked where they are read).
    """
    doc = load(flow.path)
    assert doc.workflow is not None
    wf = doc.workflow
    prefixed = {}
    for key, value in data.items():
        if key.startswith("#") or key.startswith("_"):
            continue  # comment keys
        bare = key[len(wf.name) + 1:] if key.startswith(wf.name + ".") else key
        prefixed[f"{wf.name}.{bare}"] = value
    try:
        env = WDL.values_from_json(prefixed, wf.available_inputs, wf.required_inputs, namespace=wf.name)
    except WDL.Error.InputError as exc:
        raise UserError(f"{source}: {exc}") from exc
    except WDL.Error.EvalError as exc:
        raise UserError(f"{source}: {exc}") from exc

    for name, allowed in _choices(doc).items():
        if name in env and str(env[name].value) not in allowed:
            raise UserError(f"{source}: {wf.name}.{name} is '{env[name].value}': "
                            f"choose one of {', '.join(allowed)}")

    bases = base_dirs or [Path.cwd()]
    resolved: dict[str, Any] = {}
    for binding in env:
        value = binding.value
        key = f"{wf.name}.{binding.name}"

        def fix(v: WDL.Value.Base, key: str = key) -> WDL.Value.Base:
            if isinstance(v, WDL.Value.File | WDL.Value.Directory):
                v.value = _resolve_path(v.value, bases, key, source, check_files)
            for child in v.children:
                fix(child)
            return v

        resolved[key] = fix(value).json
    return resolved


def _resolve_path(raw: str, bases: list[Path], key: str, source: str, check: bool) -> str:
    if "://" in raw:
        return raw
    p = Path(raw).expanduser()
    candidates = [p] if p.is_absolute() else [b / p for b in bases]
    for c in candidates:
        if c.exists():
            return str(c.resolve())
    if not check:
        return raw
    raise UserError(f"{source}: {key} names file '{raw}', which does not exist "
                    f"(relative paths are read from {', '.join(str(b) for b in bases)})")
