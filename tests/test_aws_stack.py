"""The deployment stack against moto: ``batchpipes aws deploy``/``teardown`` end to end, the change-set flow, the
requests' shapes (botocore's ParamValidator), and every bad input refused in one line before anything is made.

moto's CloudFormation covers IAM roles, instance profiles and managed policies, launch templates, security groups
and ingress rules, and Batch compute environments, queues and job definitions. What it lacks, found by running the
template (moto 5.2):

* ``AWS::EC2::PlacementGroup`` and ``AWS::EC2::SecurityGroupEgress`` are not implemented: moto skips them with a
  warning (their outputs resolve to nothing). They are asserted statically (tests/test_aws_stack_template.py).
* Batch resources cannot be updated or deleted through a stack, a ``multinode`` job definition is registered as
  ``container`` (and refused for lacking containerProperties), and a change set whose only difference is a
  parameter lists no change. ``MotoGaps`` below fills exactly these, with calls to moto's own Batch backend
  (UpdateComputeEnvironment, DeleteComputeEnvironment, ...), so moto's validation still applies.
* Defaults of ``CommaDelimitedList`` parameters are not split; deploy passes every parameter, so none is used.

The CLI runs as a subprocess against a moto server in this test process (``ThreadedMotoServer``): the
session-wide ``moto_endpoint`` is a separate process the gap fillers cannot reach.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batchpipes import containers
from batchpipes.aws import iam, stack
from botocore.validate import ParamValidator
from moto import mock_aws
from moto.batch import models as batch_models
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.ec2.models import amis as moto_amis
from moto.iam import models as iam_models
from moto.server import ThreadedMotoServer
from moto.utilities.utils import get_partition

REGION = "eu-west-1"
DATA, ROOT = "bp-data", "bp-cromwell"
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* by moto.s CloudFormation implementation:UserWarning")


# -- moto gaps ----------------------------------------------------------------------------------------------------

def _backend(account_id: str, region_name: str) -> Any:
    return batch_models.batch_backends[account_id][region_name]


def _lower(d: Any) -> Any:
    """CloudFormation's property casing to the Batch API's (``ResourceRequirements`` -> ``resourceRequirements``)."""
    if isinstance(d, dict):
        return {k[:1].lower() + k[1:]: _lower(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_lower(v) for v in d]
    return d


class PlacementGroupModel(CloudFormationModel):
    """AWS::EC2::PlacementGroup for moto's CloudFormation (moto has no placement groups); ``groups`` holds those
    that exist, by name."""

    __module__ = "moto.ec2.test_placement_groups"  # moto's model metaclass files models by their service module
    groups: dict[str, dict[str, Any]] = {}

    def __init__(self, name: str, properties: dict[str, Any]) -> None:
        self.name, self.properties = name, properties

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::EC2::PlacementGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],  # type: ignore[override]
                                        account_id: str, region_name: str, **_: Any) -> PlacementGroupModel:
        cls.groups[resource_name] = dict(cloudformation_json["Properties"])
        return cls(resource_name, cls.groups[resource_name])

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def delete(self, account_id: str, region_name: str) -> None:
        del self.groups[self.name]


class MotoGaps:
    """Patches moto's CloudFormation models for the gaps listed in the module doc; undone on exit."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        mp.setattr(batch_models.JobDefinition, "create_from_cloudformation_json", classmethod(self._jd_create))
        mp.setattr(batch_models.ComputeEnvironment, "update_from_cloudformation_json", classmethod(self._ce_update))
        mp.setattr(batch_models.JobQueue, "update_from_cloudformation_json", classmethod(self._jq_update))
        mp.setattr(batch_models.JobDefinition, "update_from_cloudformation_json", classmethod(self._jd_update))
        mp.setattr(batch_models.ComputeEnvironment, "delete", self._ce_delete, raising=False)
        mp.setattr(batch_models.JobQueue, "delete", self._jq_delete, raising=False)
        mp.setattr(batch_models.JobDefinition, "delete", self._jd_delete, raising=False)
        mp.setattr(iam_models.ManagedPolicy, "delete", self._policy_delete, raising=False)
        mp.setattr(cfn_models.ChangeSet, "diff", self._diff)
        # Not a gap, a speed-up: one of moto's ~1300 stock AMIs instead of all (loading them took 7 s per backend)
        mp.setattr(moto_amis, "AMIS", [dict(moto_amis.AMIS[0])])
        mp.setenv("MOTO_AMIS_PATH", "-")  # moto then loads only AMIS, not its per-region lists
        apply = cfn_models.ChangeSet.apply

        def apply_fully(change_set: Any) -> None:
            """moto's execution keeps the stack's first parameters and the outputs of its first template."""
            apply(change_set)
            st = change_set.stack
            st.parameters = dict(change_set.parameters)
            st.template = change_set.template
            st._parse_template()
            st.output_map = st._create_output_map()

        mp.setattr(cfn_models.ChangeSet, "apply", apply_fully)
        models = dict(cfn_parsing.get_model_map())
        models[PlacementGroupModel.cloudformation_type()] = PlacementGroupModel
        mp.setattr(cfn_parsing, "get_model_map", lambda: models)

    @staticmethod
    def _jd_create(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                   region_name: str, **_: Any) -> Any:
        p = cloudformation_json["Properties"]
        return _backend(account_id, region_name).register_job_definition(
            def_name=p.get("JobDefinitionName", resource_name), parameters=p.get("Parameters", {}),
            _type=p["Type"], tags=p.get("Tags", {}), retry_strategy=_lower(p.get("RetryStrategy", {})),
            container_properties=_lower(p["ContainerProperties"]) if "ContainerProperties" in p else None,
            node_properties=_lower(p["NodeProperties"]) if "NodeProperties" in p else None, eks_properties=None,
            timeout=_lower(p.get("Timeout", {})), platform_capabilities=p.get("PlatformCapabilities", ["EC2"]),
            propagate_tags=bool(p.get("PropagateTags", False)))

    @staticmethod
    def _ce_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
                   account_id: str, region_name: str) -> Any:
        p = cloudformation_json["Properties"]
        cr = _lower(p["ComputeResources"])
        if cr.get("type") != original_resource.compute_resources.get("type"):
            raise ValueError("a new purchase option means a new compute environment (replacement)")
        _backend(account_id, region_name).update_compute_environment(
            original_resource.arn, p.get("State"), cr, p.get("ServiceRole"))
        # moto validates the call but keeps the old computeResources ("TODO" in its backend)
        original_resource.compute_resources.update(cr)
        return original_resource

    @staticmethod
    def _jq_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
                   account_id: str, region_name: str) -> Any:
        p = cloudformation_json["Properties"]
        _backend(account_id, region_name).update_job_queue(
            original_resource.arn, p.get("Priority"), p.get("State"),
            [_lower(o) for o in p["ComputeEnvironmentOrder"]], None)
        return original_resource

    @staticmethod
    def _jd_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
                   account_id: str, region_name: str) -> Any:
        # CloudFormation replaces a job definition: a new revision, the old one deregistered
        new = MotoGaps._jd_create(cls, new_resource_name, cloudformation_json, account_id, region_name)
        _backend(account_id, region_name).deregister_job_definition(original_resource.arn)
        return new

    @staticmethod
    def _ce_delete(self: Any, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_compute_environment(self.arn)

    @staticmethod
    def _jq_delete(self: Any, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_job_queue(self.arn)

    @staticmethod
    def _jd_delete(self: Any, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).deregister_job_definition(self.arn)

    @staticmethod
    def _policy_delete(self: Any, account_id: str, region_name: str) -> None:
        iam_models.iam_backends[account_id][get_partition(region_name)].delete_policy(self.arn)

    @staticmethod
    def _diff(self: Any) -> list[Any]:
        by_action = self.stack.resource_map.build_resource_diff(self.template_dict, self.parameters)
        out = []
        for action, names in by_action.items():
            for logical in names:
                source = self.template_dict["Resources"] if action != "Remove" else \
                    self.stack.resource_map._resource_json_map
                out.append(cfn_models.Change(action=action, logical_resource_id=logical,
                                             resource_type=source[logical]["Type"]))
        return out


@pytest.fixture()
def gaps() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        MotoGaps(mp)
        yield
    PlacementGroupModel.groups.clear()


class World:
    """An account with what deploy needs: two buckets, a VPC with two subnets and a security group, a subnet of
    another VPC, and images: batchpipes AL2023 cpu and gpu builds, an Amazon Linux 2 build of earlier releases
    (no batchpipes:os tag) and one of moto's stock AMIs (owned by Amazon)."""

    def __init__(self, sess: boto3.session.Session) -> None:
        self.sess = sess
        s3, ec2 = sess.client("s3"), sess.client("ec2")
        for b in (DATA, ROOT):
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"10.0.{i}.0/24",
                                          AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
                        for i, az in ((1, "a"), (2, "b"))]
        self.group = ec2.create_security_group(GroupName="bp-batch", Description="batch", VpcId=self.vpc)["GroupId"]
        other = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        self.foreign_subnet = ec2.create_subnet(VpcId=other, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        self.stock_ami = next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
        instance = ec2.run_instances(ImageId=self.stock_ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        self.amis: dict[str, str] = {}
        for label, tags in (("cpu", {"batchpipes:flavor": "cpu", "batchpipes:os": "al2023"}),
                            ("gpu", {"batchpipes:flavor": "gpu", "batchpipes:os": "al2023"}),
                            ("al2-cpu", {"batchpipes:flavor": "cpu", "batchpipes:role": "cromwell-host"})):
            ami = ec2.create_image(InstanceId=instance, Name=f"batchpipes-{label}")["ImageId"]
            ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            self.amis[label] = ami

    def spec(self, **kw: Any) -> stack.Spec:
        args: dict[str, Any] = {"name": "bp", "data_bucket": DATA, "cromwell_bucket": ROOT, "vpc_id": self.vpc,
                                "subnets": list(self.subnets), "security_groups": [self.group],
                                "mnp_subnet": self.subnets[0], "cpu_ami_id": self.amis["cpu"],
                                "gpu_ami_id": self.amis["gpu"], **kw}
        return stack.Spec(**args)

    def cli_args(self, **override: str) -> list[str]:
        flags = {"--name": "bp", "--bucket": DATA, "--cromwell-bucket": ROOT, "--vpc-id": self.vpc,
                 "--subnets": ",".join(self.subnets), "--security-groups": self.group,
                 "--mnp-subnet": self.subnets[1], "--cpu-ami-id": self.amis["cpu"],
                 "--gpu-ami-id": self.amis["gpu"], **override}
        return [x for k, v in flags.items() for x in (k, v)]


def inventory(sess: boto3.session.Session) -> dict[str, Any]:
    """What exists that a deployment makes, by kind (the account's service-linked role is not counted)."""
    batch, ec2, iam_c, cfn = (sess.client(s) for s in ("batch", "ec2", "iam", "cloudformation"))
    return {
        "stack": sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"]
                        if s["StackStatus"] != "DELETE_COMPLETE"),
        "ce": sorted(c["computeEnvironmentName"] for c in batch.describe_compute_environments()["computeEnvironments"]),
        "queue": sorted(q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]),
        "jobdef": sorted(f"{d['jobDefinitionName']}:{d['revision']}"
                         for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]),
        "lt": sorted(t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]),
        "role": sorted(r["RoleName"] for r in iam_c.list_roles()["Roles"] if not r["Path"].startswith("/aws-service")),
        "profile": sorted(p["InstanceProfileName"] for p in iam_c.list_instance_profiles()["InstanceProfiles"]),
        "policy": sorted(p["PolicyName"] for p in iam_c.list_policies(Scope="Local")["Policies"]),
        "sg": sorted(g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]
                     if g["GroupName"] not in ("default", "bp-batch")),
        "pg": sorted(PlacementGroupModel.groups),
    }


EMPTY = {"stack": [], "ce": [], "queue": [], "jobdef": [], "lt": [], "role": [], "profile": [], "policy": [],
         "sg": [], "pg": []}


@pytest.fixture()
def world(fake_aws: str, gaps: None) -> Iterator[World]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield World(boto3.session.Session(region_name=REGION))


# -- in-process: the library ---------------------------------------------------------------------------------------

def test_deploy_creates_the_stack_and_a_second_deploy_changes_nothing(world: World) -> None:
    first = stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    assert first.executed and first.status == "CREATE_COMPLETE"
    template = stack.template_body()
    logical = {c.logical_id for c in first.changes}
    assert {c.action for c in first.changes} == {"Add"}
    assert logical >= {"CpuComputeEnvironment", "MnpSecurityGroup", "MnpIngressFromMembers", "CromwellPolicy",
                       "GromacsMnpJobDefinition"}
    assert all(f"  {name}:\n" in template for name in logical)
    after = inventory(world.sess)
    images = [n for n in containers.discover() if not n.endswith("-cuda")]
    assert after["ce"] == ["bp-cpu-spot", "bp-gpu-spot", "bp-mnp"]
    assert after["queue"] == ["bp-cpu", "bp-gpu", "bp-mnp"]
    assert after["jobdef"] == sorted([f"bp-{n}:1" for n in images] + ["bp-gpu-encode:1", "bp-gromacs-mnp:1"])
    assert after["lt"] == ["bp-cpu", "bp-gpu"] and after["sg"] == ["bp-mnp"] and after["pg"]
    assert after["role"] == ["bp-batch-instance", "bp-batch-job"] and after["policy"] == ["bp-cromwell"]
    assert PlacementGroupModel.groups[after["pg"][0]]["Strategy"] == "cluster"
    for kind in ("cpu", "gpu", "mnp"):
        queue = f"arn:aws:batch:{REGION}:123456789012:job-queue/bp-{kind}"
        assert first.outputs[f"{kind.capitalize()}QueueArn"] == queue

    second = stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    assert second.changes == [] and not second.executed
    assert inventory(world.sess) == after
    assert second.outputs == first.outputs
    cfn = world.sess.client("cloudformation")
    left = cfn.list_change_sets(StackName="batchpipes-bp")["Summaries"]
    # the empty one is deleted; moto keeps the executed one listed (CloudFormation removes it)
    assert [c["ExecutionStatus"] for c in left] == ["EXECUTE_COMPLETE"]


def test_batch_resources_are_what_the_template_says(world: World) -> None:
    dep = stack.deploy(world.sess, world.spec(mnp_subnet=world.subnets[1]), sleep=lambda _: None)
    batch = world.sess.client("batch")
    ces = {c["computeEnvironmentName"]: c for c in batch.describe_compute_environments()["computeEnvironments"]}
    cpu, gpu, mnp = (ces[n]["computeResources"] for n in ("bp-cpu-spot", "bp-gpu-spot", "bp-mnp"))
    assert cpu["type"] == "SPOT" and cpu["allocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert sorted(cpu["subnets"]) == sorted(world.subnets) and cpu["securityGroupIds"] == [world.group]
    assert mnp["subnets"] == [world.subnets[1]], "the multi-node environment lives in one subnet"
    assert mnp["securityGroupIds"] == [dep.outputs["MnpSecurityGroupId"]]
    assert mnp["placementGroup"] == dep.outputs["PlacementGroupName"] and mnp["type"] == "EC2"
    assert cpu["instanceRole"] == gpu["instanceRole"] == dep.outputs["InstanceProfileArn"]
    sg = world.sess.client("ec2").describe_security_groups(GroupIds=[dep.outputs["MnpSecurityGroupId"]])[
        "SecurityGroups"][0]
    assert sg["VpcId"] == world.vpc
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]])
            for p in sg["IpPermissions"]] == [("tcp", 0, 65535, [sg["GroupId"]])], "members reach each other"
    defs = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    genomics = defs["bp-genomics"]["containerProperties"]
    assert genomics["image"] == f"123456789012.dkr.ecr.{REGION}.amazonaws.com/batchpipes/genomics:" \
        f"{containers.get('genomics').tag}"
    assert genomics["jobRoleArn"] == dep.outputs["JobRoleArn"]
    assert defs["bp-gromacs-mnp"]["type"] == "multinode"
    lt = world.sess.client("ec2").describe_launch_template_versions(LaunchTemplateName="bp-cpu",
                                                                     Versions=["$Latest"])
    data = lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert {m["DeviceName"]: (m["Ebs"]["Encrypted"], m["Ebs"]["VolumeType"], m["Ebs"]["VolumeSize"])
            for m in data["BlockDeviceMappings"]} == {"/dev/xvda": (True, "gp3", 30), "/dev/xvdb": (True, "gp3", 500)}


def test_requests_match_the_api_models(world: World) -> None:
    """CreateChangeSet, ExecuteChangeSet, DeleteStack (and every other call of deploy/teardown) are valid for
    botocore's CloudFormation model, checked before they are sent."""
    validator = ParamValidator()
    seen: list[str] = []

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        report = validator.validate(params, model.input_shape)
        assert not report.has_errors(), report.generate_report()
        seen.append(model.name)

    world.sess.events.register("before-parameter-build.cloudformation.*", check)
    stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    stack.deploy(world.sess, world.spec(cpu_max_vcpus=300), sleep=lambda _: None)
    stack.teardown(world.sess, "bp", sleep=lambda _: None)
    assert {"CreateChangeSet", "DescribeChangeSet", "ExecuteChangeSet", "DeleteStack", "DescribeStackEvents"} \
        <= set(seen)
    request = stack.change_set_request(world.spec(), "cs-1", "CREATE", "arn:aws:iam::123456789012:role/x")
    model = world.sess.client("cloudformation").meta.service_model.operation_model("CreateChangeSet")
    assert not validator.validate(request, model.input_shape).has_errors()
    assert request["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    given = {p["ParameterKey"] for p in request["Parameters"]}
    import yaml  # the template's parameter names; values for all of them, none left to defaults

    declared = set(yaml.load(stack.template_body(), Loader=_CfnLoader)["Parameters"])
    assert given == declared


class _CfnLoader(__import__("yaml").SafeLoader):
    """YAML loader that reads CloudFormation's short-form tags (!Ref ...) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_teardown_deletes_everything_and_keeps_the_service_linked_role(world: World) -> None:
    stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    other = stack.deploy(world.sess, world.spec(name="other"), sleep=lambda _: None)
    removed = stack.teardown(world.sess, "bp", sleep=lambda _: None)
    assert "AWS::Batch::JobQueue arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu" in removed
    assert "AWS::IAM::Role bp-batch-job" in removed
    left = inventory(world.sess)
    assert left["stack"] == ["batchpipes-other"] and left["queue"] == ["other-cpu", "other-gpu", "other-mnp"]
    assert all(j.startswith("other-") for j in left["jobdef"]) and left["role"] == ["other-batch-instance",
                                                                                    "other-batch-job"]
    assert stack.teardown(world.sess, "bp", sleep=lambda _: None) == []
    stack.teardown(world.sess, "other", sleep=lambda _: None)
    assert inventory(world.sess) == EMPTY, other.stack
    slr = world.sess.client("iam").list_roles(PathPrefix=iam.BATCH_SLR_PATH)["Roles"]
    assert len(slr) == 1, "the account's Batch service-linked role stays for other Batch users"


def test_dry_run_shows_changes_and_leaves_nothing(world: World) -> None:
    dry = stack.deploy(world.sess, world.spec(), dry_run=True, sleep=lambda _: None)
    assert not dry.executed and len(dry.changes) >= 20 and {c.action for c in dry.changes} == {"Add"}
    assert inventory(world.sess) == EMPTY
    stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    before = inventory(world.sess)
    dry = stack.deploy(world.sess, world.spec(gpu_max_vcpus=128), dry_run=True, sleep=lambda _: None)
    assert [(c.action, c.logical_id) for c in dry.changes] == [("Modify", "GpuComputeEnvironment")]
    assert inventory(world.sess) == before
    gpu = world.sess.client("batch").describe_compute_environments(computeEnvironments=["bp-gpu-spot"])
    assert gpu["computeEnvironments"][0]["computeResources"]["maxvCpus"] == 64


@pytest.mark.parametrize("change, fragment", [
    ({"subnets": ["subnet-12345"]}, "'subnet-12345' is not a subnet id"),
    ({"vpc_id": "vpc-0123"}, "is not a VPC id"),
    ({"cpu_ami_id": "ami-xyz"}, "'ami-xyz' is not an AMI id (--cpu-ami-id)"),
    ({"scratch_gib": 10}, "--scratch-gib must be between 20 and 16384, not 10"),
    ({"mnp_instance_type": "c5n"}, "--mnp-instance-type takes one instance type"),
    ({"data_bucket": "s3://bp-data"}, "--bucket takes a bucket name, not a URL"),
    ({"data_bucket": "bp-absent"}, "bucket 'bp-absent' does not exist"),
    ({"subnets": ["subnet-0123456789abcdef0"]}, "subnet not found"),
    ({"cpu_ami_id": "STOCK"}, "is not an image of this account in this region (a stock AMI"),
    ({"cpu_ami_id": "AL2"}, "is not an Amazon Linux 2023 host (batchpipes:os is missing"),
    ({"gpu_ami_id": "CPU"}, "is a cpu host image, not gpu: build one with 'batchpipes aws build-ami --flavor gpu'"),
    ({"mnp_subnet": "FOREIGN"}, "--mnp-subnet"),
])
def test_bad_inputs_are_one_line_errors_and_create_nothing(world: World, expect_user_error: Any,
                                                           change: dict[str, Any], fragment: str) -> None:
    values = {"STOCK": world.stock_ami, "AL2": world.amis["al2-cpu"], "CPU": world.amis["cpu"],
              "FOREIGN": world.foreign_subnet}
    spec = world.spec(**{k: values.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
    before_roles = world.sess.client("iam").list_roles()["Roles"]
    msg = expect_user_error(stack.deploy, world.sess, spec, sleep=lambda _: None)
    assert fragment in msg, msg
    assert inventory(world.sess) == EMPTY
    assert world.sess.client("iam").list_roles()["Roles"] == before_roles, "not even the service-linked role"


# -- the CLI against a moto server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        MotoGaps(mp)
        srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        srv.start()
        host, port = srv.get_host_and_port()
        yield f"http://{host}:{port}"
        srv.stop()
    PlacementGroupModel.groups.clear()


@pytest.fixture()
def endpoint(server: str, fake_aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST"))
    PlacementGroupModel.groups.clear()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    yield World(boto3.session.Session(region_name=REGION))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("batchpipes")
    return subprocess.run([str(exe), "aws", *args], capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_cli_lifecycle_create_no_change_update_teardown(endpoint: World) -> None:
    w = endpoint
    r = cli("deploy", *w.cli_args())
    assert r.returncode == 0, r.stderr
    adds = [line for line in r.stdout.splitlines() if line.startswith("change   Add")]
    assert len(adds) >= 20 and "change   Add    CpuQueue AWS::Batch::JobQueue" in r.stdout
    assert "stack    batchpipes-bp CREATE_COMPLETE" in r.stdout
    assert f"output   CpuQueueArn arn:aws:batch:{REGION}:123456789012:job-queue/bp-cpu" in r.stdout
    assert "next     batchpipes aws cromwell-config --cpu-queue-arn arn:aws:batch" in r.stdout
    created = inventory(w.sess)
    assert created["queue"] == ["bp-cpu", "bp-gpu", "bp-mnp"]

    again = cli("deploy", *w.cli_args())
    assert again.returncode == 0, again.stderr
    assert "no changes: stack batchpipes-bp already matches" in again.stdout and "change " not in again.stdout
    assert inventory(w.sess) == created

    bigger = cli("deploy", *w.cli_args(**{"--max-vcpus": "1024"}))
    assert bigger.returncode == 0, bigger.stderr
    changes = [line for line in bigger.stdout.splitlines() if line.startswith("change ")]
    assert changes == ["change   Modify CpuComputeEnvironment AWS::Batch::ComputeEnvironment"]
    assert "batchpipes-bp UPDATE_COMPLETE" in bigger.stdout
    ce = w.sess.client("batch").describe_compute_environments(computeEnvironments=["bp-cpu-spot"])
    assert ce["computeEnvironments"][0]["computeResources"]["maxvCpus"] == 1024
    assert inventory(w.sess) == created

    gone = cli("teardown", "--name", "bp")
    assert gone.returncode == 0, gone.stderr
    assert "deleted  AWS::Batch::ComputeEnvironment arn:aws:batch" in gone.stdout
    assert len(gone.stdout.splitlines()) >= 20
    assert inventory(w.sess) == EMPTY
    nothing = cli("teardown", "--name", "bp")
    assert nothing.returncode == 0 and "nothing to delete: no stack batchpipes-bp" in nothing.stdout


@pytest.mark.parametrize("override, fragment", [
    ({"--subnets": "subnet-1"}, "'subnet-1' is not a subnet id"),
    ({"--cpu-ami-id": "STOCK"}, "a stock AMI lacks the AWS CLI"),
    ({"--cpu-ami-id": "AL2"}, "build one with 'batchpipes aws build-ami --flavor cpu'"),
    ({"--mnp-subnet": "FOREIGN"}, "the multi-node security group is made in that VPC"),
    ({"--scratch-gib": "5"}, "--scratch-gib must be between 20 and 16384, not 5"),
])
def test_cli_bad_input_exit_2_one_line_nothing_created(endpoint: World, override: dict[str, str],
                                                        fragment: str) -> None:
    w = endpoint
    values = {"STOCK": w.stock_ami, "AL2": w.amis["al2-cpu"], "FOREIGN": w.foreign_subnet}
    r = cli("deploy", *w.cli_args(**{k: values.get(v, v) for k, v in override.items()}))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().count("\n") == 0 and fragment in r.stderr, r.stderr
    assert inventory(w.sess) == EMPTY


# -- CloudFormation's answers moto does not give: botocore's Stubber (responses checked against the model) ----------

STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/batchpipes-bp/0f1e2d3c-aaaa-bbbb-cccc-123456789012"
CS_ARN = "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/batchpipes-1/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"


def _stack(status: str) -> dict[str, Any]:
    import datetime

    return {"Stacks": [{"StackName": "batchpipes-bp", "StackId": STACK_ID, "StackStatus": status,
                        "CreationTime": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
                        "Outputs": [{"OutputKey": "CpuQueueArn", "OutputValue": "arn:aws:batch:q"}]}]}


def _event(eid: str, logical: str, status: str, minute: int, reason: str = "") -> dict[str, Any]:
    import datetime

    e = {"StackId": STACK_ID, "EventId": eid, "StackName": "batchpipes-bp", "LogicalResourceId": logical,
         "ResourceType": "AWS::Batch::ComputeEnvironment", "ResourceStatus": status,
         "Timestamp": datetime.datetime(2026, 1, 1, 0, minute, tzinfo=datetime.UTC)}
    if reason:
        e["ResourceStatusReason"] = reason
    return e


@pytest.fixture()
def stubbed(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """CloudFormation answered by a Stubber; S3, EC2 and IAM by moto (the checks run for real)."""
    from botocore.stub import Stubber

    cfn = world.sess.client("cloudformation")
    real = stack.client
    monkeypatch.setattr(stack, "client", lambda sess, svc: cfn if svc == "cloudformation" else real(sess, svc))
    with Stubber(cfn) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_an_empty_change_set_is_reported_as_no_changes_and_deleted(world: World, stubbed: Any) -> None:
    stubbed.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "batchpipes-bp"})
    stubbed.add_response("create_change_set", {"Id": CS_ARN, "StackId": STACK_ID})
    stubbed.add_response("describe_change_set", {
        "ChangeSetId": CS_ARN, "StackId": STACK_ID, "Status": "FAILED", "ExecutionStatus": "UNAVAILABLE",
        "StatusReason": "The submitted information didn't contain changes. Submit different information to create "
                        "a change set."}, {"ChangeSetName": CS_ARN})
    stubbed.add_response("delete_change_set", {}, {"ChangeSetName": CS_ARN})
    stubbed.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": STACK_ID})
    dep = stack.deploy(world.sess, world.spec(), sleep=lambda _: None)
    assert dep.changes == [] and not dep.executed and dep.outputs == {"CpuQueueArn": "arn:aws:batch:q"}


def test_a_failed_update_names_the_first_failed_resource_of_this_run(world: World, stubbed: Any,
                                                                     expect_user_error: Any) -> None:
    earlier = _event("e0", "GpuComputeEnvironment", "UPDATE_FAILED", 1, "an older failure")
    stubbed.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "batchpipes-bp"})
    stubbed.add_response("create_change_set", {"Id": CS_ARN, "StackId": STACK_ID})
    change_set = {"ChangeSetId": CS_ARN, "StackId": STACK_ID, "Status": "CREATE_COMPLETE",
                  "ExecutionStatus": "AVAILABLE", "Changes": [{"Type": "Resource", "ResourceChange": {
                      "Action": "Modify", "LogicalResourceId": "CpuComputeEnvironment",
                      "ResourceType": "AWS::Batch::ComputeEnvironment", "Replacement": "False"}}]}
    stubbed.add_response("describe_change_set", change_set, {"ChangeSetName": CS_ARN})
    stubbed.add_response("describe_change_set", change_set, {"ChangeSetName": CS_ARN})
    stubbed.add_response("describe_stack_events", {"StackEvents": [earlier]}, {"StackName": STACK_ID})
    stubbed.add_response("execute_change_set", {}, {"ChangeSetName": CS_ARN})
    now = [_event("e3", "batchpipes-bp", "UPDATE_ROLLBACK_COMPLETE", 9),
           _event("e2", "MnpComputeEnvironment", "UPDATE_FAILED", 8, "Resource update cancelled"),
           _event("e1", "CpuComputeEnvironment", "UPDATE_FAILED", 7,
                  "Resource handler returned message: \"maxvCpus\n exceeds the account's vCPU quota\""), earlier]
    stubbed.add_response("describe_stack_events", {"StackEvents": now}, {"StackName": STACK_ID})
    stubbed.add_response("describe_stacks", _stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": STACK_ID})
    stubbed.add_response("describe_stack_events", {"StackEvents": now}, {"StackName": STACK_ID})
    msg = expect_user_error(stack.deploy, world.sess, world.spec(), sleep=lambda _: None)
    assert msg == ("deploy of stack batchpipes-bp ended UPDATE_ROLLBACK_COMPLETE: CpuComputeEnvironment "
                   "(AWS::Batch::ComputeEnvironment): Resource handler returned message: \"maxvCpus exceeds the "
                   "account's vCPU quota\"")


def test_print_parameters_gives_every_template_parameter_without_aws(fake_aws: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any AWS call would fail
    r = cli("deploy", "--name", "bp", "--bucket", DATA, "--vpc-id", "vpc-0123456789abcdef0", "--subnets",
            "subnet-0123456789abcdef0,subnet-0123456789abcdef1", "--security-groups", "sg-0123456789abcdef0",
            "--cpu-ami-id", "ami-0123456789abcdef0", "--gpu-ami-id", "ami-0123456789abcdef1", "--print-parameters")
    assert r.returncode == 0, r.stderr
    pairs = dict(v.split("=", 1) for v in shlex.split(r.stdout))
    import yaml

    declared = set(yaml.load(stack.template_body(), Loader=_CfnLoader)["Parameters"])
    assert set(pairs) == declared - {"BatchServiceRoleArn"}, "empty = Batch uses its service-linked role"
    assert pairs["MnpSubnet"] == "subnet-0123456789abcdef0" and pairs["CromwellBucket"] == DATA
    assert pairs["GromacsImageTag"] == containers.get("gromacs").tag


def test_poll_backs_off_with_jitter_then_times_out(expect_user_error: Any) -> None:
    pauses: list[float] = []
    msg = expect_user_error(stack.poll, lambda: False, "stack batchpipes-bp to finish update", timeout=100,
                            sleep=pauses.append)
    assert msg.startswith("timed out after 1") and "stack batchpipes-bp to finish update" in msg
    assert all(0.5 * min(2 ** i, 30) <= p <= min(2 ** i, 30) for i, p in enumerate(pauses))
    assert sum(pauses[:-1]) < 100 <= sum(pauses)
