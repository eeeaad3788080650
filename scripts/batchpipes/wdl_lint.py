"""The one WDL linter: miniwdl's own lint plus the batchpipes conventions, each a ``WDL.Lint.Linter``.

The rules below are registered with miniwdl (``WDL.Lint.a_linter``), so one ``WDL.Lint.lint(doc)`` runs
miniwdl's linters (ShellCheck on every command included) and ours in the same pass, and a comment
``# !<Rule>`` on a line silences a rule there, as it does for miniwdl's (``# !UnknownRuntimeKey``).
:func:`lint_files` is the entry point: ``batchpipes check`` and the tests call it. A problem is one line,
``<file>:<line>: <Rule>: <what is wrong>: <the fix>``.

Rules (class name = rule name):

* ``WdlVersion``: the document is ``version 1.0`` (what Cromwell runs).
* ``MetaDescription``: every task and workflow has ``meta { description }``.
* ``ParameterMeta``: every input has a ``parameter_meta`` entry and every entry names an input.
* ``OutputsMeta``: every output is described in ``meta.outputs`` and every entry there names an output.
* ``ExplicitRuntime``: every task states each of :data:`EXPLICIT_RUNTIME_KEYS`.
* ``CromwellRuntime``: runtime keys Cromwell's AWS backend reads, disks/memory shapes, GPU requests and queues.
* ``GpuRouting``: a workflow calling a GPU task declares the queue inputs and passes them on.
* ``ImagePinned``: ``docker`` is an input defaulting to a pinned ``batchpipes/<name>:<tag>`` (whether the tag
  is current is :func:`batchpipes.images.stale_pins`'s to say; ``batchpipes check`` runs both).
* ``ChoicesMatch``: a workflow input and the task input it feeds declare the same ``choices`` and ``pattern``.
* ``ShellSafety``: no String or File pasted into a command (:mod:`batchpipes.wdl_safety`).
* ``CommandLength``: no ``command`` block longer than :data:`MAX_COMMAND_LINES` lines.

The AWS key lists come from Cromwell's source (broadinstitute/cromwell, release 92):
``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/AwsBatchRuntimeAttributes.scala``
(``runtimeAttributesBuilder``) plus the standard ``continueOnReturnCode``/``failOnStderr``/``maxRetries``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import WDL
import WDL.Lint
from WDL.Lint import Linter

from . import images, settings, wdl_safety
from .workflows import CPU_QUEUE_INPUT, GPU_QUEUE_INPUT, QUEUE_INPUTS

#: Runtime attributes every batchpipes task states explicitly.
EXPLICIT_RUNTIME_KEYS = ("docker", "cpu", "memory", "disks", "maxRetries")

#: The longest ``command`` block (lines from ``command <<<`` to ``>>>``); longer programs are scripts in the image.
MAX_COMMAND_LINES = 40

#: Runtime attributes Cromwell's AWS backend reads (AwsBatchRuntimeAttributes.scala). Others, e.g.
#: ``preemptible``, ``bootDiskSizeGb``, ``gpuType``, ``cpuPlatform``, are ignored on AWS.
AWS_RUNTIME_ATTRIBUTES = frozenset({
    "docker", "container", "cpu", "memory", "gpuCount", "gpu", "disks", "queueArn", "scriptBucketName",
    "awsBatchRetryAttempts", "awsBatchEvaluateOnExit", "ulimits", "sharedMemorySize", "jobTimeout",
    "fuseMount", "logGroupName", "efsDelocalize", "efsMakeMD5", "tagResources", "tagHardware", "zones",
    "noAddress", "continueOnReturnCode", "returnCodes", "failOnStderr", "maxRetries",
})

_DISK = r"(local-disk|/[^\s,]+)( \d+ (SSD|HDD|LOCAL))?"
_DISKS_RE = re.compile(rf"{_DISK}(\s*,\s*{_DISK})*")
_MEMORY_RE = re.compile(r"\d+(\.\d+)? ?(B|KB|K|KiB|Ki|MB|M|MiB|Mi|GB|G|GiB|Gi|TB|T|TiB|Ti)")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    rule: str
    message: str
    column: int = field(default=1, repr=False)  # orders problems along a line; not shown

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


Executable = WDL.Tree.Task | WDL.Tree.Workflow


def _what(obj: Executable) -> str:
    return f"{'task' if isinstance(obj, WDL.Tree.Task) else 'workflow'} {obj.name}"


def _document(obj: Any) -> WDL.Tree.Document:
    while not isinstance(obj, WDL.Tree.Document):
        obj = obj.parent
    return obj


def _at_line(obj: WDL.Error.SourceNode, line: int | None) -> WDL.Error.SourcePosition:
    """``obj``'s position moved to ``line`` (its own when None)."""
    if line is None:
        return obj.pos
    return obj.pos._replace(line=line, column=1, end_line=line, end_column=1)


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[A-Za-z_]\w*|[{}:\[\]]|\n')


def _meta_key_lines(obj: Executable, section: tuple[str, ...]) -> dict[str, int]:
    """Source line of each key of the object ``section`` names inside ``obj`` (e.g. ``("parameter_meta",)``
    or ``("meta", "outputs")``); miniwdl keeps no positions for meta keys."""
    lines = list(_document(obj).source_lines[obj.pos.line - 1:obj.pos.end_line])
    if isinstance(obj, WDL.Tree.Task):  # command text is shell, not WDL: leave it out
        for n in range(obj.command.pos.line, obj.command.pos.end_line + 1):
            lines[n - obj.pos.line] = ""
    stack: list[str] = []
    keys: dict[str, int] = {}
    ident, ident_line, line = "", 0, obj.pos.line
    for m in _TOKEN.finditer("\n".join(lines)):
        tok = m.group()
        if tok == "\n":
            line += 1
        elif tok == "{":
            stack.append(ident)
            ident = ""
        elif tok == "}":
            stack = stack[:-1]
        elif tok == ":":
            if tuple(stack[1:]) == section and ident:
                keys.setdefault(ident, ident_line)
        elif tok[0].isalpha() or tok[0] == "_":
            ident, ident_line = tok, line
        else:
            ident = ""
    return keys


def _literal_shape(expr: WDL.Expr.Base) -> str | None:
    """A string expression with every placeholder replaced by ``1``; None if not a string expression."""
    if not isinstance(expr, WDL.Expr.String):
        return None
    text = "".join(part if isinstance(part, str) else "1" for part in expr.parts)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text


def _idents(expr: WDL.Expr.Base) -> set[str]:
    found = {str(expr.name)} if isinstance(expr, WDL.Expr.Ident) else set()
    for child in expr.children:
        if isinstance(child, WDL.Expr.Base):
            found |= _idents(child)
    return found


def _name_of(expr: WDL.Expr.Base) -> str | None:
    """The declaration a bare reference ``x`` names (miniwdl wraps it in a Get); None for other expressions."""
    if isinstance(expr, WDL.Expr.Get) and expr.member is None:
        expr = expr.expr
    return str(expr.name) if isinstance(expr, WDL.Expr.Ident) else None


def _calls(elements: Iterable[Any]) -> Iterator[WDL.Tree.Call]:
    for el in elements:
        if isinstance(el, WDL.Tree.Call):
            yield el
        elif isinstance(el, WDL.Tree.Scatter | WDL.Tree.Conditional):
            yield from _calls(el.body)


def queue_inputs(task: WDL.Tree.Task) -> set[str]:
    """Task inputs named ``*_queue_arn`` that the runtime queueArn expression reads."""
    if "queueArn" not in task.runtime:
        return set()
    names = {d.name for d in task.inputs or [] if d.name.endswith("_queue_arn")}
    return _idents(task.runtime["queueArn"]) & names


class _PerExecutable(Linter):
    """A rule checking each task and workflow alike with ``check``."""

    def task(self, obj: WDL.Tree.Task) -> Any:
        self.check(obj)

    def workflow(self, obj: WDL.Tree.Workflow) -> Any:
        self.check(obj)

    def check(self, obj: Executable) -> None:
        raise NotImplementedError


class WdlVersion(Linter):
    def document(self, obj: WDL.Tree.Document) -> Any:
        if obj.wdl_version != "1.0":
            self.add(obj, f"the document is WDL {obj.wdl_version or 'draft-2'}: start it with 'version 1.0' "
                     "(what Cromwell runs)", _at_line(obj, 1))


class MetaDescription(_PerExecutable):
    def check(self, obj: Executable) -> None:
        if not str(obj.meta.get("description") or "").strip():
            self.add(obj, f"{_what(obj)} has no meta.description: add meta {{ description: \"what it does\" }}")


class ParameterMeta(_PerExecutable):
    def check(self, obj: Executable) -> None:
        inputs = {d.name: d for d in obj.inputs or []}
        for name, decl in inputs.items():
            if name not in obj.parameter_meta:
                self.add(decl, f"{_what(obj)}: input '{name}' has no parameter_meta entry: describe it there")
        lines = _meta_key_lines(obj, ("parameter_meta",))
        outputs = {d.name for d in obj.outputs or []}
        for name in obj.parameter_meta:
            if name not in inputs:
                fix = "describe outputs in meta.outputs" if name in outputs else "remove it or name an input"
                self.add(obj, f"{_what(obj)}: parameter_meta documents '{name}', which is not an input: {fix}",
                         _at_line(obj, lines.get(name)))


class OutputsMeta(_PerExecutable):
    def check(self, obj: Executable) -> None:
        outputs = {d.name: d for d in obj.outputs or []}
        documented = obj.meta.get("outputs")
        documented = documented if isinstance(documented, dict) else {}
        for name, decl in outputs.items():
            if name not in documented:
                self.add(decl, f"{_what(obj)}: output '{name}' is not described in meta.outputs: add "
                         f"{name}: \"what it holds\" there")
        lines = _meta_key_lines(obj, ("meta", "outputs"))
        for name in documented:
            if name not in outputs:
                self.add(obj, f"{_what(obj)}: meta.outputs documents '{name}', which is not an output: remove it "
                         "or rename it to the output it describes", _at_line(obj, lines.get(name)))


class ExplicitRuntime(Linter):
    def task(self, obj: WDL.Tree.Task) -> Any:
        runtime = obj.runtime
        for key in EXPLICIT_RUNTIME_KEYS:
            if key not in runtime and not (key == "docker" and "container" in runtime):
                self.add(obj, f"task {obj.name}: runtime has no '{key}': state it (every task states "
                         f"{', '.join(EXPLICIT_RUNTIME_KEYS)})")


class CromwellRuntime(Linter):
    def task(self, obj: WDL.Tree.Task) -> Any:
        where = f"task {obj.name}"
        runtime = obj.runtime
        for key, expr in runtime.items():
            if key not in AWS_RUNTIME_ATTRIBUTES:
                self.add(obj, f"{where}: runtime key '{key}' is not read by Cromwell's AWS backend: remove it",
                         expr.pos)
        shape = _literal_shape(runtime["disks"]) if "disks" in runtime else None
        if shape is not None and not _DISKS_RE.fullmatch(shape):
            self.add(obj, f"{where}: disks '{shape}' is not 'local-disk [N SSD|HDD]' or '/mount/point [N TYPE]'",
                     runtime["disks"].pos)
        shape = _literal_shape(runtime["memory"]) if "memory" in runtime else None
        if shape is not None and not _MEMORY_RE.fullmatch(shape.strip()):
            self.add(obj, f"{where}: memory '{shape}' is not a size such as '4 GiB'", runtime["memory"].pos)
        if "gpu" in runtime and "gpuCount" not in runtime:
            self.add(obj, f"{where}: 'gpu' without 'gpuCount': Cromwell's AWS backend requests GPUs by gpuCount",
                     runtime["gpu"].pos)
        routed = f"'queueArn: if gpu then {GPU_QUEUE_INPUT} else {CPU_QUEUE_INPUT}'"
        if "gpuCount" in runtime and "queueArn" not in runtime:
            self.add(obj, f"{where}: GPU task without 'queueArn': it would run on the CPU queue (add {routed})",
                     runtime["gpuCount"].pos)
        if "queueArn" in runtime and not queue_inputs(obj):
            self.add(obj, f"{where}: queueArn must come from task inputs named *_queue_arn (e.g. {routed}), not "
                     "a hard-coded ARN", runtime["queueArn"].pos)


class GpuRouting(Linter):
    def workflow(self, obj: WDL.Tree.Workflow) -> Any:
        wf_inputs = {d.name for d in obj.inputs or []}
        for call in _calls(obj.body):
            callee = call.callee
            if not isinstance(callee, WDL.Tree.Task) or "gpuCount" not in callee.runtime:
                continue
            routed = queue_inputs(callee)
            for name in sorted((({GPU_QUEUE_INPUT} | routed) & set(QUEUE_INPUTS)) - wf_inputs):
                self.add(call, f"workflow {obj.name} calls GPU task {callee.name} but has no 'String {name}' "
                         "input: declare it and pass it to the call")
            for name in sorted(routed - set(call.inputs)):
                self.add(call, f"call {call.name} does not pass '{name}' to GPU task {callee.name}: add "
                         f"'{name} = {name}' to its inputs")


class ImagePinned(Linter):
    def task(self, obj: WDL.Tree.Task) -> Any:
        expr = obj.runtime.get("docker") or obj.runtime.get("container")
        if expr is None:
            return  # ExplicitRuntime reports it
        decl = next((d for d in obj.inputs or [] if d.name == _name_of(expr)), None)
        default = decl.expr.literal if decl is not None and decl.expr is not None else None
        if decl is None or not isinstance(default, WDL.Value.String) or not images.is_pinned(default.value):
            self.add(obj, f"task {obj.name}: docker must be a String input defaulting to a pinned "
                     f"\"batchpipes/<name>:<tag>\" (e.g. docker_image), not {expr}", expr.pos)


def _allowed(meta: Any, key: str) -> str | None:
    """The ``choices`` or ``pattern`` of one parameter_meta entry as shown in a message; None when it has none."""
    value = meta.get(key) if isinstance(meta, dict) else None
    if isinstance(value, list):
        return f"[{', '.join(str(v) for v in value)}]"
    return None if value is None else f"'{value}'"


class ChoicesMatch(Linter):
    """A task input that declares ``choices`` or a ``pattern`` gets the same from the workflow input feeding it,
    so that the CLI checks the value before anything runs (a workflow input may be stricter than a task's)."""

    def workflow(self, obj: WDL.Tree.Workflow) -> Any:
        wf_inputs = {d.name for d in obj.inputs or []}
        for call in _calls(obj.body):
            callee = call.callee
            if callee is None:
                continue
            for name, expr in call.inputs.items():
                source = _name_of(expr)
                if source not in wf_inputs:
                    continue
                for key in ("choices", "pattern"):
                    ours = _allowed(obj.parameter_meta.get(source), key)
                    theirs = _allowed(callee.parameter_meta.get(name), key)
                    if theirs is not None and ours != theirs:
                        self.add(expr, f"call {call.name}: {callee.name} input '{name}' declares {key} {theirs} but "
                                 f"workflow input '{source}' declares {ours or 'none'}: declare the same {key} in the "
                                 "workflow's parameter_meta")


class ShellSafety(Linter):
    def task(self, obj: WDL.Tree.Task) -> Any:
        for part in obj.command.parts:
            if isinstance(part, WDL.Expr.Placeholder) and not wdl_safety.placeholder_is_safe(part.expr):
                self.add(obj, f"task {obj.name}: ~{{{part.expr}}} pastes a {part.expr.type} into the command: "
                         "pass it through ~{write_lines([...])} and a quoted variable", part.pos)


class CommandLength(Linter):
    def task(self, obj: WDL.Tree.Task) -> Any:
        pos = obj.command.pos
        lines = pos.end_line - pos.line + 1
        if lines > MAX_COMMAND_LINES:
            self.add(obj, f"task {obj.name}: command is {lines} lines (at most {MAX_COMMAND_LINES}): move the "
                     "program into a script in its image folder containers/<image>/", pos)


RULES: tuple[type[Linter], ...] = (
    WdlVersion, MetaDescription, ParameterMeta, OutputsMeta, ExplicitRuntime, CromwellRuntime, GpuRouting,
    ImagePinned, ChoicesMatch, ShellSafety, CommandLength,
)

for _rule in RULES:
    if _rule.__name__ not in {c.__name__ for c in WDL.Lint._all_linters}:
        WDL.Lint.a_linter(_rule)


def _shown(path: Path) -> str:
    path = path.absolute()
    return str(path.relative_to(settings.REPO_ROOT) if path.is_relative_to(settings.REPO_ROOT) else path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _load_problem(shown: str, exc: Exception) -> Problem:
    """A file that does not load (syntax, types, an import that does not load): one line, with the cause."""
    pos = getattr(exc, "pos", None)
    message = str(exc)
    if exc.__cause__ is not None:
        cause_pos = getattr(exc.__cause__, "pos", None)
        where = f" ({cause_pos.uri} line {cause_pos.line})" if cause_pos is not None else ""
        message += f": {exc.__cause__}{where}"
    return Problem(shown, pos.line if pos is not None else 1, type(exc).__name__, _one_line(message))


def lint_file(path: Path) -> list[Problem]:
    """Every unsuppressed lint of one WDL file (miniwdl's and ours), or its load errors."""
    shown = _shown(path)
    try:
        doc = WDL.load(str(path), check_quant=True)
    except WDL.Error.MultipleValidationErrors as exc:
        return [_load_problem(shown, e) for e in exc.exceptions]
    except (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.ImportError) as exc:
        return [_load_problem(shown, exc)]
    WDL.Lint.lint(doc, descend_imports=False)
    found = {Problem(shown, pos.line, cls, _one_line(msg), pos.column)
             for pos, cls, msg, suppressed in WDL.Lint.collect(doc)
             if not suppressed and pos.abspath == doc.pos.abspath}
    return sorted(found, key=lambda p: (p.line, p.column, p.rule, p.message))


def lint_files(paths: Iterable[Path]) -> list[Problem]:
    """:func:`lint_file` over ``paths``."""
    return [problem for path in paths for problem in lint_file(path)]


__all__ = ["AWS_RUNTIME_ATTRIBUTES", "EXPLICIT_RUNTIME_KEYS", "MAX_COMMAND_LINES", "RULES", "Problem",
           "lint_file", "lint_files", "queue_inputs"]
