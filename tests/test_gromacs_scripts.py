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
    assert gt.force_field_dir(version) == Path("/usr/share/gromacs/top")
    assert gt.force_field_dir("Data prefix:  /opt/gromacs\n") == Path("/opt/gromacs/share/gromacs/top")
    assert gt.force_field_dir("") == Path("/usr/share/gromacs/top")


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


def test_structure_pdb_accepts_pdb_and_gzip():
    pdb = PDB.read_bytes()
    assert gt.structure_pdb(pdb, "1ubq.pdb") == pdb
    assert gt.structure_pdb(gzip.compress(pdb), "1ubq.pdb.gz") == pdb


@pytest.mark.parametrize(("content", "expected"), [
    (gzip.compress(PDB.read_bytes())[:300], "structure 'x' is a damaged gzip file: give the PDB file again"),
    (b"data_1UBQ\n#\nloop_\n_atom_site.group_PDB\nATOM   1 N\n",
     "structure 'x' is mmCIF, not PDB: download the entry in PDB format or convert it (e.g. gemmi convert in.cif "
     "out.pdb)"),
    (b"Structure of my protein\nsee the supplementary data\n",
     "structure 'x' is not a PDB file (no ATOM/HETATM records): give a protein structure in PDB format"),
])
def test_structure_pdb_refuses(content, expected):
    with pytest.raises(gt.TaskError) as info:
        gt.structure_pdb(content, "x")
    assert str(info.value) == expected


def test_strip_water_keeps_the_protein():
    pdb = PDB.read_bytes()
    clean = gt.strip_water(pdb, "1ubq.pdb")
    waters = [ln for ln in pdb.split(b"\n") if ln[17:20] == b"HOH"]
    assert waters and len(clean.split(b"\n")) == len(pdb.split(b"\n")) - len(waters)
    assert not [ln for ln in clean.split(b"\n") if ln[17:20] == b"HOH" and ln.startswith((b"ATOM", b"HETATM"))]
    assert clean.count(b"\nATOM  ") == pdb.count(b"\nATOM  ") > 600
    only_water = b"\n".join(waters) + b"\n"
    with pytest.raises(gt.TaskError, match="^structure 'w.pdb' holds only water: give a protein structure$"):
        gt.strip_water(only_water, "w.pdb")


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


# --- analysis --------------------------------------------------------------------------------------------------


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
                   "--energy_interval_steps", "100", "--frame_interval_steps", "0", "--cpu", "2",
                   "--run_mdrun", "true"]


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
    ({"structure": [str(DATA / "oplsaa.watermodels.dat")]},
     "ERROR: structure 'oplsaa.watermodels.dat' is not a PDB file (no ATOM/HETATM records): give a protein "
     "structure in PDB format"),
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
                         "--strip_crystal_water", "true")
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
