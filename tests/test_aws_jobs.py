"""Scripted Batch runs: plan checks, the watcher (backoff, jitter, Spot resubmission), CLI against moto_server.

Job state transitions (RUNNABLE -> RUNNING -> FAILED by a Spot reclaim) cannot be produced by moto without
Docker, so the watcher is driven by botocore's Stubber: real DescribeJobs/SubmitJob response shapes, validated
by botocore, with our requests checked against the expected parameters.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from batchpipes import cli as batchpipes_cli
from batchpipes.aws import jobs
from batchpipes.aws.cost import load_prices
from botocore.stub import Stubber
from moto import mock_aws

QUEUE = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"
JD = "arn:aws:batch:eu-west-1:123456789012:job-definition/bp-genomics:1"
X, X2, D, D2 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444")


def plan_file(tmp_path: Path, jobs_: list[dict[str, Any]]) -> Path:
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"jobs": jobs_}))
    return p


def test_plan_is_ordered_by_dependencies(tmp_path: Path) -> None:
    order = jobs.load_plan(plan_file(tmp_path, [
        {"name": "c", "queue": "q", "definition": "d", "depends_on": ["b", "a"]},
        {"name": "b", "queue": "q", "definition": "d", "depends_on": ["a"]},
        {"name": "a", "queue": QUEUE, "definition": "d", "command": ["echo", "hi"], "vcpus": 2},
    ]))
    assert [j.name for j in order] == ["a", "b", "c"]
    args = order[2].submit_args({"a": X, "b": D})
    assert args["dependsOn"] == [{"jobId": D}, {"jobId": X}]
    assert order[0].submit_args({})["containerOverrides"] == {
        "command": ["echo", "hi"], "resourceRequirements": [{"type": "VCPU", "value": "2"}]}


@pytest.mark.parametrize("jobs_, fragment", [
    ([{"name": "a", "queue": "q", "definition": "d", "depends_on": ["b"]},
      {"name": "b", "queue": "q", "definition": "d", "depends_on": ["a"]}], "dependency cycle a -> b -> a"),
    ([{"name": "a", "queue": "q", "definition": "d", "depends_on": ["zz"]}], "depends on unknown job 'zz'"),
    ([{"name": "a", "queue": "arn:aws:batch:eu-west-1:12:job-queue/x", "definition": "d"}],
     "malformed job queue ARN"),
    ([{"name": "a", "queue": "q", "definition": "d", "cmd": []}], "unknown field(s) cmd"),
    ([{"name": "a", "queue": "q"}], "needs a string 'definition'"),
    ([], "at least one job"),
    ([{"name": "a", "queue": "q", "definition": "d"}, {"name": "b", "queue": "q", "definition": "d",
                                                       "depends_on": "a"}],
     "job 'b': depends_on must be a list of strings"),
    ([{"name": "a", "queue": "q", "definition": "d", "depends_on": ["b", 3]}],
     "job 'a': depends_on must be a list of strings"),
    ([{"name": "a", "queue": "q", "definition": "d", "command": "echo hi"}],
     "job 'a': command must be a list of strings"),
    ([{"name": "a", "queue": "q", "definition": "d", "environment": ["K=V"]}],
     "job 'a': environment must be an object of strings"),
    ([{"name": "a", "queue": "q", "definition": "d", "environment": {"THREADS": 4}}],
     "job 'a': environment must be an object of strings"),
    ([{"name": "a", "queue": "q", "definition": "d", "vcpus": 0}], "job 'a': vcpus must be a positive integer"),
    ([{"name": "a", "queue": "q", "definition": "d", "memory_mib": "7500"}],
     "job 'a': memory_mib must be a positive integer"),
    ([{"name": "a", "queue": "q", "definition": "d", "gpus": True}], "job 'a': gpus must be a positive integer"),
    ([{"name": "a", "queue": "q", "definition": "d", "vcpus": 2.5}], "job 'a': vcpus must be a positive integer"),
])
def test_bad_plans_are_one_line_errors(tmp_path: Path, expect_user_error, jobs_: list, fragment: str) -> None:
    assert fragment in expect_user_error(jobs.load_plan, plan_file(tmp_path, jobs_))


def test_plan_with_strings_and_numbers_of_the_right_types(tmp_path: Path) -> None:
    (only,) = jobs.load_plan(plan_file(tmp_path, [
        {"name": "a", "queue": "q", "definition": "d", "environment": {"SAMPLE": "S1"}, "memory_mib": 7500,
         "gpus": 1, "depends_on": []}]))
    assert only.submit_args({})["containerOverrides"] == {
        "environment": [{"name": "SAMPLE", "value": "S1"}],
        "resourceRequirements": [{"type": "MEMORY", "value": "7500"}, {"type": "GPU", "value": "1"}]}


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe\x00binary", "plan file '{path}' is not text"),
    (b'{"jobs": [', "plan file '{path}' is not valid JSON: line 1"),
    (b'[{"name": "a"}]', "plan file '{path}' must hold a JSON object"),
])
def test_unreadable_plan_files(tmp_path: Path, expect_user_error, content: bytes, fragment: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert fragment.format(path=path) in expect_user_error(jobs.load_plan, path)
    assert "not found" in expect_user_error(jobs.load_plan, tmp_path / "absent.json")


def job(jid: str, name: str, status: str, reason: str = "", deps: list[str] | None = None,
        stream: str | None = None, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    j: dict[str, Any] = {"jobId": jid, "jobName": name, "jobQueue": QUEUE, "jobDefinition": JD, "status": status,
                         "startedAt": 1_700_000_000_000,
                         "container": {"command": ["run", name],
                                       "environment": [{"name": "AWS_BATCH_JOB_ID", "value": jid},
                                                       {"name": "SAMPLE", "value": "S1"}]}}
    if reason:
        j["statusReason"] = reason
    if deps:
        j["dependsOn"] = [{"jobId": d} for d in deps]
    if stream:
        j["container"]["logStreamName"] = stream
    if attempts:
        j["attempts"] = attempts
    return j


def test_watch_resubmits_spot_reclaim_and_its_dependent() -> None:
    batch = boto3.client("batch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(batch)
    reclaim = "Host EC2 (instance i-0abc) terminated."
    polls = [
        [job(X, "align", "RUNNABLE"), job(D, "call", "PENDING", deps=[X])],
        [job(X, "align", "RUNNABLE"), job(D, "call", "PENDING", deps=[X])],  # no change: backoff grows
        [job(X, "align", "RUNNING", stream="bp-genomics/default/aaa"), job(D, "call", "PENDING", deps=[X])],
        [job(X, "align", "FAILED", reclaim, stream="bp-genomics/default/aaa",
             attempts=[{"statusReason": reclaim, "container": {"logStreamName": "bp-genomics/default/aaa"}}]),
         job(D, "call", "FAILED", "Dependent Job failed", deps=[X])],
    ]
    for p in polls:
        stub.add_response("describe_jobs", {"jobs": p}, {"jobs": [X, D] if p is not polls[-1] else [X, D]})
    stub.add_response("submit_job", {"jobId": X2, "jobName": "align"}, {
        "jobName": "align", "jobQueue": QUEUE, "jobDefinition": JD,
        "containerOverrides": {"command": ["run", "align"], "environment": [{"name": "SAMPLE", "value": "S1"}]}})
    stub.add_response("submit_job", {"jobId": D2, "jobName": "call"}, {
        "jobName": "call", "jobQueue": QUEUE, "jobDefinition": JD, "dependsOn": [{"jobId": X2}],
        "containerOverrides": {"command": ["run", "call"], "environment": [{"name": "SAMPLE", "value": "S1"}]}})
    stub.add_response("describe_jobs", {"jobs": [job(X2, "align", "RUNNING", stream="s/x2"),
                                                 job(D2, "call", "PENDING", deps=[X2])]}, {"jobs": [X2, D2]})
    stub.add_response("describe_jobs", {"jobs": [job(X2, "align", "SUCCEEDED", stream="s/x2"),
                                                 job(D2, "call", "SUCCEEDED", deps=[X2], stream="s/d2")]},
                      {"jobs": [X2, D2]})
    lines: list[str] = []
    pauses: list[float] = []
    with stub:
        w = jobs.Watcher(batch, max_spot_retries=2, base_delay=4, max_delay=60, sleep=pauses.append,
                         rng=random.Random(7), report=lines.append)
        outcome = w.watch([X, D])
    stub.assert_no_pending_responses()
    assert outcome.ok and set(outcome.jobs) == {X2, D2}
    assert outcome.replaced == {X: X2, D: D2} and outcome.resubmits == {"align": 1}
    text = "\n".join(lines)
    assert f"align {X} RUNNABLE -> RUNNING  log stream: bp-genomics/default/aaa" in text
    assert f"align {X}: Spot reclaim (1/2): resubmitted as {X2}" in text
    assert f"call {D}: its dependency was resubmitted: resubmitted as {D2}" in text
    assert f"call {D2} RUNNING" not in text and f"call {D2} PENDING -> SUCCEEDED" in text
    # first poll sees changes (base delay), the unchanged second poll doubles it, a change resets it
    assert 2 <= pauses[0] <= 4 and 4 <= pauses[1] <= 8 and 2 <= pauses[2] <= 4
    assert len(pauses) == 5


def test_watch_gives_up_after_max_spot_retries() -> None:
    batch = boto3.client("batch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(batch)
    stub.add_response("describe_jobs", {"jobs": [job(X, "align", "FAILED", "Host EC2 (instance i-1) terminated.")]},
                      {"jobs": [X]})
    stub.add_response("submit_job", {"jobId": X2, "jobName": "align"}, None)
    stub.add_response("describe_jobs", {"jobs": [job(X2, "align", "FAILED", "Host EC2 (instance i-2) terminated.")]},
                      {"jobs": [X2]})
    lines: list[str] = []
    with stub:
        outcome = jobs.Watcher(batch, max_spot_retries=1, sleep=lambda _: None, report=lines.append).watch([X])
    stub.assert_no_pending_responses()
    assert not outcome.ok and outcome.jobs[X2]["status"] == "FAILED"
    assert "1 resubmission(s) already used" in lines[-1]


def test_ordinary_failure_is_not_resubmitted() -> None:
    batch = boto3.client("batch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(batch)
    stub.add_response("describe_jobs", {"jobs": [
        job(X, "align", "FAILED", "Essential container in task exited")]}, {"jobs": [X]})
    with stub:
        outcome = jobs.Watcher(batch, sleep=lambda _: None, report=lambda _: None).watch([X])
    stub.assert_no_pending_responses()  # no SubmitJob was made
    assert not outcome.ok and outcome.replaced == {}


# -- CLI against moto_server --------------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("batchpipes")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


def minimal_batch(endpoint: str) -> str:
    """An UNMANAGED compute environment, a queue and a job definition in moto_server; jobs finish without Docker."""
    req = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                 data=json.dumps({"batch": {"use_docker": False}}).encode())
    urllib.request.urlopen(req)
    return batch_setup()


def batch_setup() -> str:
    """The compute environment, queue (its ARN is returned) and job definition, in whichever moto is active."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="svc", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    batch = boto3.client("batch")
    ce = batch.create_compute_environment(computeEnvironmentName="bp-ce", type="UNMANAGED", state="ENABLED",
                                          serviceRole=role)["computeEnvironmentArn"]
    q = batch.create_job_queue(jobQueueName="bp-cpu", state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
    batch.register_job_definition(jobDefinitionName="bp-tool", type="container", containerProperties={
        "image": "busybox", "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})
    return str(q)


def test_cli_submit_watch_status_cost_end_to_end(aws_env: str, tmp_path: Path) -> None:
    queue = minimal_batch(aws_env)
    plan = plan_file(tmp_path, [
        {"name": "first", "queue": queue, "definition": "bp-tool", "command": ["echo", "1"]},
        {"name": "second", "queue": "bp-cpu", "definition": "bp-tool", "depends_on": ["first"]},
    ])
    record = tmp_path / "run.json"
    r = cli("aws", "submit", str(plan), "--record", str(record), "--watch", "--poll", "0.2", "--max-poll", "1")
    assert r.returncode == 0, r.stderr
    ids = json.loads(record.read_text())
    assert set(ids) == {"first", "second"}
    assert f"submitted second {ids['second']} to bp-cpu after first" in r.stdout
    assert r.stdout.count("SUCCEEDED") >= 2
    described = boto3.client("batch").describe_jobs(jobs=[ids["second"]])["jobs"][0]
    assert described["dependsOn"] == [{"jobId": ids["first"]}] or \
        [d["jobId"] for d in described["dependsOn"]] == [ids["first"]]

    st = cli("aws", "status", *ids.values())
    assert st.returncode == 0 and st.stdout.count("SUCCEEDED") == 2

    cost = cli("aws", "cost", *ids.values(), "--instance-type", "c5.xlarge", "--market", "on_demand")
    assert cost.returncode == 0, cost.stderr
    check_cost_report(cost.stdout, list(ids.values()), "c5.xlarge")


def check_cost_report(stdout: str, job_ids: list[str], instance_type: str) -> float:
    """Every job's USD (and the total) equals sum(stoppedAt - startedAt) / 3.6e6 x the table's hourly price,
    computed here from DescribeJobs; returns the total."""
    hourly = load_prices().hourly(instance_type, "on_demand")
    described = {j["jobId"]: j for j in boto3.client("batch").describe_jobs(jobs=job_ids)["jobs"]}
    rows = {cols[1]: cols for cols in (line.split() for line in stdout.splitlines())
            if len(cols) > 1 and cols[1] in described}
    total = 0.0
    for jid in job_ids:
        job_ = described[jid]
        usd = (job_["stoppedAt"] - job_["startedAt"]) / 3.6e6 * hourly
        total += usd
        name, _, status, _, itype, market, shown = rows[jid][:7]
        assert (name, status, itype, market) == (job_["jobName"], job_["status"], instance_type, "on_demand")
        assert float(shown) == pytest.approx(usd, abs=0.5e-4 + 1e-12), (jid, shown, usd)
    (total_line,) = [line for line in stdout.splitlines() if line.startswith("total ")]
    assert float(total_line.split()[-1]) == pytest.approx(total, abs=0.5e-4 + 1e-12), (total_line, total)
    return total


@mock_aws(config={"batch": {"use_docker": False}})
def test_cost_of_jobs_that_ran_for_a_second(fake_aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """moto_server's jobs take 0 ms; here moto's switch makes each job run 1 s (then fail), so the cost is not 0."""
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "1")
    queue = batch_setup()
    record = tmp_path / "run.json"
    plan = plan_file(tmp_path, [{"name": "one", "queue": queue, "definition": "bp-tool"},
                                {"name": "two", "queue": queue, "definition": "bp-tool"}])
    assert batchpipes_cli.main(["aws", "submit", str(plan), "--record", str(record)]) == 0
    ids = list(json.loads(record.read_text()).values())
    capsys.readouterr()
    assert batchpipes_cli.main(["aws", "cost", *ids, "--instance-type", "g4dn.12xlarge",
                                "--market", "on_demand"]) == 0
    total = check_cost_report(capsys.readouterr().out, ids, "g4dn.12xlarge")
    assert total == pytest.approx(2 / 3600 * 3.912, rel=0.2), "two jobs of about 1 s each"


def count_jobs(queue: str) -> int:
    batch = boto3.client("batch")
    return sum(len(batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"])
               for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"))


def test_cli_submit_checks_options_before_submitting(aws_env: str, tmp_path: Path) -> None:
    queue = minimal_batch(aws_env)
    plan = plan_file(tmp_path, [{"name": "first", "queue": queue, "definition": "bp-tool"},
                                {"name": "second", "queue": queue, "definition": "bp-tool", "depends_on": ["first"]}])
    for args, message in [
        (["--watch", "--poll", "0"], "error: --poll must be a positive number of seconds, not 0"),
        (["--watch", "--poll", "10", "--max-poll", "5"], "error: --max-poll (5) must be at least --poll (10)"),
        (["--record", str(tmp_path / "missing" / "run.json")],
         f"error: --record '{tmp_path / 'missing' / 'run.json'}': folder '{tmp_path / 'missing'}' does not exist"),
        (["--record", str(tmp_path)], f"error: --record '{tmp_path}' is a folder"),
    ]:
        r = cli("aws", "submit", str(plan), *args)
        assert r.returncode == 2 and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
        assert "submitted" not in r.stdout and count_jobs(queue) == 0, args
    record = tmp_path / "run.json"
    ok = cli("aws", "submit", str(plan), "--record", str(record))
    assert ok.returncode == 0, ok.stderr
    assert count_jobs(queue) == 2 and set(json.loads(record.read_text())) == {"first", "second"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("args, fragment", [
    (["watch", "not-a-job"], "is not a Batch job id"),
    (["watch", "55555555-5555-4555-8555-555555555555", "--poll", "0.1"], "no such Batch job"),
    (["cost", "55555555-5555-4555-8555-555555555555", "--instance-type", "z9.huge"],
     "no price for instance type 'z9.huge'"),
])
def test_cli_jobs_bad_input(aws_env: str, args: list[str], fragment: str) -> None:
    r = cli("aws", *args)
    assert r.returncode == 2, r.stdout
    assert fragment in r.stderr, r.stderr
    if not r.stderr.startswith("usage:"):  # argparse prints its usage line before its own one-line error
        assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0, r.stderr
