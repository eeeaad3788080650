"""Cromwell's configuration for AWS Batch: render ``cromwell_conf/aws.conf`` and check configurations against
what Cromwell's AWS backend reads (WDL runtime sections are checked by :mod:`batchpipes.wdl_lint`). The run's
inputs are rewritten by ``cromwell_inputs``, the ``--imports`` zip and the run line made by ``cromwell_run``.

The key lists below were written for this project from Cromwell's source (broadinstitute/cromwell,
release 92): backend config keys from ``supportedBackends/aws/src/main/scala/cromwell/backend/impl/aws/
AwsBatchAttributes.scala`` (``availableConfigKeys``) plus the common keys of
``backend/src/main/scala/cromwell/backend/backend.scala``
(``CommonBackendConfigurationAttributes.commonValidConfigurationAttributeKeys``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

from .. import settings
from ..errors import UserError
from .buckets import check_bucket_name
from .constants import SPOT_RETRY
from .ecr import ecr_host_region
from .session import known_regions, parse_queue_arn

log = logging.getLogger(__name__)

CONF_DIR = settings.REPO_ROOT / "cromwell_conf"
TEMPLATE = CONF_DIR / "aws.conf"
LOCAL_CONF = CONF_DIR / "local.conf"
DEFAULT_RENDERED = CONF_DIR / "aws.rendered.conf"
DEFAULT_HSQLDB = settings.CACHE_DIR / "cromwell-db" / "aws"

ACTOR_FACTORY = "cromwell.backend.impl.aws.AwsBatchBackendLifecycleActorFactory"
PROVIDER = "AWSBATCH"

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

_PLACEHOLDER_RE = re.compile(r"\{\{([A-Z_]+)\}\}")

#: Jobs Cromwell keeps in flight. Each costs several Batch API calls (DescribeJobDefinitions/RegisterJobDefinition,
#: SubmitJob, status polls): users report HTTP 429 "Too Many Requests" from Batch at limits of 100 and more
#: (https://github.com/broadinstitute/cromwell/issues/4303, https://github.com/broadinstitute/cromwell/issues/4355;
#: 3-4 calls per submission: https://github.com/broadinstitute/cromwell/issues/4496). The template's value.
DEFAULT_CONCURRENT_JOB_LIMIT = 50
_JOB_LIMIT_RE = re.compile(r"^(\s*concurrent-job-limit = )(\d+)$", re.M)

#: What ``awsBatchEvaluateOnExit`` must be in ``default-runtime-attributes`` (the template's value): the
#: job definitions' rule of ``constants.SPOT_RETRY``, retry a host reclaim, exit on anything else.
EVALUATE_ON_EXIT: list[dict[str, str]] = [dict(e) for e in SPOT_RETRY["evaluateOnExit"]]

# AwsBatchEvaluateOnExitValidation (AwsBatchRuntimeAttributes.scala): keys compared lower-cased, `action`
# RETRY/EXIT in any case. The patterns and the limit of 5 entries are the Batch API's (EvaluateOnExit,
# RetryStrategy in botocore's batch model).
_EOE_KEYS = {"action": "action", "onexitcode": "onExitCode", "onreason": "onReason", "onstatusreason": "onStatusReason"}
_REASON_RE = re.compile(r"[A-Za-z0-9.: \t]{0,511}\*?")
_EXIT_CODE_RE = re.compile(r"[0-9]{0,511}\*?")
MAX_EVALUATE_ON_EXIT = 5


# -- inputs of the renderer -----------------------------------------------------------------------


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
                    db: str | None = None, concurrent_job_limit: int = DEFAULT_CONCURRENT_JOB_LIMIT) -> Rendered:
    """The template with every placeholder filled; raises UserError on bad input."""
    check_bucket_name(bucket)
    if not 1 <= concurrent_job_limit <= 10000:
        raise UserError(f"--concurrent-job-limit must be between 1 and 10000, not {concurrent_job_limit}")
    region = check_queues(cpu_queue_arn, gpu_queue_arn, region)
    text = TEMPLATE.read_text()
    text, n = _JOB_LIMIT_RE.subn(lambda m: f"{m[1]}{concurrent_job_limit}", text)
    if n != 1:
        raise UserError(f"{TEMPLATE}: expected one 'concurrent-job-limit = N' line, found {n}")
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


def _strings_map(entry: Any) -> dict[str, Any] | None:
    if isinstance(entry, ConfigTree):
        return {str(k): v for k, v in entry.items()}
    return dict(entry) if isinstance(entry, dict) else None


def evaluate_on_exit_problems(value: Any) -> list[str]:
    """Why a ``awsBatchEvaluateOnExit`` default would not give Batch a valid, intended retry strategy.

    Cromwell reads the default with ``getObjectList`` and silently falls back to ``[{}]`` when that fails;
    it accepts ``{}`` entries and builds each into an ``EvaluateOnExit`` with only the keys given, while the
    Batch API requires ``action`` in every entry and retries a failure that matches no entry.
    """
    where = "default-runtime-attributes.awsBatchEvaluateOnExit"
    fix = ('set it to [{action = "RETRY", onStatusReason = "Host EC2*"}, {action = "EXIT", onReason = "*"}]')
    if value is None:
        return [f"{where} is not set, so Cromwell sends an evaluateOnExit entry without the action Batch requires "
                f"(the tasks set awsBatchRetryAttempts): {fix}"]
    entries = [_strings_map(e) for e in value] if isinstance(value, list) else None
    if not entries or any(e is None for e in entries):
        return [f"{where} must be a list of objects (Cromwell ignores anything else and sends an entry "
                f"without action): {fix}"]
    problems: list[str] = []
    if len(entries) > MAX_EVALUATE_ON_EXIT:
        problems.append(f"{where} has {len(entries)} entries; Batch takes at most {MAX_EVALUATE_ON_EXIT}")
    for i, raw in enumerate(entries, 1):
        assert raw is not None
        entry = {_EOE_KEYS.get(k.lower(), k): v for k, v in raw.items()}
        unknown = sorted(set(entry) - set(_EOE_KEYS.values()))
        if unknown:
            problems.append(f"{where} entry {i} has key(s) {', '.join(unknown)}: Cromwell accepts only action, "
                            "onExitCode, onReason, onStatusReason")
            continue
        if any(not isinstance(v, str) for v in entry.values()):
            problems.append(f"{where} entry {i}: quote every value (Cromwell reads a map of strings)")
            continue
        if str(entry.get("action", "")).lower() not in ("retry", "exit"):
            problems.append(f"{where} entry {i} has no action RETRY or EXIT (Batch requires one in every entry): {fix}")
        conditions = {k: v for k, v in entry.items() if k != "action"}
        if not conditions:
            problems.append(f"{where} entry {i} has no condition (onStatusReason, onReason or onExitCode)")
        for key, pattern in conditions.items():
            regex = _EXIT_CODE_RE if key == "onExitCode" else _REASON_RE
            if not regex.fullmatch(pattern):
                problems.append(f"{where} entry {i}: {key} '{pattern}' is not a Batch pattern (letters, digits, "
                                "'.', ':', blanks -- digits only for onExitCode -- and an optional final '*')")
    if problems:
        return problems
    last = {_EOE_KEYS[k.lower()]: v for k, v in (entries[-1] or {}).items()}
    if str(last.get("action")).lower() != "exit" or any(v != "*" for k, v in last.items() if k != "action"):
        problems.append(f"{where} must end with an EXIT entry matching every failure (e.g. onReason = \"*\"): "
                        "Batch retries a failure that matches no entry")
    return problems


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
    limit = _get(cfg, "concurrent-job-limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        problems.append(f"concurrent-job-limit must be a positive integer, not {limit!r}")
    attempts = _get(cfg, "default-runtime-attributes.awsBatchRetryAttempts")
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool)
                                 or not 0 <= attempts <= 10):
        problems.append(f"default-runtime-attributes.awsBatchRetryAttempts must be 0 to 10, not {attempts!r}")
    problems += evaluate_on_exit_problems(_get(cfg, "default-runtime-attributes.awsBatchEvaluateOnExit"))
    mirror = _get(cfg, "docker-mirror.dockerhub.address")
    mirror_region = ecr_host_region(str(mirror)) if isinstance(mirror, str) else None
    if mirror_region and isinstance(region, str) and not _placeholder(region) and mirror_region != region:
        problems.append(f"docker-mirror.dockerhub.address is an ECR registry in {mirror_region} but aws.region is "
                        f"{region}: use the pull-through cache of the Batch region")
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

