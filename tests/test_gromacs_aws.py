"""GROMACS on AWS, checked without an account: the GPU path of the WDL (statically), the CUDA image
(statically), the multi-node job definition against botocore's real API model and moto, and the
submit/wait flow and the ``batchpipes aws mnp submit`` command against moto."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import WDL
from batchpipes import cli, containers, settings, workflows
from batchpipes.aws import mnp, session
from batchpipes.errors import UserError
from botocore.validate import ParamValidator
from moto import mock_aws
from scriptload import load_script

REPO = settings.REPO_ROOT
REGION = "eu-west-1"
ENTRYPOINT = REPO / "containers" / "shared" / "mnp_entrypoint.py"


@pytest.fixture(autouse=True)
def _fake_aws_everywhere(fake_aws: str) -> None:
    """Every test here runs with fake credentials (conftest ``fake_aws``)."""


# -- the GPU path of the workflow, statically ------------------------------------------------------


def production_task() -> WDL.Tree.Task:
    doc = WDL.load(str(REPO / "wdl" / "gromacs.wdl"))
    lib = next(i.doc for i in doc.imports if i.namespace == "gmx")
    return next(t for t in lib.tasks if t.name == "production")


GPU_Q = "arn:aws:batch:eu-west-1:111122223333:job-queue/bp-gpu"
CPU_Q = "arn:aws:batch:eu-west-1:111122223333:job-queue/bp-cpu"


class _FileStdLib(WDL.StdLib.Base):
    """The standard library with write_lines() & co. writing real files (local paths as they are)."""

    def _virtualize_filename(self, filename: str) -> str:
        return filename

    def _devirtualize_filename(self, filename: str) -> str:
        return filename


def evaluate_production(gpu: bool, **strings: str) -> tuple[dict[str, Any], str]:
    """The production task's runtime attributes and command for ``gpu``, with its default inputs."""
    task = production_task()
    stdlib = _FileStdLib(wdl_version="1.0", write_dir=tempfile.mkdtemp(prefix="bp-wdl-"))
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    given = {"tpr": WDL.Value.File("/data/md.tpr"), "nsteps": WDL.Value.Int(1000),
             "name": WDL.Value.String("p"), "gpu": WDL.Value.Boolean(gpu),
             "resume_checkpoint": WDL.Value.Null(),
             **{k: WDL.Value.String(v) for k, v in strings.items()}}
    for decl in task.inputs or []:
        value = given.get(decl.name)
        if value is None and decl.expr is not None:
            value = decl.expr.eval(env, stdlib=stdlib)
        env = env.bind(decl.name, value if value is not None else WDL.Value.Null())
    runtime = {k: v.eval(env, stdlib=stdlib).value for k, v in task.runtime.items()}
    command = "".join(p if isinstance(p, str) else str(p.eval(env, stdlib=stdlib).value)
                      for p in task.command.parts)
    return runtime, command


def production_image(gpu: bool) -> str:
    """The image the workflow gives the production call, evaluated with its defaults for ``gpu``."""
    doc = WDL.load(str(REPO / "wdl" / "gromacs.wdl"))
    wf = doc.workflow
    assert wf is not None
    stdlib = WDL.StdLib.Base(wdl_version="1.0")
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    env = env.bind("gpu", WDL.Value.Boolean(gpu))
    for name in ("gromacs_image", "gromacs_cuda_image"):
        decl = next(d for d in wf.inputs or [] if d.name == name)
        env = env.bind(name, decl.expr.eval(env, stdlib=stdlib))
    call = next(c for c in wf.body if isinstance(c, WDL.Tree.Call) and c.name == "production")
    assert str(call.inputs["gpu"]) == "gpu"
    return str(call.inputs["docker_image"].eval(env, stdlib=stdlib).value)


def test_gpu_production_requests_a_gpu_and_the_cuda_image() -> None:
    runtime, command = evaluate_production(gpu=True, gpu_queue_arn=GPU_Q, cpu_queue_arn=CPU_Q)
    assert runtime["gpuCount"] == 1
    assert runtime["queueArn"] == GPU_Q
    assert production_image(gpu=True) == containers.get("gromacs-cuda").pinned
    assert "gromacs-tasks production" in command and "--gpu true" in command  # the script's GPU flags


def test_cpu_production_requests_no_gpu() -> None:
    runtime, command = evaluate_production(gpu=False, gpu_queue_arn=GPU_Q, cpu_queue_arn=CPU_Q)
    assert runtime["gpuCount"] == 0
    assert runtime["queueArn"] == CPU_Q
    assert production_image(gpu=False) == containers.get("gromacs").pinned
    assert runtime["docker"] == containers.get("gromacs").pinned  # the task's own default
    assert "--gpu false" in command
    assert runtime["cpu"] >= 1 and runtime["maxRetries"] == 0 and runtime["awsBatchRetryAttempts"] >= 1


def test_cuda_image_is_static_only_and_gpu_ready() -> None:
    image = containers.get("gromacs-cuda")
    assert image.local_build is False
    text = (image.context / "Dockerfile").read_text()
    assert re.search(r"NVIDIA_DRIVER_CAPABILITIES=compute,utility", text)
    assert "-DGMX_GPU=CUDA" in text and "-DGMX_MPI=$mpi" in text
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:\S+runtime", text, re.M)
    assert re.search(r"sha256sum -c", text), "the source tarball must be checked"
    with pytest.raises(UserError, match="GPU build host"):
        containers.build(image)


def test_both_images_ship_the_same_entrypoint() -> None:
    for name in ("gromacs", "gromacs-cuda"):
        assert "mnp_entrypoint.py" in containers.get(name).shared
        dockerfile = (REPO / "containers" / name / "Dockerfile").read_text()
        assert "COPY shared/mnp_entrypoint.py /usr/local/bin/mnp-entrypoint" in dockerfile
        assert "rm -f /etc/ssh/ssh_host_" in dockerfile, "no host keys may stay in the image"


# -- the multi-node job definition -----------------------------------------------------------------


def validate_against_botocore(operation: str, params: dict[str, Any]) -> None:
    client = boto3.client("batch", region_name=REGION)
    shape = client.meta.service_model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()


def test_job_definition_matches_the_batch_api_shape() -> None:
    kwargs = mnp.job_definition("gmx-mnp", "123.dkr.ecr.eu-west-1.amazonaws.com/batchpipes/gromacs:abc",
                                num_nodes=4, vcpus=16, memory_mib=60000, gpus_per_node=1,
                                job_role_arn="arn:aws:iam::123456789012:role/gmx", timeout_seconds=7200)
    validate_against_botocore("RegisterJobDefinition", kwargs)
    assert kwargs["type"] == "multinode" and kwargs["platformCapabilities"] == ["EC2"]
    nodes = kwargs["nodeProperties"]
    assert nodes["numNodes"] == 4 and nodes["mainNode"] == 0
    (node_range,) = nodes["nodeRangeProperties"]
    assert node_range["targetNodes"] == "0:"
    container = node_range["container"]
    resources = {r["type"]: r["value"] for r in container["resourceRequirements"]}
    assert resources == {"VCPU": "16", "MEMORY": "60000", "GPU": "1"}
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["MNP_SLOTS"] == "16" and env["MNP_RANKS_PER_NODE"] == "1" and int(env["MNP_RENDEZVOUS_TIMEOUT"]) > 0
    assert container["command"][0] == "mnp-entrypoint" and "gmx_mpi" in container["command"]
    assert container["jobRoleArn"].endswith(":role/gmx") and container["privileged"] is False
    retry = kwargs["retryStrategy"]
    assert retry["attempts"] >= 2
    assert retry["evaluateOnExit"][0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
    assert retry["evaluateOnExit"][-1]["action"] == "EXIT"
    assert kwargs["timeout"] == {"attemptDurationSeconds": 7200}


def test_job_definition_rejects_a_misspelt_field() -> None:
    kwargs = mnp.job_definition("d", "img", 2, 2, 2048)
    kwargs["nodeProperties"]["nodeRangeProperties"][0]["container"]["vcpu"] = 2
    client = boto3.client("batch", region_name=REGION)
    shape = client.meta.service_model.operation_model("RegisterJobDefinition").input_shape
    assert ParamValidator().validate(kwargs, shape).has_errors()


@pytest.mark.parametrize("bad, fragment", [
    (dict(num_nodes=1), "a multi-node job needs at least 2 nodes, not 1"),
    (dict(vcpus=0), "each node needs at least 1 vCPU and 512 MiB, not 0 vCPU / 2048 MiB"),
    (dict(memory_mib=256), "each node needs at least 1 vCPU and 512 MiB, not 2 vCPU / 256 MiB"),
    (dict(gpus_per_node=-1), "gpus_per_node must be 0 or more, not -1"),
    (dict(timeout_seconds=10), "timeout_seconds must be at least 60 (AWS Batch's minimum), not 10"),
])
def test_job_definition_bad_sizes(bad: dict[str, int], fragment: str, expect_user_error) -> None:
    args: dict[str, Any] = dict(name="d", image="img", num_nodes=2, vcpus=2, memory_mib=2048)
    args.update(bad)
    assert fragment in expect_user_error(mnp.job_definition, **args)


def batch_queue(batch: Any, iam: Any) -> str:
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"},
                                               "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName="mnp-ce", type="UNMANAGED", state="ENABLED",
                                           serviceRole=role)["computeEnvironmentArn"]
    return str(batch.create_job_queue(jobQueueName="mnp-queue", state="ENABLED", priority=1,
                                      computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}])
               ["jobQueueArn"])


MOTO = {"batch": {"use_docker": False}}


@mock_aws(config=MOTO)
def test_register_describe_and_submit_and_wait() -> None:
    batch = boto3.client("batch", region_name=REGION)
    queue = batch_queue(batch, boto3.client("iam", region_name=REGION))
    registered = batch.register_job_definition(**mnp.job_definition("gmx-mnp", "img:1", 2, 4, 8192))
    (described,) = batch.describe_job_definitions(jobDefinitionName="gmx-mnp")["jobDefinitions"]
    assert described["type"] == "multinode" and described["platformCapabilities"] == ["EC2"]
    assert described["retryStrategy"]["evaluateOnExit"][0]["onStatusReason"] == "Host EC2*"
    job = mnp.submit_and_wait(batch, "run-1", queue, registered["jobDefinitionArn"], poll_seconds=0.2,
                              timeout_seconds=120)
    assert job["status"] == "SUCCEEDED" and job["jobName"] == "run-1"
    # moto keeps the node properties on the job (its job definition description leaves them out)
    assert job["nodeProperties"]["mainNode"] == 0 and job["nodeProperties"]["numNodes"] == 2
    assert job["nodeProperties"]["nodeRangeProperties"][0]["targetNodes"] == "0:"


@mock_aws(config=MOTO)
def test_submit_and_wait_reports_failure(monkeypatch: pytest.MonkeyPatch, expect_user_error) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto's switch: the job fails on the instance
    batch = boto3.client("batch", region_name=REGION)
    queue = batch_queue(batch, boto3.client("iam", region_name=REGION))
    arn = batch.register_job_definition(**mnp.job_definition("gmx-mnp", "img:1", 2, 4, 8192))["jobDefinitionArn"]
    message = expect_user_error(mnp.submit_and_wait, batch, "run-2", queue, arn, poll_seconds=0.2,
                                timeout_seconds=120)
    (summary,) = batch.list_jobs(jobQueue=queue, jobStatus="FAILED")["jobSummaryList"]
    (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
    assert f"AWS Batch job run-2 ({job['jobId']}) FAILED: " in message
    assert (job.get("statusReason") or "no status reason given") in message


def record_submissions(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every SubmitJob request of the CLI's Batch client, and the secret object it names as it is
    while the job runs (the nodes of a real job read it then). The requests still go to moto."""
    seen: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **_kwargs: Any) -> None:
        entry: dict[str, Any] = {"params": params}
        for override in params.get("nodeOverrides", {}).get("nodePropertyOverrides", []):
            for env in override["containerOverrides"].get("environment", []):
                if env["name"] == "MNP_SECRET_URI":
                    bucket, _, key = env["value"][len("s3://"):].partition("/")
                    obj = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)
                    entry.update(uri=env["value"], secret=obj["Body"].read(), sse=obj.get("ServerSideEncryption"))
        seen.append(entry)

    real_client = session.client

    def client(sess: Any, service: str) -> Any:
        made = real_client(sess, service)
        if service == "batch":
            made.meta.events.register("provide-client-params.batch.SubmitJob", hook)
        return made

    monkeypatch.setattr(session, "client", client)
    return seen


def secret_keys(bucket: str) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket, Prefix="run1/in/")
    return [o["Key"] for o in listed.get("Contents", []) if ".batchpipes-mnp/" in o["Key"]]


@mock_aws(config=MOTO)
def test_cli_mnp_submit_end_to_end(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    batch = boto3.client("batch", region_name=REGION)
    queue = batch_queue(batch, boto3.client("iam", region_name=REGION))
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="bucket", Key="run1/in/topol.tpr", Body=b"tpr")
    seen = record_submissions(monkeypatch)
    rc = cli.main(["aws", "mnp", "submit", "--image", "img:1", "--input-uri", "s3://bucket/run1/in/",
                   "--output-uri", "s3://bucket/run1/out/", "--nodes", "3", "--vcpus", "8", "--memory-mib", "16000",
                   "--job-queue", queue, "--poll-seconds", "0.2", "--region", REGION,
                   "--allowed-networks", "10.0.1.0/24, 10.0.2.7/24"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "SUCCEEDED"
    (definition,) = batch.describe_job_definitions(jobDefinitionName="batchpipes-gromacs-mnp")["jobDefinitions"]
    assert definition["type"] == "multinode"
    (job,) = batch.describe_jobs(jobs=[result["jobId"]])["jobs"]
    container = job["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert container["command"][:5] == ["mnp-entrypoint", "--input-uri", "s3://bucket/run1/in/", "--output-uri",
                                        "s3://bucket/run1/out/"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["MNP_ALLOWED_NETWORKS"] == "10.0.1.0/24,10.0.2.0/24" and env["MNP_HANDSHAKE_TIMEOUT"] == "10"
    assert job["nodeProperties"]["numNodes"] == 3
    # the job got the URI of a fresh secret (never the secret itself); the secret is gone once the job ended
    (submission,) = seen
    assert re.fullmatch(r"s3://bucket/run1/in/\.batchpipes-mnp/[0-9a-f]{32}\.key", submission["uri"])
    assert re.fullmatch(rb"[0-9a-f]{64}\n", submission["secret"]) and submission["sse"] == "AES256"
    assert submission["params"]["nodeOverrides"]["nodePropertyOverrides"][0]["targetNodes"] == "0:"
    assert submission["secret"].strip().decode() not in json.dumps(submission["params"]) + json.dumps(job, default=str)
    assert secret_keys("bucket") == []
    assert s3.get_object(Bucket="bucket", Key="run1/in/topol.tpr")["Body"].read() == b"tpr"


@mock_aws(config=MOTO)
def test_secret_kept_while_the_job_runs_and_deleted_when_it_failed(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture,
                                                                   expect_user_error) -> None:
    batch = boto3.client("batch", region_name=REGION)
    queue = batch_queue(batch, boto3.client("iam", region_name=REGION))
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    arn = batch.register_job_definition(**mnp.job_definition("gmx-mnp", "img:1", 2, 4, 8192))["jobDefinitionArn"]
    # Ctrl-C while waiting (during the first DescribeJobs): the job still runs, and its retries need the secret

    def interrupt(**_kwargs: Any) -> None:
        raise KeyboardInterrupt

    batch.meta.events.register("before-call.batch.DescribeJobs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnp.submit_and_wait(batch, "run-3", queue, arn, poll_seconds=0.2, s3_client=s3, input_uri="s3://bucket/run1/in")
    batch.meta.events.unregister("before-call.batch.DescribeJobs", interrupt)
    (kept,) = secret_keys("bucket")
    assert f"its rendezvous secret s3://bucket/{kept} stays until it ends" in caplog.text
    s3.delete_object(Bucket="bucket", Key=kept)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    message = expect_user_error(mnp.submit_and_wait, batch, "run-4", queue, arn, poll_seconds=0.2,
                                timeout_seconds=120, s3_client=s3, input_uri="s3://bucket/run1/in/")
    assert "AWS Batch job run-4 (" in message and "FAILED" in message
    assert secret_keys("bucket") == []
    # no bucket: one line, before anything is submitted
    message = expect_user_error(mnp.submit_and_wait, batch, "run-5", queue, arn, s3_client=s3,
                                input_uri="s3://no-such-bucket/in/")
    assert message == ("cannot store the job's rendezvous secret under s3://no-such-bucket/in/: NoSuchBucket: The "
                       "specified bucket does not exist: the submitting credentials need s3:PutObject and "
                       "s3:DeleteObject on the input prefix")
    names = {j["jobName"] for s in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
             for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]}
    assert "run-5" not in names


def test_cli_mnp_bad_allowed_networks(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["aws", "mnp", "definition", "--image", "img:1", "--input-uri", "s3://bucket/in/",
                   "--output-uri", "s3://bucket/out/", "--allowed-networks", "10.0.0.0/16,subnet-0abc"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == ("error: --allowed-networks has 'subnet-0abc', not an IPv4 network: "
                                               "give CIDRs such as 10.0.0.0/16, separated by commas")


def test_cli_mnp_submit_bad_uri_and_no_credentials(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = ["aws", "mnp", "submit", "--image", "img:1", "--job-queue", "q", "--region", REGION]
    assert cli.main(base + ["--input-uri", "/local/in", "--output-uri", "s3://bucket/out/"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --input-uri is '/local/in'") and "\n" not in err
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", "http://127.0.0.1:9")  # never reach out, whatever happens
    assert cli.main(base + ["--input-uri", "s3://bucket/in/", "--output-uri", "s3://bucket/out/"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no AWS credentials found") and "\n" not in err
    uris = ["--input-uri", "s3://bucket/in/", "--output-uri", "s3://bucket/out/"]
    assert cli.main(base + uris + ["--profile", "nope"]) == 2  # the shared session: --profile is honoured
    assert capsys.readouterr().err.strip() == ("error: AWS profile 'nope' not found: check ~/.aws/config or "
                                               "drop --profile")


@pytest.mark.parametrize("words", [["aws", "mnp", "definition"], ["gromacs", "mnp-definition"]])  # old spelling too
def test_cli_mnp_definition_prints_valid_kwargs(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*words, "--image", "img:1", "--input-uri", "s3://bucket/in/",
                     "--output-uri", "s3://bucket/out/", "--gpus-per-node", "4"]) == 0
    kwargs = json.loads(capsys.readouterr().out)
    validate_against_botocore("RegisterJobDefinition", kwargs)
    command = kwargs["nodeProperties"]["nodeRangeProperties"][0]["container"]["command"]
    assert command[-6:] == ["-nb", "gpu", "-pme", "gpu", "-bonded", "gpu"]


# -- the entrypoint's S3 staging (checkpoint round trip after a Spot interruption) -----------------


def load_entrypoint() -> Any:
    return load_script(ENTRYPOINT, "mnp_entrypoint")


@mock_aws
def test_entrypoint_stages_inputs_and_checkpoints_through_s3(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ep = load_entrypoint()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="mdrun", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="mdrun", Key="in/topol.tpr", Body=b"tpr-bytes")
    s3.put_object(Bucket="mdrun", Key="in/sub/ignored.txt", Body=b"x")
    s3.put_object(Bucket="mdrun", Key="out/md.cpt", Body=b"checkpoint of attempt 1")
    s3.put_object(Bucket="mdrun", Key="out/md.log", Body=b"log of attempt 1")
    monkeypatch.setenv("MNP_INPUT_URI", "s3://mdrun/in/")
    monkeypatch.setenv("MNP_OUTPUT_URI", "s3://mdrun/out")
    work = tmp_path / "work"
    work.mkdir()
    ep.stage_in(work)
    assert sorted(p.name for p in work.iterdir()) == ["md.cpt", "topol.tpr"]
    assert (work / "md.cpt").read_bytes() == b"checkpoint of attempt 1"
    (work / "md.cpt").write_bytes(b"checkpoint of attempt 2")
    (work / "md.xtc").write_bytes(b"frames")
    ep.stage_out(work)
    assert s3.get_object(Bucket="mdrun", Key="out/md.cpt")["Body"].read() == b"checkpoint of attempt 2"
    head = s3.head_object(Bucket="mdrun", Key="out/md.xtc")
    assert head["ServerSideEncryption"] == "AES256"


@mock_aws
def test_entrypoint_reads_the_secret_from_s3() -> None:
    ep = load_entrypoint()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="mdrun", CreateBucketConfiguration={"LocationConstraint": REGION})
    uri = mnp.put_secret(s3, "s3://mdrun/in/")
    secret = ep.load_secret(uri)
    assert re.fullmatch(rb"[0-9a-f]{64}", secret)
    assert ep.download_prefix("s3://mdrun/in/", Path("/nonexistent")) == []  # input staging skips the secret
    mnp.delete_secret(s3, uri)
    with pytest.raises(ep.RendezvousError) as info:
        ep.load_secret(uri)
    assert str(info.value) == (f"cannot read the rendezvous secret {uri}: NoSuchKey (The specified key does not "
                               "exist.): check MNP_SECRET_URI and that every node can read it (the job role needs "
                               "s3:GetObject on it; mnp-submit deletes it when the job has ended)")


def test_entrypoint_needs_batch_variables(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ep = load_entrypoint()
    for key in ("AWS_BATCH_JOB_NUM_NODES", "AWS_BATCH_JOB_NODE_INDEX"):
        monkeypatch.delenv(key, raising=False)
    assert ep.main(["--", "true"]) == 1
    assert capsys.readouterr().err.strip() == (
        "ERROR: AWS_BATCH_JOB_NUM_NODES is not set: run this entrypoint as an AWS Batch multi-node job "
        "(or set the AWS_BATCH_JOB_* variables yourself)")


def test_no_gromacs_task_retries_a_deterministic_failure() -> None:
    """maxRetries 0 everywhere: a GROMACS failure on the same input fails again (Cromwell would rerun it on a fresh
    instance for nothing); a Spot reclaim is AWS Batch's retry (awsBatchRetryAttempts), which stays."""
    tasks = workflows.load(settings.WDL_DIR / "tasks" / "gromacs.wdl").tasks
    assert {t.name for t in tasks} == {"prepare_structure", "prepare_system", "md_stage", "production", "analysis"}
    for task in tasks:
        defaults = {d.name: d.expr.literal.value for d in task.inputs or [] if d.expr is not None and d.expr.literal}
        assert defaults["max_retries"] == 0, task.name
        assert defaults["batch_retries"] >= 2, task.name
        assert str(task.runtime["maxRetries"]) == "max_retries", task.name
