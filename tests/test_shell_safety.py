"""The shell-safety contract (batchpipes.wdl_safety) holds for every task of every WDL file, and the checker
itself catches what it must."""

from __future__ import annotations

from pathlib import Path

import pytest
from batchpipes import settings
from batchpipes.wdl_safety import violations

WDL_FILES = sorted(settings.WDL_DIR.rglob("*.wdl"))


@pytest.mark.parametrize("path", WDL_FILES, ids=lambda p: str(p.relative_to(settings.WDL_DIR)))
def test_no_string_or_file_is_pasted_into_a_command(path: Path) -> None:
    found = violations(path)
    assert not found, "\n".join(str(v) for v in found)


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
    found = violations(wdl)
    assert [(v.line, v.placeholder) for v in found] == [(5, "name"), (5, "f"), (5, "fs"), (5, "o")]
    assert "pastes a String into the command" in str(found[0])
