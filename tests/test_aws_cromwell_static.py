"""Static checks of the Cromwell configurations and of every WDL runtime section (no AWS, no Cromwell).

The allowed keys come from Cromwell's source (see batchpipes/aws/cromwell.py for the files); the
checks are exercised on broken inputs too, so that each one is shown to be able to fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import WDL
from batchpipes import settings
from batchpipes.aws import cromwell
from batchpipes.errors import UserError

CPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
GPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"
WDL_FILES = sorted(settings.WDL_DIR.rglob("*.wdl"))


def rendered(**kw: str) -> str:
    return cromwell.render_aws_conf("bp-test-bucket", CPU, GPU, **kw).text


# -- HOCON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [cromwell.TEMPLATE, cromwell.LOCAL_CONF], ids=lambda p: p.name)
def test_committed_configs_parse(path: Path) -> None:
    conf = cromwell.parse_conf(path.read_text())
    assert conf.get("call-caching.enabled") is True
    assert conf.get("database.db.url").startswith("jdbc:hsqldb:file:")
    assert ";shutdown=false;" in conf.get("database.db.url")


def test_template_passes_the_aws_checks_and_marks_its_placeholders() -> None:
    text = cromwell.TEMPLATE.read_text()
    conf = cromwell.parse_conf(text)
    assert cromwell.check_aws_config(conf) == []
    cfg = conf.get("backend.providers.AWSBATCH.config")
    assert cfg.get("root") == "s3://{{BUCKET}}/cromwell-execution"
    assert cfg.get("default-runtime-attributes.queueArn") == "{{CPU_QUEUE_ARN}}"
    assert set(cromwell._PLACEHOLDER_RE.findall(text)) == {"REGION", "BUCKET", "CPU_QUEUE_ARN", "GPU_QUEUE_ARN",
                                                          "HSQLDB_PATH"}


def test_rendered_config_has_every_required_key_with_real_values() -> None:
    conf = cromwell.parse_conf(rendered())
    assert cromwell.check_aws_config(conf) == []
    cfg = conf.get("backend.providers.AWSBATCH.config")
    assert set(cromwell.leaf_keys(cfg)) <= cromwell.AWS_BACKEND_CONFIG_KEYS
    assert cfg.get("root") == "s3://bp-test-bucket/cromwell-execution"
    assert cfg.get("numSubmitAttempts") >= 1 and cfg.get("numCreateDefinitionAttempts") >= 1
    assert cfg.get("auth") == cfg.get("filesystems.s3.auth") == conf.get("engine.filesystems.s3.auth") == "default"
    assert cfg.get("default-runtime-attributes.queueArn") == CPU
    assert cfg.get("default-runtime-attributes.scriptBucketName") == "bp-test-bucket"
    assert isinstance(cfg.get("default-runtime-attributes.disks"), str)
    assert conf.get("aws.region") == "eu-west-1"
    assert conf.get("aws.auths")[0].get("scheme") == "default"
    assert conf.get("docker.hash-lookup.enabled") is True
    assert conf.get("docker.hash-lookup.ecr.num-threads") > 0
    assert conf.get("batchpipes.gpu-queue-arn") == GPU
    assert "{{" not in rendered()


@pytest.mark.parametrize("edit, expected", [
    (("numSubmitAttempts = 6", "numSubmitAtempts = 6"), "numSubmitAtempts' is not read"),
    (("numSubmitAttempts = 6", "numSubmitAttempts = 0"), "numSubmitAttempts must be a positive integer"),
    (('disks = "local-disk"', 'disks = ["local-disk"]'), "disks must be a string"),
    (('scriptBucketName = "bp-test-bucket"', ""), "'default-runtime-attributes.scriptBucketName' is missing"),
    (("numCreateDefinitionAttempts = 6", ""), "'numCreateDefinitionAttempts' is missing"),
    (('auth = "default"\n', 'auth = "other"\n'), "config.auth 'other' is not one of aws.auths"),
    (('root = "s3://', 'root = "/tmp/'), "is not an s3:// URL"),
    (("call-caching {\n  enabled = true", "call-caching {\n  enabled = false"), "call-caching.enabled"),
    (("jdbc:hsqldb:file:", "jdbc:hsqldb:mem:"), "not a persistent database"),
    (('region = "eu-west-1"', 'region = "us-east-1"'), "is in eu-west-1 but aws.region is us-east-1"),
])
def test_config_checks_catch_each_mistake(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    text = rendered()
    assert old in text
    assert cromwell.check_aws_config(cromwell.parse_conf(text)) == []
    problems = cromwell.check_aws_config(cromwell.parse_conf(text.replace(old, new, 1)))
    assert any(expected in p for p in problems), problems


def test_hocon_syntax_error_is_one_line(expect_user_error) -> None:
    message = expect_user_error(cromwell.parse_conf, 'include required(classpath("application"))\na { b = ')
    assert message.startswith("HOCON syntax error")
    assert "classpath" in expect_user_error(cromwell.parse_conf, "a = 1")


def test_database_choices() -> None:
    mysql = cromwell.parse_conf(rendered(db="jdbc:mysql://db.internal/cromwell?rewriteBatchedStatements=true"))
    assert mysql.get("database.profile") == "slick.jdbc.MySQLProfile$"
    assert mysql.get("database.db.url").startswith("jdbc:mysql://db.internal/")
    assert "CROMWELL_DB_PASSWORD" in rendered(db="jdbc:postgresql://db:5432/cromwell")
    pg = cromwell.parse_conf(rendered(db="jdbc:postgresql://db:5432/cromwell"))
    assert pg.get("database.db.driver") == "org.postgresql.Driver"
    hsql = cromwell.parse_conf(rendered(db="/data/cromwell/cache"))
    assert hsql.get("database.db.url").startswith("jdbc:hsqldb:file:/data/cromwell/cache;shutdown=false;")
    # what cromwell-config needs besides the text: the queues' region and the folder to create for HSQLDB
    result = cromwell.render_aws_conf("bp-test-bucket", CPU, GPU, db="/data/cromwell/cache")
    assert result.region == "eu-west-1" and result.hsqldb_path == Path("/data/cromwell/cache")
    assert cromwell.render_aws_conf("bp-test-bucket", CPU, GPU).hsqldb_path == cromwell.DEFAULT_HSQLDB
    assert cromwell.render_aws_conf("bp-test-bucket", CPU, GPU, db="jdbc:mysql://db/c").hsqldb_path is None


# -- WDL runtime sections -------------------------------------------------------------------------


def test_key_lists_are_consistent() -> None:
    assert {"queueArn", "gpuCount", "awsBatchRetryAttempts", "disks", "docker"} <= cromwell.AWS_RUNTIME_ATTRIBUTES
    assert {"preemptible", "bootDiskSizeGb", "gpuType"}.isdisjoint(cromwell.AWS_RUNTIME_ATTRIBUTES)
    assert {"queueArn", "gpuCount", "awsBatchRetryAttempts"} <= cromwell.MINIWDL_RUNTIME_KEYS
    assert "ulimits" not in cromwell.MINIWDL_RUNTIME_KEYS


def test_there_are_workflows_to_check() -> None:
    assert {"genomics.wdl"} <= {p.name for p in WDL_FILES}
    assert any(p.parent.name == "tasks" for p in WDL_FILES)


@pytest.mark.parametrize("path", WDL_FILES, ids=lambda p: str(p.relative_to(settings.WDL_DIR)))
def test_runtime_attributes_of_every_wdl_file(path: Path) -> None:
    """Every runtime key is read by Cromwell's AWS backend and known to miniwdl; GPU tasks use
    gpuCount and reach the GPU queue through queueArn inputs their workflow passes on."""
    assert cromwell.wdl_runtime_problems([path]) == []


GOOD_GPU = """version 1.0

task gpu_step {
    meta { description: "x" outputs: { out: "x" } }
    parameter_meta {
        gpu: "use the GPU"
        gpu_queue_arn: "GPU queue"
        cpu_queue_arn: "CPU queue"
    }
    input {
        Boolean gpu = true
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }
    command <<<
        echo hi > out.txt
    >>>
    output { File out = "out.txt" }
    runtime {
        docker: "batchpipes/genomics:000000000000"
        cpu: 1
        memory: "1 GiB"
        disks: "local-disk 10 SSD"
        maxRetries: 0
        gpuCount: if gpu then 1 else 0
        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn
        ulimits: [{"name": "nofile", "softLimit": "4096", "hardLimit": "4096"}]  # !UnknownRuntimeKey
    }
}

workflow gpu_flow {
    meta { description: "x" outputs: { out: "x" } }
    parameter_meta {
        gpu_queue_arn: "GPU queue"
        cpu_queue_arn: "CPU queue"
    }
    input {
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }
    call gpu_step { input: gpu_queue_arn = gpu_queue_arn, cpu_queue_arn = cpu_queue_arn }
    output { File out = gpu_step.out }
}
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "flow.wdl"
    path.write_text(text)
    return cromwell.wdl_runtime_problems([path])


def test_the_documented_gpu_routing_passes_both_checkers(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD_GPU) == []
    proc = subprocess.run([sys.executable, "-m", "WDL", "check", "--strict", str(tmp_path / "flow.wdl")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("old, new, expected", [
    ("        maxRetries: 0\n", "        maxRetries: 0\n        preemptible: 2\n",
     "'preemptible' is not read by Cromwell"),
    ("  # !UnknownRuntimeKey", "", "'ulimits' is unknown to miniwdl"),
    ("        gpuCount: if gpu then 1 else 0\n", "        gpu: true\n", "'gpu' without 'gpuCount'"),
    ("        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn\n", "", "GPU task without 'queueArn'"),
    ("queueArn: if gpu then gpu_queue_arn else cpu_queue_arn",
     'queueArn: "arn:aws:batch:eu-west-1:123456789012:job-queue/q"', "not a hard-coded ARN"),
    ("input: gpu_queue_arn = gpu_queue_arn, ", "input: ", "does not pass 'gpu_queue_arn'"),
    ('disks: "local-disk 10 SSD"', 'disks: "scratch 10 SSD"', "disks 'scratch 10 SSD'"),
    ('memory: "1 GiB"', 'memory: "lots"', "memory 'lots'"),
    ("        cpu: 1\n", "", "runtime has no 'cpu'"),
])
def test_runtime_checks_catch_each_mistake(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD_GPU
    problems = _problems(tmp_path, GOOD_GPU.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


def test_workflow_without_gpu_queue_input_is_flagged(tmp_path: Path) -> None:
    declared = "        String gpu_queue_arn = \"\"\n        String cpu_queue_arn = \"\"\n    }\n    call"
    passed = "input: gpu_queue_arn = gpu_queue_arn, cpu_queue_arn = cpu_queue_arn"
    assert declared in GOOD_GPU and passed in GOOD_GPU
    empty = 'input: gpu_queue_arn = "", cpu_queue_arn = ""'
    text = GOOD_GPU.replace(declared, "    }\n    call").replace(passed, empty)
    problems = _problems(tmp_path, text)
    assert any("has no 'String gpu_queue_arn' input" in p for p in problems), problems


def test_literal_shape_of_interpolated_strings() -> None:
    doc = WDL.parse_document('version 1.0\ntask t { input { Int n = 3 } command {} '
                             'runtime { disks: "local-disk ~{n} SSD" memory: "~{n} GiB" } }')
    task = doc.tasks[0]
    assert cromwell._literal_shape(task.runtime["disks"]) == "local-disk 1 SSD"
    assert cromwell._literal_shape(task.runtime["memory"]) == "1 GiB"


def test_bucket_names(expect_user_error) -> None:
    assert cromwell.check_bucket_name("my-bucket.data") == "my-bucket.data"
    for bad in ("My_Bucket", "ab", "-bucket", "bucket-", "a..b", "192.168.1.2", "x" * 64):
        assert "invalid S3 bucket name" in expect_user_error(cromwell.check_bucket_name, bad)
    assert "use 'bkt'" in expect_user_error(cromwell.check_bucket_name, "s3://bkt/prefix")


def test_queue_checks(expect_user_error) -> None:
    assert cromwell.check_queues(CPU, GPU, None) == "eu-west-1"
    assert cromwell.check_queues(CPU, GPU, "eu-west-1") == "eu-west-1"
    assert "malformed job queue ARN" in expect_user_error(cromwell.check_queues, "arn:aws:batch:eu-west-1:1:q", GPU,
                                                         None)
    assert "--region is us-east-1" in expect_user_error(cromwell.check_queues, CPU, GPU, "us-east-1")
    other = GPU.replace("eu-west-1", "us-west-2")
    assert "both queues" in expect_user_error(cromwell.check_queues, CPU, other, None)
    assert "account" in expect_user_error(cromwell.check_queues, CPU, GPU.replace("123456789012", "210987654321"),
                                          None)
    with pytest.raises(UserError, match="unknown AWS region"):
        cromwell.check_queues(CPU.replace("eu-west-1", "mars-north-1"), GPU.replace("eu-west-1", "mars-north-1"),
                              None)
