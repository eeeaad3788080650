"""Every task of every workflow as Cromwell's AWS Batch backend would run it (no Cromwell, no AWS).

What is reproduced, and from which file of broadinstitute/cromwell (release 92 / develop c805f3c5), is in
tests/cromwell_emu.py and in docs ("What is tested: Cromwell emulation"):

* the command Cromwell instantiates (parse-time whitespace stripping, placeholders rendered the Cromwell way,
  ``StringUtil.normalize``) passes ``bash -n`` and shellcheck, alone and inside the job script's subshell;
* the RegisterJobDefinition and SubmitJob requests built from the task's runtime section and the CURRENT
  rendered aws.conf pass botocore's validation against the Batch service model, route GPU tasks to the GPU
  queue, and their retry strategy retries a Spot reclaim but not a failing task.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cromwell_emu as ce
import pytest
import WDL
from batchpipes import workflows
from batchpipes.aws import cromwell, cromwell_inputs
from batchpipes.aws.cromwell import AwsSettings

REPO = Path(__file__).resolve().parents[1]
WDL_DIR = REPO / "wdl"
PIPELINES = ("genomics", "genomics_cohort", "gromacs", "hevc")
GIB = 1 << 30
#: input sizes by suffix, for the disk expressions (size() of the inputs; Cromwell ignores the disk size anyway)
SIZES = {".fastq.gz": 6 * GIB, ".fa": 3 * GIB, ".bwt": 3 * GIB, ".sa": 2 * GIB, ".pac": GIB // 2,
         ".gtf.gz": GIB // 20, ".mov": 40 * GIB, ".pdb": 1 << 20, ".bam": 8 * GIB}

#: shellcheck exclusions, each for a reason that comes from instantiation, not from the script:
SHELLCHECK_EXCLUDE = {
    # A WDL Int/Boolean placeholder becomes a literal, so `[ 2 -eq 1 ]` / `case 4 in` are constant by design.
    "SC2050": "constant test expression after placeholder substitution",
    "SC2194": "constant case word after placeholder substitution",
    "SC2157": "constant -n/-z argument after placeholder substitution",
    "SC2078": "constant test expression after placeholder substitution",
}


def rendered_conf() -> Any:
    text = cromwell.render_aws_conf(ce.BUCKET, ce.CPU_QUEUE, ce.GPU_QUEUE).text
    return cromwell.parse_conf(text)


def conf_defaults(conf: Any) -> dict[str, Any]:
    tree = conf.get("backend.providers.AWSBATCH.config.default-runtime-attributes")
    plain: dict[str, Any] = json.loads(json.dumps(tree.as_plain_ordered_dict()))
    return plain


@dataclass
class Case:
    id: str
    variant: str
    call: ce.CallCase
    inst: ce.Instantiated
    runtime: dict[str, Any]


def _inputs(pipeline: str) -> dict[str, Any]:
    """The AWS inputs template of the pipeline, bucket filled in, passed through what `cromwell-command` does
    (images -> ECR, queue ARN inputs from the configuration)."""
    text = (REPO / "inputs" / f"{pipeline}.aws.json").read_text()
    raw = json.loads(re.sub(r"\b(my-bucket|YOUR-BUCKET)\b", ce.BUCKET, text))
    aws = AwsSettings(ce.BUCKET, ce.CPU_QUEUE, ce.GPU_QUEUE, ce.REGION)
    return cromwell_inputs.aws_inputs(workflows.get(pipeline), raw, aws)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    scratch = tmp_path_factory.mktemp("emu")
    out = []
    for pipeline in PIPELINES:
        for call in ce.workflow_cases(WDL_DIR / f"{pipeline}.wdl", _inputs(pipeline), scratch):
            for variant, given in (("run", call.given), ("flipped", ce.flipped_inputs(call.task, call.given))):
                inst, runtime = ce.instantiate_case(call.task, given, scratch, call.workflow, call.call, SIZES)
                out.append(Case(f"{call.id}.{variant}", variant, call, inst, runtime))
    return out


# -- Cromwell's normalisation, on Cromwell's own cases ----------------------------------------------------------

# wdl/model/draft2/src/test/scala/wdl/util/StringUtilSpec.scala (the normalize table)
CROMWELL_NORMALIZE_CASES = [
    ("    echo hello \\\n\n    echo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("    echo hello \\\n    \n    echo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("    echo hello \\\n      \n    echo goodbye\n", "echo hello \\\n  \necho goodbye"),
    ("    echo hello \\\r\n\r\n    echo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("    echo hello \\\r\n    \r\n    echo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("    echo hello \\\r\n      \r\n    echo goodbye\n", "echo hello \\\n  \necho goodbye"),
    ("\t\techo hello \\\n\n\t\techo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("\t\techo hello \\\n\t\t\n\t\techo goodbye\n", "echo hello \\\n\necho goodbye"),
    ("\t\techo hello \\\n\t\t\t\n\t\techo goodbye\n", "echo hello \\\n\t\necho goodbye"),
    ("    echo hello \\\n  \necho goodbye\n", "    echo hello \\\n  \necho goodbye"),
]


@pytest.mark.parametrize("text, expected", CROMWELL_NORMALIZE_CASES)
def test_normalize_reproduces_cromwells_own_table(text: str, expected: str) -> None:
    assert ce.normalize_command(text) == expected


def test_normalize_details_that_differ_from_textwrap() -> None:
    import textwrap

    # a tab and two spaces both count as characters: indent 1 is dropped from both (textwrap drops nothing)
    assert ce.normalize_command("\tx\n  y") == "x\n y"
    assert textwrap.dedent("\tx\n  y") == "\tx\n  y"
    # only newlines are stripped at the start (the first line's spaces count towards the indent); trailing
    # spaces and tabs go; no final newline
    assert ce.normalize_command("\n\n   a\n     b \t\n\n") == "a\n  b"
    assert ce.normalize_command(" \n   a") == "\na"  # a first line of one space is not stripped, only emptied
    assert ce.normalize_command("   \n\n") == ""


def _task(tmp_path: Path, command: str, inputs: str = "") -> WDL.Tree.Task:
    wdl = tmp_path / "t.wdl"
    wdl.write_text(f"version 1.0\ntask t {{\n  input {{ {inputs} }}\n  command <<<\n{command}\n  >>>\n"
                   '  runtime { docker: "debian:bookworm-slim" }\n}\n')
    return WDL.load(str(wdl)).tasks[0]


def test_parse_stage_refuses_mixed_leading_whitespace(tmp_path: Path) -> None:
    """AstToCommandSectionElement: a tab-indented line in a space-indented command fails the workflow."""
    ok = _task(tmp_path, "    set -eu\n    cat <<EOF\n    x\n    EOF")
    assert "".join(p for p in ce.command_section_parts(ok.command.parts) if isinstance(p, str)).startswith("set -eu")
    mixed = _task(tmp_path, "    set -eu\n\tif true; then\n\t\techo x\n\tfi")
    with pytest.raises(ce.CromwellError, match="Cannot mix leading whitespace characters"):
        ce.command_section_parts(mixed.command.parts)


def test_multiline_value_at_column_zero_changes_the_indent_cromwell_strips(tmp_path: Path) -> None:
    """Cromwell dedents AFTER interpolation: a value with a line at column 0 leaves the whole command indented
    (miniwdl dedents before, so only Cromwell breaks an indented heredoc terminator). Our tasks never paste
    Strings (docs/development.md, Shell safety); this shows the check catches the case if one ever did."""
    # the blank line makes the parse-time prefix empty (AstToCommandSectionElement), so only normalize dedents
    task = _task(tmp_path, "    cat > x.py <<'PY'\n    print(1)\n    PY\n\n    echo '~{note}'", "String note")
    stdlib = ce.CromwellStdLib("/cromwell_root/b/c", tmp_path)
    env = ce.evaluate_task_env(task, {"note": WDL.Value.String("a\nb")}, stdlib)
    command = ce.instantiate_command(task, env, stdlib).command
    assert "\n    PY\n" in command  # the heredoc terminator keeps its indent: bash never ends the heredoc
    proc = subprocess.run(["bash", "-n"], input=command, capture_output=True, text=True)
    assert proc.returncode != 0 or "warning: here-document" in proc.stderr


def test_placeholder_values_are_rendered_the_cromwell_way() -> None:
    assert ce.placeholder_text(WDL.Value.Float(0.15), {}) == "0.15"
    assert ce.placeholder_text(WDL.Value.Float(1e-4), {}) == "1.0E-4"  # Java's Double.toString
    assert ce.placeholder_text(WDL.Value.Float(300.0), {}) == "300.0"
    assert ce.placeholder_text(WDL.Value.Float(2.5e7), {}) == "2.5E7"
    assert ce.placeholder_text(WDL.Value.Boolean(False), {"true": "--gpu", "false": ""}) == ""
    assert ce.placeholder_text(WDL.Value.Boolean(True), {}) == "true"
    assert ce.placeholder_text(WDL.Value.Null(), {"default": "8"}) == "8"
    ints = WDL.Value.Array(WDL.Type.Int(), [WDL.Value.Int(1), WDL.Value.Int(2)])
    assert ce.placeholder_text(ints, {"sep": ","}) == "1,2"
    with pytest.raises(ce.CromwellError, match="no 'sep' attribute"):
        ce.placeholder_text(ints, {})


# -- every task: bash -n and shellcheck -------------------------------------------------------------------------


def test_every_task_of_every_file_is_instantiated(cases: list[Case]) -> None:
    every = {(str(Path(task.pos.abspath).relative_to(WDL_DIR)), name) for (_f, name), task in
             ce.all_tasks(WDL_DIR).items()}
    covered = {(str(Path(c.call.task.pos.abspath).relative_to(WDL_DIR)), c.call.task.name) for c in cases}
    assert every - covered == set(), "tasks no workflow calls: instantiate them here with their defaults"
    assert len(every) >= 25 and {c.variant for c in cases} == {"run", "flipped"}


def _shellcheck(files: list[Path]) -> list[dict[str, Any]]:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (apt-get install shellcheck; scripts/bootstrap.sh installs it)"
    proc = subprocess.run([exe, "-s", "bash", "-S", "style", "-f", "json1", "-e", ",".join(SHELLCHECK_EXCLUDE),
                           *map(str, files)], capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    comments: list[dict[str, Any]] = json.loads(proc.stdout or '{"comments": []}')["comments"]
    return comments


@pytest.fixture(scope="module")
def checked(cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Problems per case id: bash -n and shellcheck of the command alone and wrapped as in the job script."""
    folder = tmp_path_factory.mktemp("commands")
    files: dict[Path, str] = {}
    for case in cases:
        alone = folder / f"{case.id}.sh"
        alone.write_text(f"#!/bin/bash\n{case.inst.command}\n")
        wrapped = folder / f"{case.id}.job.sh"
        wrapped.write_text(ce.wrap_like_job_script(case.inst.command, workflow_id="3f1c2a9e-4b7d-4e0a-9c51"))
        files[alone] = files[wrapped] = case.id
    problems: dict[str, list[str]] = {c.id: [] for c in cases}

    def bash_n(path: Path) -> tuple[Path, str]:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        return path, proc.stderr.strip() if proc.returncode else ""

    paths = sorted(files)
    half = (len(paths) + 1) // 2
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        batches = list(pool.map(_shellcheck, [paths[:half], paths[half:]]))
        for path, err in pool.map(bash_n, paths):
            if err:
                problems[files[path]].append(f"{path.name}: bash -n: {err}")
    for comment in (c for batch in batches for c in batch):
        path = Path(comment["file"])
        case_id = files[path]
        line = path.read_text().splitlines()[comment["line"] - 1]
        problems[case_id].append(f"{path.name}:{comment['line']}: SC{comment['code']} ({comment['level']}): "
                                 f"{comment['message']}\n    {line.strip()}")
    return problems


def _case_ids() -> Iterator[str]:
    for pipeline in PIPELINES:
        doc = ce.load(WDL_DIR / f"{pipeline}.wdl")
        assert doc.workflow is not None
        for call in _calls(doc.workflow.body):
            for variant in ("run", "flipped"):
                yield f"{doc.workflow.name}.{call}.{variant}"


def _calls(body: list[Any]) -> Iterator[str]:
    for node in body:
        if isinstance(node, WDL.Tree.Call):
            yield node.name
        elif isinstance(node, (WDL.Tree.Scatter, WDL.Tree.Conditional)):
            yield from _calls(node.body)


CASE_IDS = list(_case_ids())


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_command_passes_bash_n_and_shellcheck(case_id: str, checked: dict[str, list[str]]) -> None:
    assert case_id in checked, f"{case_id} was not instantiated"
    assert checked[case_id] == [], "\n".join(checked[case_id])


def test_the_command_checks_can_fail(tmp_path: Path) -> None:
    """The same pipeline (instantiate, normalize, shellcheck with our exclusions, bash -n) on broken commands."""
    unquoted = _task(tmp_path, '    f=$(mktemp)\n    rm $f\n    echo ~{n}', "Int n = 3")
    stdlib = ce.CromwellStdLib("/cromwell_root/b/c", tmp_path)
    command = ce.instantiate_command(unquoted, ce.evaluate_task_env(unquoted, {}, stdlib), stdlib).command
    assert command == 'f=$(mktemp)\nrm $f\necho 3'
    script = tmp_path / "bad.sh"
    script.write_text(f"#!/bin/bash\n{command}\n")
    assert [c["code"] for c in _shellcheck([script])] == [2086]
    script.write_text(ce.wrap_like_job_script("if true; then\n  echo x\n"))
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode != 0


def test_no_command_holds_a_marker_cromwell_replaces_after_inserting_it(cases: list[Case]) -> None:
    """StandardAsyncExecutionActor.commandScriptContents replaces SCRIPT_EPILOGUE, DOCKER_OUTPUT_DIR_LINK and
    SCRIPT_CLOSURE in the whole script after the command is in it."""
    for case in cases:
        found = [m for m in ce.LATE_MARKERS if m in case.inst.command]
        assert found == [], f"{case.id}: the command contains {found}, which Cromwell rewrites"


def test_engine_files_hold_container_paths(cases: list[Case]) -> None:
    """write_lines of Files writes /cromwell_root/<bucket>/<key> paths: the ones AwsBatchJob.reconfiguredScript
    rewrites to /tmp/scratch with sed (it does so for every localised *.tmp), and the commands reach them as
    /cromwell_root/.../write_lines_<md5>.tmp."""
    seen = 0
    for case in cases:
        for path, content in case.inst.written.items():
            assert re.fullmatch(r"/cromwell_root/bp-test-bucket/cromwell-execution/.+/write_(lines|json|tsv|map)_"
                                r"[0-9a-f]{32}\.tmp", path), path
            assert path in case.inst.command
            assert "s3://" not in content, f"{case.id}: {path} holds an s3:// URL the task cannot open"
            seen += 1
    assert seen > 50


# -- the Batch requests ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return conf_defaults(rendered_conf())


def test_rendered_conf_sets_evaluate_on_exit(defaults: dict[str, Any]) -> None:
    assert "awsBatchEvaluateOnExit" in defaults, (
        "default-runtime-attributes has no awsBatchEvaluateOnExit: Cromwell then sends its default [{}], an "
        "EvaluateOnExit without `action` (botocore and Batch reject it); add "
        '[{ action = "RETRY", onStatusReason = "Host EC2*" }, { action = "EXIT", onReason = "*" }]')


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_register_job_definition_and_submit_job_pass_botocore(case_id: str, cases: list[Case],
                                                               defaults: dict[str, Any]) -> None:
    case = next(c for c in cases if c.id == case_id)
    rt = ce.aws_runtime(case.runtime, defaults)
    register = ce.register_job_definition_request(rt)
    assert ce.botocore_problems("RegisterJobDefinition", register) == "", json.dumps(register, indent=1)
    assert ce.batch_pattern_problems(register) == []
    name = register["jobDefinitionName"]
    assert len(name) <= 128 and re.fullmatch(r"[A-Za-z0-9_-]+", name)
    props = register["containerProperties"]
    wanted = {"VCPU": str(case.runtime["cpu"]),
              "MEMORY": str(ce.memory_mib(case.runtime["memory"]))}
    assert {r["type"]: r["value"] for r in props["resourceRequirements"]} == wanted
    assert props["image"].startswith(f"{ce.ECR}/batchpipes/"), "cromwell-command points images at ECR"
    assert {"name": "local-disk", "host": {"sourcePath": "/cromwell_root"}} in props["volumes"]
    retries = case.runtime.get("awsBatchRetryAttempts", 0)
    if retries:
        strategy = register["retryStrategy"]
        assert strategy["attempts"] == retries
        assert strategy["evaluateOnExit"] and all("action" in e for e in strategy["evaluateOnExit"])
    else:
        assert "retryStrategy" not in register

    arn = f"arn:aws:batch:{ce.REGION}:{ce.ACCOUNT}:job-definition/{name}:1"
    submit = ce.submit_job_request(rt, f"{case.call.workflow}.{case.call.call}", arn, "0" * 32)
    assert ce.botocore_problems("SubmitJob", submit) == "", json.dumps(submit, indent=1)
    gpus = [r for r in submit["containerOverrides"]["resourceRequirements"] if r["type"] == "GPU"]
    if case.runtime.get("gpuCount", 0) > 0:
        assert gpus == [{"type": "GPU", "value": str(case.runtime["gpuCount"])}]
        assert submit["jobQueue"] == ce.GPU_QUEUE, "a GPU task must go to the GPU queue"
    else:
        assert gpus == []
        assert submit["jobQueue"] == ce.CPU_QUEUE


def test_gpu_tasks_are_emulated(cases: list[Case]) -> None:
    gpu = {c.call.id for c in cases if c.runtime.get("gpuCount", 0) > 0}
    cpu_variant = {c.call.id for c in cases if c.call.call == "production" and c.runtime.get("gpuCount", 0) == 0}
    assert "gromacs.production" in gpu and any(i.startswith("hevc.encode") for i in gpu), gpu
    assert cpu_variant == {"gromacs.production"}, "gpu = false sends production to the CPU queue"


def test_cromwells_default_evaluate_on_exit_is_rejected(defaults: dict[str, Any]) -> None:
    """The issue's finding: with awsBatchRetryAttempts but no awsBatchEvaluateOnExit, Cromwell's default [{}]
    becomes an EvaluateOnExit without `action`, which botocore (and Batch) refuse."""
    without = {k: v for k, v in defaults.items() if k != "awsBatchEvaluateOnExit"}
    task = {"docker": f"{ce.ECR}/batchpipes/genomics:x", "cpu": 2, "memory": "4 GiB", "awsBatchRetryAttempts": 2}
    register = ce.register_job_definition_request(ce.aws_runtime(task, without))
    assert register["retryStrategy"]["evaluateOnExit"] == [{}]
    assert "Missing required parameter in retryStrategy.evaluateOnExit[0]: \"action\"" in ce.botocore_problems(
        "RegisterJobDefinition", register)
    # a value Cromwell cannot read as a list of objects is ignored the same way (fromConfig -> default)
    as_string = {**without, "awsBatchEvaluateOnExit": '[{"action": "RETRY"}]'}
    register = ce.register_job_definition_request(ce.aws_runtime(task, as_string))
    assert ce.botocore_problems("RegisterJobDefinition", register) != ""


def test_cromwell_refuses_bad_retry_attributes(defaults: dict[str, Any]) -> None:
    task = {"docker": "x", "awsBatchRetryAttempts": 2}
    with pytest.raises(ce.CromwellError, match="action"):
        ce.aws_runtime({**task, "awsBatchEvaluateOnExit": [{"action": "RETRY_ONCE", "onReason": "*"}]}, defaults)
    with pytest.raises(ce.CromwellError, match="Invalid keys"):
        ce.aws_runtime({**task, "awsBatchEvaluateOnExit": [{"action": "EXIT", "onStatus": "*"}]}, defaults)
    with pytest.raises(ce.CromwellError, match="between 0 and 10"):
        ce.aws_runtime({**task, "awsBatchRetryAttempts": 11}, defaults)
    with pytest.raises(ce.CromwellError, match="ARN has invalid format"):  # the WDL default "" when not filled
        ce.aws_runtime({**task, "queueArn": ""}, defaults)
    # what Batch refuses and botocore does not check: a pattern with characters outside the documented set
    rt = ce.aws_runtime({**task, "awsBatchEvaluateOnExit": [
        {"action": "RETRY", "onStatusReason": "Host EC2 (instance*"}]}, defaults)
    assert ce.batch_pattern_problems(ce.register_job_definition_request(rt)) != []


SPOT = "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated."


def test_retry_strategy_retries_spot_reclaims_and_exits_on_task_failures(defaults: dict[str, Any]) -> None:
    rt = ce.aws_runtime({"docker": "x", "awsBatchRetryAttempts": 2}, defaults)
    entries = ce.register_job_definition_request(rt)["retryStrategy"]["evaluateOnExit"]
    decide = ce.batch_retry_decision
    assert decide(entries, status_reason=SPOT) == "RETRY"
    assert decide(entries, status_reason="Essential container in task exited", exit_code=1) == "EXIT"
    assert decide(entries, status_reason="Essential container in task exited", exit_code=137,
                  reason="OutOfMemoryError: Container killed due to memory usage") == "EXIT"
    assert decide(entries, status_reason="Task failed to start", reason="CannotPullContainerError: not found"
                  ) == "EXIT"


def test_batch_matching_rules() -> None:
    """First matching entry wins, every condition of an entry must match, a trailing * matches a prefix, and
    no match means RETRY (AWS Batch user guide, "Automated job retries"; API_EvaluateOnExit)."""
    decide = ce.batch_retry_decision
    aws_example = [{"action": "RETRY", "onReason": "AGENT"}, {"action": "RETRY", "onStatusReason":
                   "Task failed to start"}, {"action": "EXIT", "onReason": "*"}]
    assert decide(aws_example, reason="AGENT") == "RETRY"
    assert decide(aws_example, status_reason="Task failed to start") == "RETRY"
    assert decide(aws_example, status_reason="Task failed to start now") == "EXIT"  # no * : exact
    assert decide(aws_example, exit_code=3) == "EXIT"
    only_spot = [{"action": "RETRY", "onStatusReason": "Host EC2*"}]
    assert decide(only_spot, exit_code=1, status_reason="Essential container in task exited") == "RETRY"
    both = [{"action": "exit", "onExitCode": "13*", "onReason": "X"}]
    assert decide(both, exit_code=137, reason="X") == "EXIT"
    assert decide(both, exit_code=137, reason="Y") == "RETRY"
    assert decide(both, exit_code=1, reason="X") == "RETRY"


def test_memory_units_are_binary() -> None:
    """wdl4s MemoryUnit: GB and GiB are both 2^30; MEMORY is sent in MiB, truncated."""
    assert ce.memory_mib("14 GiB") == ce.memory_mib("14 GB") == 14336
    assert ce.memory_mib("7.5 GB") == 7680
    assert ce.memory_mib("512 MB") == 512
    with pytest.raises(ce.CromwellError, match="invalid memory unit"):
        ce.memory_mib("8 GiBs")


def test_disks_sizes_are_ignored_and_must_parse() -> None:
    assert ce.parse_disks("local-disk 100 SSD") == [ce.Volume("local-disk", "/cromwell_root", "/cromwell_root")]
    assert ce.parse_disks("/data") [0].container_path == "/data"
    assert ce.parse_disks("/data")[1].name == "local-disk"
    with pytest.raises(ce.CromwellError, match="Disk strings"):
        ce.parse_disks("local-disk 0 SSD")  # DiskPatterns.Integer is [1-9][0-9]*


def test_the_ami_provides_what_the_job_definition_mounts() -> None:
    """buildVolumes mounts three host paths into every job; the job script calls the AWS CLI under one."""
    userdata = (REPO / "scripts" / "batchpipes" / "aws" / "ami_userdata.sh").read_text()
    for _name, host, _container in ce.HOST_VOLUMES:
        assert host in userdata, f"Cromwell mounts {host} from the host, but the AMI does not provide it"
    assert ce.AWS_CLI in userdata


def test_optional_attributes_reach_botocore_in_their_shapes(defaults: dict[str, Any]) -> None:
    """ulimits (strings in WDL/HOCON, ints in the API), sharedMemorySize, jobTimeout, fuseMount, a job role
    (workflow option aws_batch_job_role_arn) and additionalTags, as the builders convert them."""
    task = {"docker": f"{ce.ECR}/batchpipes/gromacs:x", "cpu": 8, "memory": "30 GB", "awsBatchRetryAttempts": 1,
            "ulimits": [{"name": "nofile", "softLimit": "65536", "hardLimit": "65536"}],
            "sharedMemorySize": "2 GiB", "jobTimeout": 7200, "fuseMount": True, "gpuCount": 2,
            "queueArn": ce.GPU_QUEUE}
    rt = ce.aws_runtime(task, {**defaults, "additionalTags": {"project": "bp"}})
    role = f"arn:aws:iam::{ce.ACCOUNT}:role/bp-cromwell-job"
    register = ce.register_job_definition_request(rt, job_role_arn=role)
    assert ce.botocore_problems("RegisterJobDefinition", register) == ""
    props = register["containerProperties"]
    assert props["ulimits"] == [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}]
    assert props["linuxParameters"]["sharedMemorySize"] == 2048 and props["privileged"] is True
    assert props["jobRoleArn"] == role
    submit = ce.submit_job_request(rt, "gromacs.production", "arn:aws:batch:eu-west-1:1:job-definition/x:1", "k")
    assert ce.botocore_problems("SubmitJob", submit) == ""
    assert submit["timeout"] == {"attemptDurationSeconds": 7200} and submit["tags"] == {"project": "bp"}
    assert {"type": "GPU", "value": "2"} in submit["containerOverrides"]["resourceRequirements"]
    # a string where the API wants an int is what botocore catches (as the SDK would refuse to build it)
    register["containerProperties"]["ulimits"][0]["softLimit"] = "65536"
    assert "softLimit" in ce.botocore_problems("RegisterJobDefinition", register)
