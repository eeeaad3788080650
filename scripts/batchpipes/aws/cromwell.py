"""Cromwell on AWS Batch: render ``cromwell_conf/aws.conf``, check configurations and WDL runtime
sections against what Cromwell's AWS backend reads, build the ``--imports`` zip and the run line.

The key lists below were written for this project from Cromwell's source (broadinstitute/cromwell,
release 92):

* backend config keys: ``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/
  AwsBatchAttributes.scala`` (``availableConfigKeys``) plus the common keys of
  ``backend/src/main/scala/cromwell/backend/backend.scala``
  (``CommonBackendConfigurationAttributes.commonValidConfigurationAttributeKeys``);
* runtime attributes: ``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/
  AwsBatchRuntimeAttributes.scala`` (``runtimeAttributesBuilder``) plus the standard
  ``continueOnReturnCode``/``failOnStderr``/``maxRetries`` validations.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import WDL
import WDL.Lint
from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

from .. import containers, settings, workflows
from ..errors import UserError
from ..files import read_json_object
from ..images_cmd import PIN_RE
from .session import known_regions, parse_queue_arn

log = logging.getLogger(__name__)

CONF_DIR = settings.REPO_ROOT / "cromwell_conf"
TEMPLATE = CONF_DIR / "aws.conf"
LOCAL_CONF = CONF_DIR / "local.conf"
DEFAULT_RENDERED = CONF_DIR / "aws.rendered.conf"
DEFAULT_HSQLDB = settings.CACHE_DIR / "cromwell-db" / "aws"

ACTOR_FACTORY = "cromwell.backend.impl.aws.AwsBatchBackendLifecycleActorFactory"
PROVIDER = "AWSBATCH"
#: Workflow (and task) inputs that GPU tasks pass to their runtime ``queueArn``; filled in from the
#: rendered configuration by ``cromwell-command`` when an inputs file leaves them unset.
GPU_QUEUE_INPUT = "gpu_queue_arn"
CPU_QUEUE_INPUT = "cpu_queue_arn"
QUEUE_INPUTS = {GPU_QUEUE_INPUT: "gpu", CPU_QUEUE_INPUT: "cpu"}

#: Keys Cromwell's AWS backend reads under ``backend.providers.<name>.config`` (leaf paths, as
#: Cromwell's ``warnNotRecognized`` compares them). Anything else is ignored with a WARN.
AWS_BACKEND_CONFIG_KEYS = frozenset({
    # AwsBatchAttributes.availableConfigKeys
    "concurrent-job-limit", "root", "filesystems", "auth",
    "filesystems.local.auth", "filesystems.local.fsx", "filesystems.local.efs",
    "filesystems.local.localization",
    "filesystems.local.caching.hashing-strategy", "filesystems.local.caching.duplication-strategy",
    "filesystems.local.caching.check-sibling-md5",
    "filesystems.s3.auth", "filesystems.s3.caching.duplication-strategy", "filesystems.s3.duplication-strategy",
    "docker-mirror.dockerhub.address", "docker-mirror.dockerhub.enabled",
    "numCreateDefinitionAttempts", "numSubmitAttempts",
    "default-runtime-attributes.scriptBucketName",
    "awsBatchRetryAttempts", "awsBatchEvaluateOnExit", "ulimits", "gpuCount", "efsDelocalize", "efsMakeMD5",
    "tagResources", "tagHardware", "maxRetries", "glob-link-command",
    # CommonBackendConfigurationAttributes.commonValidConfigurationAttributeKeys
    "default-runtime-attributes",
    *(f"default-runtime-attributes.{k}" for k in (
        "disks", "memory", "zones", "continueOnReturnCode", "cpu", "gpuCount", "noAddress", "docker",
        "queueArn", "awsBatchRetryAttempts", "maxRetries", "awsBatchEvaluateOnExit", "sharedMemorySize",
        "fuseMount", "jobTimeout", "ulimits", "efsDelocalize", "efsMakeMD5", "failOnStderr")),
    "slow-job-warning-time", "dockerhub", "dockerhub.account", "dockerhub.token", "dockerhub.auth",
    "dockerhub.key-name", "name-for-call-caching-purposes",
})

#: Keys that must be present under the AWSBATCH ``config {}`` (no default in Cromwell).
AWS_REQUIRED_CONFIG_KEYS = (
    "root", "auth", "numSubmitAttempts", "numCreateDefinitionAttempts", "filesystems.s3.auth",
    "default-runtime-attributes.queueArn", "default-runtime-attributes.scriptBucketName",
)

#: Runtime attributes Cromwell's AWS backend reads (AwsBatchRuntimeAttributes.scala). Others, e.g.
#: ``preemptible``, ``bootDiskSizeGb``, ``gpuType``, ``cpuPlatform``, are ignored on AWS.
AWS_RUNTIME_ATTRIBUTES = frozenset({
    "docker", "container", "cpu", "memory", "gpuCount", "gpu", "disks", "queueArn", "scriptBucketName",
    "awsBatchRetryAttempts", "awsBatchEvaluateOnExit", "ulimits", "sharedMemorySize", "jobTimeout",
    "fuseMount", "logGroupName", "efsDelocalize", "efsMakeMD5", "tagResources", "tagHardware", "zones",
    "noAddress", "continueOnReturnCode", "returnCodes", "failOnStderr", "maxRetries",
})

#: Runtime keys miniwdl knows (its UnknownRuntimeKey lint); others need a ``# !UnknownRuntimeKey`` pragma.
MINIWDL_RUNTIME_KEYS: frozenset[str] = frozenset(
    next(c for c in WDL.Lint._all_linters if c.__name__ == "UnknownRuntimeKey").known_keys)  # type: ignore[attr-defined]

#: Runtime attributes every batchpipes task states explicitly (developers' guide).
EXPLICIT_RUNTIME_KEYS = ("docker", "cpu", "memory", "disks", "maxRetries")

_DISK = r"(local-disk|/[^\s,]+)( \d+ (SSD|HDD|LOCAL))?"
_DISKS_RE = re.compile(rf"{_DISK}(\s*,\s*{_DISK})*")
_MEMORY_RE = re.compile(r"\d+(\.\d+)? ?(B|KB|K|KiB|Ki|MB|M|MiB|Mi|GB|G|GiB|Gi|TB|T|TiB|Ti)")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PLACEHOLDER_RE = re.compile(r"\{\{([A-Z_]+)\}\}")


# -- inputs of the renderer -----------------------------------------------------------------------


def check_bucket_name(bucket: str) -> str:
    """The bucket name, or a UserError naming the S3 rule it breaks."""
    if bucket.startswith("s3://"):
        raise UserError(f"--bucket takes a bucket name, not a URL: use '{bucket[5:].split('/')[0]}'")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket) \
            or bucket.startswith("xn--") or bucket.endswith("-s3alias"):
        raise UserError(f"invalid S3 bucket name '{bucket}': use 3-63 lowercase letters, digits, '-' or '.', "
                        "starting and ending with a letter or digit")
    return bucket


def check_queues(cpu_arn: str, gpu_arn: str, region: str | None) -> str:
    """The region shared by both queue ARNs (and ``region`` if given), or a UserError."""
    cpu_region, cpu_account, _ = parse_queue_arn(cpu_arn)
    gpu_region, gpu_account, _ = parse_queue_arn(gpu_arn)
    if cpu_region != gpu_region:
        raise UserError(f"the CPU queue is in {cpu_region} but the GPU queue is in {gpu_region}: "
                        "both queues and the bucket must be in one region")
    if cpu_account != gpu_account:
        raise UserError(f"the CPU queue belongs to account {cpu_account} but the GPU queue to {gpu_account}: "
                        "use queues of one account")
    if region is not None and region != cpu_region:
        raise UserError(f"--region is {region} but the queue ARNs are in {cpu_region}: "
                        "drop --region or pass queues of that region")
    if cpu_region not in known_regions():
        raise UserError(f"unknown AWS region '{cpu_region}' in the queue ARN: use a region code such as eu-west-1")
    return cpu_region


def hsqldb_path(db: str | None) -> Path | None:
    """The HSQLDB file path prefix ``--db`` names (the default when absent); None for a jdbc: URL."""
    if db is not None and db.startswith("jdbc:"):
        return None
    path = Path(db).expanduser().resolve() if db else DEFAULT_HSQLDB
    if any(c in str(path) for c in ';"\\\n'):
        raise UserError(f"--db path '{path}' contains ; \" or \\: choose a plain directory path")
    return path


def _jdbc_userinfo_password(db: str) -> bool:
    """Whether a ``jdbc:<driver>://user:password@host/...`` URL carries a password in its authority.

    The MySQL driver (and URL-style PostgreSQL ones) accept credentials there; the rendered file would then
    hold the password in clear text. ``user@host`` alone is harmless."""
    m = re.match(r"jdbc:[a-z0-9]+://([^/?#]*)", db, re.IGNORECASE)
    if m is None or "@" not in m[1]:
        return False
    userinfo = m[1].rsplit("@", 1)[0]
    return ":" in userinfo


def jdbc_database_block(db: str) -> str:
    """The HOCON ``database {}`` block for a ``--db`` MySQL/PostgreSQL URL."""
    if _jdbc_userinfo_password(db):
        raise UserError("--db URL carries a password in 'user:password@': remove it and export "
                        "CROMWELL_DB_PASSWORD instead (the configuration reads the password from there)")
    if re.search(r"[?&;(]password=", db, re.IGNORECASE):
        raise UserError("--db URL carries a password: remove it and export CROMWELL_DB_PASSWORD instead")
    kinds = {
        "jdbc:mysql://": ("slick.jdbc.MySQLProfile$", "com.mysql.cj.jdbc.Driver"),
        "jdbc:postgresql://": ("slick.jdbc.PostgresProfile$", "org.postgresql.Driver"),
    }
    for prefix, (profile, driver) in kinds.items():
        if db.startswith(prefix) and len(db) > len(prefix):
            if '"' in db or "\n" in db:
                raise UserError("--db URL contains a quote or a newline")
            return (
                "database {\n"
                f'  profile = "{profile}"\n'
                "  db {\n"
                f'    driver = "{driver}"\n'
                f'    url = "{db}"\n'
                "    # credentials from the environment, never written to this file\n"
                "    user = ${?CROMWELL_DB_USER}\n"
                "    password = ${?CROMWELL_DB_PASSWORD}\n"
                "    connectionTimeout = 30000\n"
                "  }\n"
                "}"
            )
    raise UserError(f"--db '{db}' is neither a file path (HSQLDB) nor a jdbc:mysql:// or jdbc:postgresql:// URL")


def _database_section(text: str) -> str:
    m = re.search(r"^# BEGIN database.*?\n(.*?)^# END database", text, re.S | re.M)
    if m is None:
        raise UserError(f"{TEMPLATE}: the '# BEGIN database' / '# END database' markers are missing")
    return m[1].rstrip("\n")


# -- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    cpu_queue_arn: str
    gpu_queue_arn: str
    region: str

    @property
    def account(self) -> str:
        return parse_queue_arn(self.cpu_queue_arn)[1]


@dataclass(frozen=True)
class Rendered:
    """A rendered aws.conf and what the command needs besides the text."""

    text: str
    region: str
    hsqldb_path: Path | None  # None for a MySQL/PostgreSQL database


def render_aws_conf(bucket: str, cpu_queue_arn: str, gpu_queue_arn: str, *, region: str | None = None,
                    db: str | None = None) -> Rendered:
    """The template with every placeholder filled; raises UserError on bad input."""
    check_bucket_name(bucket)
    region = check_queues(cpu_queue_arn, gpu_queue_arn, region)
    text = TEMPLATE.read_text()
    section = _database_section(text)
    db_path = hsqldb_path(db)
    if db_path is not None:  # the template's own HSQLDB block, filled in
        block = section.replace("{{HSQLDB_PATH}}", str(db_path))
    else:
        assert db is not None
        block = jdbc_database_block(db)
    text = text.replace(section, block, 1)
    values = {"REGION": region, "BUCKET": bucket, "CPU_QUEUE_ARN": cpu_queue_arn, "GPU_QUEUE_ARN": gpu_queue_arn}
    text = _PLACEHOLDER_RE.sub(lambda m: values.get(m[1], m[0]), text)
    # the header comment documents the placeholders; drop it from the rendered file
    body = text[text.index("include required"):]
    header = ("# Rendered by `batchpipes aws cromwell-config` from cromwell_conf/aws.conf: edit the template\n"
              "# or re-render rather than editing this file.\n\n")
    rendered = header + body
    left = _PLACEHOLDER_RE.findall(rendered)
    if left:
        raise UserError(f"{TEMPLATE}: unknown placeholder(s) {', '.join(sorted(set(left)))} left after rendering")
    problems = check_aws_config(parse_conf(rendered))
    if problems:
        raise UserError(f"rendered configuration is not valid: {'; '.join(problems)}")
    return Rendered(rendered, region, db_path)


# -- reading and checking configurations ----------------------------------------------------------

_CLASSPATH_INCLUDE = re.compile(r'^\s*include\s+required\(\s*classpath\("application"\)\s*\)\s*$', re.M)


def parse_conf(text: str) -> ConfigTree:
    """Parse a Cromwell HOCON file with pyhocon.

    ``include required(classpath("application"))`` names Cromwell's own defaults inside its jar;
    pyhocon cannot resolve classpath includes, so that line (and only that one) is dropped.
    """
    body, n = _CLASSPATH_INCLUDE.subn("", text)
    if n != 1:
        raise UserError('the configuration must start from Cromwell\'s defaults: '
                        'include required(classpath("application")) exactly once')
    try:
        return ConfigFactory.parse_string(body)
    except (ConfigException, Exception) as exc:  # pyparsing errors are not ConfigExceptions
        raise UserError(f"HOCON syntax error: {str(exc).splitlines()[0]}") from exc


def read_conf(path: Path) -> ConfigTree:
    if not path.is_file():
        raise UserError(f"Cromwell configuration '{path}' not found: render it with "
                        "'batchpipes aws cromwell-config --bucket ... --cpu-queue-arn ... --gpu-queue-arn ...'")
    try:
        return parse_conf(path.read_text())
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def leaf_keys(tree: ConfigTree, prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, ConfigTree):
            yield from leaf_keys(value, f"{name}.")
        else:
            yield name


def _get(tree: ConfigTree, path: str) -> Any:
    try:
        return tree.get(path)
    except (ConfigException, KeyError, AttributeError, TypeError):
        return None


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def check_aws_config(conf: ConfigTree) -> list[str]:
    """Problems of an AWS Batch Cromwell configuration (empty when fine).

    Placeholder values (``{{X}}``, in the template) are accepted where a value is checked.
    """
    problems: list[str] = []
    region = _get(conf, "aws.region")
    if not isinstance(region, str) or not region:
        problems.append("aws.region is not set")
    auths = _get(conf, "aws.auths") or []
    auth_names = {a.get("name") for a in auths if isinstance(a, ConfigTree)}
    if not auth_names:
        problems.append("aws.auths defines no auth")
    if not _get(conf, "aws.application-name"):
        problems.append("aws.application-name is not set")
    engine_auth = _get(conf, "engine.filesystems.s3.auth")
    if engine_auth not in auth_names:
        problems.append(f"engine.filesystems.s3.auth '{engine_auth}' is not one of aws.auths")
    if _get(conf, "call-caching.enabled") is not True:
        problems.append("call-caching.enabled is not true")
    url = str(_get(conf, "database.db.url") or "")
    if not url or url.startswith("jdbc:hsqldb:mem"):
        problems.append("database.db.url is not a persistent database (call caching would not survive a restart)")
    if _get(conf, "docker.hash-lookup.enabled") is False:
        problems.append("docker.hash-lookup is disabled (ECR digests are needed for call caching)")

    provider = _get(conf, f"backend.providers.{PROVIDER}")
    if _get(conf, "backend.default") != PROVIDER or not isinstance(provider, ConfigTree):
        problems.append(f"backend.default must be {PROVIDER}, a provider under backend.providers")
        return problems
    if provider.get("actor-factory", None) != ACTOR_FACTORY:
        problems.append(f"backend.providers.{PROVIDER}.actor-factory is not {ACTOR_FACTORY}")
    cfg = provider.get("config", None)
    if not isinstance(cfg, ConfigTree):
        problems.append(f"backend.providers.{PROVIDER}.config is missing")
        return problems
    for key in sorted(set(leaf_keys(cfg)) - AWS_BACKEND_CONFIG_KEYS):
        problems.append(f"config key '{key}' is not read by Cromwell's AWS backend")
    for key in AWS_REQUIRED_CONFIG_KEYS:
        if _get(cfg, key) in (None, ""):
            problems.append(f"required config key '{key}' is missing")
    for key in ("numSubmitAttempts", "numCreateDefinitionAttempts"):
        value = _get(cfg, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{key} must be a positive integer, not {value!r}")
    for key in ("auth", "filesystems.s3.auth"):
        value = _get(cfg, key)
        if value is not None and value not in auth_names:
            problems.append(f"config.{key} '{value}' is not one of aws.auths")
    root = _get(cfg, "root")
    if isinstance(root, str) and not root.startswith("s3://"):
        problems.append(f"root '{root}' is not an s3:// URL")
    disks = _get(cfg, "default-runtime-attributes.disks")
    if disks is not None and not isinstance(disks, str):
        problems.append("default-runtime-attributes.disks must be a string (Cromwell casts it), not a list")
    bucket = _get(cfg, "default-runtime-attributes.scriptBucketName")
    if isinstance(bucket, str) and not _placeholder(bucket):
        try:
            check_bucket_name(bucket)
        except UserError as exc:
            problems.append(f"scriptBucketName: {exc}")
    queues = {"default-runtime-attributes.queueArn": _get(cfg, "default-runtime-attributes.queueArn"),
              "batchpipes.gpu-queue-arn": _get(conf, "batchpipes.gpu-queue-arn")}
    for where, arn in queues.items():
        if arn is None:
            problems.append(f"{where} is not set")
            continue
        if _placeholder(arn):
            continue
        try:
            arn_region = parse_queue_arn(str(arn))[0]
        except UserError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if isinstance(region, str) and not _placeholder(region) and arn_region != region:
            problems.append(f"{where} is in {arn_region} but aws.region is {region}")
    return problems


def aws_settings(conf: ConfigTree, path: Path) -> AwsSettings:
    """What the renderer recorded in the ``batchpipes {}`` block of a rendered file."""
    block = _get(conf, "batchpipes")
    if not isinstance(block, ConfigTree):
        raise UserError(f"{path} has no batchpipes {{}} block: render it with 'batchpipes aws cromwell-config'")
    values = {k: block.get(k, None) for k in ("bucket", "cpu-queue-arn", "gpu-queue-arn", "region")}
    if any(not isinstance(v, str) or _placeholder(v) for v in values.values()):
        raise UserError(f"{path} still has placeholders: render it with 'batchpipes aws cromwell-config'")
    return AwsSettings(values["bucket"], values["cpu-queue-arn"], values["gpu-queue-arn"], values["region"])


# -- WDL runtime sections -------------------------------------------------------------------------


def _literal_shape(expr: WDL.Expr.Base) -> str | None:
    """A string expression with every placeholder replaced by ``1``; None if not a string expression."""
    if isinstance(expr, WDL.Expr.String):
        out = []
        for part in expr.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append("1")
        text = "".join(out)
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
        return text
    return None


def _idents(expr: WDL.Expr.Base) -> set[str]:
    found = set()
    if isinstance(expr, WDL.Expr.Ident):
        found.add(str(expr.name))
    for child in expr.children:
        if isinstance(child, WDL.Expr.Base):
            found |= _idents(child)
    return found


def task_runtime_problems(task: WDL.Tree.Task, source_lines: list[str], where: str) -> list[str]:
    """Problems of one task's runtime section for Cromwell's AWS backend and for miniwdl."""
    problems = []
    runtime = task.runtime
    for key, expr in runtime.items():
        if key not in AWS_RUNTIME_ATTRIBUTES:
            problems.append(f"{where}: runtime key '{key}' is not read by Cromwell's AWS backend")
        line = source_lines[expr.pos.line - 1] if 0 < expr.pos.line <= len(source_lines) else ""
        if key not in MINIWDL_RUNTIME_KEYS and "!UnknownRuntimeKey" not in line:
            problems.append(f"{where}: runtime key '{key}' is unknown to miniwdl "
                            "(add a '# !UnknownRuntimeKey' comment on its line)")
    for key in EXPLICIT_RUNTIME_KEYS:
        if key not in runtime and not (key == "docker" and "container" in runtime):
            problems.append(f"{where}: runtime has no '{key}' (every batchpipes task states it)")
    if "disks" in runtime:
        shape = _literal_shape(runtime["disks"])
        if shape is not None and not _DISKS_RE.fullmatch(shape):
            problems.append(f"{where}: disks '{shape}' is not 'local-disk [N SSD|HDD]' or '/mount/point [N TYPE]'")
    if "memory" in runtime:
        shape = _literal_shape(runtime["memory"])
        if shape is not None and not _MEMORY_RE.fullmatch(shape.strip()):
            problems.append(f"{where}: memory '{shape}' is not a size such as '4 GiB'")
    if "gpu" in runtime and "gpuCount" not in runtime:
        problems.append(f"{where}: 'gpu' without 'gpuCount': Cromwell's AWS backend requests GPUs by gpuCount")
    if "gpuCount" in runtime and "queueArn" not in runtime:
        problems.append(f"{where}: GPU task without 'queueArn': it would run on the CPU queue "
                        f"(add 'queueArn: if gpu then {GPU_QUEUE_INPUT} else {CPU_QUEUE_INPUT}')")
    if "queueArn" in runtime:
        queue_inputs = _queue_inputs(task)
        if not queue_inputs:
            problems.append(f"{where}: queueArn must come from task inputs named *_queue_arn (e.g. "
                            f"'if gpu then {GPU_QUEUE_INPUT} else {CPU_QUEUE_INPUT}'), not a hard-coded ARN")
    return problems


def _calls(elements: list[Any]) -> Iterator[WDL.Tree.Call]:
    for el in elements:
        if isinstance(el, WDL.Tree.Call):
            yield el
        elif isinstance(el, WDL.Tree.Scatter | WDL.Tree.Conditional):
            yield from _calls(el.body)


def _queue_inputs(task: WDL.Tree.Task) -> set[str]:
    """Task inputs named ``*_queue_arn`` that the runtime queueArn expression reads."""
    if "queueArn" not in task.runtime:
        return set()
    names = {d.name for d in task.inputs or [] if d.name.endswith("_queue_arn")}
    return _idents(task.runtime["queueArn"]) & names


def workflow_routing_problems(doc: WDL.Document, where: str) -> list[str]:
    """A workflow calling GPU tasks declares ``gpu_queue_arn`` and passes the queue inputs to them."""
    wf = doc.workflow
    if wf is None:
        return []
    problems: list[str] = []
    wf_inputs = {d.name for d in wf.inputs or []}
    for call in _calls(wf.body):
        callee = call.callee
        if not isinstance(callee, WDL.Tree.Task) or "gpuCount" not in callee.runtime:
            continue
        if GPU_QUEUE_INPUT not in wf_inputs:
            problems.append(f"{where}: workflow {wf.name} calls GPU task {callee.name} but has no "
                            f"'String {GPU_QUEUE_INPUT}' input")
        for name in sorted(_queue_inputs(callee)):
            if name not in call.inputs:
                problems.append(f"{where}: call {call.name} does not pass '{name}' to GPU task {callee.name}")
            if name in QUEUE_INPUTS and name not in wf_inputs:
                problems.append(f"{where}: workflow {wf.name} has no 'String {name}' input for task {callee.name}")
    return list(dict.fromkeys(problems))


def wdl_runtime_problems(paths: list[Path]) -> list[str]:
    """Runtime-section and GPU-routing problems over WDL files (tasks checked in their own file)."""
    problems = []
    for path in paths:
        doc = workflows.load(path)
        rel = path.relative_to(settings.REPO_ROOT) if path.is_relative_to(settings.REPO_ROOT) else path
        lines = path.read_text().splitlines()
        for task in doc.tasks:
            problems += task_runtime_problems(task, lines, f"{rel} task {task.name}")
        problems += workflow_routing_problems(doc, str(rel))
    return problems


# -- the --imports zip and the run line -----------------------------------------------------------


def import_closure(top: Path) -> dict[str, Path]:
    """Every file ``top`` imports, directly or not: zip member name (relative to top's folder) -> path."""
    root = top.parent.resolve()
    found: dict[str, Path] = {}

    def visit(doc: WDL.Document) -> None:
        for imp in doc.imports:
            assert imp.doc is not None
            path = Path(imp.doc.pos.abspath).resolve()
            if not path.is_relative_to(root):
                raise UserError(f"{top.name} imports {imp.uri}, which is outside {root}: "
                                "keep imported WDL under the workflow's folder")
            arc = path.relative_to(root).as_posix()
            if arc not in found:
                found[arc] = path
                visit(imp.doc)

    visit(workflows.load(top))
    return found


def build_imports_zip(top: Path, dest: Path) -> Path:
    """Write the ``--imports`` zip of ``top`` (reproducible: fixed timestamps, sorted members)."""
    members = import_closure(top)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(members):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[arc].read_bytes())
    os.replace(tmp, dest)
    return dest


def ecr_registry(account: str, region: str) -> str:
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"{account}.dkr.ecr.{region}{suffix}"


def aws_inputs(flow: workflows.Workflow, inputs: dict[str, Any], aws: AwsSettings) -> dict[str, Any]:
    """Inputs for a Cromwell run on AWS: pinned images pointed at ECR, the queue ARN inputs filled in.

    Raises UserError for a local file path (the Batch jobs cannot read it) or a stale image pin.
    """
    doc = workflows.load(flow.path)
    assert doc.workflow is not None
    wf = doc.workflow
    out = dict(inputs)
    _require_remote_files(wf, out)
    images = containers.discover()
    registry = ecr_registry(aws.account, aws.region)
    for decl in wf.inputs or []:
        key = f"{wf.name}.{decl.name}"
        if decl.name in QUEUE_INPUTS:
            given = str(out.get(key) or "")
            if given:
                arn_region = parse_queue_arn(given)[0]
                if arn_region != aws.region:
                    raise UserError(f"{key} is in {arn_region} but the configuration is for {aws.region}")
            else:
                arn = aws.gpu_queue_arn if QUEUE_INPUTS[decl.name] == "gpu" else aws.cpu_queue_arn
                out[key] = arn
                log.info("%s = %s (from the rendered configuration)", key, arn)
        if not decl.name.endswith("_image"):
            continue
        literal = decl.expr.literal if decl.expr is not None else None
        value = str(out.get(key) or (literal.value if literal is not None else ""))
        m = PIN_RE.fullmatch(f'"{value}"')
        if m is None:
            continue  # the user's own reference: left alone
        image = images.get(m["name"])
        if image is None:
            raise UserError(f"{key} names unknown image '{value}': known images are {', '.join(sorted(images))}")
        if image.tag != m["tag"]:
            raise UserError(f"{key} is {value} but containers/{image.name} is at {image.tag}: "
                            "run 'batchpipes images pin'")
        out[key] = f"{registry}/{value}"
    return out


def _require_remote_files(wf: WDL.Tree.Workflow, data: dict[str, Any]) -> None:
    env = WDL.values_from_json(data, wf.available_inputs, wf.required_inputs, namespace=wf.name)

    def walk(name: str, v: WDL.Value.Base) -> None:
        if isinstance(v, WDL.Value.File | WDL.Value.Directory) and not str(v.value).startswith("s3://"):
            raise UserError(f"{wf.name}.{name} is the local path '{v.value}': AWS runs read s3:// URLs only "
                            "(stage the data to S3 and use its s3:// URL)")
        for child in v.children:
            walk(name, child)

    for binding in env:
        walk(binding.name, binding.value)


def java_command(config: Path, workflow: Path, inputs: Path, imports: Path, options: Path | None,
                 jar: str) -> list[str]:
    cmd = ["java", f"-Dconfig.file={_shown(config)}", "-jar", jar, "run", _shown(workflow),
           "--inputs", _shown(inputs), "--imports", _shown(imports)]
    if options is not None:
        cmd += ["--options", _shown(options)]
    return cmd


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it, else absolute."""
    path = path.resolve()
    cwd = Path.cwd().resolve()
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else str(path)


def read_options(path: Path) -> None:
    """Check that a workflow options file holds a JSON object (Cromwell reads it itself)."""
    read_json_object(path, "workflow options file")
