"""The job Cromwell's AWS Batch backend runs for one call, rebuilt for tests: the command as Cromwell instantiates
it, the call's ``script``, the "reconfigured script" that localises inputs from S3 and delocalises outputs to the
call's S3 root, the S3 objects Cromwell writes before it submits the job, and the container the job definition
describes (``/bin/bash -c /var/scratch/fetch_and_run.sh`` with the host's ``fetch_and_run.sh`` and AWS CLI mounted).

Written for this project from the facts in Cromwell's source (broadinstitute/cromwell develop c805f3c5, release
92); no code is copied. ``A/`` is ``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/``:

- ``A/AwsBatchJob.scala`` ``reconfiguredScript``: ``/cromwell_root`` replaced by the container-local
  ``/tmp/scratch`` throughout the script; a preamble inserted after the shebang line that localises every input with
  ``aws s3 ls`` (exists?), ``aws s3 cp --no-progress`` and a content-length check (``s3api head-object``), ``.tmp``
  files (write_* results) rewritten with ``sed``; a postscript that delocalises rc, stderr, stdout, then every output
  (``aws configure set default.s3.multipart_*``, ``aws s3 cp``, content-length check; glob folders with
  ``--recursive``) and exits with the task's rc. ``findOrCreateS3Script``: the script's key is the MD5 of its text
  under ``scripts/`` in ``scriptBucketName``; ``writeReconfiguredScriptForAudit``: a copy at
  ``<call root>/reconfigured-script.sh``; ``generateEnvironmentKVPairs``: ``BATCH_FILE_TYPE=script``,
  ``BATCH_FILE_S3_URL``.
- ``A/AwsBatchJobDefinition.scala``: the container command ``/bin/bash -c /var/scratch/fetch_and_run.sh`` (S3 mode)
  and the host volumes ``/usr/local/bin/fetch_and_run.sh`` -> ``/var/scratch/fetch_and_run.sh`` (ro),
  ``/usr/local/aws-cli`` (ro), ``/var/lib/cloud/data/instance-id`` (ro), ``local-disk`` -> ``/cromwell_root``; no
  ``user``: the image's USER runs the job.
- ``A/AwsBatchAsyncBackendJobExecutionActor.scala``: File inputs at ``/cromwell_root/<bucket>/<key>``
  (``mapCommandLineWomFile``, ``relativeLocalizationPath``), the call's ``script`` itself among the inputs, outputs
  delocalised to ``<call root>/<relative path>`` (``generateAwsBatchSingleFileOutputs``), globs linked into
  ``<dir>/.glob-<md5(pattern-workflowid)>/`` with a ``.list`` file (``globScript``, ``generateGlobPaths``).
- ``A/io/AwsBatchJobPaths.scala``: ``<call>-rc.txt``, ``<call>-stdout.log``, ``<call>-stderr.log`` and the call root
  ``<root>/<workflow>/<id>/call-<call>``.
- ``backend/src/main/scala/cromwell/backend/standard/StandardAsyncExecutionActor.scala`` ``commandScriptContents``:
  the call's script (tmpDir, stdout/stderr through FIFOs and ``tee``, the command in a subshell, ``rc.tmp`` renamed
  to rc after the epilogue ``sync``, the glob scripts), ``temporary-directory`` and ``script-epilogue`` defaults.
- ``wdl/transforms/new-base/.../EngineFunctionEvaluators.scala`` and ``wom/.../WomArray.scala``: write_lines,
  write_json files named ``<function>_<md5 of content>.tmp`` in the call's execution root; write_lines content is
  every value followed by a newline (an empty array gives one newline: Scala's ``mkString("", "\\n", "\\n")``);
  write_json is spray-json's compact print. The values inside them are the command-line (container) paths.

The command's leading whitespace is normalised by ``tests/cromwell_emu.normalize_command``
(``StringUtil.normalize``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import WDL
from cromwell_emu import normalize_command

#: ``AwsBatchWorkingDisk.MountPoint``: where the ``local-disk`` volume is mounted and what paths are written against.
CROMWELL_ROOT = "/cromwell_root"
#: ``reconfiguredScript``'s ``workDir``: "internal to the container, therefore not mounted".
WORK_DIR = "/tmp/scratch"
#: ``reconfiguredScript``'s ``awsCmd``: the host's AWS CLI v2 as mounted into the container.
AWS_CMD = "/usr/local/aws-cli/v2/current/bin/aws"
#: The job definition's command in S3 mode (``AwsBatchJobDefinition.scala``, ``packCommand``).
JOB_COMMAND = ["/bin/bash", "-c", "/var/scratch/fetch_and_run.sh"]
#: Host path -> container path, read-only, of the volumes every Cromwell job definition adds.
HOST_MOUNTS = {
    "/usr/local/bin/fetch_and_run.sh": "/var/scratch/fetch_and_run.sh",
    "/usr/local/aws-cli": "/usr/local/aws-cli",
    "/var/lib/cloud/data/instance-id": "/var/lib/cloud/data/instance-id",
}
#: ``engine.filesystems.s3.MultipartThreshold`` default (5 GiB) used when delocalising.
MULTIPART_THRESHOLD = 5 * 1024**3
#: Defaults of the backend keys ``temporary-directory``, ``script-epilogue``, ``job-shell``.
DEFAULT_TMP_DIR = '$(mktemp -d "$PWD"/tmp.XXXXXX)'
DEFAULT_EPILOGUE = "sync"
DEFAULT_SHELL = "/bin/bash"
GLOB_CONTROL_FILE = "cromwell_glob_control_file"


def md5_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.md5(data).hexdigest()  # noqa: S324 - Cromwell's names, not security


def split_s3(url: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/(.+)", url)
    if m is None:
        raise ValueError(f"not an s3://bucket/key URL: {url}")
    return m[1], m[2]


def container_path(url: str) -> str:
    """Where Cromwell puts an s3:// input in the container (before ``/cromwell_root`` becomes ``/tmp/scratch``)."""
    bucket, key = split_s3(url)
    return f"{CROMWELL_ROOT}/{bucket}/{key}"


@dataclass(frozen=True)
class CallPaths:
    """``AwsBatchJobPaths`` of one call (no shard, first attempt)."""

    root: str  # the backend's ``root``, s3://bucket/prefix
    workflow: str
    call: str
    workflow_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def call_root(self) -> str:
        return f"{self.root.rstrip('/')}/{self.workflow}/{self.workflow_id}/call-{self.call}"

    @property
    def rc_name(self) -> str:
        return f"{self.call}-rc.txt"

    @property
    def stdout_name(self) -> str:
        return f"{self.call}-stdout.log"

    @property
    def stderr_name(self) -> str:
        return f"{self.call}-stderr.log"

    @property
    def script(self) -> str:
        return f"{self.call_root}/script"

    def under_root(self, relative: str) -> str:
        return f"{self.call_root}/{relative.lstrip('/')}"


@dataclass(frozen=True)
class Glob:
    """A glob output: the pattern, and the folder and list Cromwell's AWS backend links its matches into."""

    pattern: str
    directory: str  # relative to the working directory, e.g. index/.glob-<md5>
    listing: str  # index/.glob-<md5>.list


@dataclass
class Instantiated:
    command: str  # as Cromwell instantiates it (normalised), with /cromwell_root paths
    inputs: list[tuple[str, bool]]  # (s3 URL, optional) of every File input, in declaration order
    created: dict[str, bytes]  # write_* files: s3 URL (in the call root) -> content
    files: list[tuple[str, bool]]  # (relative path, optional) of every output file the outputs name or read
    globs: list[Glob]


class CromwellStdLib(WDL.StdLib.Base):
    """miniwdl's standard library with Cromwell's write_lines/write_json (content, name, location) and with
    File values read from local copies (size(), read_*: only for declarations)."""

    def __init__(self, version: str, paths: CallPaths, local_file: Callable[[str], str]) -> None:
        super().__init__(version)
        self._paths = paths
        self._local_file = local_file
        self.created: dict[str, bytes] = {}
        self.write_lines = WDL.StdLib.StaticFunction("write_lines", [WDL.Type.Array(WDL.Type.String())],
                                                     WDL.Type.File(), self._writer("write_lines", write_lines_content))
        self.write_json = WDL.StdLib.StaticFunction(
            "write_json", [WDL.Type.Any()], WDL.Type.File(), self._writer("write_json", _compact_json))

    def _writer(self, name: str, serialise: Callable[[WDL.Value.Base], str]) -> Callable[[WDL.Value.Base],
                                                                                          WDL.Value.File]:
        def write(value: WDL.Value.Base) -> WDL.Value.File:
            content = serialise(value)
            url = self._paths.under_root(f"{name}_{md5_hex(content)}.tmp")
            self.created[url] = content.encode()
            return WDL.Value.File(container_path(url))

        return write

    def _devirtualize_filename(self, filename: str) -> str:
        return self._local_file(filename)

    def _virtualize_filename(self, filename: str) -> str:  # pragma: no cover - every writer is replaced
        raise NotImplementedError(filename)


def write_lines_content(value: WDL.Value.Base) -> str:
    """``WomArray.tsvSerialize`` of an array of primitives: ``mkString("", "\\n", "\\n")``."""
    assert isinstance(value, WDL.Value.Array)
    return "\n".join(str(item.value) for item in value.value) + "\n"


def _compact_json(value: WDL.Value.Base) -> str:
    """spray-json's ``compactPrint``: no whitespace, non-ASCII characters as they are."""
    return json.dumps(value.json, separators=(",", ":"), ensure_ascii=False)


def _map_files(value: WDL.Value.Base) -> WDL.Value.Base:
    """``mapCommandLineWomFile``: s3:// File values become their ``/cromwell_root/<bucket>/<key>`` paths."""

    def mapped(v: WDL.Value.File | WDL.Value.Directory) -> str | None:
        return container_path(v.value) if v.value.startswith("s3://") else str(v.value)

    return WDL.Value.rewrite_paths(value, mapped)


def _s3_files(value: WDL.Value.Base) -> list[str]:
    found: list[str] = []

    def note(v: WDL.Value.File | WDL.Value.Directory) -> str | None:
        path = str(v.value)
        if path.startswith("s3://"):
            found.append(path)
        return path

    WDL.Value.rewrite_paths(value, note)
    return found


def applies(expr: WDL.Expr.Base) -> Iterable[WDL.Expr.Apply]:
    if isinstance(expr, WDL.Expr.Apply):
        yield expr
    for child in expr.children:
        if isinstance(child, WDL.Expr.Base):
            yield from applies(child)


def instantiate(task: WDL.Tree.Task, inputs: dict[str, Any], paths: CallPaths,
                local_file: Callable[[str], str]) -> Instantiated:
    """The call of ``task`` with ``inputs`` (JSON values, File inputs as s3:// URLs) as Cromwell's AWS backend sets
    it up. ``local_file`` maps an s3:// URL to a local copy, for size() and read_* in declarations."""
    version = task.effective_wdl_version
    stdlib = CromwellStdLib(version, paths, local_file)
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    file_inputs: list[tuple[str, bool]] = []
    for decl in task.inputs or []:
        if decl.name in inputs:
            value = WDL.Value.from_json(decl.type, inputs[decl.name])
        elif decl.expr is not None:
            value = decl.expr.eval(env, stdlib=stdlib).coerce(decl.type)
        elif decl.type.optional:
            value = WDL.Value.Null()
        else:
            raise KeyError(f"{task.name}: input {decl.name} is required")
        file_inputs += [(url, decl.type.optional) for url in _s3_files(value)]
        env = env.bind(decl.name, value)
    for decl in task.postinputs:
        assert decl.expr is not None
        env = env.bind(decl.name, decl.expr.eval(env, stdlib=stdlib).coerce(decl.type))
    # The command sees the container paths (StandardAsyncExecutionActor: inputs mapped before instantiation).
    mapped_env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    for binding in reversed(list(env)):
        mapped_env = mapped_env.bind(binding.name, _map_files(binding.value))
    raw = task.command.eval(mapped_env, stdlib, dedent=False).value
    command = normalize_command(raw)

    files: list[tuple[str, bool]] = []
    globs: list[Glob] = []
    for out in task.outputs:
        assert out.expr is not None
        calls = list(applies(out.expr))
        pattern_calls = [a for a in calls if a.function_name == "glob"]
        for call in pattern_calls:
            pattern = call.arguments[0].eval(env, stdlib=stdlib).value
            globs.append(_glob(pattern, paths.workflow_id))
        for call in calls:  # evaluateFiles: the files read_*() reads are outputs too
            if call.function_name.startswith("read_"):
                files.append((call.arguments[0].eval(env, stdlib=stdlib).value, False))
        base = out.type.item_type if isinstance(out.type, WDL.Type.Array) else out.type
        if isinstance(base, WDL.Type.File) and not pattern_calls:
            value = out.expr.eval(env, stdlib=stdlib)
            names = [v.value for v in value.value] if isinstance(value, WDL.Value.Array) else [value.value]
            files += [(name, out.type.optional) for name in names]
    return Instantiated(command, file_inputs, dict(stdlib.created), list(dict.fromkeys(files)), globs)


def _glob(pattern: str, workflow_id: str) -> Glob:
    """``generateGlobPaths``: ``globName(s"$pattern-$workflowId")`` in the pattern's first folder without '*'."""
    parent = Path(pattern).parent
    while "*" in str(parent):
        parent = parent.parent
    name = f"glob-{md5_hex(f'{pattern}-{workflow_id}')}"
    return Glob(pattern, f"{parent}/.{name}", f"{parent}/.{name}.list")


# -- the call's script (StandardAsyncExecutionActor.commandScriptContents) --------------------------------------


@dataclass(frozen=True)
class BackendConfig:
    """What the AWSBATCH ``config {}`` (and ``engine.filesystems.s3``) of an ``aws.conf`` sets for the job script;
    absent keys take Cromwell's defaults."""

    root: str
    script_bucket: str
    tmp_dir: str = DEFAULT_TMP_DIR  # temporary-directory
    epilogue: str = DEFAULT_EPILOGUE  # script-epilogue
    shell: str = DEFAULT_SHELL  # job-shell (or system.job-shell)
    glob_link_command: str | None = None  # glob-link-command
    multipart_threshold: int = MULTIPART_THRESHOLD  # engine.filesystems.s3.MultipartThreshold

    @classmethod
    def from_conf(cls, conf: Any, provider: str = "AWSBATCH") -> BackendConfig:
        """From a parsed (pyhocon) aws.conf."""
        cfg = conf.get(f"backend.providers.{provider}.config")
        threshold = conf.get("engine.filesystems.s3.MultipartThreshold", None)
        if threshold is not None and not isinstance(threshold, int):
            raise ValueError(f"MultipartThreshold '{threshold}': give it in bytes here")
        return cls(root=cfg.get("root"), script_bucket=cfg.get("default-runtime-attributes.scriptBucketName"),
                   tmp_dir=cfg.get("temporary-directory", DEFAULT_TMP_DIR),
                   epilogue=cfg.get("script-epilogue", DEFAULT_EPILOGUE),
                   shell=cfg.get("job-shell", conf.get("system.job-shell", DEFAULT_SHELL)),
                   glob_link_command=cfg.get("glob-link-command", None),
                   multipart_threshold=threshold if threshold is not None else MULTIPART_THRESHOLD)


def command_script(call: Instantiated, paths: CallPaths, *, tmp_dir: str = DEFAULT_TMP_DIR,
                   epilogue: str = DEFAULT_EPILOGUE, shell: str = DEFAULT_SHELL,
                   glob_link_command: str | None = None) -> str:
    """The script Cromwell writes to ``<call root>/script``: the command between the standard set-up and the rc."""
    cwd = CROMWELL_ROOT
    short_id = paths.workflow_id.split("-")[0]
    out, err = f"out{short_id}", f"err{short_id}"
    stdout = shlex.quote(f"{cwd}/{paths.stdout_name}")
    stderr = shlex.quote(f"{cwd}/{paths.stderr_name}")
    rc = f"{cwd}/{paths.rc_name}"
    globs = "\n".join(_glob_script(g, glob_link_command) for g in call.globs)
    fill = ("(\n# add a .file in every empty directory to facilitate directory delocalization on the cloud\n"
            f"cd {cwd}\n"
            "find . -type d -exec sh -c '[ -z \"$(ls -A '\"'\"'{}'\"'\"')\" ] && touch '\"'\"'{}'\"'\"'/.file' \\;\n)")
    lines = [
        f"#!{shell}",
        "",  # DOCKER_OUTPUT_DIR_LINK (no dockerOutputDirectory in WDL 1.0)
        f"cd {cwd}",
        f"tmpDir={tmp_dir}",
        'chmod 777 "$tmpDir"',  # isDockerRun
        'export _JAVA_OPTIONS=-Djava.io.tmpdir="$tmpDir"',
        'export TMPDIR="$tmpDir"',
        "",
        f"\ncd {cwd}\n\n",  # SCRIPT_PREAMBLE: ScriptPreambleData("") outside a subshell
        "",
        f'{out}="${{tmpDir}}/out.$$" {err}="${{tmpDir}}/err.$$"',
        f'mkfifo "${out}" "${err}"',
        f"trap 'rm \"${out}\" \"${err}\"' EXIT",
        f"touch {stdout} {stderr}",
        f'tee {stdout} < "${out}" &',
        f'tee {stderr} < "${err}" >&2 &',
        "(",
        f"cd {cwd}",
        "",  # ENVIRONMENT_VARIABLES (none in WDL 1.0)
        call.command,
        f') > "${out}" 2> "${err}"',
        f"echo $? > {rc}.tmp",
        fill,
        "(",
        f"cd {cwd}",
        epilogue,
        globs,
        "",  # directory outputs (none)
        ")",
        f"mv {rc}.tmp {rc}",
        "",  # SCRIPT_CLOSURE: None in S3 mode
    ]
    return "\n".join(lines) + "\n"


def _glob_script(glob: Glob, link_command: str | None = None) -> str:
    """``AwsBatchAsyncBackendJobExecutionActor.globScript``: ``glob-link-command`` in parentheses, or by default
    ``ln -L ... || ln ...``; GLOB_PATTERN and GLOB_DIRECTORY replaced."""
    directory = glob.directory + "/"
    pattern = f"{CROMWELL_ROOT}/{glob.pattern}"
    control = ("This file is used by Cromwell to allow for globs that would not match any file.\n"
               "By its presence it works around the limitation of some backends that do not allow empty globs.\n"
               "Regardless of the outcome of the glob, this file will not be part of the final list of globbed files.")
    return (f"# make the directory which will keep the matching files\nmkdir {directory}\n\n"
            f'echo "{control}" > {directory}/{GLOB_CONTROL_FILE}\n\n'
            f"{_link(link_command, pattern, directory)}\n\n"
            f"ls -1 {directory} | grep -v {GLOB_CONTROL_FILE} > {glob.listing}\n")


def _link(command: str | None, pattern: str, directory: str) -> str:
    default = "( ln -L GLOB_PATTERN GLOB_DIRECTORY 2> /dev/null ) || ( ln GLOB_PATTERN GLOB_DIRECTORY )"
    text = f"( {command} )" if command else default
    return text.replace("GLOB_PATTERN", pattern).replace("GLOB_DIRECTORY", directory)


# -- the job script (AwsBatchJob.reconfiguredScript) ---------------------------------------------------------------

# The shell functions of the preamble, written for this project with the AWS CLI calls, retry counts, sleeps and
# checks of Cromwell's (five attempts, 7*i s back-off, `s3 ls` existence test, `s3api head-object` ContentLength
# against `ls -dnL`, multipart chunk = max(size/10000 + 1, 5 MiB)).
_FUNCTIONS = r"""
export AWS_METADATA_SERVICE_TIMEOUT=10
export AWS_METADATA_SERVICE_NUM_ATTEMPTS=10

function _s3_size_matches() {
  # $1 local file, $2 s3://bucket/key: same content length?
  [[ "$2" =~ s3://([^/]+)/(.+) ]] || { echo "$2 is not an S3 path with a bucket and key."; return 1; }
  local remote local_size
  remote=$(@AWS@ s3api head-object --bucket "${BASH_REMATCH[1]}" --key "${BASH_REMATCH[2]}" \
             --query 'ContentLength') || { echo "Attempt to get head of object failed for $2."; return 1; }
  local_size=$(LC_ALL=C ls -dnL -- "$1" | awk '{print $5; exit}') ||
    { echo "Attempt to get local content length failed for $1."; return 1; }
  [[ "$remote" -eq "$local_size" ]]
}

function _s3_localize_with_retry() {
  local src="$1" dest="$2" optional="${3:-false}" loc_optional="${4:-false}" i
  for i in 1 2 3 4 5 6; do
    if [ "$i" -eq 6 ]; then echo "failed to copy $src after 5 attempts."; LOCALIZATION_FAILED=1; return; fi
    if ! [[ "$src" =~ s3://([^/]+)/(.+) ]]; then
      echo "$src is not an S3 path with a bucket and key."; LOCALIZATION_FAILED=1; return
    fi
    if ! @AWS@ s3 ls "$src" > /dev/null 2>&1; then
      if [[ "$optional" == "true" ]]; then echo "Optional file '$src' does not exist. skipping localization"
      else echo "$src does not exist. skipping localization"; LOCALIZATION_FAILED=1; fi
      return
    fi
    if [[ "$loc_optional" == "true" ]]; then echo "File $src does not have to be localized."; return; fi
    @AWS@ s3 cp --no-progress "$src" "$dest" ||
      { echo "attempt $i to copy $src failed"; sleep $((7 * i)); continue; }
    _s3_size_matches "$dest" "$src" ||
      { echo "content length differs after attempt $i for $src"; sleep $((7 * i)); continue; }
    return
  done
}

function _chunk_size() {
  local size
  if [[ ! -e "$1" ]]; then echo $((5 * 1024 * 1024)); return; fi
  size=$(stat --printf="%s" "$1")
  local a=$((size / 10000 + 1)) b=$((5 * 1024 * 1024))
  echo $((a > b ? a : b))
}

function _s3_delocalize_with_retry() {
  local src="$1" dest="$2" optional="${3:-false}" i FILE
  @AWS@ configure set default.s3.multipart_threshold MP_THRESHOLD
  @AWS@ configure set default.s3.multipart_chunksize "$(_chunk_size "$src")"
  for i in 1 2 3 4 5 6; do
    if [ "$i" -eq 6 ]; then echo "failed to delocalize $src after 5 attempts."; DELOCALIZATION_FAILED=1; return; fi
    if ! [[ "$dest" =~ s3://([^/]+)/(.+) ]]; then
      echo "$dest is not an S3 path with a bucket and key."; DELOCALIZATION_FAILED=1; return
    fi
    if [[ -d "$src" ]]; then
      dest=${dest%/}
      @AWS@ s3 cp --no-progress "$src" "$dest" --recursive --exclude "cromwell_glob_control_file" ||
        { echo "attempt $i to copy globDir $src failed"; sleep $((7 * i)); continue; }
      local SAVEIFS="$IFS"; IFS=$'\n'
      for FILE in $(cd "$src"; ls | grep -v cromwell_glob_control_file); do
        _s3_size_matches "$src/$FILE" "$dest/$FILE" ||
          { echo "content length differs for $src/$FILE"; sleep $((7 * i)); continue 2; }
      done
      IFS="$SAVEIFS"
    elif [[ "$optional" == "false" || -e "$src" ]]; then
      @AWS@ s3 cp --no-progress "$src" "$dest" ||
        { echo "attempt $i to copy $src failed"; sleep $((7 * i)); continue; }
      _s3_size_matches "$src" "$dest" ||
        { echo "content length differs after attempt $i for $src"; sleep $((7 * i)); continue; }
    else
      echo "Optional file '$src' does not exist. skipping delocalization"
    fi
    return
  done
}
"""


@dataclass(frozen=True)
class JobScript:
    call: Instantiated
    paths: CallPaths
    script: str  # <call root>/script
    reconfigured: str  # what BATCH_FILE_S3_URL names


def reconfigured_script(call: Instantiated, paths: CallPaths, script: str, *,
                        multipart_threshold: int = MULTIPART_THRESHOLD) -> str:
    """``AwsBatchJob.reconfiguredScript`` for ``script`` (the call's ``command_script``)."""
    replaced = script.replace(CROMWELL_ROOT, WORK_DIR)
    functions = (_FUNCTIONS.replace("@AWS@", AWS_CMD)
                 .replace("MP_THRESHOLD", str(multipart_threshold)))
    localise = []
    # Cromwell shuffles the inputs (Random.shuffle); here in a fixed order: the script, write_* files, File inputs.
    script_bucket, script_key = split_s3(paths.script)
    localise.append(f'_s3_localize_with_retry "{paths.script}" "{WORK_DIR}/{script_bucket}/{script_key}" '
                    '"false" "false"')
    for url in call.created:
        dest = container_path(url).replace(CROMWELL_ROOT, WORK_DIR)
        localise.append(f'_s3_localize_with_retry "{url}" "{dest}"\nsed -i \'s#{CROMWELL_ROOT}#{WORK_DIR}#g\' "{dest}"')
    for url, optional in call.inputs:
        dest = container_path(url).replace(CROMWELL_ROOT, WORK_DIR)
        localise.append(f'_s3_localize_with_retry "{url}" "{dest}" "{str(optional).lower()}" "false"')
    preamble = "\n".join([
        functions,
        "{",
        "set -e",
        "echo '*** LOCALIZING INPUTS ***'",
        f"if [ ! -d {WORK_DIR} ]; then mkdir {WORK_DIR} && chmod 777 {WORK_DIR}; fi",
        f"cd {WORK_DIR}",
        "LOCALIZATION_FAILED=0",
        *localise,
        "if [[ $LOCALIZATION_FAILED -eq 1 ]]; then",
        "  echo '*** LOCALIZATION FAILED ***'",
        "  exit 1",
        "else",
        "  echo '*** COMPLETED LOCALIZATION ***'",
        "fi",
        "set +e",
        "}",
        "",
    ])
    delocalise = [
        f'if [ -f "{WORK_DIR}/{paths.rc_name}" ]; then _s3_delocalize_with_retry "{WORK_DIR}/{paths.rc_name}" '
        f'"{paths.under_root(paths.rc_name)}" ; fi',
        f'if [ -f "{WORK_DIR}/{paths.stderr_name}" ]; then _s3_delocalize_with_retry "{WORK_DIR}/{paths.stderr_name}" '
        f'"{paths.under_root(paths.stderr_name)}"; fi',
        f'if [ -f "{WORK_DIR}/{paths.stdout_name}" ]; then _s3_delocalize_with_retry "{WORK_DIR}/{paths.stdout_name}" '
        f'"{paths.under_root(paths.stdout_name)}"; fi',
    ]
    for glob in call.globs:
        delocalise += [f'touch "{glob.listing}"',
                       f'_s3_delocalize_with_retry "{glob.listing}" "{paths.under_root(glob.listing)}"',
                       f'if [ -e "{glob.directory}" ]; then _s3_delocalize_with_retry "{glob.directory}" '
                       f'"{paths.under_root(glob.directory)}" ; fi']
    for name, optional in call.files:
        delocalise.append(f'_s3_delocalize_with_retry "{WORK_DIR}/{name.lstrip("/")}" "{paths.under_root(name)}" '
                          f'"{str(optional).lower()}"')
    postscript = "\n".join([
        "",
        "{",
        "set -e",
        "echo '*** DELOCALIZING OUTPUTS ***'",
        "DELOCALIZATION_FAILED=0",
        *delocalise,
        'echo "DELOCALIZATION RESULT: $DELOCALIZATION_FAILED"',
        "if [[ $DELOCALIZATION_FAILED -eq 1 ]]; then",
        "  echo '*** DELOCALIZATION FAILED ***'",
        "  echo '*** EXITING WITH RETURN CODE 1***'",
        "  exit 1",
        "else",
        "  echo '*** COMPLETED DELOCALIZATION ***'",
        "fi",
        "echo '*** EXITING WITH RETURN CODE ***'",
        f"rc=$(head -n 1 {WORK_DIR}/{paths.rc_name})",
        "echo $rc",
        "exit $rc",
        "}",
        "",
    ])
    cut = replaced.index("\n", replaced.index("#!")) + 1
    return replaced[:cut] + preamble + replaced[cut:] + postscript


def job_script(call: Instantiated, paths: CallPaths, config: BackendConfig | None = None) -> JobScript:
    """The call's script and job script under ``config`` (None: Cromwell's defaults)."""
    c = config or BackendConfig(root=paths.root, script_bucket="")
    script = command_script(call, paths, tmp_dir=c.tmp_dir, epilogue=c.epilogue, shell=c.shell,
                            glob_link_command=c.glob_link_command)
    return JobScript(call, paths, script,
                     reconfigured_script(call, paths, script, multipart_threshold=c.multipart_threshold))


# -- what Cromwell puts in S3 before SubmitJob, and the job's container ------------------------------------------------


def stage(s3: Any, job: JobScript, script_bucket: str, prefix: str = "scripts/") -> str:
    """Write what Cromwell writes before it submits the job (write_* files, the call's script, the job script under
    its MD5, the audit copy) with the boto3 S3 client ``s3``; return ``BATCH_FILE_S3_URL``."""
    for url, content in job.call.created.items():
        bucket, key = split_s3(url)
        s3.put_object(Bucket=bucket, Key=key, Body=content)
    bucket, key = split_s3(job.paths.script)
    s3.put_object(Bucket=bucket, Key=key, Body=job.script.encode())
    script_key = prefix + md5_hex(job.reconfigured)
    s3.put_object(Bucket=script_bucket, Key=script_key, Body=job.reconfigured.encode())
    bucket, key = split_s3(job.paths.under_root("reconfigured-script.sh"))
    s3.put_object(Bucket=bucket, Key=key, Body=job.reconfigured.encode())
    return f"s3://{script_bucket}/{script_key}"


def job_environment(batch_file_url: str) -> dict[str, str]:
    """``containerOverrides.environment`` of Cromwell's SubmitJob."""
    return {"BATCH_FILE_TYPE": "script", "BATCH_FILE_S3_URL": batch_file_url}


def fetch_and_run_from_userdata(userdata: str) -> str:
    """The ``fetch_and_run.sh`` the AMI user-data installs, exactly as written on the host (its here-document)."""
    m = re.search(r"cat > \"\$\{FETCH_AND_RUN\}\" << '(\w+)'\n(.*?\n)\1\n", userdata, re.S)
    if m is None:
        raise ValueError("the user-data has no `cat > \"${FETCH_AND_RUN}\" << 'X'` here-document")
    return m[2]


def podman_run_args(image: str, host: dict[str, Path], env: dict[str, str], *, cromwell_root: Path,
                    cpu: int, memory_mib: int) -> list[str]:
    """``podman run`` arguments for the container the job definition describes: the host files of ``HOST_MOUNTS``
    (``host`` maps each host path to the local file standing in for it) read-only, ``local-disk``, the job's
    environment, its command, the image's own user; host network (moto_server on 127.0.0.1)."""
    args = ["run", "--rm", "--network", "host", "--cpus", str(cpu), "--memory", f"{memory_mib}m",
            "-v", f"{cromwell_root}:{CROMWELL_ROOT}"]
    for host_path, target in HOST_MOUNTS.items():
        args += ["-v", f"{host[host_path]}:{target}:ro"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, image, *JOB_COMMAND]
