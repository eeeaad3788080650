"""Bad GROMACS inputs end with one clear line, raised as UserError by the run (real containers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from batchpipes import local, settings, workflows


@pytest.fixture()
def not_a_pdb(tmp_path: Path) -> Path:
    path = tmp_path / "protein.pdb"
    path.write_text("Structure of my protein\nsee the supplementary data\n")
    return path


def test_structure_that_is_not_a_pdb(run_workflow, expect_user_error, not_a_pdb):
    message = expect_user_error(run_workflow, "gromacs", structure=str(not_a_pdb))
    assert "prepare_system" in message
    assert "structure 'protein.pdb' is not a PDB file (no ATOM/HETATM records)" in message


def test_unknown_force_field(run_workflow, expect_user_error):
    message = expect_user_error(run_workflow, "gromacs", force_field="amber2099")
    assert "unknown force field 'amber2099': choose one of" in message
    assert "oplsaa" in message and "charmm27" in message


def test_mdp_file_with_an_unknown_key(run_workflow, expect_user_error, tmp_path):
    mdp = tmp_path / "em.mdp"
    mdp.write_text("; my minimisation settings\nemtol = 500\nnstenergyy = 5\n")
    message = expect_user_error(run_workflow, "gromacs", em_mdp=str(mdp))
    assert "minimize" in message and "em: unknown mdp key(s) nstenergyy" in message


def test_mdp_override_that_is_not_key_value(run_workflow, expect_user_error):
    message = expect_user_error(run_workflow, "gromacs", em_mdp_overrides=["emtol 500"])
    assert "em: mdp line \"emtol 500\" is not \"key = value\"" in message


def test_box_type_outside_choices(expect_user_error):
    flow = workflows.get("gromacs")
    message = expect_user_error(local.prepare_inputs, flow, settings.INPUTS_DIR / "gromacs.local.json",
                                {"gromacs.box_type": "sphere"})
    assert "gromacs.box_type is 'sphere': choose one of cubic, dodecahedron, octahedron, triclinic" in message
