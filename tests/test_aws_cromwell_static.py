"""Static checks of the Cromwell configurations (no AWS, no Cromwell).

The allowed keys come from Cromwell's source (see batchpipes/aws/cromwell.py for the files); the
checks are exercised on broken inputs too, so that each one is shown to be able to fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from batchpipes.aws import cromwell
from batchpipes.errors import UserError

CPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
GPU = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"


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


# WDL runtime sections (runtime keys, GPU routing) are checked by the WDL linter: tests/test_wdl_lint.py.


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
