"""The shell-safety contract (batchpipes.wdl_safety), applied by the ShellSafety rule of the WDL linter: the rule
catches quoted and bare Strings and Files and lets Int/Float/Boolean and ``write_*`` calls through. (That the
repository's WDL keeps the contract is checked with the rest of ``batchpipes check`` in tests/test_wdl_lint.py.)"""

from __future__ import annotations

from pathlib import Path

from batchpipes import wdl_lint


def test_checker_flags_quoted_and_bare_strings_and_files(tmp_path: Path) -> None:
    wdl = tmp_path / "t.wdl"
    wdl.write_text("""version 1.0
task t {
    input { String name  File f  Array[File] fs  String? o  Int n  Boolean b  Array[Int] ns }
    command <<<
        echo '~{name}' ~{f} ~{sep=" " fs} ~{default="x" o}
        echo ~{n} ~{true="yes" false="no" b} ~{sep=" " ns}
        mapfile -t v < ~{write_lines([name, f])}
        mapfile -t w < ~{write_lines(fs)}
    >>>
    runtime { docker: "debian:bookworm-slim" }
}
""")
    found = [p for p in wdl_lint.lint_file(wdl) if p.rule == "ShellSafety"]
    assert [(p.line, p.message.split(" pastes")[0]) for p in found] == [
        (5, "task t: ~{name}"), (5, "task t: ~{f}"), (5, "task t: ~{fs}"), (5, "task t: ~{o}")]
    assert str(found[0]) == (f"{wdl}:5: ShellSafety: task t: ~{{name}} pastes a String into the command: pass it "
                             "through ~{write_lines([...])} and a quoted variable")
