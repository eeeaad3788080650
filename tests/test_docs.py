"""The documentation: generated tables current, the renderer exact, every relative link alive. Fast, no containers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from batchpipes import cli, docs, settings, workflows
from batchpipes.errors import UserError

ROOT = settings.REPO_ROOT

SNIPPET = '''version 1.0

workflow demo {
    meta {
        description: "A small workflow for the renderer's test"
        outputs: {
            report: "The report, <name>.txt"
        }
    }
    parameter_meta {
        name: {
            description: "Output prefix",
            pattern: "^[A-Za-z0-9]{1,8}$"
        }
        mode: {
            description: "fast | slow",
            choices: ["fast", "slow"]
        }
        preset: {
            description: "A preset",
            pattern: "^(a|b)$"
        }
        reads: "Reads, FASTQ"
        image: "Image (pinned by content hash)"
    }
    input {
        File reads
        String name = "x"
        String mode = "fast"
        String? preset
        Int threads = 2 * 2
        String image = "batchpipes/demo:0123456789ab"
    }
    call tally { input: reads = reads }
    output {
        File report = write_lines([name, mode, image, "~{threads}", select_first([preset, "a"]), basename(reads)])
        Int count = tally.n
    }
}

task tally {
    parameter_meta {
        reads: "Reads"
        memory_gb: "Memory, GiB"
    }
    input {
        File reads
        Int memory_gb = 2
        String? label
    }
    command <<<
        echo 1
    >>>
    output {
        Int n = read_int(stdout())
    }
}
'''

SNIPPET_INPUTS = """\
| input | type | default | description | allowed |
| --- | --- | --- | --- | --- |
| `reads` | `File` | **required** | Reads, FASTQ |  |
| `name` | `String` | `"x"` | Output prefix | pattern `^[A-Za-z0-9]{1,8}$` |
| `mode` | `String` | `"fast"` | fast \\| slow | `fast`, `slow` |
| `preset` | `String?` | unset | A preset | pattern `^(a\\|b)$` |
| `threads` | `Int` | `2 * 2` |  |  |
| `image` | `String` | `"batchpipes/demo:<tag>"` | Image (pinned by content hash) |  |
"""

SNIPPET_OUTPUTS = """\
| output | type | description |
| --- | --- | --- |
| `report` | `File` | The report, &lt;name>.txt |
| `count` | `Int` |  |
"""

SNIPPET_TASK_INPUTS = """\
| input | type | calls (default) | description |
| --- | --- | --- | --- |
| `memory_gb` | `Int` | `tally` `2` | Memory, GiB |
| `label` | `String?` | `tally` unset |  |
"""


@pytest.fixture
def snippet(tmp_path: Path) -> Path:
    path = tmp_path / "wdl" / "demo.wdl"
    path.parent.mkdir()
    path.write_text(SNIPPET)
    return path


def test_generated_tables_are_current():
    stale = docs.stale(docs.markdown_files())
    assert not stale, (f"{', '.join(str(p.relative_to(ROOT)) for p in stale)}: the generated tables differ from "
                       "the WDL: run 'batchpipes docs' and commit the result")


def test_every_workflow_has_a_page_with_its_tables():
    for flow in workflows.known().values():
        page = ROOT / "docs" / f"{flow.name}.md"
        assert page.is_file(), f"{flow.path.name} has no page docs/{flow.name}.md"
        text = page.read_text()
        for kind in ("inputs", "outputs", "task-inputs"):
            assert f"<!-- BEGIN {kind} wdl/{flow.path.name} " in text, f"{page.name} lacks the {kind} table"


def test_renderer_output_on_a_snippet(snippet):
    assert docs.inputs_table(snippet) == SNIPPET_INPUTS
    assert docs.outputs_table(snippet) == SNIPPET_OUTPUTS
    assert docs.task_inputs_table(snippet) == SNIPPET_TASK_INPUTS


def test_refresh_rewrites_only_between_the_markers(snippet):
    root = snippet.parent.parent
    text = (f"# Demo\n\nbefore\n\n{docs.begin_marker('inputs', 'wdl/demo.wdl')}\n| stale |\n<!-- END inputs -->\n\n"
            f"between\n\n{docs.begin_marker('outputs', 'wdl/demo.wdl')}\n<!-- END outputs -->\nafter\n")
    fresh = docs.refresh(text, "demo.md", root)
    assert fresh == (f"# Demo\n\nbefore\n\n{docs.begin_marker('inputs', 'wdl/demo.wdl')}\n{SNIPPET_INPUTS}"
                     f"<!-- END inputs -->\n\nbetween\n\n{docs.begin_marker('outputs', 'wdl/demo.wdl')}\n"
                     f"{SNIPPET_OUTPUTS}<!-- END outputs -->\nafter\n")
    assert docs.refresh(fresh, "demo.md", root) == fresh
    with pytest.raises(UserError, match="demo.md: unknown generated block 'params'"):
        docs.refresh("<!-- BEGIN params wdl/demo.wdl -->\n<!-- END params -->", "demo.md", root)
    with pytest.raises(UserError, match="names wdl/nope.wdl, which does not exist"):
        docs.refresh("<!-- BEGIN inputs wdl/nope.wdl -->\n<!-- END inputs -->", "demo.md", root)


def test_docs_command_checks_and_rewrites(snippet, monkeypatch, capsys):
    root = snippet.parent.parent
    (root / "docs").mkdir()
    page = root / "docs" / "demo.md"
    stale = f"{docs.begin_marker('inputs', 'wdl/demo.wdl')}\n| old |\n<!-- END inputs -->\n"
    page.write_text(stale)
    monkeypatch.setattr(settings, "REPO_ROOT", root)
    assert cli.main(["docs", "--check"]) == 2
    assert "error: docs/demo.md: generated tables are stale (the WDL changed): run 'batchpipes docs'" \
        in capsys.readouterr().err
    assert page.read_text() == stale
    assert cli.main(["docs"]) == 0
    assert SNIPPET_INPUTS in page.read_text()
    assert cli.main(["docs", "--check"]) == 0


LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE_RE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_RE = re.compile(r"`[^`\n]*`")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces to '-'."""
    out = set()
    for line in FENCE_RE.sub("", path.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", docs.markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = CODE_RE.sub("", FENCE_RE.sub("", page.read_text()))
    broken = []
    for target in LINK_RE.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading '{anchor}' in {dest.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    fence = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert fence is not None and fence.start() < 400, "the README's first lines must hold the two commands"
    run, test = [line.split("#")[0].strip() for line in fence.group(1).splitlines()]
    assert run == "bash scripts/bootstrap.sh && .venv/bin/batchpipes run genomics"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test, "the README's test command must be exactly what .ci/run runs"
