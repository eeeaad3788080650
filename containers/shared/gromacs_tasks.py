#!/usr/bin/env python3
"""The programs of the GROMACS tasks of wdl/tasks/gromacs.wdl, installed as ``gromacs-tasks`` in the gromacs and
gromacs-cuda images (Python 3.10+ standard library only).

Subcommands, one per task: ``prepare-system``, ``md-stage``, ``production``, ``analysis``. Every String and File
value of a task reaches this program in a file the engine wrote (``write_lines``), named by an option; a value
holding a newline is refused. Numbers and switches arrive as arguments (WDL Int, Float and Boolean cannot carry
shell syntax) and are given to GROMACS as the engine wrote them. No value is ever run as shell: GROMACS, tar and
gnuplot are started with argument lists.

Every failure ends with one ``ERROR: <one line>`` on stderr and exit status 1; the checks of the inputs come before
any file is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# task_common.py (containers/shared/, beside this script in the image): the name rule, TaskError and the
# one-ERROR-line main; gmx_data.py: ``gmx --version`` and the force-field folder (GMXDATA honoured), shared
# with prepare-structure.
import gmx_simd
import task_common
from gmx_data import force_field_dir, gmx_version
from task_common import Command, TaskError, run_main
from task_values import array_text, boolean, one, optional, read_text, text_lines

BOX_TYPES = ("cubic", "dodecahedron", "octahedron", "triclinic")
STAGES = ("em", "nvt", "npt", "md")
MDP_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
ENV = {**os.environ, "GMX_MAXBACKUP": "-1", "LC_ALL": "C"}

# --- the mdp defaults of each stage (merged under the user's mdp file, the named inputs and the overrides) ---
# The run input genion reads (positions and charges only; nothing is integrated). A plain cut-off, not PME: before
# the ions are added a charged protein leaves the system charged, and grompp refuses Ewald sums on a charged system
# with a warning ("You are using Ewald electrostatics in a system with net charge") that would fail this very step.
ION_MDP = """\
integrator    = steep
nsteps        = 0
cutoff-scheme = Verlet
coulombtype   = Cut-off
rcoulomb      = 1.0
rvdw          = 1.0
pbc           = xyz
"""
EM_DEFAULTS = [
    ("integrator", "steep"), ("emtol", "1000.0"), ("emstep", "0.01"), ("nstenergy", "10"),
    ("cutoff-scheme", "Verlet"), ("nstlist", "10"), ("coulombtype", "PME"), ("rcoulomb", "1.0"), ("rvdw", "1.0"),
    ("pbc", "xyz"),
]
MD_DEFAULTS = [
    ("integrator", "md"), ("nstlog", "1000"), ("nstcalcenergy", "50"), ("constraints", "h-bonds"),
    ("constraint-algorithm", "lincs"), ("cutoff-scheme", "Verlet"), ("nstlist", "10"), ("coulombtype", "PME"),
    ("rcoulomb", "1.0"), ("rvdw", "1.0"), ("fourierspacing", "0.16"), ("DispCorr", "EnerPres"), ("pbc", "xyz"),
    ("tcoupl", "V-rescale"), ("tc-grps", "Protein Non-Protein"), ("tau-t", "0.1 0.1"),
]
NVT_DEFAULTS = [("define", "-DPOSRES"), ("continuation", "no"), ("gen-vel", "yes"), ("pcoupl", "no")]
PRESSURE_DEFAULTS = [("continuation", "yes"), ("gen-vel", "no"), ("pcoupl", "C-rescale"),
                     ("pcoupltype", "isotropic"), ("tau-p", "1.0"), ("compressibility", "4.5e-5"),
                     ("refcoord-scaling", "com")]


# --- values from engine-written files (task_values.py: read_text, one, optional, ...) -----------------------


def values(a: argparse.Namespace, *labels: str) -> dict[str, str]:
    """The values of the write_lines files named by the options ``labels`` of ``a``, read in that order; a label
    ending in "?" is an optional input ("" when not given)."""
    found = {}
    for label in labels:
        key = label.rstrip("?")
        found[key] = optional(key, getattr(a, key)) if label.endswith("?") else one(key, getattr(a, key))
    return found


def check_name(name: str) -> str:
    """The output prefix becomes file names: the pattern of parameter_meta (task_common's name rule)."""
    return task_common.check_name("name", [name])


def check_choice(label: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise TaskError(f"{label} is '{value}': choose one of {', '.join(choices)}")
    return value


# --- GROMACS output --------------------------------------------------------------------------------------------


def fatal_error(text: str) -> str:
    """GROMACS's "Fatal error:" paragraph of ``text`` in one line (up to "For more information" or a ----- rule);
    the last line of ``text`` when it has none."""
    found: list[str] = []
    inside = False
    for line in text_lines(text):
        if line.startswith("Fatal error:"):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith(("For more information", "-----")):
            break
        if line.strip(" \t"):
            found.append(line)
    if found:
        return " ".join(found)
    lines = text_lines(text)
    return lines[-1] if lines else ""


def unknown_mdp_keys(grompp_output: str) -> list[str]:
    """The keys grompp reports as "Unknown left-hand '<key>' in parameter file" (the last one of each line)."""
    keys = []
    for line in text_lines(grompp_output):
        found = re.findall(r"Unknown left-hand '([^']*)'", line)
        if found:
            keys.append(found[-1])
    return keys


def missing_residue(pdb2gmx_output: str) -> str:
    """The first residue pdb2gmx did not find in the force field's residue topology database, or ""."""
    for line in text_lines(pdb2gmx_output):
        found = re.findall(r"Residue '([^']*)' not found in residue topology database", line)
        if found:
            return str(found[-1])
    return ""


def log_values(text: str, prefix: str, field: int) -> list[str]:
    """Whitespace-separated field ``field`` (0-based) of every line of a GROMACS log that starts with ``prefix``."""
    values = []
    for line in text_lines(text):
        if line.startswith(prefix):
            fields = line.split()
            values.append(fields[field] if len(fields) > field else "")
    return values


def ns_per_day(log_text: str) -> str | None:
    """mdrun's performance figure (ns/day) from the last "Performance:" line of its log, None without one."""
    found = log_values(log_text, "Performance:", 1)
    return found[-1] if found and found[-1] else None


def xvg_rows(text: str) -> list[tuple[str, str]]:
    """The first two columns of the data lines of an xvg file (no #/@ header lines), as written."""
    rows = []
    for line in text_lines(text):
        fields = line.split()
        if not line.startswith(("#", "@")) and len(fields) >= 2:
            rows.append((fields[0], fields[1]))
    return rows


def awk_number(text: str) -> int | float | None:
    """``text`` as awk prints ``text + 0``: an integral value as an integer, any other with 6 significant digits."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if value == int(value):
        return int(value)
    number: int | float = json.loads(f"{value:.6g}")
    return number


# --- mdp files -------------------------------------------------------------------------------------------------

MdpLine = tuple[str, str]


def parse_mdp(text: str, stage: str) -> list[MdpLine]:
    """The ``key = value`` lines of an mdp text (comments after ';', blank lines and trailing CR dropped); a line
    that is not ``key = value`` is refused with the line as given."""
    pairs = []
    for raw in text_lines(text):
        raw = raw[:-1] if raw.endswith("\r") else raw
        line = raw.split(";", 1)[0]
        if not line.strip(" \t"):
            continue
        key, eq, value = line.partition("=")
        key = key.strip(" \t")
        if not eq or not MDP_KEY_RE.fullmatch(key):
            raise TaskError(f'{stage}: mdp line "{raw}" is not "key = value"')
        pairs.append((key, value.strip(" \t")))
    return pairs


def mdp_key(key: str) -> str:
    """The spelling-independent form of an mdp key: GROMACS treats '_' and '-' alike, and ignores case."""
    return key.lower().replace("_", "-")


def merge_mdp(*layers: Iterable[MdpLine]) -> dict[str, MdpLine]:
    """Merge mdp layers, later ones win: ``{normalised key: (key as last written, value)}`` in first-seen order."""
    merged: dict[str, MdpLine] = {}
    for layer in layers:
        for key, value in layer:
            merged[mdp_key(key)] = (key, value)
    return merged


def format_mdp(merged: dict[str, MdpLine]) -> str:
    return "".join(f"{key:<26} = {value}\n" for key, value in merged.values())


def stage_defaults(stage: str) -> list[MdpLine]:
    """The mdp defaults of a stage: steepest descent for em; MD with a thermostat for nvt (velocities generated,
    position restraints), npt (barostat, restraints) and md (barostat, no restraints)."""
    if stage == "em":
        return list(EM_DEFAULTS)
    if stage == "nvt":
        return [*MD_DEFAULTS, *NVT_DEFAULTS]
    extra = [("define", "-DPOSRES")] if stage == "npt" else []
    return [*MD_DEFAULTS, *PRESSURE_DEFAULTS, *extra]


def named_inputs(stage: str, base: dict[str, MdpLine], nsteps: str, timestep: str, energy_interval: str,
                 frame_interval: str, temperature: str, pressure: str, seed: str = "") -> list[MdpLine]:
    """The task's numeric inputs as mdp lines: one reference temperature per coupling group of ``base``; the seed
    (when given) of the generated velocities (nvt) and of the stochastic terms of the V-rescale thermostat and the
    C-rescale barostat (ld-seed, every MD stage), so that identical inputs give identical runs."""
    pairs = [("nsteps", nsteps)]
    if stage == "em":
        return pairs
    groups = len(base["tc-grps"][1].split("=", 1)[0].split()) if "tc-grps" in base else 0
    pairs += [("dt", timestep), ("nstenergy", energy_interval), ("nstxout-compressed", frame_interval),
              ("ref-t", " ".join([temperature] * groups)), ("gen-temp", temperature)]
    if stage != "nvt":
        pairs.append(("ref-p", pressure))
    if seed:
        pairs += [("gen-seed", seed)] if stage == "nvt" else []
        pairs.append(("ld-seed", seed))
    return pairs


# --- running programs ------------------------------------------------------------------------------------------


def run_logged(args: Sequence[str], log: Path, stdin: str = "", env: dict[str, str] | None = None) -> bool:
    """Run ``args`` with ``stdin``, stdout and stderr into ``log``: True when it succeeded."""
    with log.open("wb") as out:
        proc = subprocess.run(list(args), input=stdin.encode(), stdout=out, stderr=subprocess.STDOUT,
                              env=env or ENV, check=False)
    return proc.returncode == 0


def gmx(args: Sequence[str], log: Path, stdin: str = "", env: dict[str, str] | None = None) -> bool:
    """``gmx -quiet ARGS`` with its output in ``log``: True when it succeeded."""
    return run_logged(["gmx", "-quiet", *args], log, stdin, env)


def gmx_or_fail(what: str, args: Sequence[str], log: Path, stdin: str = "") -> None:
    """As :func:`gmx`; a failure is raised with GROMACS's fatal error as ``<what> failed: <error>``."""
    if not gmx(args, log, stdin):
        raise TaskError(f"{what} failed: {fatal_error(read_text(log))}")


def gpu_support(version_text: str) -> bool:
    """False when ``gmx --version`` says "GPU support: disabled"."""
    return not re.search(r"^GPU support: +disabled", version_text, re.M)


# --- prepare-system --------------------------------------------------------------------------------------------

def watermodels(path: Path) -> list[str]:
    """The water model names (first field of each line) of a force field's watermodels.dat; [] without one."""
    try:
        text = read_text(path)
    except OSError:
        return []
    return [(line.split() or [""])[0] for line in text_lines(text)]


def check_force_field(top: Path, ff: str, water: str) -> None:
    known = sorted(p.name[:-3] for p in top.glob("*.ff")) if top.is_dir() else []
    if ff not in known or not (top / f"{ff}.ff" / "forcefield.itp").is_file():
        raise TaskError(f"unknown force field '{ff}': choose one of {','.join(known)}")
    waters = watermodels(top / f"{ff}.ff" / "watermodels.dat")
    if not water or water not in waters:
        raise TaskError(f"water model '{water}' is not one of force field {ff}'s: choose one of "
                        f"{','.join(waters) or 'none listed'}")


def gro_atoms(gro_text: str) -> int:
    """The number of atom lines of a .gro file (between the title and count lines and the box line)."""
    return max(len(text_lines(gro_text)) - 3, 0)


def gro_volume_nm3(gro_text: str) -> float:
    """The box volume of a .gro file from its last line (v1x v2y v3z, then the off-diagonal terms of a triclinic
    box: the box matrix is lower triangular, so the volume is the product of the diagonal)."""
    lines = text_lines(gro_text)
    fields = lines[-1].split() if lines else []
    if len(fields) not in (3, 9):
        raise TaskError("the system's .gro file has no box line")
    return float(fields[0]) * float(fields[1]) * float(fields[2])


INCLUDE_RE = re.compile(r'^\s*#include\s+"([^"]+)"')
SECTION_RE = re.compile(r"^\s*\[\s*(\w+)\s*\]")


def topology_molecules(top: Path, ff_dir: Path) -> tuple[dict[str, float], list[tuple[str, int]]]:
    """The charge of each molecule type of a GROMACS topology (the sum of the charge column of its [ atoms ]),
    following its #include files (beside the topology first, then in the force-field folder ``ff_dir``; a
    conditional include is followed too: only [ atoms ] are read, and restraint files hold none), and the
    [ molecules ] list of the system as (name, count)."""
    charges: dict[str, float] = {}
    molecules: list[tuple[str, int]] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        section = current = ""
        for raw in text_lines(read_text(path)):
            include = INCLUDE_RE.match(raw)
            if include:
                name = include.group(1)
                found = next((c for c in (path.parent / name, ff_dir / name) if c.is_file()), None)
                # an include not found cannot hide a charge: a molecule it defined is missing below and refused
                if found is not None:
                    read(found)
                continue
            line = raw.split(";", 1)[0].strip()
            header = SECTION_RE.match(line)
            if header:
                section = header.group(1).lower()
                continue
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if section == "moleculetype":
                current = fields[0]
                charges[current] = 0.0
                section = ""
            elif section == "atoms" and current and len(fields) >= 7:
                charges[current] += float(fields[6])
            elif section == "molecules" and len(fields) >= 2:
                molecules.append((fields[0], int(fields[1])))

    read(top)
    return charges, molecules


def system_report(top: Path, ff_dir: Path, gro_text: str, salt_molar: float, seed: int) -> dict[str, object]:
    """Net charge and ions of a solvated, neutralised system from its topology, and the salt concentration the ion
    count gives in its box (genion counts ion pairs from the box volume, as reported here)."""
    charges, molecules = topology_molecules(top, ff_dir)
    unknown = sorted({name for name, _ in molecules if name not in charges})
    if unknown:
        raise TaskError(f"the topology lists molecule(s) {','.join(unknown)} without a [ moleculetype ]")
    counts: dict[str, int] = {}
    for name, count in molecules:
        counts[name] = counts.get(name, 0) + count
    ions = {name: counts.get(name, 0) for name in ("NA", "CL")}
    solute = sum(charges[name] * count for name, count in molecules if name not in ("NA", "CL", "SOL"))
    total = sum(charges[name] * count for name, count in molecules)
    volume = gro_volume_nm3(gro_text)
    pairs = min(ions["NA"], ions["CL"])
    return {
        "solute_charge_e": round(solute, 4),
        "net_charge_e": round(total, 4) + 0.0,  # + 0.0: no "-0.0"
        "sodium_ions": ions["NA"],
        "chloride_ions": ions["CL"],
        "water_molecules": counts.get("SOL", 0),
        "box_volume_nm3": round(volume, 3),
        "salt_molar_requested": salt_molar,
        # 1 mol/L = 0.6022 molecules per nm^3
        "salt_molar_in_box": round(pairs / (volume * 0.602214076), 4),
        "genion_seed": seed,
    }


def tar(archive: str, members: Sequence[str]) -> None:
    subprocess.run(["tar", "czf", archive, *members], env=ENV, check=True)


def prepare_system(a: argparse.Namespace) -> None:
    name = check_name(one("name", a.name))
    box = check_choice("box_type", one("box_type", a.box_type), BOX_TYPES)
    ff, water, given = values(a, "force_field", "water_model", "structure").values()
    structure = Path(given)
    ff_dir = force_field_dir(gmx_version())  # no gmx to start: the OSError is the one ERROR line
    check_force_field(ff_dir, ff, water)
    logs = Path("logs")
    logs.mkdir(exist_ok=True)

    def step(what: str, args: Sequence[str], stdin: str = "") -> None:
        log = logs / f"{what}.log"
        if gmx(args, log, stdin):
            return
        text = read_text(log)
        residue = missing_residue(text) if what == "pdb2gmx" else ""
        if residue:
            raise TaskError(f"structure '{structure.name}' has residue '{residue}', which force field {ff} does not "
                            "know (a ligand, ion or modified residue): remove it (keep_heterogens) or use a force "
                            "field that has it")
        raise TaskError(f"gmx {what} failed: {fatal_error(text)}")

    shutil.copyfile(structure, "clean.pdb")
    step("pdb2gmx", ["pdb2gmx", "-f", "clean.pdb", "-o", "protein.gro", "-p", "topol.top", "-i", "posre.itp",
                     "-ff", ff, "-water", water, "-ignh"])
    step("editconf", ["editconf", "-f", "protein.gro", "-o", "boxed.gro", "-c", "-d", a.box_distance_nm,
                      "-bt", box])
    step("solvate", ["solvate", "-cp", "boxed.gro", "-cs", "spc216.gro", "-p", "topol.top", "-o", "solvated.gro"])
    Path("ions.mdp").write_text(ION_MDP)
    step("grompp-ions", ["grompp", "-f", "ions.mdp", "-c", "solvated.gro", "-p", "topol.top", "-o", "ions.tpr"])
    system = f"{name}.system.gro"
    step("genion", ["genion", "-s", "ions.tpr", "-o", "ions.gro", "-p", "topol.top", "-pname", "NA", "-nname", "CL",
                    "-neutral", "-conc", a.salt_molar, "-seed", a.seed], stdin="SOL\n")
    gro_text = read_text("ions.gro")
    report = system_report(Path("topol.top"), ff_dir, gro_text, float(a.salt_molar), int(a.seed))
    if abs(float(str(report["net_charge_e"]))) > 1e-3:
        raise TaskError(f"the system is not neutral after genion (net charge {report['net_charge_e']} e): "
                        "see logs/genion.log")
    Path(f"{name}.system.json").write_text(json.dumps(report, indent=2) + "\n")
    os.replace("ions.gro", system)
    Path("atoms.txt").write_text(f"{gro_atoms(gro_text)}\n")
    tar(f"{name}.topology.tar.gz", ["topol.top", *(f"./{p.name}" for p in sorted(Path().glob("*.itp")))])
    tar(f"{name}.prepare-logs.tar.gz", ["logs"])


# --- md-stage --------------------------------------------------------------------------------------------------


def md_stage(a: argparse.Namespace) -> None:
    stage = one("stage", a.stage)
    if stage not in STAGES:
        raise TaskError(f"unknown stage '{stage}': choose em, nvt, npt or md")
    name = check_name(one("name", a.name))
    v = values(a, "structure", "topology", "restraint_reference?", "previous_checkpoint?", "mdp?")
    structure, topology, restraint, checkpoint, user_mdp = v.values()
    newline = f"{stage}: an mdp override holds a newline: give each 'key = value' as its own list item"
    override_text = array_text("mdp_overrides", a.mdp_overrides, a.mdp_override_count, newline)
    user = parse_mdp(read_text(user_mdp), stage) if user_mdp else []
    overrides = parse_mdp(override_text, stage)

    base = merge_mdp(stage_defaults(stage), user)
    inputs = named_inputs(stage, base, a.nsteps, a.timestep_ps, a.energy_interval_steps, a.frame_interval_steps,
                          a.temperature_k, a.pressure_bar, a.seed)
    if not run_logged(["tar", "xzf", topology], Path("tar.out")):
        raise TaskError(f"{stage}: topology '{Path(topology).name}' is not a topology tar.gz of prepare_system: "
                        f"{fatal_error(read_text('tar.out'))}")
    mdp = f"{name}.{stage}.mdp"
    Path(f"{mdp}.tmp").write_text(format_mdp(merge_mdp(base.values(), inputs, overrides)),
                                  encoding="utf-8", errors="surrogateescape")
    os.replace(f"{mdp}.tmp", mdp)

    args = ["grompp", "-f", mdp, "-c", structure, "-p", "topol.top", "-o", f"{name}.{stage}.tpr", "-po", "mdout.mdp"]
    if stage in ("nvt", "npt"):
        args += ["-r", restraint or structure]
    if checkpoint:
        args += ["-t", checkpoint]
    if not gmx(args, Path("grompp.out")):
        text = read_text("grompp.out")
        unknown = unknown_mdp_keys(text)
        if unknown:
            raise TaskError(f"{stage}: unknown mdp key(s) {','.join(unknown)} (not a GROMACS 2022 mdp option): "
                            "fix the spelling in the mdp file or overrides")
        raise TaskError(f"{stage}: gmx grompp failed: {fatal_error(text)}")
    shutil.copyfile("grompp.out", f"{name}.{stage}.grompp.log")
    if a.run_mdrun:
        gmx_or_fail(f"{stage}: gmx mdrun", ["mdrun", "-deffnm", f"{name}.{stage}", "-ntmpi", "1", "-ntomp", a.cpu],
                    Path("mdrun.out"))
        if stage == "em":
            check_minimised(read_text(f"{name}.em.log"), a.allow_unconverged_em)


def em_outcome(log_text: str) -> str:
    """"" when an energy minimisation's log says it converged to Fmax < emtol, otherwise why not, in one line
    (Fmax reached and the step count, as GROMACS's log states them)."""
    if "converged to Fmax <" in log_text:
        return ""
    fmax = log_values(log_text, "Maximum force", 3)
    # "did not converge to Fmax < 1000 in 6 steps." or "converged to machine precision in 36 steps,\nbut did not
    # reach the requested Fmax < 1000."
    target = re.search(r"Fmax < ([0-9.eE+-]+?)\.?\s", log_text)
    steps = re.search(r"(?:did not converge to Fmax < \S+|converged to machine precision) in (\d+) steps", log_text)
    why = "machine precision reached" if "machine precision" in log_text else "step limit reached"
    return (f"energy minimisation did not reach Fmax < {target.group(1) if target else 'emtol'}: Fmax "
            f"{fmax[-1] if fmax else 'unknown'} kJ/mol/nm after {steps.group(1) if steps else 'all'} steps ({why})")


def check_minimised(log_text: str, allowed: bool) -> None:
    """Refuse an energy minimisation that did not converge (a system with clashes left goes on to blow up or to
    give wrong dynamics) unless ``allowed``; then the warning goes to stderr and the run's summary."""
    outcome = em_outcome(log_text)
    if not outcome:
        return
    if not allowed:
        raise TaskError(f"{outcome}: raise em_steps, check the structure (clashes, missing atoms), or set "
                        "allow_unconverged_em = true to go on and have it flagged in the summary")
    print(f"WARNING: {outcome} (allow_unconverged_em = true)", file=sys.stderr)


# --- production ------------------------------------------------------------------------------------------------


def part_outputs(name: str, files: Iterable[str]) -> list[tuple[str, str]]:
    """A resumed run writes NAME.md.partNNNN.EXT: the renames that give its outputs their usual names."""
    prefix = f"{name}.md.part"
    return [(f, f"{name}.md.{f.rsplit('.', 1)[1]}") for f in sorted(files)
            if f.startswith(prefix) and "." in f[len(prefix):]]


def checkpoint_step(dump_text: str) -> int | None:
    """The step a checkpoint was written at, from ``gmx dump -cp`` ("step = 1000"); None when not found."""
    found = re.search(r"^step = (\d+)$", dump_text, re.M)
    return int(found.group(1)) if found else None


def check_resume(step: int, time_ps: str, nsteps: int) -> None:
    """A resumed production must have steps left to run: the total step count counts from the start of
    production, so a checkpoint at or beyond it leaves nothing to do."""
    if step == nsteps:
        raise TaskError(f"nothing to do: the checkpoint is at step {step} ({time_ps} ps), which is production_steps "
                        f"({nsteps}); to extend the run give production_steps larger than {step} (the total, counted "
                        "from the start of production)")
    if step > nsteps:
        raise TaskError(f"production_steps ({nsteps}) is below the checkpoint's step {step} ({time_ps} ps): give "
                        f"production_steps larger than {step} (the total, counted from the start of production)")


def production(a: argparse.Namespace) -> None:
    name = check_name(one("name", a.name))
    given, checkpoint, simd = values(a, "tpr", "resume_checkpoint?", "simd").values()
    tpr = Path(given)
    flags = ["-ntmpi", "1", "-ntomp", a.cpu]
    env = dict(ENV)
    engine = "gmx"
    if a.gpu:
        if not gpu_support(gmx_version()):
            raise TaskError("gpu is true but this image's GROMACS has no GPU support: use the gromacs-cuda image "
                            "(gromacs_cuda_image)")
        # GPU-resident step: non-bonded, PME, bonded forces and the update/constraints on the GPU
        env["GMX_ENABLE_DIRECT_GPU_COMM"] = "1"
        flags += ["-nb", "gpu", "-pme", "gpu", "-bonded", "gpu", "-update", "gpu"]
    else:
        chosen = gmx_simd.choose(simd)
        engine = chosen.gmx
        print(f"mdrun engine: {chosen.simd} ({chosen.gmx}): {chosen.reason}", file=sys.stderr)
    shutil.copyfile(tpr, "run.tpr")
    if checkpoint:
        shutil.copyfile(checkpoint, "previous.cpt")
        if not gmx(["dump", "-cp", "previous.cpt"], Path("dump.out")):
            raise TaskError(f"production: resume_checkpoint '{Path(checkpoint).name}' is not a GROMACS checkpoint: "
                            f"{fatal_error(read_text('dump.out'))}")
        dump = read_text("dump.out")
        step = checkpoint_step(dump)
        if step is None:
            raise TaskError(f"production: resume_checkpoint '{Path(checkpoint).name}' has no step: give the "
                            "checkpoint output of a production run")
        found_t = re.search(r"^t = (\S+)$", dump, re.M)
        check_resume(step, str(awk_number(found_t.group(1))) if found_t else "?", int(a.nsteps))
        flags += ["-cpi", "previous.cpt", "-noappend"]
    run_tpr = f"{name}.md.tpr"
    if not gmx(["convert-tpr", "-s", "run.tpr", "-nsteps", a.nsteps, "-o", run_tpr], Path("convert.out")):
        raise TaskError(f"production: cannot read the run input '{tpr.name}': {fatal_error(read_text('convert.out'))}")
    if not run_logged([engine, "-quiet", "mdrun", "-s", run_tpr, "-deffnm", f"{name}.md", "-cpt",
                       a.checkpoint_minutes, *flags], Path("mdrun.out"), env=env):
        raise TaskError(f"production: gmx mdrun failed: {fatal_error(read_text('mdrun.out'))}")
    for part, usual in part_outputs(name, os.listdir()):
        os.replace(part, usual)
    if not Path(f"{name}.md.xtc").exists():
        raise TaskError("production wrote no trajectory: set nstxout-compressed > 0")
    Path("ns_per_day.txt").write_text(f"{ns_per_day(read_text(f'{name}.md.log')) or '0'}\n")


# --- analysis --------------------------------------------------------------------------------------------------

Table = list[tuple[str, str]]


def write_table(rows: Table, column: str, first: str = "time_ps") -> Path:
    path = Path("tables") / f"{column}.tsv"
    path.write_text(f"{first}\t{column}\n" + "".join(f"{t}\t{v}\n" for t, v in rows))
    return path


def plot(column: str, title: str, xlabel: str = "time (ps)", series: int = 1, style: str = "lines") -> None:
    """A PNG of tables/COLUMN.tsv: its columns 2..series+1 against column 1, keyed by their headers (COLUMN, TITLE
    and XLABEL are fixed words of this program, never input values)."""
    lines = ", ".join(f"'tables/{column}.tsv' using 1:{i + 2} with {style} lw 2 title columnheader"
                      for i in range(series))
    key = "set key outside right" if series > 1 else "set key off"
    script = (f"set terminal png size 900,500; set output 'plots/{column}.png'; set datafile separator '\\t'; "
              f"{key}; set grid; set title '{title}'; set xlabel '{xlabel}'; set ylabel '{column}'; "
              f"plot {lines}")
    if not run_logged(["gnuplot", "-e", script], Path("gnuplot.out")):
        raise TaskError(f"analysis: gnuplot could not plot {column}: {fatal_error(read_text('gnuplot.out'))}")


def mean(values: Sequence[float]) -> float | None:
    """The mean with 4 decimals, None for no values."""
    return round(sum(values) / len(values), 4) if values else None


def second_half_mean(values: Sequence[float]) -> float | None:
    """The mean of the second half (the later half of an odd count), after a thermostat or barostat acted."""
    return mean(values[len(values) // 2:])


def column(rows: Table) -> list[float]:
    return [float(v) for _, v in rows]


def em_summary(log_text: str) -> dict[str, object]:
    """Fmax, potential energy and convergence from an energy minimisation's mdrun log."""
    fmax = log_values(log_text, "Maximum force", 3)
    potential = log_values(log_text, "Potential Energy", 3)
    return {"em_converged": "converged to Fmax <" in log_text,
            "em_fmax_kj_mol_nm": awk_number(fmax[-1]) if fmax else None,
            "em_potential_kj_mol": awk_number(potential[-1]) if potential else None}


def summary(em_log: str | None, nvt_t: Table | None, npt_density: Table | None, npt_pressure: Table | None,
            md_temperature: Table, rmsd: Table, gyration: Table, md_log: str) -> dict[str, object]:
    """The JSON summary of a run from its tables and logs (None, JSON null, for a stage that did not run)."""
    em: dict[str, object] = em_summary(em_log) if em_log is not None else {
        "em_converged": False, "em_fmax_kj_mol_nm": None, "em_potential_kj_mol": None}
    ns_day = ns_per_day(md_log)
    return {
        **em,
        "nvt_mean_temperature_k": mean(column(nvt_t)) if nvt_t is not None else None,
        "nvt_second_half_mean_temperature_k": second_half_mean(column(nvt_t)) if nvt_t is not None else None,
        "npt_initial_density_kg_m3": awk_number(npt_density[0][1]) if npt_density else None,
        "npt_mean_density_kg_m3": mean(column(npt_density)) if npt_density is not None else None,
        "npt_second_half_mean_density_kg_m3": (second_half_mean(column(npt_density))
                                               if npt_density is not None else None),
        "npt_mean_pressure_bar": mean(column(npt_pressure)) if npt_pressure is not None else None,
        "md_mean_temperature_k": mean(column(md_temperature)),
        "md_frames": len(rmsd),
        "md_first_time_ps": float(md_temperature[0][0]) if md_temperature else None,
        "md_last_time_ps": float(md_temperature[-1][0]) if md_temperature else None,
        "md_final_backbone_rmsd_nm": float(rmsd[-1][1]) if rmsd else None,
        "md_mean_radius_of_gyration_nm": mean(column(gyration)),
        "md_ns_per_day": float(ns_day) if ns_day is not None else None,
    }


#: the DSSP program gmx do_dssp runs (containers/gromacs/mkdssp-for-gromacs: Debian's mkdssp 4 behind a header fix)
DSSP = "/usr/local/bin/mkdssp-for-gromacs"
HELIX = ("A-Helix", "3-Helix", "5-Helix")
SHEET = ("B-Sheet", "B-Bridge")
MAX_DSSP_FRAMES = 200


def xvg_legends(text: str) -> list[str]:
    """The legends of the data sets of an xvg file ('@ s0 legend "Coil"'), in order."""
    return [m.group(1) for m in re.finditer(r'^@ s\d+ legend "([^"]*)"', text, re.M)]


def secondary_structure(scount_text: str) -> tuple[list[str], list[list[float]]]:
    """do_dssp's per-frame residue counts per DSSP class (its -sc xvg) as fractions of the residues: (class names,
    rows of [time, fraction, ...]). The residues of a frame are the sum of all classes but "Structure" (which
    counts the structured residues again)."""
    legends = xvg_legends(scount_text)
    keep = [i for i, name in enumerate(legends) if name != "Structure"]
    rows = []
    for line in text_lines(scount_text):
        fields = line.split()
        if line.startswith(("#", "@")) or len(fields) != len(legends) + 1:
            continue
        counts = [float(fields[i + 1]) for i in keep]
        total = sum(counts)
        rows.append([float(fields[0]), *(round(c / total, 4) if total else 0.0 for c in counts)])
    return [legends[i] for i in keep], rows


def class_mean(names: list[str], rows: list[list[float]], wanted: Sequence[str]) -> float | None:
    """The mean over frames of the summed fractions of the classes ``wanted``."""
    columns = [i + 1 for i, name in enumerate(names) if name in wanted]
    return mean([sum(row[i] for i in columns) for row in rows])


def frame_stride(times: Sequence[float], most: int = MAX_DSSP_FRAMES) -> float | None:
    """The ``-dt`` (ps) that keeps at most ``most`` of the trajectory's frames (at ``times``); None for all."""
    if len(times) <= most or len(times) < 2:
        return None
    return round((times[1] - times[0]) * math.ceil(len(times) / most), 6)


def secondary_structure_analysis(tpr: str, trajectory: str, times: Sequence[float]) -> dict[str, object]:
    """DSSP classes over the trajectory (at most MAX_DSSP_FRAMES frames) into tables/secondary_structure.tsv and its
    plot; the summary's mean helix and sheet fractions. Skipped, and said so, where the image has no DSSP."""
    if not Path(DSSP).is_file():
        return {"md_secondary_structure": f"skipped: no DSSP in this image ({DSSP})"}
    stride = frame_stride(times)
    args = ["do_dssp", "-s", tpr, "-f", trajectory, "-ver", "4", "-sc", "scount.xvg", "-o", "ss.xpm"]
    if stride is not None:
        args += ["-dt", str(stride)]
    if not gmx(args, Path("dssp.out"), stdin="Protein\n", env={**ENV, "DSSP": DSSP}):
        raise TaskError(f"analysis: gmx do_dssp failed: {fatal_error(read_text('dssp.out'))}")
    names, rows = secondary_structure(read_text("scount.xvg"))
    header = "\t".join(["time_ps", *(n.lower().replace("-", "_") for n in names)])
    Path("tables/secondary_structure.tsv").write_text(
        header + "\n" + "".join("\t".join(f"{v:g}" for v in row) + "\n" for row in rows))
    plot("secondary_structure", "Production: DSSP secondary structure (fraction of residues)",
         series=len(names))
    return {"md_secondary_structure": "DSSP 4 (gmx do_dssp)" + (f", every {stride} ps" if stride else ""),
            "md_mean_helix_fraction": class_mean(names, rows, HELIX),
            "md_mean_sheet_fraction": class_mean(names, rows, SHEET)}


def rmsf_analysis(tpr: str, trajectory: str) -> dict[str, object]:
    """Per-residue RMSF of the C-alpha atoms (fitted to the run input's structure) into tables/rmsf_nm.tsv (residue
    index 1..N, residue number as in the topology, RMSF) and its plot; the largest in the summary."""
    gmx_or_fail("analysis: gmx rmsf", ["rmsf", "-s", tpr, "-f", trajectory, "-o", "rmsf.xvg", "-res"],
                Path("rmsf.out"), stdin="C-alpha\n")
    rows = xvg_rows(read_text("rmsf.xvg"))
    Path("tables/rmsf_nm.tsv").write_text("residue_index\tresidue\trmsf_nm\n" + "".join(
        f"{i}\t{residue}\t{value}\n" for i, (residue, value) in enumerate(rows, 1)))
    script = ("set terminal png size 900,500; set output 'plots/rmsf_nm.png'; set datafile separator '\\t'; "
              "set key off; set grid; set title 'Production: C-alpha RMSF per residue (nm)'; "
              "set xlabel 'residue (index)'; set ylabel 'rmsf_nm'; "
              "plot 'tables/rmsf_nm.tsv' using 1:3 every ::1 with linespoints lw 2")
    if not run_logged(["gnuplot", "-e", script], Path("gnuplot.out")):
        raise TaskError(f"analysis: gnuplot could not plot rmsf_nm: {fatal_error(read_text('gnuplot.out'))}")
    largest = max(rows, key=lambda row: float(row[1]), default=None)
    return {"md_max_rmsf_nm": float(largest[1]) if largest else None,
            "md_max_rmsf_residue": int(float(largest[0])) if largest else None}


def energy_table(edr: str, term: str, column_name: str, title: str, required: bool = True) -> Table | None:
    """One energy term of ``edr`` against time into tables/COLUMN.tsv and its plot; a missing term is refused,
    or None when not ``required``."""
    if not gmx(["energy", "-f", edr, "-o", "term.xvg"], Path("energy.out"), stdin=f"{term}\n"):
        if not required:
            return None
        raise TaskError(f"analysis: gmx energy found no '{term}' in {Path(edr).name}")
    rows = xvg_rows(read_text("term.xvg"))
    write_table(rows, column_name)
    plot(column_name, title)
    return rows


def preparation_warnings(report: dict[str, Any]) -> list[str]:
    """What prepare_structure left unfixed because the user chose so: internal gaps not filled (pdb2gmx bonds
    across them) and missing heavy atoms not added."""
    gaps = [g for g in report.get("missing_residues_not_added", []) if g.get("where") == "internal"]
    warnings = []
    if gaps:
        warnings.append("the structure has internal gaps that were not filled (" + ", ".join(
            f"{len(g['residues'])} residues of chain {g['chain']} after {g['after']}" for g in gaps)
            + "): pdb2gmx bonded across them; set add_missing_loops = true to build them")
    atoms = report.get("missing_atoms_not_added", [])
    if atoms:
        warnings.append("residues with missing heavy atoms were left incomplete (" + ", ".join(
            f"{a['residue']} {a['chain']}{a['number']}" for a in atoms) + "): set add_missing_atoms = true")
    return warnings


def run_reports(preparation: str, system: str, em_text: str | None) -> dict[str, object]:
    """The preparation and system reports of the run (JSON files of prepare_structure and prepare_system; absent
    when resuming) and the run's warnings: what a user must know about results that were allowed to go on."""
    found: dict[str, object] = {}
    warnings = []
    if preparation:
        prepared = json.loads(read_text(preparation))
        found["preparation"] = prepared
        warnings += preparation_warnings(prepared)
    if system:
        found["system"] = json.loads(read_text(system))
    if em_text is not None and em_outcome(em_text):
        warnings.append(f"{em_outcome(em_text)}; the run went on because allow_unconverged_em = true")
    found["warnings"] = warnings
    return found


def analysis(a: argparse.Namespace) -> None:
    name = check_name(one("name", a.name))
    v = values(a, "em_log?", "em_edr?", "nvt_edr?", "npt_edr?", "md_edr", "md_trajectory", "md_tpr", "md_log",
               "preparation?", "system_report?")
    em_log, em_edr, nvt_edr, npt_edr, md_edr, md_trajectory, md_tpr, md_log, preparation, system = v.values()
    Path("tables").mkdir(exist_ok=True)
    Path("plots").mkdir(exist_ok=True)

    em_text = None
    if em_log:
        em_text = read_text(em_log)
        energy_table(em_edr, "Potential", "em_potential_kJ_mol", "Energy minimisation: potential energy (kJ/mol)")
    nvt_t = energy_table(nvt_edr, "Temperature", "nvt_temperature_K", "NVT equilibration: temperature (K)") \
        if nvt_edr else None
    npt_density = npt_pressure = None
    if npt_edr:
        npt_density = energy_table(npt_edr, "Density", "npt_density_kg_m3", "NPT equilibration: density (kg/m^3)")
        npt_pressure = energy_table(npt_edr, "Pressure", "npt_pressure_bar", "NPT equilibration: pressure (bar)")
    md_temperature = energy_table(md_edr, "Temperature", "md_temperature_K", "Production: temperature (K)") or []
    energy_table(md_edr, "Potential", "md_potential_kJ_mol", "Production: potential energy (kJ/mol)")
    # only with pressure coupling
    energy_table(md_edr, "Density", "md_density_kg_m3", "Production: density (kg/m^3)", required=False)

    # whole molecules, protein centred, before structural analysis
    if not gmx(["trjconv", "-s", md_tpr, "-f", md_trajectory, "-o", "centred.xtc", "-pbc", "mol", "-center"],
               Path("trjconv.out"), stdin="Protein\nSystem\n"):
        raise TaskError(f"analysis: gmx trjconv could not read the trajectory '{Path(md_trajectory).name}'")
    gmx_or_fail("analysis: gmx rms", ["rms", "-s", md_tpr, "-f", "centred.xtc", "-o", "rmsd.xvg", "-tu", "ps"],
                Path("rms.out"), stdin="Backbone\nBackbone\n")
    rmsd = xvg_rows(read_text("rmsd.xvg"))
    write_table(rmsd, "backbone_rmsd_nm")
    gmx_or_fail("analysis: gmx gyrate", ["gyrate", "-s", md_tpr, "-f", "centred.xtc", "-o", "gyrate.xvg"],
                Path("gyrate.out"), stdin="Protein\n")
    gyration = xvg_rows(read_text("gyrate.xvg"))
    write_table(gyration, "radius_of_gyration_nm")
    plot("backbone_rmsd_nm", "Production: backbone RMSD from the starting structure (nm)")
    plot("radius_of_gyration_nm", "Production: protein radius of gyration (nm)")
    structure = {**rmsf_analysis(md_tpr, "centred.xtc"),
                 **secondary_structure_analysis(md_tpr, "centred.xtc", [float(t) for t, _ in rmsd])}

    result = {**summary(em_text, nvt_t, npt_density, npt_pressure, md_temperature, rmsd, gyration,
                        read_text(md_log)), **structure}
    result.update(run_reports(preparation, system, em_text))
    Path("summary.json.tmp").write_text(json.dumps(result, indent=2) + "\n")
    os.replace("summary.json.tmp", f"{name}.summary.json")


# --- command line ----------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """Options are named as the task's inputs. String and File inputs: the path of a write_lines file holding the
    value (empty for an optional input not given). Numbers: as the engine wrote them, given to GROMACS as they are."""
    p = argparse.ArgumentParser(prog="gromacs-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def task(name: str, help_: str, files: Sequence[str], numbers: Sequence[str] = (),
             booleans: Sequence[str] = ()) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        for v in files:
            sp.add_argument(f"--{v}", required=True, metavar="FILE", help="a write_lines file holding the value")
        for v in numbers:
            sp.add_argument(f"--{v}", required=True, metavar="NUMBER")
        for v in booleans:
            sp.add_argument(f"--{v}", required=True, type=boolean, metavar="true|false")
        return sp

    task("prepare-system", "pdb2gmx -> editconf -> solvate -> grompp + genion (neutral, salt, fixed seed)",
         ["name", "structure", "force_field", "water_model", "box_type"], ["box_distance_nm", "salt_molar", "seed"])
    sp = task("md-stage", "merge the stage's mdp; grompp; mdrun",
              ["stage", "name", "structure", "topology", "restraint_reference", "previous_checkpoint", "mdp",
               "mdp_overrides"],
              ["nsteps", "temperature_k", "pressure_bar", "timestep_ps", "energy_interval_steps",
               "frame_interval_steps", "cpu", "seed"], ["run_mdrun", "allow_unconverged_em"])
    sp.add_argument("--mdp_override_count", type=int, required=True, metavar="N",
                    help="length of mdp_overrides (its file has more lines when an item held a newline)")
    task("production", "convert-tpr, then mdrun (CPU engine chosen by SIMD level, or GPU; resumable)",
         ["name", "tpr", "resume_checkpoint", "simd"], ["nsteps", "checkpoint_minutes", "cpu"], ["gpu"])
    task("analysis", "tables, plots and the JSON summary of a run",
         ["name", "em_log", "em_edr", "nvt_edr", "npt_edr", "md_edr", "md_trajectory", "md_tpr", "md_log",
          "preparation", "system_report"])
    return p


COMMANDS: dict[str, Command] = {"prepare-system": prepare_system, "md-stage": md_stage, "production": production,
                                "analysis": analysis}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
