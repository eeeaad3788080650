"""Cost report: job seconds x instance price, instance type from the container instance or the queue."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
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
    from batchpipes.aws.stack import CPU_FAMILIES, GPU_FAMILIES, MNP_INSTANCE_TYPE
    for fam in CPU_FAMILIES + GPU_FAMILIES:
        assert any(t.startswith(fam + ".") for t in prices.table), fam
    assert MNP_INSTANCE_TYPE in prices.table
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


# -- prices from AWS: Price List API (botocore Stubber: moto has no pricing) and Spot history ---------------


def price_list_item(instance_type: str, region_code: str, location: str, usd: str, sku: str) -> str:
    """One GetProducts PriceList entry, shaped as the AWS documentation's example (botocore's pricing
    examples-1.json) for an EC2 instance product."""
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": region_code, "location": location,
            "locationType": "AWS Region", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
            "capacitystatus": "Used", "licenseModel": "No License required", "operation": "RunInstances",
            "servicecode": "AmazonEC2", "usagetype": f"EU-BoxUsage:{instance_type}", "vcpu": "4"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": f"$0.194 per On Demand Linux {instance_type} Instance Hour",
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "pricePerUnit": {"USD": usd}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}}}},
        "version": "20261120183035", "publicationDate": "2026-11-20T18:30:35Z"})


def get_products_params(instance_type: str, region: str) -> dict:
    return {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"}]}


def test_on_demand_price_from_the_price_list_api_and_its_source() -> None:
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
            price_list_item("c5.xlarge", "eu-west-1", "EU (Ireland)", "0.1940000000", "ZYN6UF5PUT4ZTC8R")]},
            get_products_params("c5.xlarge", "eu-west-1"))
        book = cost.PriceBook(cost.load_prices(), "eu-west-1", pricing=pricing)
        assert book.on_demand("c5.xlarge") == (0.194, "AWS Price List API (eu-west-1, published 2026-11-20)")
        assert book.on_demand("c5.xlarge")[0] == 0.194  # cached: one call
        stub.assert_no_pending_responses()
    # the bundled table says 0.17 (us-east-1): the API's regional price won
    assert cost.load_prices().hourly("c5.xlarge", "on_demand") == 0.17


def test_price_list_without_a_price_falls_back_to_the_table(caplog: pytest.LogCaptureFixture) -> None:
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                          get_products_params("m5.xlarge", "eu-west-1"))
        stub.add_client_error("get_products", "AccessDeniedException", "not authorized to perform: pricing:GetProducts",
                              400, expected_params=get_products_params("r5.xlarge", "eu-west-1"))
        book = cost.PriceBook(cost.load_prices(), "eu-west-1", pricing=pricing)
        price, source = book.on_demand("m5.xlarge")
        assert price == 0.192 and source == "table https://aws.amazon.com/ec2/pricing/on-demand/ (us-east-1, 2024)"
        assert book.on_demand("r5.xlarge") == (0.252, source)
    assert "no Linux On-Demand price for m5.xlarge in eu-west-1" in caplog.text


def test_unreachable_price_apis_fall_back_to_the_table(fake_aws: str) -> None:
    from batchpipes.aws.cost_cmd import PRICE_API

    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    pricing = boto3.client("pricing", region_name="us-east-1", endpoint_url=closed, config=PRICE_API)
    ec2 = boto3.client("ec2", region_name=fake_aws, endpoint_url=closed, config=PRICE_API)
    book = cost.PriceBook(cost.load_prices(), fake_aws, pricing=pricing, ec2=ec2)
    started = time.monotonic()
    assert book.hourly("c5.xlarge", "on_demand", None, T0, T0 + 60_000) == (
        0.17, "table https://aws.amazon.com/ec2/pricing/on-demand/ (us-east-1, 2024)")
    price, source = book.hourly("c5.xlarge", "spot", "eu-west-1a", T0, T0 + 60_000)
    assert price == pytest.approx(0.17 * 0.35) and source.endswith("(us-east-1, 2024), on-demand x 0.35")
    assert time.monotonic() - started < 30


def test_spot_price_from_moto_history(fake_aws: str) -> None:
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=fake_aws)
        book = cost.PriceBook(cost.load_prices(), fake_aws, ec2=ec2)
        price, source = book.spot("c5.xlarge", "eu-west-1b", T0, T0 + 3_600_000)
        assert price == pytest.approx(0.00001)  # moto's fixed history price
        assert source == "EC2 Spot price history (eu-west-1b, attempt's time window)"
        price, source = book.spot("c5.xlarge", None, T0, T0 + 3_600_000)
        assert source.startswith("EC2 Spot price history (eu-west-1a,eu-west-1b")


def test_spot_average_is_time_weighted_per_zone() -> None:
    def at(minutes: float) -> dt.datetime:
        return dt.datetime.fromtimestamp((T0 + minutes * 60_000) / 1000, tz=dt.UTC)

    history = [  # newest first, as EC2 returns it; the 0.05 price was in effect when the window opened
        {"AvailabilityZone": "eu-west-1a", "InstanceType": "c5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.080000", "Timestamp": at(45)},
        {"AvailabilityZone": "eu-west-1a", "InstanceType": "c5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.050000", "Timestamp": at(-300)},
    ]
    mean, zones = cost.spot_average(history, T0, T0 + 60 * 60_000)
    assert mean == pytest.approx(0.05 * 0.75 + 0.08 * 0.25) and zones == ["eu-west-1a"]
    assert cost.spot_average([], T0, T0 + 1) is None


# -- a Cromwell workflow's jobs ----------------------------------------------------------------------------

WF = "3f2b8c1e-7d4a-4e6b-9a1c-5d8e2f7b0c94"
SUB = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
J1, J2, J3, J4 = ("0c5e1f1e-1c43-4d5f-9f3c-0123456789ab", "1d6f2a2f-2d54-4e60-8a4d-123456789abc",
                  "2e7a3b3a-3e65-4f71-9b5e-23456789abcd", "3f8b4c4b-4f76-4a82-8c6f-3456789abcde")


def call(job_id: str | None, shard: int = -1, attempt: int = 1, hit: bool = False) -> dict:
    """A call entry as Cromwell's metadata endpoint returns it for the AWSBATCH backend (abridged)."""
    entry = {"executionStatus": "Done", "backend": "AWSBATCH", "shardIndex": shard, "attempt": attempt,
             "backendStatus": "Succeeded", "returnCode": 0, "start": "2026-11-30T10:00:00.000Z",
             "end": "2026-11-30T10:20:00.000Z",
             "callRoot": f"s3://bkt/cromwell-execution/genomics/{WF}/call-x",
             "callCaching": {"allowResultReuse": True, "hit": hit,
                             "result": "Cache Hit: 7e1f.../genomics.index_reference:-1" if hit else "Cache Miss"}}
    if job_id is not None:
        entry["jobId"] = job_id
    return entry


METADATA = {
    "id": WF, "workflowName": "genomics", "status": "Succeeded",
    "calls": {
        "genomics.index_reference": [call(None, hit=True)],
        "genomics.align_shard": [call(J1, shard=0), call(J2, shard=1, attempt=1), call(J3, shard=1, attempt=2)],
        "genomics.qc": [{**call(None), "subWorkflowId": SUB, "subWorkflowMetadata": {
            "id": SUB, "workflowName": "qc", "calls": {"qc.alignment_qc": [call(J4)]}}}],
    },
}


def test_jobs_from_cromwell_metadata() -> None:
    wf, jobs, hits = cost.jobs_from_metadata(METADATA)
    assert wf == WF and hits == 1
    align = "genomics.align_shard"
    assert jobs == [cost.WorkflowJob(J1, align, 0, 1), cost.WorkflowJob(J2, align, 1, 1),
                    cost.WorkflowJob(J3, align, 1, 2), cost.WorkflowJob(J4, "qc.alignment_qc", None, 1)]


def test_metadata_that_is_not_metadata_is_one_line(expect_user_error) -> None:
    assert "is not Cromwell workflow metadata" in expect_user_error(cost.jobs_from_metadata, {"status": "fail"}, "m")


def test_jobs_by_the_tags_cromwell_sets() -> None:
    batch = clients()[0]
    since = T0 - 86_400_000
    other = "99999999-9999-4999-8999-999999999999"

    def described(job_id: str, name: str, tags: dict | None) -> dict:
        job = {"jobId": job_id, "jobName": name, "jobQueue": QUEUE, "status": "SUCCEEDED", "jobDefinition": "d",
               "startedAt": T0, "stoppedAt": T0 + 60_000}
        return {**job, "tags": tags} if tags is not None else job

    with Stubber(batch) as sb:
        sb.add_response("list_jobs", {"jobSummaryList": [{"jobId": J1, "jobName": "genomics_align_shard"},
                                                         {"jobId": J2, "jobName": "genomics_align_shard"}],
                                      "nextToken": "t1"},
                        {"jobQueue": QUEUE, "filters": [{"name": "AFTER_CREATED_AT", "values": [str(since)]}]})
        sb.add_response("list_jobs", {"jobSummaryList": [{"jobId": J3, "jobName": "genomics_index_reference"},
                                                         {"jobId": J4, "jobName": "other"}]},
                        {"jobQueue": QUEUE, "filters": [{"name": "AFTER_CREATED_AT", "values": [str(since)]}],
                         "nextToken": "t1"})
        sb.add_response("describe_jobs", {"jobs": [
            described(J1, "genomics_align_shard", {"cromwell-root-workflow-id": WF, "cromwell-workflow-id": WF,
                                                   "cromwell-task-id": "genomics.align_shard-Some_3_-1"}),
            described(J2, "genomics_align_shard", {"cromwell-root-workflow-id": other,
                                                   "cromwell-task-id": "genomics.align_shard-Some_0_-1"}),
            described(J3, "genomics_index_reference", {"cromwell-root-workflow-id": WF,
                                                       "cromwell-task-id": "genomics.index_reference-None-2"}),
            described(J4, "other", None)]}, {"jobs": [J1, J2, J3, J4]})
        jobs = cost.jobs_by_tags(batch, [QUEUE], WF, since_ms=since)
    assert jobs == [cost.WorkflowJob(J1, "genomics.align_shard", 3, 1),
                    cost.WorkflowJob(J3, "genomics.index_reference", None, 2)]


def test_workflow_report_per_task_with_price_sources() -> None:
    batch, ecs, ec2 = clients()
    pricing = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    spot_ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    _, wf_jobs, hits = cost.jobs_from_metadata(METADATA)
    ids = [j.job_id for j in wf_jobs]
    hour = 3_600_000

    def job(job_id: str, name: str, minutes: int) -> dict:
        return {"jobId": job_id, "jobName": name, "jobQueue": QUEUE, "jobDefinition": "d", "status": "SUCCEEDED",
                "startedAt": T0, "stoppedAt": T0 + minutes * 60_000,
                "attempts": [{"container": {"containerInstanceArn": CI}, "startedAt": T0,
                              "stoppedAt": T0 + minutes * 60_000}]}

    sb, se, s2, sp, ss = Stubber(batch), Stubber(ecs), Stubber(ec2), Stubber(pricing), Stubber(spot_ec2)
    sb.add_response("describe_jobs", {"jobs": [job(J1, "genomics_align_shard", 60), job(J2, "genomics_align_shard", 30),
                                               job(J3, "genomics_align_shard", 30), job(J4, "qc_alignment_qc", 6)]},
                    {"jobs": ids})
    sb.add_response("describe_job_queues", {"jobQueues": []}, {"jobQueues": [QUEUE]})
    for job_id in ids:
        itype = "c5.xlarge" if job_id == J4 else "m5.2xlarge"
        se.add_response("describe_container_instances", {"containerInstances": [{
            "containerInstanceArn": CI, "ec2InstanceId": "i-0abc",
            "attributes": [{"name": "ecs.instance-type", "value": itype}]}], "failures": []},
            {"cluster": "bp-cluster", "containerInstances": [CI]})
        lifecycle = {} if job_id == J4 else {"InstanceLifecycle": "spot"}
        s2.add_response("describe_instances", {"Reservations": [{"Instances": [
            {"InstanceId": "i-0abc", "Placement": {"AvailabilityZone": "us-east-1d"}, **lifecycle}]}]},
            {"InstanceIds": ["i-0abc"]})
        if job_id != J4:
            minutes = 60 if job_id == J1 else 30
            ss.add_response("describe_spot_price_history", {"SpotPriceHistory": [{
                "AvailabilityZone": "us-east-1d", "InstanceType": "m5.2xlarge", "ProductDescription": "Linux/UNIX",
                "SpotPrice": "0.124000", "Timestamp": cost._ms_datetime(T0 - hour)}], "NextToken": ""},
                {"InstanceTypes": ["m5.2xlarge"], "ProductDescriptions": cost.SPOT_PRODUCTS,
                 "AvailabilityZone": "us-east-1d", "StartTime": cost._ms_datetime(T0),
                 "EndTime": cost._ms_datetime(T0 + minutes * 60_000)})
    sp.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [
        price_list_item("c5.xlarge", "us-east-1", "US East (N. Virginia)", "0.1700000000", "6VTTZDDBUFGSMUNA")]},
        get_products_params("c5.xlarge", "us-east-1"))
    book = cost.PriceBook(cost.load_prices(), "us-east-1", pricing=pricing, ec2=spot_ec2)
    with sb, se, s2, sp, ss:
        costs = cost.job_costs(batch, ecs, ec2, ids, book, tasks={j.job_id: j.task for j in wf_jobs})
    for s in (sb, se, s2, sp, ss):
        s.assert_no_pending_responses()
    lines = cost.workflow_report(WF, costs, book, hits)
    assert lines[0] == f"workflow {WF}: 4 Batch job(s), 1 call-cache hit(s) at no cost"
    align = next(ln for ln in lines if ln.startswith("genomics.align_shard"))
    assert align.split()[1:5] == ["3", "3", "7200", "m5.2xlarge"]
    assert float(align.split()[-1]) == pytest.approx(2 * 0.124)  # two job-hours at the Spot history price
    qc = next(ln for ln in lines if ln.startswith("qc.alignment_qc"))
    assert float(qc.split()[-1]) == pytest.approx(0.1 * 0.17)
    total = next(ln for ln in lines if ln.startswith("total"))
    assert float(total.split()[-1]) == pytest.approx(2 * 0.124 + 0.1 * 0.17)
    assert "  c5.xlarge      on_demand          0.1700  AWS Price List API (us-east-1, published 2026-11-20)" in lines
    assert ("  m5.2xlarge     spot               0.1240  EC2 Spot price history (us-east-1d, attempt's time "
            "window)") in lines


# -- the command: moto's Batch (no docker) and Spot history; the Price List API unreachable ------------------


@pytest.fixture()
def moto_batch(fake_aws: str, monkeypatch: pytest.MonkeyPatch):
    """In-process moto with Batch jobs that finish at once (no docker): returns a function submitting a job with
    Cromwell's tags; the Price List API endpoint is a closed port."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", "http://127.0.0.1:9")
    with mock_aws(config={"batch": {"use_docker": False}}):
        role = boto3.client("iam").create_role(RoleName="bp-batch-service", AssumeRolePolicyDocument="{}")["Role"]
        batch = boto3.client("batch")
        ce = batch.create_compute_environment(computeEnvironmentName="bp-cpu-spot", type="UNMANAGED",
                                              state="ENABLED", serviceRole=role["Arn"])["computeEnvironmentArn"]
        queue = batch.create_job_queue(jobQueueName="bp-cpu", state="ENABLED", priority=1, computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
        definition = batch.register_job_definition(
            jobDefinitionName="cromwell_genomics", type="container", containerProperties={
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/batchpipes/genomics:8c2aa7663d60",
                "command": ["/bin/bash", "-c", "/var/scratch/fetch_and_run.sh"],
                "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]}
        )["jobDefinitionArn"]

        def submit(workflow_id: str, task_id: str) -> str:
            name = task_id.rsplit("-", 2)[0].replace(".", "_")  # Cromwell's sanitize(fully qualified name)
            return str(batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition, propagateTags=True,
                                        tags={"cromwell-root-workflow-id": workflow_id,
                                              "cromwell-workflow-id": workflow_id, "cromwell-task-id": task_id,
                                              "cromwell-workflow-name": "genomics"})["jobId"])

        yield queue, submit


def test_cost_of_a_workflow_by_tags_and_by_metadata(moto_batch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from batchpipes import cli

    queue, submit = moto_batch
    a = submit(WF, "genomics.align_shard-Some_0_-1")
    b = submit(WF, "genomics.align_shard-Some_1_-1")
    submit("99999999-9999-4999-8999-999999999999", "genomics.align_shard-Some_0_-1")  # another workflow
    rc = cli.main(["aws", "cost", "--workflow-id", WF, "--job-queue", queue, "--instance-type", "c5.xlarge",
                   "--market", "spot"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"workflow {WF}: 2 Batch job(s)"
    assert next(ln for ln in lines if ln.startswith("genomics.align_shard")).split()[1:3] == ["2", "2"]
    assert "EC2 Spot price history (eu-west-1a,eu-west-1b,eu-west-1c, attempt's time window)" in out
    # on-demand: the Price List API is unreachable, so the bundled table, and the report says so
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"id": WF, "calls": {"genomics.align_shard": [call(a, 0), call(b, 1)]}}))
    rc = cli.main(["aws", "cost", "--metadata", str(meta), "--instance-type", "c5.xlarge", "--market", "on_demand"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "c5.xlarge      on_demand          0.1700  table https://aws.amazon.com/ec2/pricing/on-demand/" in out
    warned = [r.getMessage() for r in caplog.records if "AWS Price List API" in r.getMessage()]
    assert len(warned) == 1 and "Could not connect" in warned[0] and "using table" in warned[0]


@pytest.mark.parametrize("argv, message", [
    ([], "give Batch job ids, or --workflow-id, or --metadata (one of them)"),
    (["--workflow-id", WF, "--metadata", "m.json"], "(one of them)"),
    (["--workflow-id", "not-a-uuid"], "is not a Cromwell workflow id"),
    (["--metadata", "/nonexistent/metadata.json"], "Cromwell metadata file '/nonexistent/metadata.json' not found"),
    (["--workflow-id", WF, "--config", "/nonexistent/aws.rendered.conf"], "render it with"),
])
def test_cost_command_bad_input_is_one_line(argv: list[str], message: str, fake_aws: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from batchpipes import cli

    with pytest.raises(SystemExit) if "not-a-uuid" in argv else contextlib.nullcontext():
        rc = cli.main(["aws", "cost", *argv])
        assert rc == 2
    err = capsys.readouterr().err
    assert message in err
