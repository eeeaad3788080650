"""Emulation of what Cromwell (broadinstitute/cromwell, release 92 / develop c805f3c5) does with a WDL 1.0 task
before AWS Batch sees it: the command text it instantiates and the Batch requests its AWS backend builds.

Written for this project from the facts in Cromwell's source (no code copied); each function names the file it
reproduces. ``A/`` below is ``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/``.
Used by tests/test_cromwell_emulation.py and tests/test_cromwell_jobrun.py.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import WDL

# -- the command: wom/src/main/scala/wdl/util/StringUtil.scala ----------------------------------------------------

# `Ws = Pattern.compile("[\\ \\t]+")`, used with `lookingAt`.
_LEADING_WS = re.compile(r"[ \t]+")
# `trimmed.split("\\r?\\n")` (java.lang.String.split: a regex, trailing empty strings dropped).
_LINE_SPLIT = re.compile(r"\r?\n")


class CromwellError(Exception):
    """Something Cromwell itself refuses (its message, as close as the source gives it)."""


def _java_trim_is_empty(line: str) -> bool:
    """``line.trim.isEmpty`` in Java: String.trim removes every char <= U+0020 from both ends."""
    return all(c <= " " for c in line)


def _strip_all(s: str, start_chars: str, end_chars: str) -> str:
    """``StringUtil.stripAll``: drop leading chars in ``start_chars`` and trailing chars in ``end_chars``."""
    start = 0
    while start < len(s) and s[start] in start_chars:
        start += 1
    end = len(s)
    while end > start and s[end - 1] in end_chars:
        end -= 1
    return s[start:end]


def normalize_command(text: str) -> str:
    """Cromwell's ``wdl.util.StringUtil.normalize`` applied to an instantiated command.

    ``wom/src/main/scala/wom/callable/CommandTaskDefinition.scala`` (``instantiateCommand``) calls it on the
    whole command string after every placeholder was replaced. Exactly as Cromwell does it:

    1. leading ``\\r``/``\\n`` characters are removed (leading spaces/tabs of the first line are kept),
       trailing ``\\r``, ``\\n``, spaces and tabs are removed (``stripAll(s, "\\r\\n", "\\r\\n \\t")``);
    2. the text is split on ``\\r?\\n`` (Java ``String.split``: trailing empty strings dropped);
    3. the indent is the minimum count of leading spaces/tabs (each counts 1, tabs and spaces alike) over the
       lines that are not blank in Java's ``trim`` sense (only characters <= U+0020), 0 if none;
    4. that many characters are dropped from the start of every line (blank lines included, shorter ones
       become empty), and the lines are joined with ``\\n``: no trailing newline.
    """
    trimmed = _strip_all(text, "\r\n", "\r\n \t")
    parts = _LINE_SPLIT.split(trimmed)
    while len(parts) > 1 and parts[-1] == "":  # Java's split drops trailing empty strings
        parts.pop()
    indents = []
    for line in parts:
        if _java_trim_is_empty(line):
            continue
        match = _LEADING_WS.match(line)
        indents.append(match.end() if match else 0)
    indent = min(indents, default=0)
    return "\n".join(line[indent:] for line in parts)


# -- the command section as parsed: wdl/transforms/new-base/.../ast2wdlom/AstToCommandSectionElement.scala -------

Part = Any  # a str (raw command text) or a placeholder object (opaque here)


def command_section_parts(parts: Sequence[Part]) -> list[Part]:
    """The command parts after Cromwell's parse-time processing of a WDL 1.0 command section.

    ``AstToCommandSectionElement``: the parts are cut into lines at ``\\n``; blank lines (only whitespace text,
    no placeholder) are dropped at the start and the end; the leading whitespace (``^\\s*``) of each line whose
    first part is text is collected (a line starting with a placeholder, or empty, counts as ""). If those
    prefixes mix distinct whitespace characters (a tab and a space anywhere) Cromwell REJECTS the task:
    "Cannot mix leading whitespace characters in command". With one character, that character times the
    smallest prefix length is stripped from every line (0 when any line has none). Then
    ``TaskDefinitionElementToWomTaskDefinition.expandLines`` joins the lines back with ``\\n`` (none after the
    last). Placeholders are passed through unchanged.
    """
    lines: list[list[Part]] = [[]]
    for part in parts:
        if isinstance(part, str):
            pieces = part.split("\n")
            if pieces[0]:
                lines[-1].append(pieces[0])
            for piece in pieces[1:]:
                lines.append([piece] if piece else [])
        else:
            lines[-1].append(part)

    def blank(line: list[Part]) -> bool:
        return all(isinstance(p, str) and p.strip(" \t\n\x0b\f\r\x1c\x1d\x1e\x1f") == "" for p in line)

    while lines and blank(lines[0]):
        lines.pop(0)
    while lines and blank(lines[-1]):
        lines.pop()
    prefixes = []
    for line in lines:
        head = line[0] if line else None
        prefixes.append(re.match(r"[ \t\n\x0b\f\r]*", head)[0] if isinstance(head, str) else "")  # type: ignore[index]
    distinct = sorted(set("".join(prefixes)))
    if len(distinct) > 1:
        raise CromwellError("Cannot mix leading whitespace characters in command: "
                            f"[{', '.join(repr(c) for c in distinct)}]")
    prefix = distinct[0] * min(len(p) for p in prefixes) if distinct else ""
    out: list[Part] = []
    for i, line in enumerate(lines):
        if prefix:
            line = [line[0][len(prefix):], *line[1:]]
        out.extend(p for p in line if not (isinstance(p, str) and p == ""))
        if i < len(lines) - 1:
            out.append("\n")
    return out


# -- placeholder values: wdl/transforms/new-base/.../wdlom2wom/CommandPartElementToWomCommandPart.scala -----------


def java_double_to_string(x: float) -> str:
    """``Double.toString`` (WomFloat.valueString): ``1.0``, ``0.15``, ``1.0E-4``, ``1.0E7`` (shortest digits)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return f"{sign}0.0"
    dec = Decimal(repr(abs(x))).normalize()
    digits = "".join(map(str, dec.as_tuple().digits))
    exponent = int(dec.as_tuple().exponent)
    sci = len(digits) - 1 + exponent
    if 1e-3 <= abs(x) < 1e7:
        text = format(dec, "f")
        return sign + (text if "." in text else text + ".0")
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{sci}"


def placeholder_text(value: WDL.Value.Base, options: Mapping[str, str]) -> str:
    """The text Cromwell puts in the command for one evaluated placeholder (``instantiateFromValue``).

    A Boolean with both ``true=`` and ``false=`` takes one of them; any other primitive its ``valueString``
    (Int as is, Float as Java's Double.toString, Boolean ``true``/``false``, String/File as is, a File already
    mapped to its container path); an absent optional ``default=`` or ""; an Array of primitives needs ``sep=``
    (without it Cromwell fails the job: "Array value was given but no 'sep' attribute was provided"); anything
    else fails ("Cannot interpolate ... into a command string").
    """
    if isinstance(value, WDL.Value.Null):
        return options.get("default", "")
    if isinstance(value, WDL.Value.Boolean) and "true" in options and "false" in options:
        return options["true"] if value.value else options["false"]
    if isinstance(value, WDL.Value.Boolean):
        return "true" if value.value else "false"
    if isinstance(value, WDL.Value.Float):
        return java_double_to_string(value.value)
    if isinstance(value, WDL.Value.Int):
        return str(value.value)
    if isinstance(value, (WDL.Value.String, WDL.Value.File, WDL.Value.Directory)):
        return str(value.value)
    if isinstance(value, WDL.Value.Array):
        if "sep" not in options:
            raise CromwellError("Array value was given but no 'sep' attribute was provided")
        return options["sep"].join(placeholder_text(v, {}) for v in value.value)
    raise CromwellError(f"Cannot interpolate {value.type} into a command string")


# -- the engine functions: EngineFunctionEvaluators.scala, backend/WriteFunctions.scala -----------------------------

_WRITE_NAMES = {"_serialize_lines": "write_lines", "_serialize_map": "write_map"}


class CromwellStdLib(WDL.StdLib.Base):
    """miniwdl's standard library with Cromwell's file naming for ``write_*`` and sizes for ``size()``.

    Cromwell writes ``<function>_<md5 of the content>.tmp`` into the call's directory
    (``EngineFunctionEvaluators.writeContent`` + ``WriteFunctions.writeFile``); in the command it appears mapped
    to the container: ``/cromwell_root/<bucket>/<key>`` (``AwsBatchAsyncBackendJobExecutionActor
    .mapCommandLineWomFile``: ``workingDisk.mountPoint.resolve(path.pathWithoutScheme)``). ``size()`` of an input
    reads a sparse file of the size given in ``sizes`` (by suffix) under ``scratch``.
    """

    def __init__(self, call_dir: str, scratch: Path, sizes: Mapping[str, int] | None = None) -> None:
        self.call_dir = call_dir
        self.scratch = scratch
        self.sizes = dict(sizes or {})
        self.written: dict[str, str] = {}
        super().__init__("1.0", write_dir=str(scratch / "writes"))

    def _write(self, serialize: Callable[[WDL.Value.Base, IO[bytes]], None]
               ) -> Callable[[WDL.Value.Base], WDL.Value.File]:
        name = _WRITE_NAMES.get(getattr(serialize, "__name__", ""))
        if name is None:  # write_tsv / write_json pass closures
            qual = getattr(serialize, "__qualname__", "")
            name = "write_tsv" if "Tsv" in qual or "tsv" in qual else "write_json"

        def write(value: WDL.Value.Base) -> WDL.Value.File:
            buf = io.BytesIO()
            serialize(value, buf)
            content = buf.getvalue().decode()
            path = f"{self.call_dir}/{name}_{hashlib.md5(content.encode()).hexdigest()}.tmp"
            self.written[path] = content
            return WDL.Value.File(path)

        return write

    def _virtualize_filename(self, filename: str) -> str:
        return filename

    def _devirtualize_filename(self, filename: str) -> str:
        local = self.scratch / "sizes" / filename.lstrip("/")
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            size = next((n for suffix, n in self.sizes.items() if filename.endswith(suffix)), 1 << 20)
            with local.open("wb") as fh:
                fh.truncate(size)  # sparse: costs nothing
        return str(local)


# -- inputs: realistic values for a task --------------------------------------------------------------------------

BUCKET = "bp-test-bucket"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
CPU_QUEUE = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/bp-cpu"
GPU_QUEUE = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/bp-gpu"
ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CONTAINER_ROOT = "/cromwell_root"  # A/io/AwsBatchVolume.scala: AwsBatchWorkingDisk.MountPoint


def container_path(s3_url: str) -> str:
    """``s3://bucket/key`` as the command sees it: ``/cromwell_root/bucket/key`` (mapCommandLineWomFile)."""
    assert s3_url.startswith("s3://"), s3_url
    return f"{CONTAINER_ROOT}/{s3_url[len('s3://'):]}"


def sample_json(ty: WDL.Type.Base, name: str, doc_structs: Mapping[str, Any], choices: Sequence[Any] = ()) -> Any:
    """A plausible JSON value for an input of type ``ty`` that nobody bound (an upstream call's output)."""
    if isinstance(ty, WDL.Type.Array):
        return [sample_json(ty.item_type, f"{name}_{i}", doc_structs) for i in range(2)]
    if isinstance(ty, WDL.Type.File):
        return container_path(f"s3://{BUCKET}/cromwell-execution/upstream/{name}.dat")
    if isinstance(ty, WDL.Type.Directory):
        return container_path(f"s3://{BUCKET}/cromwell-execution/upstream/{name}")
    if isinstance(ty, WDL.Type.String):
        return str(choices[0]) if choices else f"{name}01"
    if isinstance(ty, WDL.Type.Boolean):
        return True
    if isinstance(ty, WDL.Type.Int):
        return 4
    if isinstance(ty, WDL.Type.Float):
        return 1.5
    if isinstance(ty, WDL.Type.Map):
        return {f"{name}_k": sample_json(ty.item_type[1], f"{name}_v", doc_structs)}
    if isinstance(ty, WDL.Type.Pair):
        return {"left": sample_json(ty.left_type, f"{name}_l", doc_structs),
                "right": sample_json(ty.right_type, f"{name}_r", doc_structs)}
    if isinstance(ty, WDL.Type.StructInstance):
        assert ty.members is not None
        return {k: sample_json(t, f"{name}_{k}", doc_structs) for k, t in ty.members.items()}
    raise NotImplementedError(f"no sample for {ty}")


def _choices(task: WDL.Tree.Task, name: str) -> list[Any]:
    meta = task.parameter_meta.get(name)
    return list(meta.get("choices") or []) if isinstance(meta, dict) else []


def _map_files(value: WDL.Value.Base) -> WDL.Value.Base:
    """s3:// File values as the command sees them (Cromwell's valueMapper before instantiation)."""
    def fix(v: WDL.Value.File | WDL.Value.Directory) -> str:
        return container_path(v.value) if v.value.startswith("s3://") else v.value
    return WDL.Value.rewrite_paths(value, fix)


def evaluate_task_env(task: WDL.Tree.Task, given: Mapping[str, WDL.Value.Base], stdlib: WDL.StdLib.Base
                      ) -> WDL.Env.Bindings[WDL.Value.Base]:
    """Every input (given, else its default, else a sample) and every other declaration of ``task``."""
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    pending = list(task.inputs or []) + list(task.postinputs)
    while pending:
        progressed = False
        for decl in list(pending):
            if decl.name in given:
                value = given[decl.name].coerce(decl.type)
            elif decl.expr is None:
                if decl.type.optional:
                    value = WDL.Value.Null()
                else:
                    value = WDL.Value.from_json(decl.type, sample_json(decl.type, decl.name, {},
                                                                       _choices(task, decl.name)))
            else:
                try:
                    value = decl.expr.eval(env, stdlib).coerce(decl.type)
                except (KeyError, WDL.Error.EvalError):
                    continue  # depends on a declaration not evaluated yet
            env = env.bind(decl.name, _map_files(value))
            pending.remove(decl)
            progressed = True
        if not progressed:
            raise CromwellError(f"task {task.name}: cannot evaluate {[d.name for d in pending]}")
    return env


@dataclass
class Instantiated:
    """A command as Cromwell instantiates it, and the files its engine functions wrote."""

    task: str
    command: str
    written: dict[str, str] = field(default_factory=dict)


def instantiate_command(task: WDL.Tree.Task, env: WDL.Env.Bindings[WDL.Value.Base], stdlib: CromwellStdLib
                        ) -> Instantiated:
    """``CommandTaskDefinition.instantiateCommand`` for a WDL 1.0 task: parse-time stripping, placeholders
    replaced by their Cromwell text, parts concatenated (``commandPartSeparator`` is ""), then normalize."""
    pieces = []
    for part in command_section_parts(task.command.parts):
        if isinstance(part, str):
            pieces.append(part)
        else:
            pieces.append(placeholder_text(part.expr.eval(env, stdlib), part.options))
    return Instantiated(task.name, normalize_command("".join(pieces)), dict(stdlib.written))


# -- the job script: backend/.../standard/StandardAsyncExecutionActor.scala + A/AwsBatchJob.scala -------------------

#: Markers StandardAsyncExecutionActor.commandScriptContents replaces (String.replace, every occurrence) AFTER
#: the command was inserted: a command containing one of them is silently rewritten by Cromwell.
LATE_MARKERS = ("SCRIPT_EPILOGUE", "DOCKER_OUTPUT_DIR_LINK", "SCRIPT_CLOSURE")
#: AwsBatchJob.reconfiguredScript: every "/cromwell_root" of the script becomes the container-local work dir.
AWS_WORK_DIR = "/tmp/scratch"


def wrap_like_job_script(command: str, workflow_id: str = "00000000-0000-0000-0000-000000000000") -> str:
    """The command in the shape Cromwell's job script gives it: inside a subshell after ``cd`` (the
    ``(\ncd <cwd>\nENVIRONMENT_VARIABLES\nINSTANTIATED_COMMAND\n) > "$out<id>" 2> "$err<id>"`` block, the FIFO
    variables named after the workflow id's short form so they do not clash with the command's), with
    ``/cromwell_root`` rewritten to ``/tmp/scratch`` as ``reconfiguredScript`` does. Enough for parsing; the
    full script is emulated by tests/cromwell_jobscript.py."""
    short = workflow_id.split("-")[0]
    out, err = f"out{short}", f"err{short}"
    body = (f"#!/bin/bash\ncd {CONTAINER_ROOT}\ntmpDir=$(mktemp -d \"$PWD\"/tmp.XXXXXX)\n"
            f"export TMPDIR=\"$tmpDir\"\n"
            f"{out}=\"${{tmpDir}}/out.$$\" {err}=\"${{tmpDir}}/err.$$\"\n"
            f"mkfifo \"${out}\" \"${err}\"\ntrap 'rm \"${out}\" \"${err}\"' EXIT\n"
            f"tee stdout < \"${out}\" &\ntee stderr < \"${err}\" >&2 &\n"
            f"(\ncd {CONTAINER_ROOT}\n\n{command}\n) > \"${out}\" 2> \"${err}\"\n"
            f"echo $? > {CONTAINER_ROOT}/rc.tmp\n")
    return body.replace(CONTAINER_ROOT, AWS_WORK_DIR)


# -- runtime attributes: A/AwsBatchRuntimeAttributes.scala, wom/format/MemorySize.scala -----------------------------

_MEMORY_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(\w+)")
_MEMORY_UNITS = {  # wom/src/main/java/wdl4s/parser/MemoryUnit.java: every unit is binary
    **dict.fromkeys(("B",), 1),
    **dict.fromkeys(("KB", "K", "KiB", "Ki"), 1 << 10),
    **dict.fromkeys(("MB", "M", "MiB", "Mi"), 1 << 20),
    **dict.fromkeys(("GB", "G", "GiB", "Gi"), 1 << 30),
    **dict.fromkeys(("TB", "T", "TiB", "Ti"), 1 << 40),
}
QUEUE_ARN_RE = re.compile(  # QueueArnValidation.arnRegex (verbose regex, written out)
    r"arn:aws(-[a-z]+){0,2}:batch:[a-z]{2}(-[a-z]+){1,2}-\d:\d{12}:job-queue/[\w-]{1,128}")
BUCKET_RE = re.compile(  # ScriptS3BucketNameValidation.s3BucketNameRegex
    r"(?=^.{3,63}$)(?!^(\d+\.)+\d+$)(^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$)")
_DISK_DIRECTORY = r"/[^\s]+"
_WORKING_DISK_RE = re.compile(r"local-disk\s+([1-9][0-9]*)\s+([a-zA-Z0-9-_]+)")  # backend/DiskPatterns.scala
_MOUNTED_DISK_RE = re.compile(rf"({_DISK_DIRECTORY})\s+([1-9][0-9]*)\s+([a-zA-Z0-9-_]+)")


def memory_mib(value: str | int) -> int:
    """``memory.to(MemoryUnit.MB).amount.toInt`` of a memory attribute (an Int is bytes)."""
    if isinstance(value, int):
        return int(value / (1 << 20))
    m = _MEMORY_RE.fullmatch(value)
    if m is None:
        raise CromwellError(f"{value} should be of the form 'X Unit' where X is a number, e.g. 8 GB")
    if m[2] not in _MEMORY_UNITS:
        raise CromwellError(f"{m[2]} is an invalid memory unit")
    return int(float(m[1]) * _MEMORY_UNITS[m[2]] / (1 << 20))


@dataclass(frozen=True)
class Volume:
    name: str
    host_path: str
    container_path: str


def parse_disks(disks: str) -> list[Volume]:
    """``DisksValidation`` + ``AwsBatchVolume.parse``: comma-separated; the size and type are IGNORED; the working
    disk ``local-disk`` -> host ``/cromwell_root``; a mount ``/p`` -> volume ``d-<md5 of /p>`` at ``/p``;
    ``local-disk`` is added when missing."""
    volumes: list[Volume] = []
    for disk in re.split(r",\s*", disks):
        if re.fullmatch(r"\s*local-disk\s*", disk) or _WORKING_DISK_RE.fullmatch(disk):
            volumes.append(Volume("local-disk", CONTAINER_ROOT, CONTAINER_ROOT))
        elif (m := re.fullmatch(rf"\s*({_DISK_DIRECTORY})\s*", disk)) or (m := _MOUNTED_DISK_RE.fullmatch(disk)):
            path = m[1]
            volumes.append(Volume(f"d-{hashlib.md5(path.encode()).hexdigest()}", path, path))
        else:
            raise CromwellError("Disk strings should be of the format 'local-disk' or '/mount/point' "
                                f"but got: '{disk}'")
    if not any(v.name == "local-disk" for v in volumes):
        volumes.append(Volume("local-disk", CONTAINER_ROOT, CONTAINER_ROOT))
    return volumes


def _string_maps(value: Any, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not all(isinstance(m, Mapping) for m in value):
        raise CromwellError(f"Expecting {key} runtime attribute to be an Array[Map[String, String]]")
    out = []
    for m in value:
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in m.values()):
            raise CromwellError(f"{key}: values must be strings: {m}")
        out.append({str(k): str(v) for k, v in m.items()})
    return out


def check_evaluate_on_exit(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    """``AwsBatchEvaluateOnExitValidation``: an empty map passes (!); otherwise keys among action, onExitCode,
    onReason, onStatusReason (case-insensitive) and an ``action`` of retry/exit (case-insensitive)."""
    accepted = {"action", "onexitcode", "onreason", "onstatusreason"}
    for entry in entries:
        if not entry:
            continue
        unknown = {k.lower() for k in entry} - accepted
        if unknown:
            raise CromwellError(f"Invalid keys in awsBatchEvaluateOnExit runtime attribute: {sorted(unknown)}")
        if not any(k.lower() == "action" and v.lower() in ("retry", "exit") for k, v in entry.items()):
            raise CromwellError("Missing or invalid action key/value for runtime attribute: awsBatchEvaluateOnExit")
    return entries


@dataclass(frozen=True)
class AwsRuntime:
    """The ``AwsBatchRuntimeAttributes`` of one call (only what the Batch requests use)."""

    docker: str
    cpu: int
    memory_mib: int
    gpu_count: int
    queue_arn: str
    script_bucket: str
    volumes: tuple[Volume, ...]
    retry_attempts: int
    evaluate_on_exit: tuple[tuple[tuple[str, str], ...], ...]
    ulimits: tuple[tuple[tuple[str, str], ...], ...]
    shared_memory_mib: int
    log_group: str
    job_timeout: int
    fuse_mount: bool
    additional_tags: tuple[tuple[str, str], ...]


#: Cromwell's defaults when neither the task nor default-runtime-attributes set a key (AwsBatchRuntimeAttributes).
CROMWELL_DEFAULTS: dict[str, Any] = {
    "cpu": 1, "memory": "2 GB", "gpuCount": 0, "disks": "local-disk", "awsBatchRetryAttempts": 0,
    "awsBatchEvaluateOnExit": [{}],  # awsBatchEvaluateOnExitDefault: ONE EMPTY MAP
    "ulimits": [{}], "sharedMemorySize": "64 MB", "logGroupName": "/aws/batch/job", "jobTimeout": 0,
    "fuseMount": False,
}


def config_defaults(default_runtime_attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What Cromwell takes from ``default-runtime-attributes`` (a HOCON tree as a plain dict).

    ``awsBatchEvaluateOnExit`` is read with ``getObjectList``: anything but a list of objects is ignored and
    the default ``[{}]`` used (``AwsBatchEvaluateOnExitValidation.fromConfig``); ``disks`` must be a String
    (``aggregateDisksInRuntimeConfig`` casts it)."""
    out = dict(default_runtime_attributes)
    eoe = out.get("awsBatchEvaluateOnExit")
    if eoe is not None and not (isinstance(eoe, list) and all(isinstance(m, Mapping) for m in eoe)):
        del out["awsBatchEvaluateOnExit"]
    if "disks" in out and not isinstance(out["disks"], str):
        raise CromwellError("default-runtime-attributes.disks is not a String (ClassCastException)")
    return out


def aws_runtime(task_runtime: Mapping[str, Any], defaults: Mapping[str, Any]) -> AwsRuntime:
    """Validate and combine a task's evaluated runtime section with the config defaults, as Cromwell does."""
    attrs = {**CROMWELL_DEFAULTS, **config_defaults(defaults), **task_runtime}
    if "docker" not in attrs:
        raise CromwellError("No docker (or container) runtime attribute")
    cpu = int(attrs["cpu"])
    if cpu < 1:
        raise CromwellError("Expecting cpu runtime attribute value greater than 0")
    gpu = int(attrs["gpuCount"])
    if gpu < 0:
        raise CromwellError("Expecting gpuCount runtime attribute value greater than or equal to 0")
    queue = str(attrs.get("queueArn", ""))
    if not QUEUE_ARN_RE.fullmatch(queue):
        raise CromwellError(f"queueArn '{queue}': ARN has invalid format")
    bucket = str(attrs.get("scriptBucketName", ""))
    if not BUCKET_RE.search(bucket):
        raise CromwellError("The Script Bucket name has an invalid s3 bucket format")
    retries = int(attrs["awsBatchRetryAttempts"])
    if not 0 <= retries <= 10:
        raise CromwellError("Expecting awsBatchRetryAttempts runtime attribute value between 0 and 10")
    eoe = check_evaluate_on_exit(_string_maps(attrs["awsBatchEvaluateOnExit"], "awsBatchEvaluateOnExit"))
    ulimits = _string_maps(attrs["ulimits"], "ulimits")
    for u in ulimits:
        if u and set(u) != {"name", "softLimit", "hardLimit"}:
            raise CromwellError("Invalid keys in ulimits runtime attribute")
    timeout = int(attrs["jobTimeout"])
    if 0 < timeout < 60 or timeout < 0:
        raise CromwellError("Expecting jobTimeout runtime attribute value greater than or equal to 60")
    tags = attrs.get("additionalTags") or {}
    return AwsRuntime(
        docker=str(attrs["docker"]), cpu=cpu, memory_mib=memory_mib(attrs["memory"]), gpu_count=gpu,
        queue_arn=queue, script_bucket=bucket, volumes=tuple(parse_disks(str(attrs["disks"]))),
        retry_attempts=retries, evaluate_on_exit=tuple(tuple(m.items()) for m in eoe),
        ulimits=tuple(tuple(u.items()) for u in ulimits), shared_memory_mib=memory_mib(str(attrs["sharedMemorySize"])),
        log_group=str(attrs["logGroupName"]), job_timeout=timeout, fuse_mount=bool(attrs["fuseMount"]),
        additional_tags=tuple((str(k), str(v)) for k, v in dict(tags).items()))


def evaluate_runtime(task: WDL.Tree.Task, env: WDL.Env.Bindings[WDL.Value.Base], stdlib: WDL.StdLib.Base
                     ) -> dict[str, Any]:
    """The task's runtime section evaluated (JSON values)."""
    return {k: expr.eval(env, stdlib).json for k, expr in task.runtime.items()}


# -- the Batch requests: A/AwsBatchJobDefinition.scala, A/AwsBatchJob.scala, A/package.scala --------------------

FETCH_AND_RUN = "/var/scratch/fetch_and_run.sh"
#: (volume name, host sourcePath, container path) that buildVolumes/buildMountPoints add to every definition.
HOST_VOLUMES = (
    ("fetchAndRunScript", "/usr/local/bin/fetch_and_run.sh", FETCH_AND_RUN),
    ("awsCliHome", "/usr/local/aws-cli", "/usr/local/aws-cli"),
    ("instanceId", "/var/lib/cloud/data/instance-id", "/var/lib/cloud/data/instance-id"),
)
#: AwsBatchJob.reconfiguredScript: the AWS CLI the job script runs (under the awsCliHome mount).
AWS_CLI = "/usr/local/aws-cli/v2/current/bin/aws"


def sanitize(name: str) -> str:
    """package.scala ``sanitize``: invalid characters -> ``_``, at most 128."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", name)[:128]


def evaluate_on_exit_params(rt: AwsRuntime) -> list[dict[str, str]]:
    """``retryStrategyBuilder``: one EvaluateOnExit per map; keys matched lower-cased; ``action`` only when the
    value is retry/exit; an empty map gives an EvaluateOnExit with NO field at all."""
    out = []
    for entry in rt.evaluate_on_exit:
        built: dict[str, str] = {}
        for k, v in entry:
            key = k.lower()
            if key == "action" and v.lower() in ("retry", "exit"):
                built["action"] = v.upper()
            elif key == "onexitcode":
                built["onExitCode"] = v
            elif key == "onreason":
                built["onReason"] = v
            elif key == "onstatusreason":
                built["onStatusReason"] = v
        out.append(built)
    return out


def job_definition_name(rt: AwsRuntime, job_role_arn: str | None = None) -> str:
    """``StandardAwsBatchJobDefinitionBuilder.buildName``: ``cromwell_<image>_`` cut to 88 chars + a SHA-1 of
    everything that shapes the definition, sanitized. (Cromwell hashes the SDK objects' toString; ours hashes our
    own rendering, so the digest differs but the shape and the length limit are the same.)"""
    text = repr((rt.docker, rt.volumes, rt.ulimits, rt.log_group, rt.shared_memory_mib, rt.fuse_mount,
                 rt.job_timeout, job_role_arn, rt.retry_attempts, rt.evaluate_on_exit))
    return sanitize(f"cromwell_{rt.docker}_"[:88] + hashlib.sha1(text.encode()).hexdigest())


def register_job_definition_request(rt: AwsRuntime, job_role_arn: str | None = None) -> dict[str, Any]:
    """The RegisterJobDefinition parameters (botocore shape) Cromwell's S3-mode backend sends."""
    volumes = [{"name": v.name, "host": {"sourcePath": v.host_path}} for v in rt.volumes]
    volumes += [{"name": n, "host": {"sourcePath": h}} for n, h, _ in HOST_VOLUMES]
    mounts: list[dict[str, Any]] = [{"containerPath": v.container_path, "sourceVolume": v.name} for v in rt.volumes]
    mounts += [{"readOnly": True, "sourceVolume": n, "containerPath": c} for n, _, c in HOST_VOLUMES]
    linux: dict[str, Any] = {"sharedMemorySize": rt.shared_memory_mib}
    if rt.fuse_mount:
        linux["devices"] = [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse"}]
    container: dict[str, Any] = {
        "image": rt.docker,
        # packCommand("/bin/bash", "-c", "/var/scratch/fetch_and_run.sh"): "gzipdata" only above 20480 chars
        "command": ["/bin/bash", "-c", FETCH_AND_RUN],
        "resourceRequirements": [{"type": "VCPU", "value": str(rt.cpu)},
                                 {"type": "MEMORY", "value": str(rt.memory_mib)}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": rt.log_group}},
        "volumes": volumes,
        "mountPoints": mounts,
        "environment": [],
        "ulimits": [{"name": dict(u)["name"], "softLimit": int(dict(u)["softLimit"]),
                     "hardLimit": int(dict(u)["hardLimit"])} for u in rt.ulimits if u],
        "linuxParameters": linux,
        "privileged": rt.fuse_mount,
    }
    if job_role_arn:
        container["jobRoleArn"] = job_role_arn
    request: dict[str, Any] = {"jobDefinitionName": job_definition_name(rt, job_role_arn), "type": "container",
                               "containerProperties": container}
    if rt.retry_attempts != 0:  # AwsBatchJob.registerJobDefinition
        request["retryStrategy"] = {"attempts": rt.retry_attempts, "evaluateOnExit": evaluate_on_exit_params(rt)}
    return request


def submit_job_request(rt: AwsRuntime, fq_call_name: str, definition_arn: str, script_key: str,
                       parameters: Mapping[str, str] | None = None, script_prefix: str = "scripts/"
                       ) -> dict[str, Any]:
    """``AwsBatchJob.submitJob``'s SubmitJob parameters: VCPU/MEMORY (and GPU when gpuCount > 0) as container
    overrides, the script's S3 URL in BATCH_FILE_S3_URL, the queue from ``queueArn``."""
    requirements = [{"type": "VCPU", "value": str(rt.cpu)}, {"type": "MEMORY", "value": str(rt.memory_mib)}]
    if rt.gpu_count > 0:
        requirements.append({"type": "GPU", "value": str(rt.gpu_count)})
    request: dict[str, Any] = {
        "jobName": sanitize(fq_call_name),
        "parameters": dict(parameters or {}),
        "containerOverrides": {
            "environment": [{"name": "BATCH_FILE_TYPE", "value": "script"},
                            {"name": "BATCH_FILE_S3_URL",
                             "value": f"s3://{rt.script_bucket}/{script_prefix}{script_key}"}],
            "resourceRequirements": requirements,
        },
        "tags": dict(rt.additional_tags),
        "jobQueue": rt.queue_arn,
        "jobDefinition": definition_arn,
    }
    if rt.job_timeout > 0:
        request["timeout"] = {"attemptDurationSeconds": rt.job_timeout}
    return request


@functools.cache
def _batch_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("batch")


def botocore_problems(operation: str, params: Mapping[str, Any]) -> str:
    """botocore's client-side validation of ``params`` for a Batch operation ("" when valid)."""
    import botocore.validate

    model = _batch_model()
    report = botocore.validate.ParamValidator().validate(dict(params), model.operation_model(operation).input_shape)
    return str(report.generate_report()) if report.has_errors() else ""


# -- what AWS Batch does with the retry strategy (docs: API_EvaluateOnExit, userguide job_retries) ---------------

_REASON_PATTERN = re.compile(r"[A-Za-z0-9.: \t]{0,511}\*?|[A-Za-z0-9.: \t]{512}")
_EXIT_CODE_PATTERN = re.compile(r"[0-9]{0,511}\*?|[0-9]{512}")


def batch_pattern_problems(params: Mapping[str, Any]) -> list[str]:
    """What the Batch service refuses that botocore does not check: 1-10 attempts, at most 5 EvaluateOnExit, the
    patterns' alphabet (letters, digits, '.', ':', white space; exit codes digits only; an optional final '*')."""
    problems: list[str] = []
    strategy = params.get("retryStrategy")
    if strategy is None:
        return problems
    if not 1 <= strategy.get("attempts", 0) <= 10:
        problems.append(f"attempts {strategy.get('attempts')} is not between 1 and 10")
    entries = strategy.get("evaluateOnExit", [])
    if len(entries) > 5:
        problems.append(f"{len(entries)} evaluateOnExit entries (at most 5)")
    for entry in entries:
        for key in ("onStatusReason", "onReason"):
            if key in entry and not _REASON_PATTERN.fullmatch(entry[key]):
                problems.append(f"{key} '{entry[key]}' has characters Batch does not accept")
        if "onExitCode" in entry and not _EXIT_CODE_PATTERN.fullmatch(entry["onExitCode"]):
            problems.append(f"onExitCode '{entry['onExitCode']}' is not digits with an optional final '*'")
    return problems


def _glob(pattern: str, value: str) -> bool:
    # "It can optionally end with an asterisk (*) so that only the start of the string needs to be an exact match."
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def batch_retry_decision(evaluate_on_exit: Sequence[Mapping[str, str]], *, status_reason: str = "",
                         reason: str = "", exit_code: int | None = None) -> str:
    """RETRY or EXIT for a failed attempt, as Batch evaluates ``evaluateOnExit``: the entries in order, the first
    whose every given condition matches decides (its action, case-insensitive); no match -> RETRY."""
    for entry in evaluate_on_exit:
        conditions = [(entry.get("onStatusReason"), status_reason), (entry.get("onReason"), reason),
                      (entry.get("onExitCode"), "" if exit_code is None else str(exit_code))]
        if all(p is None or _glob(p, v) for p, v in conditions):
            return str(entry.get("action", "")).upper()
    return "RETRY"


# -- workflows: realistic inputs for every call ---------------------------------------------------------------------


@dataclass
class CallCase:
    """One task as a workflow calls it (or alone): its inputs, bound as Cromwell would bind them."""

    workflow: str
    call: str
    task: WDL.Tree.Task
    given: dict[str, WDL.Value.Base]
    source: Path

    @property
    def id(self) -> str:
        return f"{self.workflow}.{self.call}"


def _body_calls(body: Sequence[WDL.Tree.WorkflowNode], env: WDL.Env.Bindings[WDL.Value.Base],
                stdlib: WDL.StdLib.Base) -> Iterator[tuple[WDL.Tree.Call, WDL.Env.Bindings[WDL.Value.Base]]]:
    for node in body:
        if isinstance(node, WDL.Tree.Decl) and node.expr is not None:
            try:
                env = env.bind(node.name, node.expr.eval(env, stdlib).coerce(node.type))
            except (KeyError, WDL.Error.EvalError, WDL.Error.RuntimeError):
                pass
        elif isinstance(node, WDL.Tree.Call):
            yield node, env
        elif isinstance(node, WDL.Tree.Scatter):
            inner = env
            try:
                items = node.expr.eval(env, stdlib)
                if isinstance(items, WDL.Value.Array) and items.value:
                    inner = env.bind(node.variable, items.value[0])
            except (KeyError, WDL.Error.EvalError, WDL.Error.RuntimeError):
                pass
            yield from _body_calls(node.body, inner, stdlib)
        elif isinstance(node, WDL.Tree.Conditional):
            yield from _body_calls(node.body, env, stdlib)


def workflow_cases(wdl_path: Path, inputs: Mapping[str, Any], scratch: Path) -> list[CallCase]:
    """Every call of the workflow in ``wdl_path`` with the inputs a Cromwell run with ``inputs`` (a Cromwell
    inputs JSON: s3:// Files) would bind; an input fed by an upstream call's output gets a sample value."""
    doc = load(wdl_path)
    wf = doc.workflow
    assert wf is not None
    stdlib = CromwellStdLib(f"{CONTAINER_ROOT}/{BUCKET}/cromwell-execution/{wf.name}/{uuid.uuid4()}", scratch)
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    pending = list(wf.inputs or [])
    for _ in range(len(pending) + 1):
        for decl in list(pending):
            key = f"{wf.name}.{decl.name}"
            try:
                if key in inputs:
                    value = WDL.Value.from_json(decl.type, inputs[key])
                elif decl.expr is not None:
                    value = decl.expr.eval(env, stdlib).coerce(decl.type)
                else:
                    value = WDL.Value.Null()
            except (KeyError, WDL.Error.EvalError):
                continue
            env = env.bind(decl.name, value)
            pending.remove(decl)
    cases = []
    for call, call_env in _body_calls(wf.body, env, stdlib):
        if not isinstance(call.callee, WDL.Tree.Task):
            continue
        given: dict[str, WDL.Value.Base] = {}
        for name, expr in call.inputs.items():
            decl = next(d for d in call.callee.inputs or [] if d.name == name)
            try:
                given[name] = expr.eval(call_env, stdlib).coerce(decl.type)
            except (KeyError, WDL.Error.EvalError, WDL.Error.RuntimeError):
                ty = decl.type
                given[name] = WDL.Value.from_json(ty, sample_json(ty, name, {}, _choices(call.callee, name)))
        cases.append(CallCase(wf.name, call.name, call.callee, given, wdl_path))
    return cases


@functools.cache
def load(path: Path) -> WDL.Tree.Document:
    """``WDL.load`` once per file (the documents are not modified here)."""
    return WDL.load(str(path))


def task_sources(wdl_dir: Path) -> list[Path]:
    return sorted([*wdl_dir.glob("*.wdl"), *wdl_dir.glob("tasks/*.wdl")])


def all_tasks(wdl_dir: Path) -> dict[tuple[str, str], WDL.Tree.Task]:
    """Every task of every WDL file, keyed by (file name, task name)."""
    out = {}
    for path in task_sources(wdl_dir):
        for task in load(path).tasks:
            out[(os.path.relpath(path, wdl_dir), task.name)] = task
    return out


def flipped_inputs(task: WDL.Tree.Task, given: Mapping[str, WDL.Value.Base]) -> dict[str, WDL.Value.Base]:
    """The other branch of every choice: each Boolean input negated, each unset optional input given a sample
    (so both sides of ``true=/false=`` and ``default=`` placeholders reach the shell checks)."""
    out = dict(given)
    for decl in task.inputs or []:
        current = given.get(decl.name)
        base = decl.type.copy(optional=False)
        if isinstance(base, WDL.Type.Boolean):
            value = current.value if isinstance(current, WDL.Value.Boolean) else None
            if value is None and decl.expr is not None and isinstance(decl.expr, WDL.Expr.Boolean):
                value = decl.expr.value
            out[decl.name] = WDL.Value.Boolean(not value)
        elif decl.type.optional and (current is None or isinstance(current, WDL.Value.Null)) and decl.expr is None:
            out[decl.name] = WDL.Value.from_json(base, sample_json(base, decl.name, {}, _choices(task, decl.name)))
    return out


def instantiate_case(task: WDL.Tree.Task, given: Mapping[str, WDL.Value.Base], scratch: Path,
                     workflow: str = "wf", call: str | None = None,
                     sizes: Mapping[str, int] | None = None) -> tuple[Instantiated, dict[str, Any]]:
    """The instantiated command and the evaluated runtime section of one call."""
    call_dir = (f"{CONTAINER_ROOT}/{BUCKET}/cromwell-execution/{workflow}/{uuid.uuid4()}/call-{call or task.name}"
                "/shard-0")
    stdlib = CromwellStdLib(call_dir, scratch, sizes)
    env = evaluate_task_env(task, given, stdlib)
    return instantiate_command(task, env, stdlib), evaluate_runtime(task, env, stdlib)
