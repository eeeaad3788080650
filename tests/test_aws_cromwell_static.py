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


# -- retries: awsBatchEvaluateOnExit --------------------------------------------------------------


CROMWELL_CONDITIONS = {"onexitcode": "onExitCode", "onreason": "onReason", "onstatusreason": "onStatusReason"}


def cromwell_retry_strategy(attempts: int, evaluate_on_exit: list[dict[str, str]]) -> dict[str, object]:
    """The retryStrategy Cromwell puts into RegisterJobDefinition, as AwsBatchJobDefinition.retryStrategyBuilder
    builds it (release 92): keys and the action value compared lower-cased, unknown pairs dropped, one
    EvaluateOnExit per map -- an empty map gives an entry with nothing set. Added only when attempts != 0
    (AwsBatchJob.scala)."""
    entries = []
    for given in evaluate_on_exit:
        entry: dict[str, str] = {}
        for key, value in given.items():
            k = key.lower()
            if k == "action" and value.lower() in ("retry", "exit"):
                entry["action"] = value.upper()
            elif k in CROMWELL_CONDITIONS:
                entry[CROMWELL_CONDITIONS[k]] = value
        entries.append(entry)
    return {"attempts": attempts, "evaluateOnExit": entries}


def register_request(retry: dict[str, object]) -> dict[str, object]:
    return {"jobDefinitionName": "cromwell_x", "type": "container", "retryStrategy": retry,
            "containerProperties": {"image": "ubuntu:22.04", "command": ["/bin/bash", "-c", "true"]}}


def batch_validation_errors(request: dict[str, object]) -> str:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("batch").operation_model("RegisterJobDefinition")
    report = ParamValidator().validate(request, model.input_shape)
    return report.generate_report() if report.has_errors() else ""


def test_rendered_retry_strategy_is_valid_and_retries_only_host_reclaims() -> None:
    conf = cromwell.parse_conf(rendered())
    value = conf.get("backend.providers.AWSBATCH.config.default-runtime-attributes.awsBatchEvaluateOnExit")
    given = [{str(k): v for k, v in e.items()} for e in value]
    assert given == cromwell.EVALUATE_ON_EXIT == [{"onStatusReason": "Host EC2*", "action": "RETRY"},
                                                   {"onReason": "*", "action": "EXIT"}]
    retry = cromwell_retry_strategy(2, given)  # batch_retries = 2 in the workflows' tasks
    assert batch_validation_errors(register_request(retry)) == ""
    assert all(e.get("action") in ("RETRY", "EXIT") for e in retry["evaluateOnExit"])  # type: ignore[attr-defined]
    # what Cromwell sends without the attribute: its default [{}] -> an entry without the required action
    default = cromwell_retry_strategy(2, [{}])
    assert "Missing required parameter in retryStrategy.evaluateOnExit[0]: \"action\"" in batch_validation_errors(
        register_request(default))


ATTR = "awsBatchEvaluateOnExit = ["


@pytest.mark.parametrize("replacement, expected", [
    (None, "awsBatchEvaluateOnExit is not set"),
    ("awsBatchEvaluateOnExit = [{}]\n", "entry 1 has no action RETRY or EXIT"),
    ('awsBatchEvaluateOnExit = [{onStatusReason = "Host EC2*"}, {action = "EXIT", onReason = "*"}]\n',
     "entry 1 has no action"),
    ('awsBatchEvaluateOnExit = {action = "RETRY", onStatusReason = "Host EC2*"}\n', "must be a list of objects"),
    ('awsBatchEvaluateOnExit = [{action = "RETRY", onStatusReason = "Host EC2*"}]\n',
     "must end with an EXIT entry matching every failure"),
    ('awsBatchEvaluateOnExit = [{action = "EXIT", onExitCode = 1}, {action = "EXIT", onReason = "*"}]\n',
     "quote every value"),
    ('awsBatchEvaluateOnExit = [{action = "RETRY", onStatusReason = "Host EC2 (instance*"}, '
     '{action = "EXIT", onReason = "*"}]\n', "is not a Batch pattern"),
    ('awsBatchEvaluateOnExit = [{action = "RETRY", statusReason = "Host EC2*"}, {action = "EXIT", onReason = "*"}]\n',
     "has key(s) statusReason"),
    ('awsBatchEvaluateOnExit = [{action = "SKIP", onReason = "*"}]\n', "no action RETRY or EXIT"),
    ("awsBatchEvaluateOnExit = [" + ", ".join([f'{{action = "RETRY", onExitCode = "13{i}"}}' for i in range(5)])
     + ', {action = "EXIT", onReason = "*"}]\n', "Batch takes at most 5"),
])
def test_evaluate_on_exit_mistakes_are_caught(replacement: str | None, expected: str) -> None:
    text = rendered()
    start = text.index(ATTR)
    end = text.index("]\n", start) + 2
    broken = text[:start] + (replacement or "") + text[end:]
    problems = cromwell.check_aws_config(cromwell.parse_conf(broken))
    assert any(expected in p for p in problems), problems


def test_evaluate_on_exit_keys_in_any_case_are_accepted_as_cromwell_does() -> None:
    text = rendered()
    start = text.index(ATTR)
    end = text.index("]\n", start) + 2
    mine = ('awsBatchEvaluateOnExit = [{Action = "retry", OnStatusReason = "Host EC2*"}, '
            '{action = "retry", onExitCode = "137"}, {ACTION = "Exit", onExitCode = "*"}]\n')
    conf = cromwell.parse_conf(text[:start] + mine + text[end:])
    assert cromwell.check_aws_config(conf) == []
    value = conf.get("backend.providers.AWSBATCH.config.default-runtime-attributes.awsBatchEvaluateOnExit")
    retry = cromwell_retry_strategy(3, [{str(k): v for k, v in e.items()} for e in value])
    assert batch_validation_errors(register_request(retry)) == ""
    assert retry["evaluateOnExit"][0] == {"action": "RETRY", "onStatusReason": "Host EC2*"}  # type: ignore[index]


def test_retry_attempts_default_is_bounded_as_in_cromwell() -> None:
    text = rendered().replace('disks = "local-disk"', 'disks = "local-disk"\n          awsBatchRetryAttempts = 11')
    problems = cromwell.check_aws_config(cromwell.parse_conf(text))
    assert any("awsBatchRetryAttempts must be 0 to 10" in p for p in problems)


# -- concurrency and the ECR region ---------------------------------------------------------------


def test_concurrent_job_limit_default_and_option(expect_user_error) -> None:
    cfg = "backend.providers.AWSBATCH.config.concurrent-job-limit"
    assert cromwell.parse_conf(cromwell.TEMPLATE.read_text()).get(cfg) == cromwell.DEFAULT_CONCURRENT_JOB_LIMIT
    assert cromwell.DEFAULT_CONCURRENT_JOB_LIMIT < 100  # users report Batch 429s at 100 (cromwell#4355)
    assert cromwell.parse_conf(rendered()).get(cfg) == cromwell.DEFAULT_CONCURRENT_JOB_LIMIT
    assert cromwell.parse_conf(cromwell.render_aws_conf("bp-test-bucket", CPU, GPU, concurrent_job_limit=16).text
                               ).get(cfg) == 16
    assert "between 1 and 10000" in expect_user_error(cromwell.render_aws_conf, "bp-test-bucket", CPU, GPU,
                                                      concurrent_job_limit=0)
    bad = rendered().replace("concurrent-job-limit = 50", 'concurrent-job-limit = "many"')
    assert any("concurrent-job-limit must be a positive integer" in p
               for p in cromwell.check_aws_config(cromwell.parse_conf(bad)))


def test_docker_mirror_in_another_region_is_refused() -> None:
    text = rendered()
    mirror = ('        docker-mirror.dockerhub {{ enabled = true, address = '
              '"123456789012.dkr.ecr.{region}.amazonaws.com/docker-hub" }}\n        root = ')
    same = cromwell.parse_conf(text.replace("        root = ", mirror.format(region="eu-west-1"), 1))
    assert cromwell.check_aws_config(same) == []
    other = cromwell.parse_conf(text.replace("        root = ", mirror.format(region="us-east-1"), 1))
    assert any("docker-mirror.dockerhub.address is an ECR registry in us-east-1 but aws.region is eu-west-1" in p
               for p in cromwell.check_aws_config(other))
