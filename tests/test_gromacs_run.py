"""The GROMACS workflow end to end under miniwdl in real containers (ubiquitin, PDB 1UBQ, in water).

Step counts (inputs/gromacs.local.json) are small for CI but each check is physical:
* EM: steepest descent must reach Fmax < 1000 kJ/mol/nm (emtol) with a negative potential energy;
  a broken topology or a clash that cannot be relaxed fails this.
* NVT: 2 ps = 20 time constants of the V-rescale thermostat (tau_t 0.1 ps). Generated velocities
  lose about a third of their kinetic energy to constraints and equipartition in the first 0.1 ps,
  so the check is the mean over the second half of the stage: within +-10 K of the 300 K target.
  Without a working thermostat it stays near 200-250 K.
* NPT: SPC/E water at 300 K and 1 bar is about 998 kg/m3; the protein (about 5 % of the volume,
  1.35 g/cm3) and 0.15 M NaCl raise the equilibrium density of this system to about 1015-1025.
  solvate packs water below that density, so the barostat must compress: the density must rise
  during the stage and its second-half mean must lie in 980-1040 kg/m3 (after 2 ps the box is still
  relaxing from about 990). A missing or wrong barostat (or wrong units) falls outside.
* Production: frames = steps / nstxout-compressed + 1, checked on the trajectory with gmx check.
* Resume: continuing the first run's checkpoint to 2000 steps must start at 2 ps and end at 4 ps; asking it for
  the 1000 steps it already has is one line ("nothing to do"), before any mdrun.
* Neutral system: ubiquitin is neutral, so the ions are salt only (the charged entries are in
  test_gromacs_structures.py); the same seed gives the same system byte for byte, another seed another one.
* Analysis: C-alpha RMSF per residue and DSSP secondary structure (ubiquitin: one alpha helix, a five-stranded
  sheet) over the trajectory.

Every file the runs are given has a hostile but legal name (a quote, a space, ``$(...)``, backquotes): the
structure, the user's NVT mdp file (with Windows line ends) and, for the resumed run, the checkpoint and run input;
an NVT mdp override holds the same characters in its value. The run must work exactly as with plain names, the
override must reach the merged mdp verbatim, and nothing may run as shell (no ``pwned`` file anywhere).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, local, settings, workflows
from scriptload import load_script

INPUTS = json.loads((settings.INPUTS_DIR / "gromacs.local.json").read_text())
TARGET_K = INPUTS["gromacs.temperature_k"]
DT = 0.002


STRUCTURE = settings.INPUTS_DIR / INPUTS["gromacs.structure"]
WDL_TASKS = settings.WDL_DIR / "tasks" / "gromacs.wdl"
#: legal file-name characters a shell would act on: each given file is renamed "<stem> <HOSTILE><suffix>"
HOSTILE = "'$(touch pwned) `touch pwned` \"x\""
#: an mdp value with the same characters; 'title' is an obsolete mdp key grompp ignores (with a note)
TITLE_OVERRIDE = "title = it's $(touch pwned) `touch pwned` \"quoted\""


def hostile_copy(path: Path, folder: Path, stem: str) -> Path:
    copy = folder / f"{stem} {HOSTILE}{path.suffix}"
    shutil.copyfile(path, copy)
    return copy


@pytest.fixture(scope="module")
def given_dir(tmp_path_factory) -> Path:
    """The folder of the hostile-named input files."""
    return tmp_path_factory.mktemp("given")


@pytest.fixture(scope="module")
def md_run(run_workflow, given_dir):
    nvt_mdp = given_dir / f"nvt {HOSTILE}.mdp"
    nvt_mdp.write_bytes(b"; my NVT settings, saved on Windows\r\nnstlog = 500\r\n")
    return run_workflow("gromacs", structure=str(hostile_copy(STRUCTURE, given_dir, "my prot")),
                        nvt_mdp=str(nvt_mdp), nvt_mdp_overrides=[TITLE_OVERRIDE])


@pytest.fixture(scope="module")
def resumed_run(run_workflow, md_run, given_dir):
    """Continue the first run's production from its final checkpoint to twice the steps."""
    tpr = hostile_copy(Path(out(md_run, "production_tpr")), given_dir, "run")
    checkpoint = hostile_copy(Path(out(md_run, "checkpoint")), given_dir, "state")
    return run_workflow("gromacs", resume_tpr=str(tpr), resume_checkpoint=str(checkpoint),
                        production_steps=2 * INPUTS["gromacs.production_steps"])


def out(run, name: str) -> str:
    return str(run.outputs[f"gromacs.{name}"])


def summary(run) -> dict[str, Any]:
    return json.loads(Path(out(run, "summary")).read_text())


def table(run, name: str) -> list[tuple[float, float]]:
    (path,) = [Path(p) for p in run.outputs["gromacs.tables"] if Path(p).name == f"{name}.tsv"]
    lines = path.read_text().splitlines()
    assert lines[0].startswith("time_ps\t")
    return [(float(t), float(v)) for t, v in (ln.split("\t") for ln in lines[1:])]


def second_half_mean(rows: list[tuple[float, float]]) -> float:
    tail = rows[len(rows) // 2:]
    return sum(v for _, v in tail) / len(tail)


def test_energy_minimisation_converges(md_run):
    log = Path(out(md_run, "em_log")).read_text()
    fmax = float(re.search(r"^Maximum force\s+=\s+(\S+)", log, re.M).group(1))
    epot = float(re.search(r"^Potential Energy\s+=\s+(\S+)", log, re.M).group(1))
    assert fmax < 1000.0, f"EM stopped at Fmax {fmax} kJ/mol/nm"
    assert epot < 0
    rows = table(md_run, "em_potential_kJ_mol")
    assert rows[-1][1] < rows[0][1], "minimisation did not lower the potential energy"
    s = summary(md_run)
    assert s["em_converged"] is True and s["em_fmax_kj_mol_nm"] == pytest.approx(fmax, rel=1e-3)


def test_nvt_holds_the_target_temperature(md_run):
    rows = table(md_run, "nvt_temperature_K")
    assert len(rows) == INPUTS["gromacs.nvt_steps"] // INPUTS["gromacs.energy_interval_steps"] + 1
    mean = second_half_mean(rows)
    assert abs(mean - TARGET_K) <= 10.0, f"NVT mean temperature {mean:.1f} K, target {TARGET_K} K"
    assert summary(md_run)["nvt_second_half_mean_temperature_k"] == pytest.approx(mean, abs=0.01)
    mdp = Path(out(md_run, "nvt_mdp_used")).read_text()
    assert re.search(r"^nsteps\s+=\s+1000$", mdp, re.M) and re.search(r"^ref-t\s+=\s+300\.0+ 300\.0+", mdp, re.M)


def test_hostile_file_names_and_values_are_only_data(md_run, resumed_run, given_dir):
    """The user's mdp file (CRLF) and the override reach the merged mdp verbatim; nothing ran as shell."""
    mdp = Path(out(md_run, "nvt_mdp_used")).read_text()
    assert "\r" not in mdp
    assert re.search(r"^nstlog\s+=\s+500$", mdp, re.M), "the user's mdp file was not merged"
    key, _, value = TITLE_OVERRIDE.partition(" = ")
    assert f"{key:<26} = {value}" in mdp.splitlines()
    for root in (md_run.run_dir, resumed_run.run_dir, given_dir):
        injected = [p for p in root.rglob("*") if p.name == "pwned"]
        assert not injected, f"an input value ran as shell: {injected}"
    # the tasks read the structure under its own name (miniwdl mounts it as given)
    staged = {p.name for p in md_run.run_dir.rglob("*.pdb")}
    assert f"my prot {HOSTILE}.pdb" in staged, staged


def test_npt_density_relaxes_towards_water_with_protein(md_run):
    rows = table(md_run, "npt_density_kg_m3")
    mean = second_half_mean(rows)
    assert 980.0 <= mean <= 1040.0, f"NPT density {mean:.1f} kg/m3"
    assert rows[-1][1] > rows[0][1] + 5.0, "the barostat did not compress the solvated box"


def test_trajectory_has_the_configured_frames(md_run):
    frames = INPUTS["gromacs.production_steps"] // INPUTS["gromacs.frame_interval_steps"] + 1
    xtc = Path(out(md_run, "trajectory")).resolve()
    image = containers.build(containers.get("gromacs"))
    check = subprocess.run(["podman", "run", "--rm", "-v", f"{xtc.parent}:/data:ro", image,
                            "gmx", "-quiet", "check", "-f", f"/data/{xtc.name}"],
                           capture_output=True, text=True, check=True)
    coords = re.search(r"^Coords\s+(\d+)\s+([0-9.]+)", check.stdout + check.stderr, re.M)
    assert coords, check.stderr[-500:]
    assert int(coords.group(1)) == frames
    assert float(coords.group(2)) == pytest.approx(INPUTS["gromacs.frame_interval_steps"] * DT)
    s = summary(md_run)
    assert s["md_frames"] == frames and s["md_first_time_ps"] == 0.0
    assert s["md_last_time_ps"] == pytest.approx(INPUTS["gromacs.production_steps"] * DT)


def test_structure_stays_folded(md_run):
    rmsd = table(md_run, "backbone_rmsd_nm")
    rg = table(md_run, "radius_of_gyration_nm")
    assert rmsd[0][1] < 0.05, "first frame should match the reference structure"
    assert max(v for _, v in rmsd) < 0.3, "backbone drifted more than 3 A in 2 ps"
    # ubiquitin's crystal structure has Rg of about 1.17 nm
    assert all(1.05 < v < 1.35 for _, v in rg), rg


def test_production_temperature_and_speed(md_run):
    rows = table(md_run, "md_temperature_K")
    assert abs(sum(v for _, v in rows) / len(rows) - TARGET_K) <= 10.0
    assert float(md_run.outputs["gromacs.ns_per_day"]) > 0


def test_plots_are_png_images(md_run):
    plots = [Path(p) for p in md_run.outputs["gromacs.plots"]]
    names = {p.stem for p in plots}
    assert {"em_potential_kJ_mol", "nvt_temperature_K", "npt_density_kg_m3", "backbone_rmsd_nm",
            "radius_of_gyration_nm"} <= names
    for p in plots:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, p


def test_topology_and_system(md_run):
    gro = Path(out(md_run, "system")).read_text().splitlines()
    assert int(gro[1]) == md_run.outputs["gromacs.atoms"] > 10000
    residues = {ln[5:10].strip() for ln in gro[2:-1]}
    assert {"SOL", "NA", "CL"} <= residues, "solvent and ions missing"


def test_resume_continues_the_step_count(md_run, resumed_run):
    s = summary(resumed_run)
    steps = INPUTS["gromacs.production_steps"]
    assert s["md_first_time_ps"] == pytest.approx(steps * DT)
    assert s["md_last_time_ps"] == pytest.approx(2 * steps * DT)
    log = Path(out(resumed_run, "production_log")).read_text()
    assert re.search(rf"^\s*Writing checkpoint, step {2 * steps}\b", log, re.M)
    assert "Reading checkpoint file previous.cpt" in log
    calls = {p.name for p in resumed_run.run_dir.iterdir() if p.name.startswith("call-")}
    assert calls == {"call-production", "call-analysis"}, calls


def test_gpu_switch_reaches_mdrun(md_run, expect_user_error):
    """gpu = true on an image without CUDA: the production task must refuse, naming the image to use."""
    flow = workflows.get("gromacs")
    cpu_image = containers.publish_local(containers.get("gromacs"))
    given = {"gromacs.structure": str(settings.INPUTS_DIR / INPUTS["gromacs.structure"]), "gromacs.gpu": True,
             "gromacs.gromacs_cuda_image": cpu_image, "gromacs.production_cpu": 1,
             "gromacs.resume_tpr": out(md_run, "production_tpr"),
             "gromacs.resume_checkpoint": out(md_run, "checkpoint")}
    path = md_run.run_dir.parent / "gpu.inputs.json"
    path.write_text(json.dumps(given))
    inputs = local.prepare_inputs(flow, path, {})
    message = expect_user_error(local.run, flow, inputs, run_dir=md_run.run_dir.parent / "gpu-run",
                                call_cache=False)
    assert "production" in message and "no GPU support" in message and "gromacs-cuda" in message


def test_system_is_neutral_with_the_requested_salt(md_run):
    report = json.loads(Path(out(md_run, "system_report")).read_text())
    assert report["solute_charge_e"] == 0.0 and report["net_charge_e"] == 0.0  # 1UBQ: 11 K+R, 11 D+E
    assert report["sodium_ions"] == report["chloride_ions"] > 0
    # genion: pairs = round(c * V * N_A) of the whole box; within one pair of the request
    assert abs(report["salt_molar_in_box"] - INPUTS["gromacs.salt_molar"]) <= 1 / (report["box_volume_nm3"] * 0.6022)
    assert summary(md_run)["system"] == report


def test_identical_inputs_give_identical_systems(md_run, run_task):
    """genion's random choice of the waters it replaces is seeded (seed input): the same inputs give the same
    system byte for byte; another seed places the same ions elsewhere."""
    given = {"structure": out(md_run, "prepared_structure"), "name": "again", "force_field": "oplsaa",
             "water_model": "spce", "box_type": INPUTS["gromacs.box_type"],
             "box_distance_nm": INPUTS["gromacs.box_distance_nm"], "salt_molar": INPUTS["gromacs.salt_molar"]}
    same = run_task(WDL_TASKS, "prepare_system", given)
    first = Path(out(md_run, "system")).read_bytes()
    assert Path(same.outputs["prepare_system.system"]).read_bytes() == first
    other = run_task(WDL_TASKS, "prepare_system", {**given, "seed": 7})
    moved = Path(other.outputs["prepare_system.system"]).read_bytes()
    assert moved != first and len(moved.splitlines()) == len(first.splitlines())


def test_resume_without_steps_left_is_one_line(md_run, run_workflow, expect_user_error):
    message = expect_user_error(run_workflow, "gromacs", resume_tpr=out(md_run, "production_tpr"),
                                resume_checkpoint=out(md_run, "checkpoint"),
                                production_steps=INPUTS["gromacs.production_steps"])
    assert message.endswith("nothing to do: the checkpoint is at step 1000 (2 ps), which is production_steps (1000); "
                            "to extend the run give production_steps larger than 1000 (the total, counted from the "
                            "start of production)"), message


def test_production_runs_the_simd_build_this_cpu_takes(md_run):
    """auto: the build GROMACS recommends for this CPU among the image's (containers/shared/gmx_simd.py; this
    machine, AMD Zen3 with AVX2 and no AVX-512: AVX2_256, where Debian's build is SSE4.1)."""
    simd = load_script(settings.REPO_ROOT / "containers" / "shared" / "gmx_simd.py")
    cpu = simd.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    expected = simd.decide("auto", cpu, simd.ENGINE_PATHS).simd
    log = Path(out(md_run, "production_log")).read_text()
    # md.log's header names the build's level ("SIMD instructions:  AVX2_256")
    assert re.findall(r"^SIMD instructions:\s+(\S+)$", log, re.M) == [expected], \
        re.findall(r"^SIMD instructions.*$", log, re.M)
    if "avx2" in cpu.flags:
        assert expected != "SSE4.1"


def test_rmsf_and_secondary_structure_over_the_trajectory(md_run):
    (rmsf_path,) = [Path(p) for p in md_run.outputs["gromacs.tables"] if Path(p).name == "rmsf_nm.tsv"]
    rows = [ln.split("\t") for ln in rmsf_path.read_text().splitlines()]
    assert rows[0] == ["residue_index", "residue", "rmsf_nm"] and len(rows) == 77  # 76 residues
    values = [float(r[2]) for r in rows[1:]]
    assert all(0.0 < v < 0.5 for v in values)
    (ss_path,) = [Path(p) for p in md_run.outputs["gromacs.tables"] if Path(p).name == "secondary_structure.tsv"]
    lines = ss_path.read_text().splitlines()
    header = lines[0].split("\t")
    assert header[0] == "time_ps" and {"a_helix", "b_sheet", "coil"} <= set(header)
    frames = [[float(x) for x in ln.split("\t")] for ln in lines[1:]]
    assert len(frames) == summary(md_run)["md_frames"]
    assert all(abs(sum(f[1:]) - 1.0) < 1e-3 for f in frames)
    s = summary(md_run)
    assert 0.15 <= s["md_mean_helix_fraction"] <= 0.35 and 0.25 <= s["md_mean_sheet_fraction"] <= 0.45, s
    assert {"rmsf_nm", "secondary_structure"} <= {Path(p).stem for p in md_run.outputs["gromacs.plots"]}
