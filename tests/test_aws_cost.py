"""Cost report: job seconds x instance price, instance type from the container instance or the queue."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from batchpipes.aws import cost
from botocore.stub import Stubber

QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/bp-cpu"
CE = "arn:aws:batch:us-east-1:123456789012:compute-environment/bp-mnp"
CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/bp-cluster/0123abcd"
A, B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
T0 = 1_700_000_000_000


def clients() -> tuple:
    kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return tuple(boto3.client(s, **kw) for s in ("batch", "ecs", "ec2"))


def test_bundled_prices_are_complete_and_dated() -> None:
    prices = cost.load_prices()
    assert prices.date and prices.source.startswith("https://aws.amazon.com/")
    from batchpipes.aws.infra import CPU_FAMILIES, GPU_FAMILIES, Spec
    for fam in CPU_FAMILIES + GPU_FAMILIES:
        assert any(t.startswith(fam + ".") for t in prices.table), fam
    assert Spec("x", [], [], []).mnp_instance_type in prices.table
    assert prices.hourly("c5.xlarge", "spot") == pytest.approx(0.17 * prices.spot_fraction)


def test_cost_per_attempt_from_instance_and_queue() -> None:
    batch, ecs, ec2 = clients()
    jobs = [
        {"jobId": A, "jobName": "align", "jobQueue": QUEUE, "jobDefinition": "d", "status": "SUCCEEDED",
         "startedAt": T0, "stoppedAt": T0 + 3_600_000,
         "attempts": [  # a Spot reclaim after 30 min on a g4dn.xlarge, then 1 h on the same type
             {"container": {"containerInstanceArn": CI}, "startedAt": T0 - 1_800_000, "stoppedAt": T0},
             {"container": {"containerInstanceArn": CI}, "startedAt": T0, "stoppedAt": T0 + 3_600_000}]},
        {"jobId": B, "jobName": "md", "jobQueue": QUEUE, "jobDefinition": "d", "status": "SUCCEEDED",
         "startedAt": T0, "stoppedAt": T0 + 900_000, "nodeProperties": {"numNodes": 2, "mainNode": 0,
                                                                  "nodeRangeProperties": [{"targetNodes": "0:"}]},
         "attempts": [{"container": {}, "startedAt": T0, "stoppedAt": T0 + 900_000}]},
    ]
    sb, se, s2 = Stubber(batch), Stubber(ecs), Stubber(ec2)
    sb.add_response("describe_jobs", {"jobs": jobs}, {"jobs": [A, B]})
    sb.add_response("describe_job_queues", {"jobQueues": [{
        "jobQueueName": "bp-cpu", "jobQueueArn": QUEUE, "state": "ENABLED", "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": CE}]}]}, {"jobQueues": [QUEUE]})
    sb.add_response("describe_compute_environments", {"computeEnvironments": [{
        "computeEnvironmentName": "bp-mnp", "computeEnvironmentArn": CE,
        "computeResources": {"type": "EC2", "maxvCpus": 288, "subnets": ["subnet-1"],
                             "instanceTypes": ["c5n.18xlarge"]}}]}, {"computeEnvironments": [CE]})
    for _ in range(2):
        se.add_response("describe_container_instances", {"containerInstances": [{
            "containerInstanceArn": CI, "ec2InstanceId": "i-0abc",
            "attributes": [{"name": "ecs.instance-type", "value": "g4dn.xlarge"}]}], "failures": []},
            {"cluster": "bp-cluster", "containerInstances": [CI]})
        s2.add_response("describe_instances", {"Reservations": [{"Instances": [
            {"InstanceId": "i-0abc", "InstanceLifecycle": "spot"}]}]}, {"InstanceIds": ["i-0abc"]})
    prices = cost.load_prices()
    with sb, se, s2:
        costs = cost.job_costs(batch, ecs, ec2, [A, B], prices)
    for s in (sb, se, s2):
        s.assert_no_pending_responses()
    align, md = costs
    spot = 0.526 * prices.spot_fraction
    assert [a.seconds for a in align.attempts] == [1800, 3600]
    assert {(a.instance_type, a.market, a.source) for a in align.attempts} == {
        ("g4dn.xlarge", "spot", "container instance")}
    assert align.usd == pytest.approx(1.5 * spot)
    assert md.attempts[0].instance_type == "c5n.18xlarge" and md.attempts[0].market == "on_demand"
    assert md.usd == pytest.approx(0.25 * 3.888 * 2), "a 2-node job pays for two instances"
    lines = cost.report(costs, prices)
    total = next(line for line in lines if line.startswith("total"))
    assert f"{align.usd + md.usd:9.4f}" in total
    assert "(2 attempts)" in lines[1] and "(2 nodes)" in lines[2]


def test_unknown_instance_type_asks_for_flag(expect_user_error) -> None:
    batch, ecs, ec2 = clients()
    sb = Stubber(batch)
    sb.add_response("describe_jobs", {"jobs": [{
        "jobId": A, "jobName": "align", "jobQueue": QUEUE, "jobDefinition": "d", "status": "SUCCEEDED",
        "startedAt": T0, "stoppedAt": T0 + 60_000}]}, {"jobs": [A]})
    sb.add_response("describe_job_queues", {"jobQueues": []}, {"jobQueues": [QUEUE]})
    with sb:
        msg = expect_user_error(cost.job_costs, batch, ecs, ec2, [A], cost.load_prices())
    assert "cannot tell the instance type of job align" in msg and "--instance-type" in msg


def test_price_file_override_and_bad_price_file(tmp_path: Path, expect_user_error) -> None:
    own = tmp_path / "p.json"
    own.write_text(json.dumps({"date": "2025-01", "source": "mine", "prices": {
        "c5.xlarge": {"on_demand": 0.2, "spot": 0.05}}}))
    prices = cost.load_prices(own)
    assert prices.hourly("c5.xlarge", "spot") == 0.05 and prices.hourly("c5.xlarge", "on_demand") == 0.2
    assert "no price for instance type 'm5.xlarge'" in expect_user_error(prices.hourly, "m5.xlarge", "spot")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prices": {"c5.xlarge": {"spot": 0.1}}}))
    assert "is not valid" in expect_user_error(cost.load_prices, bad)
    absent = tmp_path / "absent.json"
    assert expect_user_error(cost.load_prices, absent) == f"price file '{absent}' not found"
    binary = tmp_path / "prices.xlsx"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb2\xff")
    assert expect_user_error(cost.load_prices, binary) == f"price file '{binary}' is not text (UTF-8 JSON expected)"
    broken = tmp_path / "broken.json"
    broken.write_text('{"prices": {"c5.xlarge": ')
    assert expect_user_error(cost.load_prices, broken).startswith(f"price file '{broken}' is not valid JSON: line 1")
