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
from batchpipes.aws import jobs
from botocore.stub import Stubber

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
])
def test_bad_plans_are_one_line_errors(tmp_path: Path, expect_user_error, jobs_: list, fragment: str) -> None:
    assert fragment in expect_user_error(jobs.load_plan, plan_file(tmp_path, jobs_))


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
    """An UNMANAGED compute environment, a queue and a job definition in moto; jobs finish without Docker."""
    req = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                 data=json.dumps({"batch": {"use_docker": False}}).encode())
    urllib.request.urlopen(req)
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
    assert "c5.xlarge" in cost.stdout and cost.stdout.splitlines()[-2].startswith("total")


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
