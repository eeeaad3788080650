"""The WDL linter (batchpipes.wdl_lint, run by ``batchpipes check``): each rule caught on a small WDL file with
its exact one-line message, and the repository's WDL, inputs and pins passing ``batchpipes check``."""

from __future__ import annotations

from pathlib import Path

import pytest
from batchpipes import check_cmd, cli, containers, wdl_lint

GOOD = (Path(__file__).parent / "data" / "wdl_lint" / "good.wdl").read_text()
NOT_DESCRIBED = "is not described in meta.outputs: add {0}: \"what it holds\" there"
LONG_COMMAND = "        true\n" * 38


def lint(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "flow.wdl"
    path.write_text(text)
    return [str(p) for p in wdl_lint.lint_file(path)]


def line_of(text: str, marker: str) -> int:
    """The line of the first occurrence of ``marker`` in ``text``."""
    return text[:text.index(marker)].count("\n") + 1


def test_the_good_example_passes_every_rule_and_miniwdl(tmp_path: Path) -> None:
    assert lint(tmp_path, GOOD) == []


# (old text, new text, text on the problem's line, the message after "<file>:<line>: ")
CASES = [
    ("version 1.0", "version 1.1", "version 1.1",
     "WdlVersion: the document is WDL 1.1: start it with 'version 1.0' (what Cromwell runs)"),
    ('description: "Writes a greeting"', 'author: "me"', "task gpu_step {",
     'MetaDescription: task gpu_step has no meta.description: add meta { description: "what it does" }'),
    ('        docker_image: "Image (pinned)"\n', "", "String docker_image",
     "ParameterMeta: task gpu_step: input 'docker_image' has no parameter_meta entry: describe it there"),
    ('        docker_image: "Image (pinned)"\n', '        docker_image: "Image (pinned)"\n        colour: "Red"\n',
     'colour: "Red"', "ParameterMeta: task gpu_step: parameter_meta documents 'colour', which is not an input: "
     "remove it or name an input"),
    ('        docker_image: "Image (pinned)"\n', '        docker_image: "Image (pinned)"\n        out: "x"\n',
     'out: "x"', "ParameterMeta: task gpu_step: parameter_meta documents 'out', which is not an input: "
     "describe outputs in meta.outputs"),
    ('            out: "The greeting"', '            mdp: "The greeting"', 'mdp: "The greeting"',
     "OutputsMeta: task gpu_step: meta.outputs documents 'mdp', which is not an output: remove it or rename it to "
     "the output it describes"),
    ('            out: "The greeting"', '            mdp: "The greeting"', 'File out = "out.txt"',
     "OutputsMeta: task gpu_step: output 'out' " + NOT_DESCRIBED.format("out")),
    ("        File greeting = gpu_step.out\n",
     "        File greeting = gpu_step.out\n        File again = gpu_step.out\n", "File again",
     "OutputsMeta: workflow gpu_flow: output 'again' " + NOT_DESCRIBED.format("again")),
    ("        cpu: 1\n", "", "task gpu_step {",
     "ExplicitRuntime: task gpu_step: runtime has no 'cpu': state it (every task states docker, cpu, memory, disks, "
     "maxRetries)"),
    ("        maxRetries: 0\n", "        maxRetries: 0\n        preemptible: 2\n", "preemptible: 2",
     "CromwellRuntime: task gpu_step: runtime key 'preemptible' is not read by Cromwell's AWS backend: remove it"),
    ('disks: "local-disk 10 SSD"', 'disks: "scratch 10 SSD"', "disks:",
     "CromwellRuntime: task gpu_step: disks 'scratch 10 SSD' is not 'local-disk [N SSD|HDD]' or "
     "'/mount/point [N TYPE]'"),
    ('memory: "1 GiB"', 'memory: "lots"', "memory:",
     "CromwellRuntime: task gpu_step: memory 'lots' is not a size such as '4 GiB'"),
    ("        gpuCount: if gpu then 1 else 0\n", "        gpu: true\n", "gpu: true",
     "CromwellRuntime: task gpu_step: 'gpu' without 'gpuCount': Cromwell's AWS backend requests GPUs by gpuCount"),
    ("        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn\n", "", "gpuCount:",
     "CromwellRuntime: task gpu_step: GPU task without 'queueArn': it would run on the CPU queue (add "
     "'queueArn: if gpu then gpu_queue_arn else cpu_queue_arn')"),
    ("queueArn: if gpu then gpu_queue_arn else cpu_queue_arn", 'queueArn: "arn:aws:batch:eu-west-1:1:job-queue/q"',
     "queueArn:", "CromwellRuntime: task gpu_step: queueArn must come from task inputs named *_queue_arn (e.g. "
     "'queueArn: if gpu then gpu_queue_arn else cpu_queue_arn'), not a hard-coded ARN"),
    ("  # !UnknownRuntimeKey", "", "ulimits:",  # miniwdl's own linters run in the same pass
     "UnknownRuntimeKey: unknown entry in task runtime section: ulimits"),
    ("input: mode = style, gpu_queue_arn = gpu_queue_arn, ", "input: mode = style, ", "call gpu_step",
     "GpuRouting: call gpu_step does not pass 'gpu_queue_arn' to GPU task gpu_step: add "
     "'gpu_queue_arn = gpu_queue_arn' to its inputs"),
    ('        String gpu_queue_arn = ""\n        String cpu_queue_arn = ""\n    }\n    call gpu_step { input: '
     "mode = style, gpu_queue_arn = gpu_queue_arn",
     '        String cpu_queue_arn = ""\n    }\n    call gpu_step { input: mode = style, gpu_queue_arn = ""',
     "call gpu_step",
     "GpuRouting: workflow gpu_flow calls GPU task gpu_step but has no 'String gpu_queue_arn' input: declare it and "
     "pass it to the call"),
    ("docker: docker_image", 'docker: "ubuntu:22.04"', "docker:",
     "ImagePinned: task gpu_step: docker must be a String input defaulting to a pinned \"batchpipes/<name>:<tag>\" "
     '(e.g. docker_image), not "ubuntu:22.04"'),
    ('"batchpipes/genomics:000000000000"', '"batchpipes/genomics:latest"', "docker:",
     "ImagePinned: task gpu_step: docker must be a String input defaulting to a pinned \"batchpipes/<name>:<tag>\" "
     "(e.g. docker_image), not docker_image"),
    ('            description: "Greeting style",\n            choices: ["plain", "loud"]',
     '            description: "Greeting style",\n            choices: ["plain", "shout"]', "mode = style",
     "ChoicesMatch: call gpu_step: gpu_step input 'mode' declares choices [plain, loud] but workflow input 'style' "
     "declares [plain, shout]: declare the same choices in the workflow's parameter_meta"),
    ('        style: {\n            description: "Greeting style",\n            choices: ["plain", "loud"]\n        }',
     '        style: "Greeting style"', "mode = style",
     "ChoicesMatch: call gpu_step: gpu_step input 'mode' declares choices [plain, loud] but workflow input 'style' "
     "declares none: declare the same choices in the workflow's parameter_meta"),
    ('        echo "hello ${args[0]}" > out.txt\n', '        echo "hello ~{mode}" > out.txt\n', "hello ~{mode}",
     "ShellSafety: task gpu_step: ~{mode} pastes a String into the command: pass it through ~{write_lines([...])} "
     "and a quoted variable"),
    ("        set -euo pipefail\n", "        set -euo pipefail\n" + LONG_COMMAND, "command <<<",
     "CommandLength: task gpu_step: command is 43 lines (at most 40): move the program into a script in its image "
     "folder containers/<image>/"),
    ('File out = "out.txt"', 'File out = "out.txt" +', "    }\n    runtime", "SyntaxError: "),  # then miniwdl's words
]


@pytest.mark.parametrize("old, new, marker, expected", CASES, ids=[c[3].split(":")[0] + str(i)
                                                                   for i, c in enumerate(CASES)])
def test_each_rule_names_file_line_and_fix(tmp_path: Path, old: str, new: str, marker: str, expected: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    found = lint(tmp_path, text)
    line = f"{tmp_path / 'flow.wdl'}:{line_of(text, marker)}: {expected}"
    if expected == "SyntaxError: ":
        assert [p[:len(line)] for p in found] == [line], found
    else:
        assert line in found, found


def test_cromwell_aws_runtime_keys() -> None:
    assert {"queueArn", "gpuCount", "awsBatchRetryAttempts", "disks", "docker"} <= wdl_lint.AWS_RUNTIME_ATTRIBUTES
    assert {"preemptible", "bootDiskSizeGb", "gpuType"}.isdisjoint(wdl_lint.AWS_RUNTIME_ATTRIBUTES)


def test_interpolated_disks_and_memory_are_checked_by_their_shape(tmp_path: Path) -> None:
    text = GOOD.replace('memory: "1 GiB"', 'memory: "~{cpu_count} GiB"').replace(
        'disks: "local-disk 10 SSD"', 'disks: "local-disk ~{cpu_count} SSD"').replace(
        "        cpu: 1\n", "        cpu: cpu_count\n").replace(
        "        Boolean gpu = true\n", "        Boolean gpu = true\n        Int cpu_count = 1\n").replace(
        '        gpu: "Use the GPU"\n', '        gpu: "Use the GPU"\n        cpu_count: "Threads"\n')
    assert lint(tmp_path, text) == []
    found = lint(tmp_path, text.replace('"~{cpu_count} GiB"', '"~{cpu_count} gigs"'))
    assert [p.split(": ", 2)[2] for p in found] == [
        "task gpu_step: memory '1 gigs' is not a size such as '4 GiB'"], found


def test_a_pragma_comment_silences_a_rule(tmp_path: Path) -> None:
    text = GOOD.replace("    >>>", "    >>>  # !CommandLength").replace(
        "        set -euo pipefail\n", "        set -euo pipefail\n" + LONG_COMMAND)
    assert lint(tmp_path, text) == []


def test_a_stale_pin_is_reported_by_check(tmp_path: Path) -> None:
    (tmp_path / "flow.wdl").write_text(GOOD)
    tag = containers.get("genomics").tag
    line = line_of(GOOD, "String docker_image")
    expected = (f"{tmp_path / 'flow.wdl'}:{line}: genomics pinned at 000000000000, containers/genomics hashes to "
                f"{tag} (run: batchpipes images pin)")
    assert expected in check_cmd.wdl_problems(tmp_path)
    (tmp_path / "flow.wdl").write_text(GOOD.replace("000000000000", tag))
    assert not [p for p in check_cmd.wdl_problems(tmp_path) if "flow.wdl" in p]


def test_the_repository_passes_batchpipes_check(capsys: pytest.CaptureFixture[str]) -> None:
    """Every WDL file lint-clean (miniwdl's linters with ShellCheck, and every rule above), every inputs JSON valid
    against its workflow, every image pin current."""
    status = cli.main(["check"])
    problems = capsys.readouterr().out.strip()
    assert (status, problems) == (0, ""), problems
