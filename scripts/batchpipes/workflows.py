"""Workflows of the package and validation of inputs JSON against them (miniwdl's own type checker)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
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


#: The one rule for names that become file names, folder names or tags (sample_name, name, output_name, ...):
#: declared as ``pattern`` in parameter_meta and checked again inside the tasks.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: The same words as the images' task_common.NAME_RULE (tests/test_code_quality.py keeps them equal).
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"

#: Bounds on resource inputs, by the end of the input's name. A request outside them is a typo, not a plan:
#: the largest instances AWS Batch can use have 192 vCPUs (448 on u-* high-memory instances, which Batch
#: cannot schedule), 4,096 GiB is x2iedn.32xlarge's memory, 16,384 GiB is one EBS gp3 volume's maximum, and
#: 8 GPUs is the most of any instance type.
RESOURCE_BOUNDS: dict[str, tuple[int, int]] = {
    "cpu": (1, 192),
    "memory_gb": (1, 4096),
    "disk_gb": (1, 16384),
    "gpu_count": (0, 8),
}

#: What an ``*_image`` input may hold: a container image reference (registry/repository:tag or @digest).
IMAGE_REF_RE = re.compile(r"([A-Za-z0-9.-]+:[0-9]{1,5}/)?"  # a registry with a port, e.g. 127.0.0.1:5000/
                          r"[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[0-9a-f]{64})?")
#: Workflow (and task) inputs that GPU tasks pass to their runtime ``queueArn``, and which queue of the rendered
#: Cromwell configuration fills each in (``batchpipes aws cromwell-command``) when an inputs file leaves it unset.
GPU_QUEUE_INPUT = "gpu_queue_arn"
CPU_QUEUE_INPUT = "cpu_queue_arn"
QUEUE_INPUTS = {GPU_QUEUE_INPUT: "gpu", CPU_QUEUE_INPUT: "cpu"}
#: What an ``*_queue_arn`` input may hold: empty, or an AWS Batch job queue ARN.
QUEUE_ARN_RE = re.compile(r"(arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:job-queue/[A-Za-z0-9_-]{1,128})?")
#: Characters no input value may hold: control characters (newline, carriage return, NUL, escape, ...).
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
CONTROL_NAMES = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL byte"}


def _meta(doc: WDL.Document, name: str) -> Any:
    """parameter_meta of a workflow input, or of a call's task input for ``call.input`` names."""
    assert doc.workflow is not None
    if "." not in name:
        return doc.workflow.parameter_meta.get(name)
    call_name, _, input_name = name.rpartition(".")
    for node in doc.workflow.body:
        for call in _calls(node):
            if call.name == call_name and isinstance(call.callee, WDL.Tree.Task):
                return call.callee.parameter_meta.get(input_name)
    return None


def _calls(node: WDL.Tree.WorkflowNode) -> list[WDL.Tree.Call]:
    if isinstance(node, WDL.Tree.Call):
        return [node]
    if isinstance(node, WDL.Tree.WorkflowSection):
        return [c for child in node.body for c in _calls(child)]
    return []


def values_in(value: WDL.Value.Base) -> Iterator[WDL.Value.Base]:
    """``value`` and every value inside it (arrays, pairs, maps with their keys, structs and optionals walked)."""
    yield value
    for child in value.children:
        yield from values_in(child)


def file_values(value: WDL.Value.Base) -> Iterator[WDL.Value.File | WDL.Value.Directory]:
    """Every File and Directory value inside ``value``: the one walk over the paths an input names."""
    return (v for v in values_in(value) if isinstance(v, WDL.Value.File | WDL.Value.Directory))


#: What ``map_files`` calls for each File or Directory value: (input key, value) -> the path to put in its place.
PathFn = Callable[[str, "WDL.Value.File | WDL.Value.Directory"], str]


def map_files(exe: WDL.Tree.Workflow | WDL.Tree.Task, inputs: dict[str, Any], fn: PathFn) -> dict[str, Any]:
    """``inputs`` (JSON keyed ``<exe>.<input>``, typed by the inputs of the workflow or task ``exe``) with every
    File and Directory value replaced by what ``fn`` returns for it; ``fn`` may raise UserError to refuse one."""
    try:
        env = WDL.values_from_json(inputs, exe.available_inputs, namespace=exe.name)
    except (WDL.Error.InputError, WDL.Error.EvalError) as exc:
        raise UserError(f"inputs of {exe.name}: {exc}") from exc
    values = {f"{exe.name}.{binding.name}": binding.value for binding in env}
    out = dict(inputs)
    order = {key: i for i, key in enumerate(inputs)}
    for key in sorted(values, key=lambda k: order.get(k, len(order))):  # in the order of the inputs, as given
        for v in file_values(values[key]):
            v.value = fn(key, v)
        out[key] = values[key].json
    return out


def image_inputs(exe: WDL.Tree.Workflow | WDL.Tree.Task, inputs: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """``(key, value, given)`` of each ``*_image`` input of ``exe`` that has a value: the one in ``inputs``
    (``given``), else its literal default."""
    for decl in exe.inputs or []:
        key = f"{exe.name}.{decl.name}"
        literal = decl.expr.literal if decl.expr is not None else None
        value = str(inputs.get(key) or (literal.value if literal is not None else ""))
        if decl.name.endswith("_image") and value:
            yield key, value, bool(inputs.get(key))


def _strings(value: WDL.Value.Base) -> list[str]:
    """Every String, File and Directory value in ``value``."""
    return [v.value for v in values_in(value) if isinstance(v, WDL.Value.String)]  # File, Directory: subclasses


def _check_value(doc: WDL.Document, name: str, value: WDL.Value.Base, where: str) -> None:
    """Choices, patterns, control characters, image references and resource bounds of one input."""
    assert doc.workflow is not None
    key = f"{doc.workflow.name}.{name}"
    for text in _strings(value):
        if (bad := CONTROL_RE.search(text)) is not None:
            what = CONTROL_NAMES.get(bad.group(), "a control character")
            raise UserError(f"{where}: {key} holds {what} at character {bad.start() + 1} of {text!r}: "
                            "input values must be one line of printable text")
    meta = _meta(doc, name)
    if isinstance(meta, dict) and isinstance(value, WDL.Value.String):
        choices = meta.get("choices")
        if isinstance(choices, list) and value.value not in [str(c) for c in choices]:
            raise UserError(f"{where}: {key} is '{value.value}': choose one of {', '.join(str(c) for c in choices)}")
    pattern = meta.get("pattern") if isinstance(meta, dict) else None
    if isinstance(pattern, str) and isinstance(value, WDL.Value.String | WDL.Value.Array):
        # a String, or each String item of an Array[String] (chain IDs, residue names)
        items = [value] if isinstance(value, WDL.Value.String) else value.value
        for item in items:
            if isinstance(item, WDL.Value.String) \
                    and re.fullmatch(pattern.lstrip("^").rstrip("$"), item.value) is None:
                assert isinstance(meta, dict)
                rule = meta.get("pattern_help") or (NAME_RULE if pattern == NAME_PATTERN
                                                    else f"it must match {pattern}")
                raise UserError(f"{where}: {key} is {item.value!r}: {rule}")
    base = name.rpartition(".")[2]
    if base.endswith("_image") and isinstance(value, WDL.Value.String) \
            and IMAGE_REF_RE.fullmatch(value.value) is None:
        raise UserError(f"{where}: {key} is {value.value!r}, not a container image reference "
                        "(e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/batchpipes/genomics:7b0a89cb6613)")
    if base.endswith("_queue_arn") and isinstance(value, WDL.Value.String) \
            and QUEUE_ARN_RE.fullmatch(value.value) is None:
        raise UserError(f"{where}: {key} is {value.value!r}, not an AWS Batch job queue ARN "
                        "(arn:aws:batch:REGION:ACCOUNT:job-queue/NAME)")
    if isinstance(value, WDL.Value.Int):
        for suffix, (low, high) in RESOURCE_BOUNDS.items():
            if base == suffix or base.endswith("_" + suffix):
                if not low <= value.value <= high:
                    raise UserError(f"{where}: {key} is {value.value}: give {low} to {high} "
                                    f"(the bounds on {suffix} requests, see docs/troubleshooting.md)")
                break


def validate(
    flow: Workflow,
    data: dict[str, Any],
    *,
    source: str,
    base_dir: Path | None = None,
    check_files: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check ``data`` (an inputs JSON read from ``source``) plus ``overrides`` (``--set NAME=VALUE``) against
    the workflow's inputs and return them with absolute local paths.

    Relative paths in ``data`` are read from ``base_dir`` (the inputs JSON's own folder, as miniwdl does; default:
    the current directory), relative paths in ``overrides`` from the current directory. Raises UserError naming
    the first problem and where it came from (the inputs file or ``--set``): unknown input, missing required input,
    wrong type, a value outside the declared ``choices`` or ``pattern``, a control character, a resource request
    outside RESOURCE_BOUNDS, or a local file that does not exist. ``s3://`` and other URIs are accepted as they
    are (checked where they are read).
    """
    doc = load(flow.path)
    assert doc.workflow is not None
    wf = doc.workflow

    def prefixed(values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in values.items():
            if key.startswith("#") or key.startswith("_"):
                continue  # comment keys
            bare = key[len(wf.name) + 1:] if key.startswith(wf.name + ".") else key
            out[f"{wf.name}.{bare}"] = value
        return out

    from_file, from_set = prefixed(data), prefixed(overrides or {})

    def parse(values: dict[str, Any], where: str, required: bool) -> WDL.Env.Bindings[WDL.Value.Base]:
        try:
            return WDL.values_from_json(values, wf.available_inputs, wf.required_inputs if required else None,
                                        namespace=wf.name)
        except (WDL.Error.InputError, WDL.Error.EvalError) as exc:
            raise UserError(f"{where}: {exc}") from exc

    set_env = parse(from_set, "--set", required=False)
    file_env = parse({k: v for k, v in from_file.items() if k not in from_set}, source, required=False)
    parse({**from_file, **from_set}, f"{source} and --set" if from_set else source, required=True)

    resolved: dict[str, Any] = {}
    for env, where, base in ((file_env, source, base_dir or Path.cwd()), (set_env, "--set", Path.cwd())):
        for binding in env:
            _check_value(doc, binding.name, binding.value, where)
            key = f"{wf.name}.{binding.name}"
            for v in file_values(binding.value):
                v.value = _resolve_path(v.value, base, key, where, check_files)
            resolved[key] = binding.value.json
    order = {k: i for i, k in enumerate([*from_file, *from_set])}
    return dict(sorted(resolved.items(), key=lambda kv: order.get(kv[0], len(order))))


def _resolve_path(raw: str, base: Path, key: str, where: str, check: bool) -> str:
    if "://" in raw:
        return raw
    p = Path(raw).expanduser()
    path = p if p.is_absolute() else base / p
    if path.exists():
        return str(path.resolve())
    if not check:
        return raw
    if p.is_absolute():
        raise UserError(f"{where}: {key} names file '{raw}', which does not exist")
    rule = ("relative paths given with --set are read from the current directory" if where == "--set"
            else "relative paths in an inputs file are read from the file's own folder")
    raise UserError(f"{where}: {key} names file '{raw}', which does not exist in {base} ({rule})")
