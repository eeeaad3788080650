"""containers/shared/gromacs_tasks.py (``gromacs-tasks`` in the gromacs and gromacs-cuda images) run directly,
without containers.

The recorded tool output in tests/data/gromacs_scripts/ comes from the gromacs image (GROMACS 2022.5 of Debian 12)
on ubiquitin (inputs/gromacs/1ubq.pdb) in SPC/E water, OPLS-AA: ``gmx --version`` (``gmx-version.out``), pdb2gmx's
protein (``protein.gro``) and its failure on a ligand in its own chain (``pdb2gmx-ligand.out``), grompp failing on
two misspelt mdp keys (``grompp-unknown.out``) and on a bad value (``grompp-badvalue.out``), the end of a converged
energy minimisation log (``em.log.tail``) and the log of one stopped after 5 steps (``em5.log``), ``gmx energy`` of
the minimisation (``em-Potential.xvg``) and of a 200-step NPT MD (``md-*.xvg``, ``md.log``), ``gmx energy`` asked
for a term the file lacks (``energy-em-density.out``), ``gmx rms``/``gmx gyrate`` of that MD (``rmsd.xvg``,
``gyrate.xvg``), trjconv given a file it cannot read (``trjconv-bad.out``) and oplsaa's ``watermodels.dat``.
The expected summary figures are those the former awk programs of wdl/tasks/gromacs.wdl computed from these files,
and ``md-merged-by-former-awk.mdp`` is the merged mdp its awk merge wrote for the case of
test_merged_mdp_of_a_production_stage_with_a_user_file_and_overrides.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import pytest
from batchpipes import settings
from scriptload import load_script

SCRIPT = settings.REPO_ROOT / "containers" / "shared" / "gromacs_tasks.py"
DATA = Path(__file__).parent / "data" / "gromacs_scripts"
PDB = settings.INPUTS_DIR / "gromacs" / "1ubq.pdb"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


gt = load_script(SCRIPT)


def data(name: str) -> str:
    return (DATA / name).read_text()


def lines_file(tmp_path: Path, label: str, *values: str) -> str:
    """A file as write_lines writes it: each value and a newline."""
    path = tmp_path / f"{label}.lines"
    path.write_text("".join(f"{v}\n" for v in values))
    return str(path)


# --- values from engine-written files --------------------------------------------------------------------------


def test_one_and_optional_read_write_lines_files(tmp_path):
    assert gt.one("name", lines_file(tmp_path, "a", "1ubq")) == "1ubq"
    assert gt.one("name", lines_file(tmp_path, "b", "")) == ""
    assert gt.optional("mdp", lines_file(tmp_path, "c")) == ""
    assert gt.optional("mdp", lines_file(tmp_path, "d", "/in/my nvt.mdp")) == "/in/my nvt.mdp"
    with pytest.raises(gt.TaskError, match="^name holds a newline: give it as one line$"):
        gt.one("name", lines_file(tmp_path, "e", "x\ntouch pwned"))
    with pytest.raises(gt.TaskError, match="^name holds a newline"):
        gt.one("name", lines_file(tmp_path, "f"))
    with pytest.raises(gt.TaskError, match="^mdp holds a newline"):
        gt.optional("mdp", lines_file(tmp_path, "g", "a", "b"))


def test_task_values_arrays_and_booleans(tmp_path):
    """task_values.py (containers/shared/, beside gromacs-tasks and prepare-structure): the readers both share."""
    tv = load_script(settings.REPO_ROOT / "containers" / "shared" / "task_values.py")
    assert tv.items("chains", lines_file(tmp_path, "a", "A", " B ", ""), 3) == ["A", "B"]
    assert tv.items("chains", lines_file(tmp_path, "b"), 0) == []
    with pytest.raises(tv.TaskError, match="^an item of chains holds a newline: give each as its own list item$"):
        tv.items("chains", lines_file(tmp_path, "c", "A", "touch pwned"), 1)
    assert (tv.boolean("true"), tv.boolean("false")) == (True, False)
    with pytest.raises(argparse.ArgumentTypeError, match="'True' is not true or false"):
        tv.boolean("True")
    assert gt.one.__module__ == gt.read_text.__module__ == "task_values"  # one reader, not copies


@pytest.mark.parametrize("name", ["1ubq", "my_protein.v2", "A-1", "x" * 64])
def test_check_name_accepts(name):
    assert gt.check_name(name) == name


@pytest.mark.parametrize("name", ["x';touch pwned;: '", "$(touch pwned)", "my protein", "../1ubq", "-1ubq",
                                  ".hidden", "x" * 65, ""])
def test_check_name_refuses(name):
    with pytest.raises(gt.TaskError) as info:
        gt.check_name(name)
    assert str(info.value) == f"name '{name}' {NAME_RULE}"


def test_box_type_choice():
    assert gt.check_choice("box_type", "octahedron", gt.BOX_TYPES) == "octahedron"
    with pytest.raises(gt.TaskError) as info:
        gt.check_choice("box_type", "cubic;touch pwned", gt.BOX_TYPES)
    assert str(info.value) == ("box_type is 'cubic;touch pwned': choose one of cubic, dodecahedron, octahedron, "
                               "triclinic")


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False)])
def test_boolean(text, expected):
    assert gt.boolean(text) is expected


def test_boolean_refuses_other_words():
    with pytest.raises(Exception, match="is not true or false"):
        gt.boolean("yes")


# --- GROMACS output --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("recorded", "expected"), [
    ("grompp-unknown.out", "Too many warnings (2). If you are sure all warnings are harmless, use the -maxwarn "
                           "option."),
    ("grompp-badvalue.out", "There was 1 error in input file(s)"),
    ("pdb2gmx-ligand.out", "Residue 'LIG' not found in residue topology database"),
    ("energy-em-density.out", "No energy terms selected"),
    # "Error in user input" is not a fatal error: the last line stands in
    ("trjconv-bad.out", "-------------------------------------------------------"),
])
def test_fatal_error_of_recorded_gromacs_failures(recorded, expected):
    assert gt.fatal_error(data(recorded)) == expected


def test_fatal_error_joins_a_paragraph_and_falls_back_to_the_last_line():
    text = ("\n-------\nProgram: gmx mdrun\n\nFatal error:\nThe cut-off length is longer than half the\n\n"
            "shortest box vector.\nFor more information and tips\nwebsite\n-------\nafter\n")
    assert gt.fatal_error(text) == "The cut-off length is longer than half the shortest box vector."
    assert gt.fatal_error("Segmentation fault (core dumped)\n") == "Segmentation fault (core dumped)"
    assert gt.fatal_error("") == ""


def test_unknown_mdp_keys_of_recorded_grompp():
    assert gt.unknown_mdp_keys(data("grompp-unknown.out")) == ["nstenergyy", "emtol_x"]
    assert gt.unknown_mdp_keys(data("grompp-badvalue.out")) == []


def test_missing_residue_of_recorded_pdb2gmx():
    assert gt.missing_residue(data("pdb2gmx-ligand.out")) == "LIG"
    assert gt.missing_residue(data("grompp-badvalue.out")) == ""


def test_recorded_gmx_version():
    version = data("gmx-version.out")
    assert gt.gpu_support(version) is False
    assert gt.gpu_support(version.replace("GPU support:        disabled", "GPU support:        CUDA")) is True
    # gmx_data.force_field_dir (tests/test_gmx_data.py), without GMXDATA: from the "Data prefix" line
    assert gt.force_field_dir(version, {}) == Path("/usr/share/gromacs/top")
    assert gt.force_field_dir("Data prefix:  /opt/gromacs\n", {}) == Path("/opt/gromacs/share/gromacs/top")
    assert gt.force_field_dir("", {}) == Path("/usr/share/gromacs/top")


def test_ns_per_day_of_recorded_log():
    assert gt.ns_per_day(data("md.log")) == "10.890"
    assert gt.ns_per_day(data("em5.log")) is None


def test_xvg_rows_of_recorded_energy():
    rows = gt.xvg_rows(data("md-Temperature.xvg"))
    assert rows[0] == ("0.000000", "300.591949")
    assert len(rows) == 5 and rows[-1][0] == "0.400000"
    assert len(gt.xvg_rows(data("em-Potential.xvg"))) == 346


@pytest.mark.parametrize(("text", "expected"), [
    ("9.7109906e+02", 971.099), ("-3.2394278e+05", -323943), ("1.0e+03", 1000), ("989.612854", 989.613),
    ("0", 0), ("nan", None), ("", None), ("x", None),
])
def test_awk_number_prints_as_awk(text, expected):
    value = gt.awk_number(text)
    assert value == expected and type(value) is type(expected)


# --- mdp files -------------------------------------------------------------------------------------------------


def test_parse_mdp_drops_comments_blank_lines_and_windows_line_ends():
    text = "; my settings\r\n\r\nnstlog = 500   ; less often\r\ntc_grps=Protein  Non-Protein\r\ndefine =\r\n"
    assert gt.parse_mdp(text, "nvt") == [("nstlog", "500"), ("tc_grps", "Protein  Non-Protein"), ("define", "")]


@pytest.mark.parametrize("line", ["emtol 500", "= 5", "emtol' = 5", "$(touch pwned)", "1nsteps = 5",
                                  "nst log = 5"])
def test_parse_mdp_refuses_a_line_that_is_not_key_value(line):
    with pytest.raises(gt.TaskError) as info:
        gt.parse_mdp(f"nsteps = 5\n{line}\r\n", "em")
    assert str(info.value) == f'em: mdp line "{line}" is not "key = value"'


def test_merge_mdp_later_wins_whatever_the_spelling():
    merged = gt.merge_mdp([("nstlog", "1000"), ("tc-grps", "System"), ("tau_t", "0.1")],
                          [("NSTLOG", "500"), ("tc_grps", "Protein Non-Protein")], [("Tau-T", "0.2 0.2")])
    assert gt.format_mdp(merged) == ("NSTLOG                     = 500\n"
                                     "tc_grps                    = Protein Non-Protein\n"
                                     "Tau-T                      = 0.2 0.2\n")


def test_stage_defaults():
    em = dict(gt.stage_defaults("em"))
    assert em["integrator"] == "steep" and em["emtol"] == "1000.0" and "tcoupl" not in em
    nvt = dict(gt.stage_defaults("nvt"))
    assert (nvt["gen-vel"], nvt["pcoupl"], nvt["define"]) == ("yes", "no", "-DPOSRES")
    npt = dict(gt.stage_defaults("npt"))
    assert (npt["gen-vel"], npt["pcoupl"], npt["define"], npt["continuation"]) == ("no", "C-rescale", "-DPOSRES",
                                                                                    "yes")
    md = dict(gt.stage_defaults("md"))
    assert md["pcoupl"] == "C-rescale" and "define" not in md


def test_named_inputs_give_one_reference_temperature_per_coupling_group():
    base = gt.merge_mdp(gt.stage_defaults("nvt"), [("tc_grps", "Protein Water_and_ions SOL")])
    inputs = dict(gt.named_inputs("nvt", base, "1000", "0.002000", "50", "100", "310.000000", "1.000000"))
    assert inputs == {"nsteps": "1000", "dt": "0.002000", "nstenergy": "50", "nstxout-compressed": "100",
                      "ref-t": "310.000000 310.000000 310.000000", "gen-temp": "310.000000"}
    md = dict(gt.named_inputs("md", gt.merge_mdp(gt.stage_defaults("md")), "5", "0.001", "10", "10", "300", "2"))
    assert md["ref-t"] == "300 300" and md["ref-p"] == "2"
    assert gt.named_inputs("em", gt.merge_mdp(gt.stage_defaults("em")), "2000", "", "", "", "", "") == [
        ("nsteps", "2000")]


def test_merged_mdp_of_a_production_stage_with_a_user_file_and_overrides():
    """The order and spelling the former awk merge wrote (checked byte for byte against it)."""
    user = gt.parse_mdp("; windows\r\nnstlog = 500\r\nemtol=250\r\n", "md")
    overrides = gt.parse_mdp("title = it's $(touch pwned) `x` \"q\"\nnst_log = 20\nREF-T = 310 310\n", "md")
    base = gt.merge_mdp(gt.stage_defaults("md"), user)
    inputs = gt.named_inputs("md", base, "1000", "0.002000", "50", "100", "300.000000", "1.000000")
    text = gt.format_mdp(gt.merge_mdp(base.values(), inputs, overrides))
    lines = text.splitlines()
    assert lines[0] == "integrator                 = md"
    assert lines[1] == "nstlog                     = 500"  # the default's place, the user's value
    assert "REF-T                      = 310 310" in lines and "ref-p                      = 1.000000" in lines
    assert lines[-2] == "title                      = it's $(touch pwned) `x` \"q\""
    assert lines[-1] == "nst_log                    = 20"  # not nstlog: grompp reports it as unknown
    assert text == data("md-merged-by-former-awk.mdp")


# --- prepare-system --------------------------------------------------------------------------------------------


def test_ions_are_placed_from_a_run_input_without_ewald_sums():
    """grompp refuses PME on a charged system with a warning, so the run input genion reads (before any ion is
    there) must not use Ewald sums: the cause of every charged protein failing before (1AKI +8)."""
    settings_ = dict(gt.parse_mdp(gt.ION_MDP, "ions"))
    assert settings_["coulombtype"].lower() not in ("pme", "ewald", "p3m-ad", "pme-switch", "pme-user")
    assert settings_["nsteps"] == "0"


def charged_topology(tmp_path: Path) -> Path:
    """The recorded topology of a -2 e protein after genion (tests/data/gromacs_scripts/charged/README.md)."""
    top = tmp_path / "topol.top"
    top.write_bytes(gzip.decompress((DATA / "charged" / "topol.top.gz").read_bytes()))
    return top


def test_charge_and_ions_from_a_recorded_topology(tmp_path):
    charges, molecules = gt.topology_molecules(charged_topology(tmp_path), DATA / "charged")
    assert round(charges["Protein_chain_A"], 4) == -2.0
    assert (charges["NA"], charges["CL"], charges["SOL"]) == (1.0, -1.0, 0.0)
    assert molecules == [("Protein_chain_A", 1), ("SOL", 3438), ("NA", 13), ("CL", 11)]


def test_system_report_of_a_neutralised_charged_protein(tmp_path):
    report = gt.system_report(charged_topology(tmp_path), DATA / "charged", data("charged/ions.gro.box"), 0.15, 7)
    assert report == {"solute_charge_e": -2.0, "net_charge_e": 0.0, "sodium_ions": 13, "chloride_ions": 11,
                      "water_molecules": 3438, "box_volume_nm3": 119.109, "salt_molar_requested": 0.15,
                      "salt_molar_in_box": 0.1534, "genion_seed": 7}


def test_system_report_refuses_a_molecule_it_cannot_find(tmp_path):
    """Includes not found (here the force field's water and ions files) cannot hide a charge: refused."""
    expected = r"^the topology lists molecule\(s\) CL,NA,SOL without a \[ moleculetype \]$"
    with pytest.raises(gt.TaskError, match=expected):
        gt.system_report(charged_topology(tmp_path), tmp_path, data("charged/ions.gro.box"), 0.15, 7)


def test_box_volume_of_cubic_and_triclinic_boxes():
    assert gt.gro_volume_nm3("t\n0\n   5.00000   4.00000   2.00000\n") == 40.0
    assert round(gt.gro_volume_nm3(data("charged/ions.gro.box")), 3) == 119.109  # a dodecahedron's 9 numbers
    with pytest.raises(gt.TaskError, match="no box line"):
        gt.gro_volume_nm3("t\n1\n    1SOL     OW    1   0.126   1.624   1.679\n")


@pytest.fixture()
def force_fields(tmp_path) -> Path:
    """A GROMACS top folder: three force fields (only oplsaa has a watermodels.dat) and a .ff without one."""
    top = tmp_path / "top"
    for ff in ("oplsaa", "amber99sb-ildn", "charmm27"):
        (top / f"{ff}.ff").mkdir(parents=True)
        (top / f"{ff}.ff" / "forcefield.itp").write_text("\n")
    (top / "oplsaa.ff" / "watermodels.dat").write_text(data("oplsaa.watermodels.dat"))
    (top / "broken.ff").mkdir()  # no forcefield.itp
    return top


def test_force_field_and_water_model_accepted(force_fields):
    gt.check_force_field(force_fields, "oplsaa", "spce")
    gt.check_force_field(force_fields, "oplsaa", "tip4pew")


@pytest.mark.parametrize(("ff", "water", "expected"), [
    ("../top/oplsaa", "spce",
     "unknown force field '../top/oplsaa': choose one of amber99sb-ildn,broken,charmm27,oplsaa"),
    ("broken", "spce", "unknown force field 'broken': choose one of amber99sb-ildn,broken,charmm27,oplsaa"),
    ("oplsaa", "spce'`touch pwned`", "water model 'spce'`touch pwned`' is not one of force field oplsaa's: choose "
                                     "one of tip4p,tip4pew,tip3p,tip5p,tip5pe,spc,spce"),
    ("oplsaa", "", "water model '' is not one of force field oplsaa's: choose one of "
                   "tip4p,tip4pew,tip3p,tip5p,tip5pe,spc,spce"),
    ("charmm27", "tip3p", "water model 'tip3p' is not one of force field charmm27's: choose one of none listed"),
])
def test_force_field_and_water_model_refused(force_fields, ff, water, expected):
    with pytest.raises(gt.TaskError) as info:
        gt.check_force_field(force_fields, ff, water)
    assert str(info.value) == expected


def test_gro_atoms_of_recorded_pdb2gmx_output():
    assert gt.gro_atoms(data("protein.gro")) == 1231


# --- production ------------------------------------------------------------------------------------------------


def test_part_outputs_of_a_resumed_run():
    files = ["1ubq.md.part0002.xtc", "1ubq.md.part0002.log", "1ubq.md.tpr", "previous.cpt", "1ubq.md.cpt",
             "1ubq.md.part0002"]
    assert gt.part_outputs("1ubq", files) == [("1ubq.md.part0002.log", "1ubq.md.log"),
                                              ("1ubq.md.part0002.xtc", "1ubq.md.xtc")]
    assert gt.part_outputs("1ubq", ["1ubq.md.xtc"]) == []


def test_checkpoint_step_from_recorded_gmx_dump():
    assert gt.checkpoint_step(data("dump-cp.out")) == 1000
    assert gt.checkpoint_step("GROMACS version = 2022.5\n") is None


@pytest.mark.parametrize(("nsteps", "expected"), [
    (1000, "nothing to do: the checkpoint is at step 1000 (2 ps), which is production_steps (1000); to extend the "
           "run give production_steps larger than 1000 (the total, counted from the start of production)"),
    (500, "production_steps (500) is below the checkpoint's step 1000 (2 ps): give production_steps larger than "
          "1000 (the total, counted from the start of production)"),
])
def test_resume_without_steps_left_is_one_line(nsteps, expected):
    with pytest.raises(gt.TaskError) as info:
        gt.check_resume(1000, "2", nsteps)
    assert str(info.value) == expected
    gt.check_resume(1000, "2", 1001)  # one step left: runs


# --- analysis --------------------------------------------------------------------------------------------------


def test_energy_minimisation_outcome_from_recorded_logs():
    assert gt.em_outcome(data("em.log.tail")) == ""
    assert gt.em_outcome(data("em5.log")) == ("energy minimisation did not reach Fmax < 1000: Fmax 6.1421138e+03 "
                                              "kJ/mol/nm after 6 steps (step limit reached)")
    precision = ("Steepest Descents converged to machine precision in 36 steps,\nbut did not reach the requested "
                 "Fmax < 1000.\nPotential Energy  = -2.4e+05\nMaximum force     =  1.2e+03 on atom 5\n")
    assert gt.em_outcome(precision) == ("energy minimisation did not reach Fmax < 1000: Fmax 1.2e+03 kJ/mol/nm "
                                        "after 36 steps (machine precision reached)")


def test_unconverged_minimisation_fails_unless_allowed(capsys):
    with pytest.raises(gt.TaskError) as info:
        gt.check_minimised(data("em5.log"), allowed=False)
    assert str(info.value).endswith("(step limit reached): raise em_steps, check the structure (clashes, missing "
                                    "atoms), or set allow_unconverged_em = true to go on and have it flagged in the "
                                    "summary")
    gt.check_minimised(data("em5.log"), allowed=True)
    assert capsys.readouterr().err.startswith("WARNING: energy minimisation did not reach Fmax < 1000")
    gt.check_minimised(data("em.log.tail"), allowed=False)


def test_run_reports_carry_the_warning_of_an_allowed_unconverged_minimisation(tmp_path):
    preparation = tmp_path / "p.json"
    preparation.write_text('{"models": 3, "model_used": 2}')
    found = gt.run_reports(str(preparation), "", data("em5.log"))
    assert found["preparation"] == {"models": 3, "model_used": 2} and "system" not in found
    assert found["warnings"] == ["energy minimisation did not reach Fmax < 1000: Fmax 6.1421138e+03 kJ/mol/nm after "
                                 "6 steps (step limit reached); the run went on because allow_unconverged_em = true"]
    assert gt.run_reports("", "", data("em.log.tail"))["warnings"] == []
    assert gt.run_reports("", "", None) == {"warnings": []}  # resumed: no minimisation in this run


def test_secondary_structure_fractions_of_recorded_do_dssp_output():
    """``gmx do_dssp -ver 4 -sc`` of the 1UBQ production (11 frames; 76 residues in every frame)."""
    names, rows = gt.secondary_structure(data("dssp-scount.xvg"))
    assert names == ["Coil", "B-Sheet", "B-Bridge", "Bend", "Turn", "A-Helix", "3-Helix", "PPII-Helix"]
    assert len(rows) == 11 and rows[0][0] == 0.0 and rows[-1][0] == 2.0
    assert rows[0][1:] == [round(c / 76, 4) for c in (15, 24, 2, 3, 11, 16, 3, 2)]
    assert all(abs(sum(row[1:]) - 1) < 1e-3 for row in rows)
    helix = gt.class_mean(names, rows, gt.HELIX)
    sheet = gt.class_mean(names, rows, gt.SHEET)
    assert 0.2 < helix < 0.3 and 0.3 < sheet < 0.4  # ubiquitin: one alpha helix and a five-stranded sheet


def test_dssp_frames_are_thinned_to_a_bounded_count():
    assert gt.frame_stride([0.0, 0.2, 0.4]) is None
    assert gt.frame_stride([i * 0.2 for i in range(1001)]) == 1.2  # 1001 frames -> every 6th: 167 frames
    assert gt.frame_stride([i * 10.0 for i in range(400)], most=200) == 20.0


def test_rmsf_rows_of_recorded_gmx_rmsf():
    rows = gt.xvg_rows(data("rmsf.xvg"))
    assert len(rows) == 76 and rows[0] == ("1", "0.0304")
    assert max(float(v) for _, v in rows) < 0.5  # a folded protein in 2 ps: C-alpha fluctuations well below 0.5 nm



def test_means_with_four_decimals():
    assert gt.mean([1.0, 2.0, 4.0]) == 2.3333
    assert gt.mean([]) is None
    assert gt.second_half_mean([0.0, 10.0, 20.0]) == 15.0  # the later half of an odd count
    assert gt.second_half_mean([0.0, 10.0, 20.0, 30.0]) == 25.0
    assert gt.second_half_mean([]) is None


def test_em_summary_of_recorded_logs():
    assert gt.em_summary(data("em.log.tail")) == {"em_converged": True, "em_fmax_kj_mol_nm": 971.099,
                                                  "em_potential_kj_mol": -323943}
    assert gt.em_summary(data("em5.log")) == {"em_converged": False, "em_fmax_kj_mol_nm": 6142.11,
                                              "em_potential_kj_mol": -240883}


def test_summary_of_recorded_energies_as_the_former_awk_programs_computed_it():
    temperature = gt.xvg_rows(data("md-Temperature.xvg"))
    density = gt.xvg_rows(data("md-Density.xvg"))
    pressure = gt.xvg_rows(data("md-Pressure.xvg"))
    rmsd = gt.xvg_rows(data("rmsd.xvg"))
    gyration = gt.xvg_rows(data("gyrate.xvg"))
    result = gt.summary(data("em.log.tail"), temperature, density, pressure, temperature, rmsd, gyration,
                        data("md.log"))
    assert result == {
        "em_converged": True,
        "em_fmax_kj_mol_nm": 971.099,
        "em_potential_kj_mol": -323943,
        "nvt_mean_temperature_k": 274.048,
        "nvt_second_half_mean_temperature_k": 277.9957,
        "npt_initial_density_kg_m3": 989.613,
        "npt_mean_density_kg_m3": 1000.0337,
        "npt_second_half_mean_density_kg_m3": 1003.3553,
        "npt_mean_pressure_bar": -1453.6973,
        "md_mean_temperature_k": 274.048,
        "md_frames": 5,
        "md_first_time_ps": 0.0,
        "md_last_time_ps": 0.4,
        "md_final_backbone_rmsd_nm": 0.0447637,
        "md_mean_radius_of_gyration_nm": 1.1766,
        "md_ns_per_day": 10.89,
    }
    json.dumps(result)


def test_summary_of_a_resumed_run_has_no_setup_figures():
    temperature = gt.xvg_rows(data("md-Temperature.xvg"))
    rmsd = gt.xvg_rows(data("rmsd.xvg"))
    result = gt.summary(None, None, None, None, temperature, rmsd, gt.xvg_rows(data("gyrate.xvg")), "")
    assert result["em_converged"] is False
    assert [k for k, v in result.items() if v is None] == [
        "em_fmax_kj_mol_nm", "em_potential_kj_mol", "nvt_mean_temperature_k", "nvt_second_half_mean_temperature_k",
        "npt_initial_density_kg_m3", "npt_mean_density_kg_m3", "npt_second_half_mean_density_kg_m3",
        "npt_mean_pressure_bar", "md_ns_per_day"]


def test_write_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tables").mkdir()
    path = gt.write_table(gt.xvg_rows(data("rmsd.xvg")), "backbone_rmsd_nm")
    lines = path.read_text().splitlines()
    assert lines[0] == "time_ps\tbackbone_rmsd_nm" and lines[1] == "0.0000000\t0.0000034" and len(lines) == 6


def test_run_logged_keeps_output_and_status(tmp_path):
    log = tmp_path / "step.log"
    assert gt.run_logged([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], log, "sol\n")
    assert log.read_text() == "SOL\n\n"
    assert not gt.run_logged([sys.executable, "-c", "raise SystemExit('Fatal error:\\nno')"], log)
    assert gt.fatal_error(log.read_text()) == "no"


# --- the command line: refusals before any work, one ERROR line ------------------------------------------------


def run_main(capsys, *argv: str) -> tuple[int, str]:
    code = gt.main(list(argv))
    return code, capsys.readouterr().err


def md_stage_args(tmp_path: Path, **given: list[str]) -> list[str]:
    values = {"stage": ["em"], "name": ["1ubq"], "structure": ["/in/s.gro"], "topology": ["/in/t.tar.gz"],
              "restraint_reference": [], "previous_checkpoint": [], "mdp": [], "mdp_overrides": [], **given}
    args = ["md-stage"]
    for key, lines in values.items():
        args += [f"--{key}", lines_file(tmp_path, key, *lines)]
    return args + ["--mdp_override_count", str(len(values["mdp_overrides"])), "--nsteps", "10", "--temperature_k",
                   "300.000000", "--pressure_bar", "1.000000", "--timestep_ps", "0.002000",
                   "--energy_interval_steps", "100", "--frame_interval_steps", "0", "--cpu", "2", "--seed", "7",
                   "--run_mdrun", "true", "--allow_unconverged_em", "false"]


@pytest.mark.parametrize(("given", "expected"), [
    ({"stage": ["em';touch pwned;: '"]}, "ERROR: unknown stage 'em';touch pwned;: '': choose em, nvt, npt or md"),
    ({"name": ["x';touch pwned;: '"]}, f"ERROR: name 'x';touch pwned;: '' {NAME_RULE}"),
    ({"mdp_overrides": ["$(touch pwned)"]}, 'ERROR: em: mdp line "$(touch pwned)" is not "key = value"'),
    ({"mdp_overrides": ["nsteps = 5", "= 5"]}, 'ERROR: em: mdp line "= 5" is not "key = value"'),
])
def test_md_stage_refuses_before_any_work(tmp_path, monkeypatch, capsys, given, expected):
    args = md_stage_args(tmp_path, **given)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = run_main(capsys, *args)
    assert (code, err) == (1, expected + "\n")
    assert list(work.iterdir()) == []


def test_md_stage_override_holding_a_newline(tmp_path, monkeypatch, capsys):
    args = md_stage_args(tmp_path, mdp_overrides=["emtol = 500\ntouch pwned"])
    args[args.index("--mdp_override_count") + 1] = "1"
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, *args)
    assert (code, err) == (1, "ERROR: em: an mdp override holds a newline: give each 'key = value' as its own "
                              "list item\n")


def test_md_stage_user_mdp_file_is_checked_first(tmp_path, monkeypatch, capsys):
    mdp = tmp_path / "em '$(touch pwned)'.mdp"
    mdp.write_bytes(b"; settings\r\nemtol = 500\r\nintegrator steep\r\n")
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, *md_stage_args(tmp_path, mdp=[str(mdp)], mdp_overrides=["bad"]))
    assert (code, err) == (1, 'ERROR: em: mdp line "integrator steep" is not "key = value"\n')


@pytest.mark.parametrize(("given", "expected"), [
    ({"box_type": ["sphere"]}, "ERROR: box_type is 'sphere': choose one of cubic, dodecahedron, octahedron, "
                               "triclinic"),
    ({"force_field": ["x\ntouch pwned"]}, "ERROR: force_field holds a newline: give it as one line"),
])
def test_prepare_system_refuses_before_any_work(tmp_path, monkeypatch, capsys, given, expected):
    values = {"name": ["1ubq"], "structure": [str(PDB)], "force_field": ["oplsaa"], "water_model": ["spce"],
              "box_type": ["dodecahedron"], **given}
    args = ["prepare-system"]
    for key, lines in values.items():
        args += [f"--{key}", lines_file(tmp_path, key, *lines)]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = run_main(capsys, *args, "--box_distance_nm", "1.000000", "--salt_molar", "0.150000",
                         "--seed", "7")
    assert (code, err) == (1, expected + "\n")
    assert list(work.iterdir()) == []


def test_md_stage_topology_that_is_not_a_tar(tmp_path, monkeypatch, capsys):
    """tar's own complaint ends the line (real tar)."""
    topology = tmp_path / "topol.top"
    topology.write_text("[ system ]\nprotein\n")
    args = md_stage_args(tmp_path, topology=[str(topology)])
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, *args)
    assert code == 1
    assert err.startswith("ERROR: em: topology 'topol.top' is not a topology tar.gz of prepare_system: tar: ")
    assert err.count("\n") == 1


def test_unreadable_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, *md_stage_args(tmp_path, mdp=[str(tmp_path / "gone.mdp")]))
    assert (code, err) == (1, f"ERROR: md-stage: No such file or directory: {tmp_path / 'gone.mdp'}\n")


def test_preparation_left_unfixed_by_choice_is_a_warning():
    """prepare_structure's report (containers/gromacs/prepare_structure.py) of 1DPX without residues 50-52, loops
    not added, and of a residue whose missing atoms were not added."""
    report = {"missing_residues_not_added": [
        {"chain": "A", "where": "internal", "after": "GLY49", "residues": ["SER", "THR", "ASP"]},
        {"chain": "A", "where": "C-terminal", "after": "LEU129", "residues": ["GLY"]}],
        "missing_atoms_not_added": [{"residue": "LEU", "chain": "A", "number": "129"}]}
    assert gt.preparation_warnings(report) == [
        "the structure has internal gaps that were not filled (3 residues of chain A after GLY49): pdb2gmx bonded "
        "across them; set add_missing_loops = true to build them",
        "residues with missing heavy atoms were left incomplete (LEU A129): set add_missing_atoms = true"]
    assert gt.preparation_warnings({"missing_residues_not_added": [], "missing_atoms_not_added": []}) == []
