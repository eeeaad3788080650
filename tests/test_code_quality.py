"""The package and the programs the images run are linted (ruff) and type-checked (mypy; the images' programs
strictly, as nothing else checks their types before they run inside a task)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from batchpipes import settings

REPO = settings.REPO_ROOT
BIN = Path(sys.executable).parent


def image_programs() -> list[Path]:
    """Every Python program under containers/ (each image's own and the shared ones)."""
    return sorted(p for p in settings.CONTAINERS_DIR.glob("*/*.py"))


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, check=False)


def test_every_image_has_its_programs_under_test() -> None:
    tested = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    untested = [p.name for p in image_programs() if p.name not in tested]
    assert not untested, f"programs of the images with no test naming them: {untested}"


def test_ruff_is_clean() -> None:
    proc = _run([str(BIN / "ruff"), "check", "scripts", "tests", "containers"])
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_is_clean_on_the_package() -> None:
    proc = _run([str(BIN / "mypy"), "scripts/batchpipes"])
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_strict_is_clean_on_the_images_programs() -> None:
    programs = image_programs()
    assert len(programs) >= 8
    shared = settings.CONTAINERS_DIR / "shared"
    proc = _run([str(BIN / "mypy"), "--strict", "--python-version", "3.10", *map(str, programs)],
                MYPYPATH=str(shared))
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_one_name_rule_in_the_images_the_cli_and_the_wdl() -> None:
    """task_common.py (containers/shared/) owns the images' name rule: it is the package's NAME_PATTERN, and so is
    the ``pattern`` of every name input (``name``, ``*_name``, or a pattern without its own ``pattern_help``) in the
    parameter_meta of the workflows and tasks."""
    import WDL
    from batchpipes import workflows
    from scriptload import load_script

    task_common = load_script(settings.CONTAINERS_DIR / "shared" / "task_common.py")
    assert f"^{task_common.NAME_PATTERN}$" == workflows.NAME_PATTERN
    assert task_common.NAME_RULE == workflows.NAME_RULE, "the CLI and the tasks word the name rule alike"
    found = {}
    for path in sorted(settings.WDL_DIR.rglob("*.wdl")):
        doc = WDL.load(str(path))
        for unit in [*doc.tasks, *([doc.workflow] if doc.workflow else [])]:
            for decl in unit.inputs or []:
                meta = unit.parameter_meta.get(decl.name)
                meta = meta if isinstance(meta, dict) else {}
                named = decl.name == "name" or decl.name.endswith("_name")
                if named or ("pattern" in meta and "pattern_help" not in meta):
                    found[f"{path.relative_to(REPO)}: {unit.name}.{decl.name}"] = meta.get("pattern")
    assert {"wdl/gromacs.wdl: gromacs.name", "wdl/hevc.wdl: hevc.output_name",
            "wdl/genomics.wdl: genomics.sample_name", "wdl/tasks/annotation.wdl: annotate_variants.genome_name"} <= \
        set(found)
    wrong = {where: pattern for where, pattern in found.items() if pattern != workflows.NAME_PATTERN}
    assert not wrong, f"name inputs whose parameter_meta pattern is not {workflows.NAME_PATTERN}: {wrong}"
