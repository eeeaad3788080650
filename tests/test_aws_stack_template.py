"""cloudformation/batchpipes.yaml read as a document: cfn-lint and checkov clean, and its structure (IMDSv2,
encryption, the scratch-volume contract, the multi-node network, image types, tags, outputs, job definitions).

moto cannot run two of its resource types (placement group, security-group egress; tests/test_aws_stack.py), and
nothing of it says what real AWS would do with a property, so what matters is also asserted here on the template
itself, resolved for a concrete account by :class:`Resolved` (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join, the
conditions), the way CloudFormation would resolve it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers
from batchpipes.aws import mnp, stack
from batchpipes.aws.constants import DEPLOYMENT_TAG, PROJECT_TAGS, SPOT_RETRY
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "cloudformation" / "batchpipes.yaml"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_INSTALL = "python3 -m venv .tools/checkov && .tools/checkov/bin/pip install checkov==3.3.30"
ACCOUNT, REGION = "123456789012", "eu-west-1"


def load() -> dict[str, Any]:
    return dict(cfn_yaml.load(str(TEMPLATE)))


PARAMS = {
    "Name": "bp", "DataBucket": "bp-data", "CromwellBucket": "bp-cromwell", "RepositoryPrefix": "batchpipes",
    "BatchServiceRoleArn": "", "VpcId": "vpc-0123456789abcdef0",
    "Subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"], "SecurityGroups": ["sg-0123456789abcdef0"],
    "MnpSubnet": "subnet-0123456789abcdef1", "CpuAmiId": "ami-0123456789abcdef0", "GpuAmiId": "ami-0123456789abcdef1",
    "CapacityType": "SPOT",
}


class Resolved:
    """The template's values for one account, region and parameter set (defaults for the rest)."""

    def __init__(self, template: dict[str, Any], params: dict[str, Any], region: str = REGION) -> None:
        self.t, self.region = template, region
        self.partition = "aws-cn" if region.startswith("cn-") else "aws"
        self.params: dict[str, Any] = {}
        params = {**{stack.image_parameter(i): tag for i, tag in stack.default_image_tags().items()}, **params}
        for key, p in template["Parameters"].items():
            value = params.get(key, p.get("Default"))
            if p["Type"] in ("CommaDelimitedList",) and isinstance(value, str):
                value = value.split(",")
            self.params[key] = value
        self.conditions = {k: self.value(v) for k, v in template.get("Conditions", {}).items()}

    def pseudo(self, name: str) -> Any:
        return {"AWS::AccountId": ACCOUNT, "AWS::Region": self.region, "AWS::Partition": self.partition,
                "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
                "AWS::StackName": "batchpipes-bp", "AWS::NoValue": None}[name]

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        res = self.t["Resources"][name]
        props = res["Properties"]
        arn = f"arn:{self.partition}:batch:{self.region}:{ACCOUNT}"
        kind = res["Type"]
        if kind == "AWS::Batch::JobQueue":
            return f"{arn}:job-queue/{self.value(props['JobQueueName'])}"
        if kind == "AWS::Batch::ComputeEnvironment":
            return f"{arn}:compute-environment/{self.value(props['ComputeEnvironmentName'])}"
        if kind == "AWS::Batch::JobDefinition":
            return f"{arn}:job-definition/{self.value(props['JobDefinitionName'])}:1"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{self.partition}:iam::{ACCOUNT}:policy/{self.value(props['ManagedPolicyName'])}"
        return f"<{name}>"  # roles, launch templates, groups: an id CloudFormation makes up

    def getatt(self, name: str, attr: str) -> Any:
        props = self.t["Resources"][name]["Properties"]
        if attr == "Arn" and "RoleName" in props:
            return f"arn:{self.partition}:iam::{ACCOUNT}:role/{self.value(props['RoleName'])}"
        if attr == "Arn" and "InstanceProfileName" in props:
            return f"arn:{self.partition}:iam::{ACCOUNT}:instance-profile/{self.value(props['InstanceProfileName'])}"
        return f"<{name}.{attr}>"

    def sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            key = m.group(1)
            if key in extra:
                return str(extra[key])
            if "." in key and key.split(".")[0] in self.t["Resources"]:
                return str(self.getatt(*key.split(".", 1)))
            return str(self.ref(key))
        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", one, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                return self.getatt(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.value(v)
                                                                                  for k, v in arg[1].items()})
                return self.sub(text, extra)
            if fn == "Fn::If":
                return self.value(arg[1] if self.conditions[arg[0]] else arg[2])
            if fn == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            if fn == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if fn == "Fn::Not":
                return not self.value(arg[0])
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not None}

    def props(self, logical: str) -> dict[str, Any]:
        return dict(self.value(self.t["Resources"][logical]["Properties"]))


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def r(t: dict[str, Any]) -> Resolved:
    return Resolved(t, PARAMS)


def of_type(t: dict[str, Any], kind: str) -> list[str]:
    return [k for k, v in t["Resources"].items() if v["Type"] == kind]


# -- linters ---------------------------------------------------------------------------------------------------------

def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def checkov_report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is not installed where the tests look for it ({CHECKOV}): {CHECKOV_INSTALL}")
    proc = subprocess.run([str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download",
                           "-o", "json"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return dict(report[0] if isinstance(report, list) else report)


def documented_suppressions() -> set[tuple[str, str]]:
    """The (check, resource) rows of the checkov suppression table in docs/aws.md ("| CKV_... | Resource | why |")."""
    text = (REPO / "docs" / "aws.md").read_text()
    return {(m.group(1), m.group(2)) for m in re.finditer(r"^\| *`?(CKV2?_AWS_\d+)`? *\| *`?(\w+)`? *\|", text, re.M)}


def test_checkov_passes_with_only_the_documented_suppressions(t: dict[str, Any]) -> None:
    report = checkov_report()
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == []
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in results["skipped_checks"]}
    listed = {(s["id"], s["resource"]) for s in t["Metadata"]["batchpipes:checkov-suppressions"]}
    on_resources = {(s["id"], name) for name, res in t["Resources"].items()
                    for s in res.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert skipped == listed == on_resources == documented_suppressions()
    assert all(s.get("reason", "").strip() for s in t["Metadata"]["batchpipes:checkov-suppressions"])
    passed = {(c["check_id"], c["resource"]) for c in results["passed_checks"]}
    # the scan saw what matters: IMDSv1 off in both launch templates, IAM checks on every policy-bearing resource
    assert {("CKV_AWS_79", "AWS::EC2::LaunchTemplate.CpuLaunchTemplate"),
            ("CKV_AWS_79", "AWS::EC2::LaunchTemplate.GpuLaunchTemplate"),
            ("CKV_AWS_111", "AWS::IAM::ManagedPolicy.CromwellPolicy"),
            ("CKV_AWS_60", "AWS::IAM::Role.JobRole")} <= passed
    assert report["summary"]["parsing_errors"] == 0


def test_template_fits_inline_and_the_package_finds_it() -> None:
    assert stack.template_path().resolve() == TEMPLATE
    assert len(TEMPLATE.read_bytes()) <= stack.TEMPLATE_BODY_LIMIT


# -- hosts -------------------------------------------------------------------------------------------------------------

def test_launch_templates_imdsv2_encrypted_gp3_and_the_scratch_contract(t: dict[str, Any], r: Resolved) -> None:
    from batchpipes.aws import ami

    names = of_type(t, "AWS::EC2::LaunchTemplate")
    assert sorted(names) == ["CpuLaunchTemplate", "GpuLaunchTemplate"]
    for name in names:
        data = r.props(name)["LaunchTemplateData"]
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled",
                                           "HttpPutResponseHopLimit": 1}
        devices = {m["DeviceName"]: m["Ebs"] for m in data["BlockDeviceMappings"]}
        assert set(devices) == {"/dev/xvda", ami.SCRATCH_DEVICE}, "root and the scratch device the AMI looks for"
        for ebs in devices.values():
            assert ebs["Encrypted"] is True and ebs["VolumeType"] == "gp3" and ebs["DeleteOnTermination"] is True
        raw = {m["DeviceName"]: m["Ebs"] for m in t["Resources"][name]["Properties"]["LaunchTemplateData"][
            "BlockDeviceMappings"]}
        assert raw[ami.SCRATCH_DEVICE]["VolumeSize"] == {"Ref": "ScratchGiB"}
        assert "ImageId" not in data, "the AMI comes from the compute environment's ImageIdOverride"
        assert "NetworkInterfaces" not in data, "no public IP is asked for"


def test_compute_environments_image_types_amis_and_the_single_az_mnp(t: dict[str, Any], r: Resolved) -> None:
    ces = {n: r.props(n) for n in of_type(t, "AWS::Batch::ComputeEnvironment")}
    assert sorted(ces) == ["CpuComputeEnvironment", "GpuComputeEnvironment", "MnpComputeEnvironment"]
    images = {n: [(c["ImageType"], c["ImageIdOverride"]) for c in ce["ComputeResources"]["Ec2Configuration"]]
              for n, ce in ces.items()}
    assert images == {"CpuComputeEnvironment": [("ECS_AL2023", PARAMS["CpuAmiId"])],
                      "GpuComputeEnvironment": [("ECS_AL2023_NVIDIA", PARAMS["GpuAmiId"])],
                      "MnpComputeEnvironment": [("ECS_AL2023", PARAMS["CpuAmiId"])]}
    mnp_cr = ces["MnpComputeEnvironment"]["ComputeResources"]
    assert mnp_cr["Subnets"] == [PARAMS["MnpSubnet"]], "a cluster placement group lives in one AZ"
    assert mnp_cr["SecurityGroupIds"] == ["<MnpSecurityGroup.GroupId>"]
    assert mnp_cr["PlacementGroup"] == "<MnpPlacementGroup>" and mnp_cr["Type"] == "EC2"
    assert t["Resources"]["MnpPlacementGroup"]["Properties"]["Strategy"] == "cluster"
    for name in ("CpuComputeEnvironment", "GpuComputeEnvironment"):
        cr = ces[name]["ComputeResources"]
        assert cr["Subnets"] == PARAMS["Subnets"] and cr["SecurityGroupIds"] == PARAMS["SecurityGroups"]
        assert (cr["Type"], cr["AllocationStrategy"]) == ("SPOT", "SPOT_CAPACITY_OPTIMIZED")
        assert cr["MinvCpus"] == 0
    on_demand = Resolved(t, {**PARAMS, "CapacityType": "ON_DEMAND"})
    cpu = on_demand.props("CpuComputeEnvironment")
    assert (cpu["ComputeResources"]["Type"], cpu["ComputeResources"]["AllocationStrategy"]) == \
        ("EC2", "BEST_FIT_PROGRESSIVE")
    assert cpu["ComputeEnvironmentName"] == "bp-cpu-ondemand", "a new name, so the switch is a clean replacement"
    assert "ServiceRole" not in ces["CpuComputeEnvironment"], "empty parameter: Batch's service-linked role"
    slr = "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch"
    assert Resolved(t, {**PARAMS, "BatchServiceRoleArn": slr}).props("MnpComputeEnvironment")["ServiceRole"] == slr


def test_mnp_security_group_members_reach_each_other_on_all_tcp(t: dict[str, Any], r: Resolved) -> None:
    sg = r.props("MnpSecurityGroup")
    assert sg["VpcId"] == PARAMS["VpcId"] and "SecurityGroupIngress" not in sg, "no ingress from outside"
    assert sg["SecurityGroupEgress"] == [{"Description": "HTTPS to S3, ECR, Batch, ECS and CloudWatch endpoints",
                                          "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                          "CidrIp": "0.0.0.0/0"}]
    self_ref = {"Fn::GetAtt": ["MnpSecurityGroup", "GroupId"]}
    ingress = [t["Resources"][n]["Properties"] for n in of_type(t, "AWS::EC2::SecurityGroupIngress")]
    egress = [t["Resources"][n]["Properties"] for n in of_type(t, "AWS::EC2::SecurityGroupEgress")]
    assert len(ingress) == 1 and len(egress) == 1
    assert ingress[0]["GroupId"] == ingress[0]["SourceSecurityGroupId"] == self_ref
    assert egress[0]["GroupId"] == egress[0]["DestinationSecurityGroupId"] == self_ref
    for rule in (ingress[0], egress[0]):
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 0, 65535)
        # Open MPI's TCP BTL/OOB ports are dynamic: the fixed rendezvous and ssh ports are inside, not the rule
        assert rule["FromPort"] <= mnp.SSH_PORT < mnp.RENDEZVOUS_PORT <= rule["ToPort"]


# -- tags, retention, outputs ----------------------------------------------------------------------------------------

def test_every_taggable_resource_carries_the_project_and_deployment_tags(t: dict[str, Any], r: Resolved) -> None:
    want = {**PROJECT_TAGS, DEPLOYMENT_TAG: "bp"}
    checked = []
    for name, res in t["Resources"].items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, res["Type"]).schema["properties"]
        props = r.props(name)
        if "Tags" in schema:
            tags = props.get("Tags")
            got = tags if isinstance(tags, dict) else {x["Key"]: x["Value"] for x in tags or []}
            assert want.items() <= got.items(), name
            checked.append(name)
        if "TagSpecifications" in schema:
            specs = {s["ResourceType"]: {x["Key"]: x["Value"] for x in s["Tags"]} for s in props["TagSpecifications"]}
            assert want.items() <= specs["launch-template"].items(), name
            checked.append(name)
        if res["Type"] == "AWS::EC2::LaunchTemplate":
            inner = {s["ResourceType"]: {x["Key"]: x["Value"] for x in s["Tags"]}
                     for s in props["LaunchTemplateData"]["TagSpecifications"]}
            assert want.items() <= inner["instance"].items() and want.items() <= inner["volume"].items()
        if res["Type"] == "AWS::Batch::ComputeEnvironment":
            assert want.items() <= props["ComputeResources"]["Tags"].items(), "the instances"
    untaggable = {n for n in t["Resources"] if n not in checked}
    assert untaggable == {"InstanceProfile", "CromwellPolicy", "MnpIngressFromMembers", "MnpEgressToMembers"}


def test_nothing_is_retained_on_delete_or_replacement(t: dict[str, Any]) -> None:
    for name, res in t["Resources"].items():
        assert res.get("DeletionPolicy", "Delete") == "Delete", name
        assert res.get("UpdateReplacePolicy", "Delete") == "Delete", name


def test_outputs_give_what_the_commands_print_and_read(t: dict[str, Any], r: Resolved) -> None:
    out = {k: r.value(v["Value"]) for k, v in t["Outputs"].items()}
    arn = f"arn:aws:batch:{REGION}:{ACCOUNT}"
    assert out["CpuQueueArn"] == f"{arn}:job-queue/bp-cpu" and out["GpuQueueArn"] == f"{arn}:job-queue/bp-gpu"
    assert out["MnpQueueArn"] == f"{arn}:job-queue/bp-mnp"
    assert out["JobRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/bp-batch-job"
    assert out["CromwellPolicyArn"] == f"arn:aws:iam::{ACCOUNT}:policy/bp-cromwell"
    assert sorted(out["JobDefinitions"].split(",")) == sorted(
        f"{arn}:job-definition/bp-{n}:1" for n in [*stack.default_image_tags(), "gpu-encode", "gromacs-mnp"])
    from batchpipes.aws import infra_cmd  # what deploy prints is what the stack gives

    read = set(re.findall(r"out\[['\"](\w+)['\"]\]", Path(infra_cmd.__file__).read_text()))
    assert read and set(infra_cmd.PRINTED_OUTPUTS) | read | {"JobDefinitions"} <= set(out)


# -- parameters and job definitions ----------------------------------------------------------------------------------

def test_parameters_are_constrained_and_described(t: dict[str, Any]) -> None:
    for name, p in t["Parameters"].items():
        assert p.get("Description", "").strip(), name
        typed = p["Type"].startswith(("AWS::", "List<AWS::")) or "AllowedValues" in p
        assert typed or "AllowedPattern" in p or "MinValue" in p or p["Type"] == "CommaDelimitedList", name
    for key in ("CpuAmiId", "GpuAmiId"):
        assert t["Parameters"][key]["Type"] == "AWS::EC2::Image::Id" and "Default" not in t["Parameters"][key]
    assert t["Parameters"]["MnpSubnet"]["Type"] == "AWS::EC2::Subnet::Id", "one subnet, not a list"
    assert t["Parameters"]["Subnets"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    spec = stack.Spec("bp", "bp-data", "bp-data", "vpc-01234567", ["subnet-01234567"], ["sg-01234567"],
                      "subnet-01234567", "ami-01234567", "ami-01234567")
    defaults = {p["ParameterKey"]: p["ParameterValue"] for p in stack.parameters(spec, "")}
    for key, p in t["Parameters"].items():  # the CLI's defaults are the template's
        if "Default" in p:
            assert str(p["Default"]) == defaults[key], key
        if "AllowedPattern" in p and defaults.get(key):
            assert re.fullmatch(p["AllowedPattern"], defaults[key]), key


def test_one_job_definition_per_image_each_retrying_only_host_reclaims(t: dict[str, Any], r: Resolved) -> None:
    images = stack.default_image_tags()
    declared = {k for k in t["Parameters"] if k.endswith("ImageTag")}
    assert declared == {stack.image_parameter(i) for i in images}, "a new image needs its parameter and definition"
    defs = {r.props(n)["JobDefinitionName"]: r.props(n) for n in of_type(t, "AWS::Batch::JobDefinition")}
    assert set(defs) == {f"bp-{i}" for i in images} | {"bp-gpu-encode", "bp-gromacs-mnp"}
    retry = {"Attempts": SPOT_RETRY["attempts"], "EvaluateOnExit": [
        {k[:1].upper() + k[1:]: v for k, v in rule.items()} for rule in SPOT_RETRY["evaluateOnExit"]]}
    registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    for name, d in defs.items():
        assert d["RetryStrategy"] == retry, name
        assert d["PlatformCapabilities"] == ["EC2"] and d["PropagateTags"] is True
        container = d["ContainerProperties"] if d["Type"] == "container" else \
            d["NodeProperties"]["NodeRangeProperties"][0]["Container"]
        assert container["Privileged"] is False and container["JobRoleArn"] == r.getatt("JobRole", "Arn")
        assert container["Image"].startswith(f"{registry}/batchpipes/"), name
    for image in images:
        assert defs[f"bp-{image}"]["ContainerProperties"]["Image"] == f"{registry}/{containers.get(image).pinned}"
    gpu = defs["bp-gpu-encode"]["ContainerProperties"]
    assert {"Type": "GPU", "Value": "1"} in gpu["ResourceRequirements"]
    china = Resolved(t, PARAMS, region="cn-north-1").props("GenomicsJobDefinition")["ContainerProperties"]["Image"]
    assert china.startswith(f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/batchpipes/genomics:")


def _api_case(node: Any) -> Any:
    if isinstance(node, dict):
        return {k[:1].lower() + k[1:]: _api_case(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_api_case(v) for v in node]
    return node


def test_mnp_job_definition_is_what_mnp_submit_registers(t: dict[str, Any], r: Resolved) -> None:
    d = r.props("GromacsMnpJobDefinition")
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{containers.get('gromacs').pinned}"
    nodes, vcpus, memory = (int(t["Parameters"][k]["Default"]) for k in ("MnpNodes", "MnpVcpus", "MnpMemoryMiB"))
    want = mnp.job_definition("bp-gromacs-mnp", image, nodes, vcpus, memory, job_role_arn=r.getatt("JobRole", "Arn"))
    got = _api_case(d)
    got["nodeProperties"]["numNodes"] = int(got["nodeProperties"]["numNodes"])
    container = got["nodeProperties"]["nodeRangeProperties"][0]["container"]
    container["resourceRequirements"] = [{"type": x["type"], "value": str(x["value"])}
                                         for x in container["resourceRequirements"]]
    container["environment"] = [{"name": x["name"], "value": str(x["value"])} for x in container["environment"]]
    assert got["nodeProperties"] == want["nodeProperties"]
    for key in ("type", "retryStrategy", "timeout", "platformCapabilities", "propagateTags"):
        assert got[key] == want[key], key
    # /dev/shm is fixed in the template (no arithmetic in CloudFormation): within half of the smallest memory allowed
    assert container["linuxParameters"]["sharedMemorySize"] <= int(t["Parameters"]["MnpMemoryMiB"]["MinValue"]) // 2
