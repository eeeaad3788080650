"""Bad GROMACS inputs end with one clear line, raised as UserError by the run (real containers).

Each check is tested on the one task that makes it (the ``run_task`` fixture, or this module's
``run_gromacs_task``, which also looks into the task's folder): the tasks of wdl/tasks/gromacs.wdl run directly
under miniwdl, as a Cromwell user would run them (bypassing the CLI's validation), with hostile values: each must
stop with its exact one-line ERROR before any work, and nothing it holds may run as shell (an injected
``touch pwned`` would leave a file in the task's working directory). The CLI's own checks (choices, the name
pattern) are tested without containers.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, local, settings, workflows

PDB = settings.INPUTS_DIR / "gromacs" / "1ubq.pdb"
TASKS = settings.WDL_DIR / "tasks" / "gromacs.wdl"
ONLY_WATER = ("ERROR: structure 'waters.pdb' holds no protein or nucleic acid (model 1): give the structure of a "
              "protein or protein-nucleic acid complex")


@pytest.fixture()
def not_a_pdb(tmp_path: Path) -> Path:
    path = tmp_path / "protein.pdb"
    path.write_text("Structure of my protein\nsee the supplementary data\n")
    return path


def test_structure_that_is_not_a_pdb(run_task, expect_user_error, not_a_pdb):
    message = expect_user_error(run_task, TASKS, "prepare_structure",
                                {"structure": str(not_a_pdb), "name": "1ubq", "force_field": "oplsaa"})
    assert message == ("prepare_structure failed in prepare_structure: structure 'protein.pdb' is neither PDB nor "
                       "mmCIF (no ATOM/HETATM records, no _atom_site table): give a PDB or mmCIF file, optionally "
                       "gzip-compressed")


def test_unknown_force_field(run_task, expect_user_error, prepare_inputs_):
    message = expect_user_error(run_task, TASKS, "prepare_system",
                                {**prepare_inputs_, "force_field": "amber2099", "max_retries": 0})
    assert f"unknown force field 'amber2099': choose one of {FORCE_FIELDS}" in message


def test_mdp_file_with_an_unknown_key(run_task, expect_user_error, prepared_system, tmp_path):
    """grompp's warning about a misspelt key becomes the key's name (the system of the gzip test below)."""
    mdp = tmp_path / "em.mdp"
    mdp.write_text("; my minimisation settings\nemtol = 500\nnstenergyy = 5\n")
    message = expect_user_error(run_task, TASKS, "md_stage",
                                {"stage": "em", "nsteps": 10, "name": "1ubq", "mdp": str(mdp), "max_retries": 0,
                                 **prepared_system})
    assert message == ("md_stage failed in md_stage: em: unknown mdp key(s) nstenergyy (not a GROMACS 2022 mdp "
                       "option): fix the spelling in the mdp file or overrides")


def test_mdp_override_that_is_not_key_value(run_task, expect_user_error, tmp_path):
    f = any_file(tmp_path)
    message = expect_user_error(run_task, TASKS, "md_stage",
                                {"stage": "em", "structure": f, "topology": f, "nsteps": 10, "name": "1ubq",
                                 "mdp_overrides": ["emtol 500"], "max_retries": 0})
    assert message.endswith('em: mdp line "emtol 500" is not "key = value"')


def test_box_type_outside_choices(expect_user_error):
    flow = workflows.get("gromacs")
    message = expect_user_error(local.prepare_inputs, flow, settings.INPUTS_DIR / "gromacs.local.json",
                                {"gromacs.box_type": "sphere"})
    assert "gromacs.box_type is 'sphere': choose one of cubic, dodecahedron, octahedron, triclinic" in message


def test_hostile_name_is_refused_before_the_run(expect_user_error, tmp_path):
    """The CLI checks name against the pattern of the workflow's parameter_meta: no task starts."""
    flow = workflows.get("gromacs")
    message = expect_user_error(local.prepare_inputs, flow, settings.INPUTS_DIR / "gromacs.local.json",
                                {"gromacs.name": "x';touch pwned;: '"})
    assert "gromacs.name" in message and "x';touch pwned;: '" in message
    assert "letters, digits, '.', '_' and '-'" in message


# --- the tasks run directly (as under Cromwell, without the CLI's checks) ---------------------------------

NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"
#: gromacs-data 2022.5 of Debian 12: the force fields of the image, as the task lists them (LC_ALL=C order)
FORCE_FIELDS = ("amber03,amber94,amber96,amber99,amber99sb,amber99sb-ildn,amberGS,charmm27,gromos43a1,"
                "gromos43a2,gromos45a3,gromos53a5,gromos53a6,gromos54a7,oplsaa")
OPLSAA_WATERS = "tip4p,tip4pew,tip3p,tip5p,tip5pe,spc,spce"  # watermodels.dat order


@dataclass
class TaskRun:
    returncode: int
    error: str  # the task's last ERROR line, or "" when it printed none
    run_dir: Path


@pytest.fixture(scope="module")
def run_gromacs_task(podman_ready: None, tmp_path_factory: pytest.TempPathFactory):
    """Run one task of wdl/tasks/gromacs.wdl under miniwdl in the gromacs image; inputs as given."""
    image = containers.publish_local(containers.get("gromacs"))
    cfg = local.miniwdl_config(call_cache=False)

    def _run(task: str, inputs: dict[str, Any]) -> TaskRun:
        base = tmp_path_factory.mktemp(f"task-{task}")
        # max_retries 0: a refused input fails the same way again
        (base / "inputs.json").write_text(json.dumps({"docker_image": image, "max_retries": 0, **inputs}))
        run_dir = base / "run"
        proc = subprocess.run([sys.executable, "-m", "WDL", "run", str(TASKS), "--task", task,
                               "-i", str(base / "inputs.json"), "--dir", f"{run_dir}/.", "--cfg", str(cfg),
                               "--no-cache", "--error-json"], capture_output=True, text=True, check=False)
        stderr = run_dir / "stderr.txt"
        lines = stderr.read_text().splitlines() if stderr.is_file() else []
        errors = [ln for ln in lines if ln.startswith("ERROR:")]
        return TaskRun(proc.returncode, errors[-1] if errors else "", run_dir)

    return _run


def assert_refused_early(run: TaskRun, expected: str) -> None:
    """Failed with exactly ``expected``, before any work: nothing ran, nothing was written, no output."""
    assert run.returncode != 0
    assert run.error == expected
    injected = [p for p in run.run_dir.rglob("*") if p.name == "pwned"]
    assert not injected, f"an input value ran as shell: {injected}"
    assert {p.name for p in (run.run_dir / "work").iterdir()} <= {"_miniwdl_inputs"}
    assert not (run.run_dir / "out").exists()


@pytest.fixture(scope="module")
def prepare_inputs_() -> dict[str, Any]:
    return {"structure": str(PDB), "name": "1ubq", "force_field": "oplsaa", "water_model": "spce",
            "box_type": "dodecahedron", "box_distance_nm": 1.0, "salt_molar": 0.15}


def any_file(tmp: Path, name: str = "placeholder.txt") -> str:
    path = tmp / name
    path.write_text("not read: the task must stop before it\n")
    return str(path)


HOSTILE_NAMES = [
    "x';touch pwned;: '",
    "$(touch pwned)",
    "`touch pwned`",
    "my protein",
    "O'Brien",
    "../1ubq",
    "-1ubq",
    "1ubq;touch pwned",
    "x" * 65,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_prepare_system_refuses_a_hostile_name(run_gromacs_task, prepare_inputs_, name):
    run = run_gromacs_task("prepare_system", {**prepare_inputs_, "name": name})
    assert_refused_early(run, f"ERROR: name '{name}' {NAME_RULE}")


@pytest.mark.parametrize("task", ["prepare_structure", "md_stage", "production", "analysis"])
def test_every_task_refuses_a_hostile_name(run_gromacs_task, tmp_path, task):
    name = "x';touch pwned;: '"
    f = any_file(tmp_path)
    inputs: dict[str, Any] = {
        "prepare_structure": {"structure": f, "force_field": "oplsaa"},
        "md_stage": {"stage": "em", "structure": f, "topology": f, "nsteps": 10},
        "production": {"tpr": f, "nsteps": 10},
        "analysis": {"md_edr": f, "md_trajectory": f, "md_tpr": f, "md_log": f},
    }[task]
    run = run_gromacs_task(task, {**inputs, "name": name})
    assert_refused_early(run, f"ERROR: name '{name}' {NAME_RULE}")


@pytest.mark.parametrize(("given", "expected"), [
    ({"name": "x\ntouch pwned"}, "ERROR: name holds a newline: give it as one line"),
    ({"box_type": "cubic;touch pwned"},
     "ERROR: box_type is 'cubic;touch pwned': choose one of cubic, dodecahedron, octahedron, triclinic"),
    ({"box_type": "cubic\ntouch pwned"}, "ERROR: box_type holds a newline: give it as one line"),
    ({"force_field": "oplsaa' $(touch pwned)"},
     f"ERROR: unknown force field 'oplsaa' $(touch pwned)': choose one of {FORCE_FIELDS}"),
    ({"force_field": "../top/oplsaa"}, f"ERROR: unknown force field '../top/oplsaa': choose one of {FORCE_FIELDS}"),
    ({"water_model": "spce'`touch pwned`"},
     f"ERROR: water model 'spce'`touch pwned`' is not one of force field oplsaa's: choose one of {OPLSAA_WATERS}"),
    ({"water_model": ""}, f"ERROR: water model '' is not one of force field oplsaa's: choose one of {OPLSAA_WATERS}"),
])
def test_prepare_system_refuses_hostile_settings(run_gromacs_task, prepare_inputs_, given, expected):
    run = run_gromacs_task("prepare_system", {**prepare_inputs_, **given})
    assert_refused_early(run, expected)


def test_structure_with_a_hostile_file_name_that_is_not_a_pdb(run_gromacs_task, tmp_path):
    path = tmp_path / "notes '$(touch pwned)' `touch pwned`.pdb"
    path.write_text("HEADER    see the supplementary data\n")
    run = run_gromacs_task("prepare_structure", {"structure": str(path), "name": "1ubq", "force_field": "oplsaa"})
    assert_refused_early(run, f"ERROR: structure '{path.name}' is neither PDB nor mmCIF (no ATOM/HETATM records, "
                              "no _atom_site table): give a PDB or mmCIF file, optionally gzip-compressed")


def test_kept_ligand_unknown_to_the_force_field(run_gromacs_task, tmp_path):
    """A ligand in its own chain is removed by default; kept, it is refused (no parametrisation here)."""
    protein = [ln for ln in PDB.read_text().splitlines() if ln.startswith("ATOM")]
    pdb = tmp_path / "1ubq-ligand.pdb"
    pdb.write_text("\n".join([*protein, "TER",
                              "HETATM 9001  C1  LIG B 900      10.000  10.000  10.000  1.00  0.00           C",
                              "END"]) + "\n")
    given = {"structure": str(pdb), "name": "1ubq", "force_field": "oplsaa"}
    assert run_gromacs_task("prepare_structure", given).returncode == 0
    run = run_gromacs_task("prepare_structure", {**given, "keep_heterogens": ["LIG"]})
    assert_refused_early(run, "ERROR: kept heterogen LIG (chain B, residue 900): LIG is not in force field oplsaa's "
                              "residue topology database (not found): ligand parametrisation is out of scope (see "
                              "docs/gromacs.md: acpype or OpenFF build its topology): remove it from "
                              "keep_heterogens")


@pytest.mark.parametrize(("given", "expected"), [
    ({"stage": "em';touch pwned;: '"}, "ERROR: unknown stage 'em';touch pwned;: '': choose em, nvt, npt or md"),
    ({"mdp_overrides": ["emtol = 500\ntouch pwned"]},
     "ERROR: em: an mdp override holds a newline: give each 'key = value' as its own list item"),
    ({"mdp_overrides": ["$(touch pwned)"]}, 'ERROR: em: mdp line "$(touch pwned)" is not "key = value"'),
    ({"mdp_overrides": ["emtol' = 5"]}, "ERROR: em: mdp line \"emtol' = 5\" is not \"key = value\""),
    ({"mdp_overrides": ["nsteps = 5", "= 5"]}, 'ERROR: em: mdp line "= 5" is not "key = value"'),
])
def test_md_stage_refuses_hostile_settings(run_gromacs_task, tmp_path, given, expected):
    f = any_file(tmp_path)
    run = run_gromacs_task("md_stage", {"stage": "em", "structure": f, "topology": f, "nsteps": 10, "name": "1ubq",
                                        **given})
    assert_refused_early(run, expected)


def test_user_mdp_file_that_is_not_key_value(run_gromacs_task, tmp_path):
    """The user's mdp file is checked before any work too; its (hostile) file name is only shown."""
    f = any_file(tmp_path)
    mdp = tmp_path / "em '$(touch pwned)'.mdp"
    mdp.write_text("; settings\r\nemtol = 500\r\nintegrator steep\r\n")
    run = run_gromacs_task("md_stage", {"stage": "em", "structure": f, "topology": f, "nsteps": 10, "name": "1ubq",
                                "mdp": str(mdp)})
    assert_refused_early(run, 'ERROR: em: mdp line "integrator steep" is not "key = value"')



@pytest.fixture(scope="module")
def gzip_prepared(run_gromacs_task, prepare_inputs_, tmp_path_factory) -> TaskRun:
    """prepare_structure on a .pdb.gz as downloaded from the PDB, then prepare_system on its result (the system
    serves the md_stage test above)."""
    packed = tmp_path_factory.mktemp("gz") / "1ubq.pdb.gz"
    packed.write_bytes(gzip.compress(PDB.read_bytes()))
    prepared = run_gromacs_task("prepare_structure", {"structure": str(packed), "name": "1ubq",
                                                      "force_field": "oplsaa"})
    assert prepared.returncode == 0, prepared.error
    structure = prepared.run_dir / "out" / "prepared" / "1ubq.prepared.pdb"
    return run_gromacs_task("prepare_system", {**prepare_inputs_, "structure": str(structure)})


@pytest.fixture(scope="module")
def prepared_system(gzip_prepared) -> dict[str, str]:
    """md_stage inputs structure and topology: the system prepared from the .pdb.gz."""
    assert gzip_prepared.returncode == 0, gzip_prepared.error
    out = gzip_prepared.run_dir / "out"
    return {"structure": str(out / "system" / "1ubq.system.gro"),
            "topology": str(out / "topology" / "1ubq.topology.tar.gz")}


def test_gzip_compressed_pdb_is_unpacked(gzip_prepared):
    """The system holds every residue of the protein."""
    assert gzip_prepared.returncode == 0, gzip_prepared.error
    residues = {(ln[21], ln[22:27]) for ln in PDB.read_text().splitlines() if ln.startswith("ATOM")}
    gro = (gzip_prepared.run_dir / "out" / "system" / "1ubq.system.gro").read_text().splitlines()
    protein = {ln[:5] for ln in gro[2:-1] if ln[5:10].strip() not in {"SOL", "NA", "CL"}}
    assert len(protein) == len(residues) == 76


def test_damaged_gzip_structure(run_gromacs_task, tmp_path):
    path = tmp_path / "1ubq.pdb.gz"
    path.write_bytes(gzip.compress(PDB.read_bytes())[:300])  # a download cut short
    run = run_gromacs_task("prepare_structure", {"structure": str(path), "name": "1ubq", "force_field": "oplsaa"})
    assert_refused_early(run, "ERROR: structure '1ubq.pdb.gz' is a damaged gzip file: give the file again")


def test_structure_that_holds_only_water(run_gromacs_task, tmp_path):
    path = tmp_path / "waters.pdb"
    path.write_text("".join(ln + "\n" for ln in PDB.read_text().splitlines() if ln[17:20] == "HOH"))
    run = run_gromacs_task("prepare_structure", {"structure": str(path), "name": "w", "force_field": "oplsaa"})
    assert_refused_early(run, ONLY_WATER)
