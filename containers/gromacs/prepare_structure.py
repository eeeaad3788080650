#!/usr/bin/env python3
"""Structure preparation before pdb2gmx, installed as ``prepare-structure`` in the gromacs image.

A raw RCSB entry (PDB or mmCIF, optionally gzip-compressed; the format is read from the content) becomes the PDB
file pdb2gmx gets: one MODEL, the chosen chains, one alternate location per atom, no hydrogens (pdb2gmx adds them
with -ignh), no crystal waters (unless kept), no heterogens but the ones named, nonstandard residues replaced by
their standard parents (PDBFixer: MSE->MET...), missing heavy atoms added (PDBFixer) and optionally the missing
internal residues (loops) from the sequence. Then the force field <-> molecule checks: every residue of the result
is resolved as pdb2gmx 2022 resolves it (residuetypes.dat, the force field's .r2b renames with their terminal
variants, its .rtp entries, HIS/CYS/ASPH/GLUH renaming, the rtp search that tolerates a missing +/- sign), and a
residue pdb2gmx would not find, or nucleic acids under a force field without them, end the task with one line
before anything is written. Kept ions (RCSB names: ZN, NA, CL, MG, CA...) take the names the force field gives
the same element and charge.

Choices: ``model`` counts the MODELs of the file from 1. ``altloc`` empty keeps the alphabetically first
alternate location of the chosen chains (normally A) wherever a residue has it, so that the kept conformers belong
to one refined ensemble rather than mixing letters by occupancy; a residue without that letter keeps its own first
one (listed in the report). Chains are the author chain names (PDB column 22, mmCIF auth_asym_id).

Outputs (in the working directory, written under temporary names, renamed at the end): ``NAME.prepared.pdb``
(chain IDs kept, one TER after each chain's polymer, after each run of one kept heterogen, kept waters last, one
model, no altlocs), ``NAME.preparation.json`` (machine-readable report: format, models, chains, altloc, hydrogens,
waters, heterogens, residues replaced, atoms and residues added, the result's counts and the force field check)
and ``NAME.preparation.txt`` (the same, for humans).

Every String/File value arrives as the path of a one-line ``write_lines`` file (empty for an optional value not
given), arrays as a write_lines file plus its item count; numbers and switches as arguments. gemmi (reading) and
PDBFixer/OpenMM (fixing) are imported only where they are used, so the pure parts load without them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# task_common.py (containers/shared/, beside this script in the image): the name rule, TaskError and the
# one-ERROR-line main; gmx_data.py: the force-field folder of the image's GROMACS (GMXDATA honoured).
import task_common
from gmx_data import gmx_force_field_dir
from task_common import TaskError, run_main
from task_values import boolean, items, one, optional, read_text, text_lines

LIGAND_HELP = ("ligand parametrisation is out of scope (see docs/gromacs.md: acpype or OpenFF build its topology): "
               "remove it from keep_heterogens")
#: Seed of the short OpenMM minimisation PDBFixer runs to place added atoms (identical inputs, identical output).
FIXER_SEED = 20261124
WATER_NAMES = ("HOH", "WAT", "DOD", "H2O", "SOL", "TIP", "TIP3", "T3P", "SPC")
#: RCSB chemical component IDs of monatomic ions: (element, charge). The input side of the ion mapping; the
#: force field side (which residue of the force field is that element with that charge) comes from its files.
RCSB_IONS: dict[str, tuple[str, int]] = {
    "LI": ("Li", 1), "NA": ("Na", 1), "K": ("K", 1), "RB": ("Rb", 1), "CS": ("Cs", 1), "MG": ("Mg", 2),
    "CA": ("Ca", 2), "SR": ("Sr", 2), "BA": ("Ba", 2), "ZN": ("Zn", 2), "CU1": ("Cu", 1), "CU": ("Cu", 2),
    "MN": ("Mn", 2), "FE2": ("Fe", 2), "FE": ("Fe", 3), "CO": ("Co", 2), "NI": ("Ni", 2), "CD": ("Cd", 2),
    "HG": ("Hg", 2), "F": ("F", -1), "CL": ("Cl", -1), "BR": ("Br", -1), "IOD": ("I", -1),
}
#: Standard atomic masses of those elements, to recognise a force field atom type's element by its mass.
ELEMENT_MASS = {
    "Li": 6.94, "Na": 22.99, "K": 39.10, "Rb": 85.47, "Cs": 132.91, "Mg": 24.305, "Ca": 40.08, "Sr": 87.62,
    "Ba": 137.33, "Zn": 65.38, "Cu": 63.55, "Mn": 54.94, "Fe": 55.85, "Co": 58.93, "Ni": 58.69, "Cd": 112.41,
    "Hg": 200.59, "F": 19.00, "Cl": 35.45, "Br": 79.90, "I": 126.90,
}
MASS_TOLERANCE = 0.5
#: The RCSB names of the nucleotides pdb2gmx must resolve for a force field to "have" DNA / RNA.
NUCLEIC = {"DNA": ("DA", "DC", "DG", "DT"), "RNA": ("A", "C", "G", "U")}
POLYMER_TYPES = ("Protein", "DNA", "RNA")


# --- values from engine-written files (task_values.py: read_text, one, optional, ...) -----------------------


# --- the input file ----------------------------------------------------------------------------------------------

PDB_RECORD_RE = re.compile(rb"^(ATOM  |HETATM)", re.M)
MMCIF_RE = re.compile(rb"^\s*data_\S*\s*$", re.M)
MMCIF_ATOMS_RE = re.compile(rb"^_atom_site\.", re.M)


def detect_format(data: bytes, shown: str) -> tuple[str, bytes, bool]:
    """(format, uncompressed bytes, was gzip) of a structure file, judged by its content: "mmcif" for a CIF data
    block with _atom_site items, "pdb" for ATOM/HETATM records; anything else is refused."""
    gz = data[:2] == b"\x1f\x8b"
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise TaskError(f"structure '{shown}' is a damaged gzip file: give the file again") from exc
    if MMCIF_RE.search(data) and MMCIF_ATOMS_RE.search(data):
        return "mmcif", data, gz
    if PDB_RECORD_RE.search(data):
        return "pdb", data, gz
    raise TaskError(f"structure '{shown}' is neither PDB nor mmCIF (no ATOM/HETATM records, no _atom_site "
                    "table): give a PDB or mmCIF file, optionally gzip-compressed")


def check_altloc(value: str) -> str:
    if len(value) > 1 or (value and not value.isalnum()):
        raise TaskError(f"altloc '{task_common.printable([value])}' is not one letter: give the letter of an "
                        "alternate location (e.g. A) or leave it empty for the first")
    return value


def joined(values: Iterable[str]) -> str:
    shown = [v for v in values]
    return ", ".join(shown) if shown else "none"


# --- the prepared molecule (plain data, written by our own PDB writer) ------------------------------------------


@dataclass
class Atom:
    name: str
    element: str
    xyz: tuple[float, float, float]
    occupancy: float = 1.0
    b_factor: float = 0.0


@dataclass
class Residue:
    name: str
    number: int
    icode: str
    atoms: list[Atom]
    #: "polymer", "heterogen" or "water"
    kind: str = "polymer"


@dataclass
class Chain:
    id: str
    residues: list[Residue]
    #: the full sequence (SEQRES) of the polymer, [] when unknown
    sequence: list[str] = field(default_factory=list)


def residue_label(res: Residue, chain: str) -> str:
    return f"{res.name} (chain {chain}, residue {res.number}{res.icode.strip()})"


def blocks(chains: Sequence[Chain]) -> list[tuple[str, list[Residue]]]:
    """The molecules pdb2gmx will see, in file order: a TER ends one. Per chain its polymer residues, then its
    heterogens (a new block where the residue name changes: pdb2gmx requires one residue type per chain); all
    waters at the end (after every chain, so that the crystal waters and the solvent added later are one
    contiguous SOL group, as genion requires)."""
    found: list[tuple[str, list[Residue]]] = []
    waters: list[tuple[str, Residue]] = []
    for chain in chains:
        current: list[Residue] = []
        key = ""
        for res in chain.residues:
            if res.kind == "water":
                waters.append((chain.id, res))
                continue
            new_key = "" if res.kind == "polymer" else res.name
            if current and new_key != key:
                found.append((chain.id, current))
                current = []
            key = new_key
            current.append(res)
        if current:
            found.append((chain.id, current))
    if waters:
        # one block per chain id (pdb2gmx makes one water "chain" of them anyway)
        by_chain: dict[str, list[Residue]] = {}
        for chain_id, res in waters:
            by_chain.setdefault(chain_id, []).append(res)
        found.extend(by_chain.items())
    return found


def pdb_atom_name(name: str, element: str) -> str:
    """Columns 13-16: a name of 4 characters fills them; shorter names of one-letter elements start in column 14."""
    if len(name) >= 4 or len(element.strip()) == 2:
        return f"{name:<4}"[:4]
    return f" {name:<3}"


def seqres_records(chains: Sequence[Chain]) -> list[str]:
    lines = []
    for chain in chains:
        seq = chain.sequence
        for i in range(0, len(seq), 13):
            names = " ".join(f"{n:>3}" for n in seq[i:i + 13])
            lines.append(f"SEQRES {i // 13 + 1:>3} {chain.id:1} {len(seq):>4}  {names}".ljust(80))
    return lines


def pdb_text(chains: Sequence[Chain], title: str = "", seqres: bool = False) -> str:
    """PDB text of ``chains``: one model, no alternate locations, a TER after each block of :func:`blocks`."""
    lines = [f"TITLE     {title}"[:80]] if title else []
    if seqres:
        lines += seqres_records(chains)
    serial = 0
    for chain_id, residues in blocks(chains):
        last: Residue | None = None
        for res in residues:
            record = "ATOM  " if res.kind == "polymer" else "HETATM"
            for atom in res.atoms:
                serial += 1
                x, y, z = atom.xyz
                lines.append(f"{record}{serial % 100000:>5} {pdb_atom_name(atom.name, atom.element)} "
                             f"{res.name:<4}{chain_id:1}{res.number:>4}{res.icode or ' ':1}   "
                             f"{x:8.3f}{y:8.3f}{z:8.3f}{atom.occupancy:6.2f}{atom.b_factor:6.2f}          "
                             f"{atom.element.upper():>2}")
            last = res
        if last is not None:
            serial += 1
            lines.append(f"TER   {serial % 100000:>5}      {last.name:<4}{chain_id:1}{last.number:>4}"
                         f"{last.icode or ' ':1}")
    lines.append("END")
    return "\n".join(lines) + "\n"


def check_pdb_limits(chains: Sequence[Chain]) -> None:
    """What a PDB file (and pdb2gmx reading it) cannot hold: chain names longer than one character, residue names
    longer than four, residue numbers outside -999..9999."""
    for chain in chains:
        if len(chain.id) != 1:
            raise TaskError(f"chain '{chain.id}' has a name of {len(chain.id)} characters, which a PDB file (and "
                            "pdb2gmx) cannot hold: select chains with one-character names (input chains)")
        for res in chain.residues:
            if len(res.name) > 4:
                raise TaskError(f"residue {residue_label(res, chain.id)} has a name longer than 4 characters, "
                                "which a PDB file cannot hold: remove it (keep_heterogens)")
            if not -999 <= res.number <= 9999:
                raise TaskError(f"residue {residue_label(res, chain.id)} is numbered outside -999..9999, which "
                                "a PDB file cannot hold: renumber the structure")


# --- what pdb2gmx accepts: a force field's residue database, as pdb2gmx 2022 reads it --------------------------


@dataclass(frozen=True)
class Rename:
    """A line of an .r2b file: the GROMACS-internal name and the force field's names in the middle of a chain, as
    a starting (N/5') terminus, as an ending (C/3') terminus and as a standalone residue ("-": none)."""
    gmx: str
    main: str
    nter: str
    cter: str
    bter: str


@dataclass(frozen=True)
class Terminus:
    """An entry of a .n.tdb/.c.tdb file: its name and the atoms its [ add ] lines attach to (first control atom),
    which the residue's rtp entry must have."""
    name: str
    anchors: tuple[str, ...]


@dataclass
class ForceField:
    name: str
    #: rtp entry names in the order pdb2gmx reads them (files sorted by name, entries in file order)
    residues: list[str]
    renames: list[Rename]
    #: residue name -> type (Protein, DNA, RNA, Ion, Water...): residuetypes.dat plus the .r2b names
    types: dict[str, str]
    #: rtp entry -> its atom names (only those that terminus patches attach to, when recorded for the tests)
    atoms: dict[str, list[str]] = field(default_factory=dict)
    #: the N/5' and C/3' terminus databases, in pdb2gmx's order
    nter: list[Terminus] = field(default_factory=list)
    cter: list[Terminus] = field(default_factory=list)
    #: single-atom rtp entries: residue name -> (atom name, atom type, charge)
    monatomic: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    #: atom type -> mass (atomtypes.atp), for the types of the single-atom entries
    masses: dict[str, float] = field(default_factory=dict)
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def by_lower_name(self) -> dict[str, str]:
        """The first rtp entry of each case-insensitive name (pdb2gmx compares names ignoring case)."""
        if not self._lower:
            for entry in reversed(self.residues):
                self._lower[entry.lower()] = entry
        return self._lower

    def to_json(self) -> dict[str, Any]:
        """A compact record: the atoms of each entry reduced to those the checks need (terminus anchors, P)."""
        anchors = {a for t in (*self.nter, *self.cter) for a in t.anchors} | {"P"}
        return {"name": self.name, "residues": self.residues,
                "renames": [[r.gmx, r.main, r.nter, r.cter, r.bter] for r in self.renames],
                "types": self.types, "atoms": {k: [a for a in v if a in anchors] for k, v in self.atoms.items()},
                "nter": [[t.name, *t.anchors] for t in self.nter], "cter": [[t.name, *t.anchors] for t in self.cter],
                "monatomic": self.monatomic, "masses": self.masses}

    @staticmethod
    def from_json(data: dict[str, Any]) -> ForceField:
        return ForceField(data["name"], list(data["residues"]), [Rename(*r) for r in data["renames"]],
                          dict(data["types"]), {k: list(v) for k, v in data["atoms"].items()},
                          [Terminus(t[0], tuple(t[1:])) for t in data["nter"]],
                          [Terminus(t[0], tuple(t[1:])) for t in data["cter"]],
                          {k: (v[0], v[1], float(v[2])) for k, v in data["monatomic"].items()},
                          {k: float(v) for k, v in data["masses"].items()})


def strip_comment(line: str) -> str:
    return line.split(";", 1)[0].strip()


RTP_SECTIONS = {"bondedtypes", "atoms", "bonds", "angles", "dihedrals", "impropers", "exclusions", "cmap"}


def parse_rtp(text: str) -> tuple[list[str], dict[str, list[tuple[str, str, float]]]]:
    """The residue names of an .rtp file in order, and each residue's [ atoms ] (name, type, charge)."""
    names: list[str] = []
    atoms: dict[str, list[tuple[str, str, float]]] = {}
    current = section = ""
    for raw in text_lines(text):
        line = strip_comment(raw)
        heading = re.fullmatch(r"\[\s*(\S+)\s*\]", line)
        if heading:
            word = heading.group(1)
            if word.lower() in RTP_SECTIONS:
                section = word.lower()
            else:
                current, section = word, ""
                names.append(word)
                atoms[word] = []
            continue
        fields = line.split()
        if current and section == "atoms" and len(fields) >= 3:
            try:
                atoms[current].append((fields[0], fields[1], float(fields[2])))
            except ValueError:
                continue
    return names, atoms


def parse_r2b(text: str) -> list[Rename]:
    """The rows of an .r2b file (2 columns: no terminal variants, the main name used everywhere; or 5)."""
    found = []
    for raw in text_lines(text):
        fields = strip_comment(raw).split()
        if len(fields) >= 5:
            found.append(Rename(*fields[:5]))
        elif len(fields) >= 2:
            found.append(Rename(fields[0], fields[1], fields[1], fields[1], fields[1]))
    return found


def parse_residuetypes(text: str) -> dict[str, str]:
    types: dict[str, str] = {}
    for raw in text_lines(text):
        fields = strip_comment(raw).split()
        if len(fields) >= 2:
            types.setdefault(fields[0], fields[1])
    return types


def parse_atp(text: str) -> dict[str, float]:
    masses = {}
    for raw in text_lines(text):
        fields = strip_comment(raw).split()
        if len(fields) >= 2:
            try:
                masses[fields[0]] = float(fields[1])
            except ValueError:
                continue
    return masses


def force_fields_in(top: Path) -> list[str]:
    return sorted(p.name[:-3] for p in top.glob("*.ff") if (p / "forcefield.itp").is_file()) if top.is_dir() else []


def parse_tdb(text: str) -> list[Terminus]:
    """The entries of a terminus database, with the first control atom of each [ add ] line."""
    found: list[Terminus] = []
    name, section = "", ""
    anchors: list[str] = []
    for raw in text_lines(text):
        line = strip_comment(raw)
        heading = re.fullmatch(r"\[\s*(\S+)\s*\]", line)
        if heading:
            word = heading.group(1)
            if word.lower() in ("replace", "add", "delete", "bonds", "angles", "dihedrals", "impropers", "cmap"):
                section = word.lower()
                continue
            if name:
                found.append(Terminus(name, tuple(anchors)))
            name, section, anchors = word, "", []
            continue
        fields = line.split()
        # an [ add ] entry is a line "number type name control-atoms..." and a line of atom properties
        if section == "add" and len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit():
            anchors.append(fields[3])
    if name:
        found.append(Terminus(name, tuple(anchors)))
    return found


def load_force_field(top: Path, name: str) -> ForceField:
    """A force field's residue database as pdb2gmx reads it from ``top/NAME.ff`` (and ``top/residuetypes.dat``)."""
    known = force_fields_in(top)
    if name not in known:
        raise TaskError(f"unknown force field '{name}': choose one of {','.join(known)}")
    folder = top / f"{name}.ff"
    residues: list[str] = []
    atoms: dict[str, list[str]] = {}
    monatomic: dict[str, tuple[str, str, float]] = {}
    for rtp in sorted(folder.glob("*.rtp")):
        names, entries = parse_rtp(read_text(rtp))
        residues += names
        atoms.update({n: [a[0] for a in e] for n, e in entries.items()})
        monatomic.update({n: e[0] for n, e in entries.items() if len(e) == 1})
    renames = [r for path in sorted(folder.glob("*.r2b")) for r in parse_r2b(read_text(path))]
    types_path = folder / "residuetypes.dat" if (folder / "residuetypes.dat").is_file() else top / "residuetypes.dat"
    types = parse_residuetypes(read_text(types_path)) if types_path.is_file() else {}
    atp = folder / "atomtypes.atp"
    all_masses = parse_atp(read_text(atp)) if atp.is_file() else {}
    masses = {t: all_masses[t] for _, t, _ in monatomic.values() if t in all_masses}
    nter = [t for path in sorted(folder.glob("*.n.tdb")) for t in parse_tdb(read_text(path))]
    cter = [t for path in sorted(folder.glob("*.c.tdb")) for t in parse_tdb(read_text(path))]
    return ForceField(name, residues, renames, with_renamed_types(types, renames), atoms, nter, cter, monatomic,
                      masses)


def filter_ter(termini: Sequence[Terminus], resname: str) -> list[Terminus]:
    """pdb2gmx's filter_ter: the termini for a residue, residue-specific ones ("GLY-NH3+", "A|B-X": first three
    letters) first, then generic ones (no hyphen but a final charge one) not already covered, "None" last; pdb2gmx
    without -ter uses the first."""
    found = [t for t in termini if any(s[:3].lower() == resname[:3].lower() for s in t.name.split("|"))]
    none = None
    for t in termini:
        if t.name.lower() == "none":
            none = t
            continue
        hyphen = t.name.find("-")
        if (hyphen < 0 or hyphen == len(t.name) - 1) and not any(t.name in f.name for f in found):
            found.append(t)
    return found + ([none] if none else [])


def with_renamed_types(types: dict[str, str], renames: Sequence[Rename]) -> dict[str, str]:
    """residuetypes.dat plus, as pdb2gmx adds them, the force field names of every .r2b row whose GROMACS name
    has a type."""
    found = dict(types)
    for r in renames:
        if r.gmx in types:
            for name in (r.main, r.nter, r.cter, r.bter):
                found.setdefault(name, types[r.gmx])
    return found


def sign_match(a: str, b: str) -> int:
    """pdb2gmx's neq_str_sign: the common length when ``a`` and ``b`` differ only by a +/- ending one of them."""
    la, lb = len(a), len(b)
    lm = min(la, lb)
    if lm >= 1 and ((la == lb + 1 and a[-1] in "+-") or (lb == la + 1 and b[-1] in "+-")) \
            and a[:lm].lower() == b[:lm].lower():
        return lm
    return 0


def rtp_search(ff: ForceField, key: str) -> tuple[str | None, str]:
    """pdb2gmx's searchResidueDatabase: (the rtp entry used, "") or (None, why not)."""
    exact = ff.by_lower_name().get(key.lower())
    if exact is not None:
        return exact, ""
    best, nbest, found = 1, 0, None
    alternatives: list[str] = []
    for entry in ff.residues:
        n = sign_match(key, entry)
        if n >= best and n + 1 >= len(key) and n + 1 >= len(entry):
            if n == best and nbest >= 1:
                alternatives.append(entry)
            else:
                alternatives = [entry]
                nbest = 0
            found, best = entry, n
            nbest += 1
    if nbest > 1:
        return None, f"looks a bit like {' or '.join(alternatives)}"
    if found is None:
        return None, "not found"
    return found, ""


def r2b_name(ff: ForceField, name: str, start: bool, end: bool) -> str | None:
    """pdb2gmx's rename_resrtp for one residue: the force field name of GROMACS name ``name`` at that position
    (None: no .r2b row; "-": the force field has no such residue there)."""
    def column(r: Rename) -> str:
        return r.bter if start and end else r.nter if start else r.cter if end else r.main

    for r in ff.renames:
        if r.gmx == name:
            return column(r)
    if start or end:
        for r in ff.renames:
            if r.main == name:
                return column(r)
    return None


def gmx_names(name: str, disulfide: bool) -> list[str]:
    """The GROMACS-internal names pdb2gmx (with default options) may give a residue named ``name`` in the PDB:
    waters become HOH, *ASPH*/*GLUH* become ASP/GLU, HIS one of HISD/HISE/HISH by its hydrogen bonds, a CYS in
    a disulfide CYS2 (specbond.dat)."""
    if any(w in name for w in ("HOH", "SOL", "WAT")):
        return ["HOH"]
    if "ASPH" in name:
        return ["ASP"]
    if "GLUH" in name:
        return ["GLU"]
    if name.upper() == "HIS":
        return ["HISD", "HISE", "HISH"]
    if name == "CYS" and disulfide:
        return ["CYS", "CYS2"]
    return [name]


def resolve(ff: ForceField, name: str, start: bool, end: bool, disulfide: bool = False) -> tuple[list[str], str]:
    """The rtp entries pdb2gmx would use for a residue named ``name`` (at a chain's start/end), or ([], the
    reason it would stop): its name resolved through the .r2b renames and the .rtp entries, and the default
    terminus patch of a chain end applicable to that entry."""
    used = []
    where = (" as a standalone residue" if start and end else " as a starting terminus" if start
             else " as an ending terminus" if end else "")
    for gmx in gmx_names(name, disulfide):
        renamed = r2b_name(ff, gmx, start, end)
        if renamed is not None and renamed.startswith("-"):
            return [], f"force field {ff.name} has no residue type for {gmx}{where}"
        entry, why = rtp_search(ff, renamed or gmx)
        if entry is None:
            shown = gmx if not renamed or renamed == gmx else f"{gmx} (as {renamed})"
            return [], f"{shown} is not in force field {ff.name}'s residue topology database ({why})"
        for is_end, termini, label in ((start, ff.nter, "starting"), (end, ff.cter, "ending")):
            chosen = filter_ter(termini, "ASP" if "ASPH" in name else "GLU" if "GLUH" in name else name) \
                if is_end else []
            missing = [a for a in (chosen[0].anchors if chosen else ()) if a not in ff.atoms.get(entry, [])]
            if missing:
                return [], (f"pdb2gmx's default {label} terminus {chosen[0].name} of force field {ff.name} needs "
                            f"atom {missing[0]}, which its entry {entry} lacks")
        used.append(entry)
    return used, ""


def residue_type(ff: ForceField, name: str) -> str:
    return ff.types.get(name, "Other")


def termini(ff: ForceField, residues: Sequence[Residue]) -> tuple[int, int]:
    """pdb2gmx's find_nc_ter: the first residue typed Protein/DNA/RNA and the last of that type (-1: none)."""
    start = next((i for i, r in enumerate(residues) if residue_type(ff, r.name) in POLYMER_TYPES), -1)
    if start < 0:
        return -1, -1
    kind = residue_type(ff, residues[start].name)
    end = max(i for i, r in enumerate(residues) if residue_type(ff, r.name) == kind)
    return start, end


def nucleic_problem(ff: ForceField, kind: str) -> str:
    """Why pdb2gmx with ``ff`` cannot build a chain of the RCSB nucleotides of ``kind`` (DNA/RNA), "" if it can:
    each resolves in the middle of a chain and at both ends."""
    if not any(residue_type(ff, e) == kind or residue_type(ff, e) == "Other" and e in NUCLEIC[kind]
               for e in ff.residues) and not any(r.gmx in NUCLEIC[kind] for r in ff.renames):
        return f"no {kind} residues"
    for n in NUCLEIC[kind]:
        for start, end in ((False, False), (True, False), (False, True)):
            why = resolve(ff, n, start, end)[1]
            if why:
                return why
    return ""


#: All force fields of this GROMACS, loaded when an error message names the ones that would do.
AllForceFields = Callable[[], list[ForceField]]


def all_force_fields(top: Path) -> AllForceFields:
    return lambda: [load_force_field(top, name) for name in force_fields_in(top)]


def nucleic_force_fields(others: AllForceFields, kind: str) -> list[str]:
    """The force fields with which pdb2gmx builds a chain of RCSB nucleotides of ``kind``."""
    return [ff.name for ff in others() if not nucleic_problem(ff, kind)]


def ion_entry(ff: ForceField, rcsb: str) -> tuple[str, str] | None:
    """The force field's (residue, atom) name for the RCSB ion ``rcsb``: a single-atom rtp entry whose atom type
    has the element's mass and whose charge is the ion's; the one named like the RCSB one when several."""
    element, charge = RCSB_IONS[rcsb]
    mass = ELEMENT_MASS[element]
    found = [(res, atom) for res, (atom, atype, q) in ff.monatomic.items()
             if abs(q - charge) < 1e-6 and abs(ff.masses.get(atype, -1.0) - mass) <= MASS_TOLERANCE]
    if not found:
        return None
    same = [f for f in found if f[0].upper() == rcsb]
    return (same or found)[0]


def ion_force_fields(others: AllForceFields, rcsb: str) -> list[str]:
    return [ff.name for ff in others() if ion_entry(ff, rcsb)]


def possible_disulfides(chains: Sequence[Chain]) -> bool:
    """Whether pdb2gmx may find a CYS-CYS bond (two SG within 0.2 nm +-10 %, specbond.dat)."""
    sg = [a.xyz for c in chains for r in c.residues if r.name == "CYS" for a in r.atoms if a.name == "SG"]
    return any(math.dist(p, q) <= 2.2 for i, p in enumerate(sg) for q in sg[i + 1:])


@dataclass
class Checked:
    residues: int = 0
    renamed: list[dict[str, Any]] = field(default_factory=list)
    #: 5' phosphates removed where the force field's 5' residue has none
    phosphates_removed: list[str] = field(default_factory=list)


PHOSPHATE = ("P", "OP1", "OP2", "OP3", "O1P", "O2P", "O3P")


def rename_ions(ff: ForceField, others: AllForceFields, chains: Sequence[Chain]) -> list[dict[str, Any]]:
    """Kept RCSB ions take the force field's name for that element and charge (residue and atom); one it lacks is
    refused with the force fields that have it."""
    renamed = []
    for chain in chains:
        for res in chain.residues:
            if res.kind != "heterogen" or res.name not in RCSB_IONS or len(res.atoms) != 1:
                continue
            entry = ion_entry(ff, res.name)
            if entry is None:
                element, charge = RCSB_IONS[res.name]
                have = ion_force_fields(others, res.name)
                shown = f"{element}{abs(charge) if abs(charge) > 1 else ''}{'+' if charge > 0 else '-'}"
                raise TaskError(f"kept ion {res.name} ({shown}, chain {chain.id}, residue {res.number}"
                                f"{res.icode.strip()}) is not in force field {ff.name}: "
                                f"remove {res.name} from keep_heterogens or choose a force field that has it: "
                                f"{joined(have)}")
            new_res, new_atom = entry
            if (new_res, new_atom) != (res.name, res.atoms[0].name):
                renamed.append({"from": res.name, "to": new_res, "chain": chain.id, "number": res.number})
                res.name, res.atoms[0].name = new_res, new_atom
    return renamed


def is_water(res: Residue) -> bool:
    """pdb2gmx renames every residue whose name contains HOH, SOL or WAT to its water and starts a chain there."""
    return res.kind == "water" or any(w in res.name for w in ("HOH", "SOL", "WAT"))


def pdb2gmx_chains(chains: Sequence[Chain]) -> list[tuple[str, list[Residue]]]:
    """The chains pdb2gmx makes of our blocks: a block is also split where water starts or ends."""
    found: list[tuple[str, list[Residue]]] = []
    for chain_id, residues in blocks(chains):
        runs: list[list[Residue]] = []
        for res in residues:
            if runs and is_water(runs[-1][-1]) == is_water(res):
                runs[-1].append(res)
            else:
                runs.append([res])
        found += [(chain_id, run) for run in runs]
    return found


def check_force_field(ff: ForceField, chains: Sequence[Chain], others: AllForceFields) -> Checked:
    """The force field <-> molecule checks on the prepared chains, in the blocks pdb2gmx will read: nucleic acids
    under a force field without them; a residue pdb2gmx would not find (or not accept at its position); a chain
    whose residues pdb2gmx would not type alike."""
    result = Checked(renamed=rename_ions(ff, others, chains))
    disulfide = possible_disulfides(chains)
    for chain_id, residues in pdb2gmx_chains(chains):
        if is_water(residues[0]):
            result.residues += len(residues)
            continue
        kinds = {residue_type(ff, r.name) for r in residues}
        for kind in ("DNA", "RNA"):
            if kind not in kinds and not any(r.name in NUCLEIC[kind] for r in residues):
                continue
            why = nucleic_problem(ff, kind)
            if not why:
                continue
            have = nucleic_force_fields(others, kind)
            raise TaskError(f"chain {chain_id} is {kind}, which force field {ff.name} cannot build ({why}): choose a "
                            f"force field that can: {joined(have)}")
        start, end = termini(ff, residues)
        for i, res in enumerate(residues):
            used, why = resolve(ff, res.name, i == start, i == end, disulfide)
            if i == start and residue_type(ff, res.name) in ("DNA", "RNA") and used \
                    and "P" not in ff.atoms.get(used[0], ["P"]) and any(a.name in PHOSPHATE for a in res.atoms):
                # pdb2gmx would stop on the atom P, absent from the force field's 5' residue
                res.atoms = [a for a in res.atoms if a.name not in PHOSPHATE]
                result.phosphates_removed.append(f"{res.name} {chain_id}{res.number}{res.icode.strip()}")
            if why:
                if res.kind == "heterogen":
                    raise TaskError(f"kept heterogen {residue_label(res, chain_id)}: {why}: {LIGAND_HELP}")
                raise TaskError(f"residue {residue_label(res, chain_id)}: {why} (pdb2gmx would stop): replace it "
                                "(replace_nonstandard), remove it or choose a force field that has it")
            result.residues += 1
        # pdb2gmx requires one residue type (residuetypes.dat) per chain with a chain ID
        first = residue_type(ff, residues[0].name)
        for res in residues:
            kind = residue_type(ff, res.name)
            if kind.lower() != first.lower():
                raise TaskError(f"residue {residue_label(res, chain_id)} is of type '{kind}' in GROMACS's "
                                f"residuetypes.dat while its chain starts as '{first}' (pdb2gmx would stop): remove "
                                "it, or replace it by a standard residue (replace_nonstandard)")
    return result


# --- reading and selecting (gemmi) ------------------------------------------------------------------------------


@dataclass
class Report:
    structure: str
    format: str
    gzip: bool
    models: int = 0
    model: int = 1
    chains_present: list[str] = field(default_factory=list)
    chains_kept: list[str] = field(default_factory=list)
    altlocs_present: list[str] = field(default_factory=list)
    altloc_used: str = ""
    altloc_atoms_removed: int = 0
    altloc_other_letter: list[str] = field(default_factory=list)
    hydrogens_removed: int = 0
    waters_removed: int = 0
    waters_kept: int = 0
    heterogens_removed: dict[tuple[str, str], int] = field(default_factory=dict)
    heterogens_kept: list[dict[str, Any]] = field(default_factory=list)
    replaced: list[dict[str, Any]] = field(default_factory=list)
    atoms_added: list[dict[str, Any]] = field(default_factory=list)
    residues_added: list[dict[str, Any]] = field(default_factory=list)
    missing_not_added: list[dict[str, Any]] = field(default_factory=list)
    missing_atoms_not_added: list[dict[str, Any]] = field(default_factory=list)


def read_structure(fmt: str, data: bytes, shown: str) -> Any:
    import gemmi  # type: ignore[import-not-found,import-untyped,unused-ignore]

    text = data.decode("utf-8", errors="replace")
    try:
        if fmt == "mmcif":
            st = gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())
        else:
            st = gemmi.read_pdb_string(text)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise TaskError(f"structure '{shown}' could not be read as {fmt}: "
                        f"{' '.join(str(exc).split())}: give an intact PDB or mmCIF file") from exc
    st.setup_entities()
    return st


def altloc_groups(residues: Sequence[Any]) -> list[list[Any]]:
    """Residues that share a sequence number (alternative residues of microheterogeneity are consecutive)."""
    groups: list[list[Any]] = []
    for res in residues:
        if groups and str(groups[-1][0].seqid) == str(res.seqid):
            groups[-1].append(res)
        else:
            groups.append([res])
    return groups


def residue_kind(res: Any, gemmi: Any) -> str:
    if res.is_water():
        return "water"
    if res.entity_type == gemmi.EntityType.Polymer:
        return "polymer"
    if res.entity_type in (gemmi.EntityType.NonPolymer, getattr(gemmi.EntityType, "Branched", None)):
        return "heterogen"
    info = gemmi.find_tabulated_residue(res.name)
    return "polymer" if info is not None and (info.is_amino_acid() or info.is_nucleic_acid()) else "heterogen"


def select(st: Any, shown: str, model: int, wanted_chains: Sequence[str], altloc: str, keep_water: bool,
           keep_heterogens: Sequence[str], report: Report) -> list[Chain]:
    """One model, the chosen chains, one alternate location, no hydrogens, waters and heterogens as asked."""
    import gemmi

    report.models = len(st)
    if report.models == 0 or not any(len(ch) for m in st for ch in m):
        raise TaskError(f"structure '{shown}' holds no atoms: give a structure with coordinates")
    if not 1 <= model <= report.models:
        raise TaskError(f"model {model} is not in structure '{shown}', which has {report.models} model"
                        f"{'s' if report.models > 1 else ''}: choose model 1 to {report.models}")
    report.model = model
    chosen = st[model - 1]
    present: list[str] = []
    for ch in chosen:
        if ch.name not in present:
            present.append(ch.name)
    report.chains_present = present
    for c in wanted_chains:
        if c not in present:
            raise TaskError(f"chain '{task_common.printable([c])}' is not in structure '{shown}' (model {model}): "
                            f"choose among the chains present: {joined(present)}")
    kept = [c for c in present if not wanted_chains or c in wanted_chains]
    report.chains_kept = kept

    letters = sorted({a.altloc for ch in chosen if ch.name in kept for r in ch for a in r if a.altloc != "\0"})
    report.altlocs_present = letters
    if altloc and altloc not in letters:
        raise TaskError(f"altloc '{altloc}' is not in the chosen chains of '{shown}': choose one of the alternate "
                        f"locations present: {joined(letters)} (or leave altloc empty for the first)")
    report.altloc_used = altloc or (letters[0] if letters else "")

    hets_present = sorted({r.name for ch in chosen if ch.name in kept for r in ch
                           if residue_kind(r, gemmi) == "heterogen"})
    for name in keep_heterogens:
        if name not in hets_present:
            raise TaskError(f"keep_heterogens names '{task_common.printable([name])}', which is not a heterogen of "
                            f"the chosen chains of '{shown}': choose among {joined(hets_present)} or leave it out")

    chains: list[Chain] = []
    for ch in chosen:
        if ch.name not in kept:
            continue
        out = next((c for c in chains if c.id == ch.name), None)
        if out is None:
            out = Chain(ch.name, [], polymer_sequence(st, ch, gemmi))
            chains.append(out)
        for group in altloc_groups(list(ch)):
            group_letters = sorted({a.altloc for r in group for a in r if a.altloc != "\0"})
            letter = report.altloc_used if report.altloc_used in group_letters else \
                (group_letters[0] if group_letters else "")
            if group_letters and letter != report.altloc_used:
                report.altloc_other_letter.append(f"{group[0].name} {ch.name}{group[0].seqid.num}:{letter}")
            for res in group:
                kind = residue_kind(res, gemmi)
                atoms = []
                for a in res:
                    if a.altloc not in ("\0", letter):
                        report.altloc_atoms_removed += 1
                        continue
                    if a.is_hydrogen():
                        report.hydrogens_removed += 1
                        continue
                    atoms.append(Atom(a.name, a.element.name, (a.pos.x, a.pos.y, a.pos.z), a.occ, a.b_iso))
                if not atoms:
                    continue
                number, icode = res.seqid.num, res.seqid.icode.strip()
                if kind == "water" and not keep_water:
                    report.waters_removed += 1
                    continue
                if kind == "water":
                    report.waters_kept += 1
                if kind == "heterogen" and res.name not in keep_heterogens:
                    key = (res.name, ch.name)
                    report.heterogens_removed[key] = report.heterogens_removed.get(key, 0) + 1
                    continue
                if kind == "heterogen":
                    report.heterogens_kept.append({"name": res.name, "chain": ch.name,
                                                   "number": f"{number}{icode}"})
                out.residues.append(Residue("HOH" if kind == "water" else res.name, number, icode, atoms, kind))
    chains = [c for c in chains if c.residues]
    if not any(r.kind == "polymer" for c in chains for r in c.residues):
        if wanted_chains:
            raise TaskError(f"structure '{shown}' has no protein or nucleic-acid chain left in model {model} and "
                            f"chains {joined(kept)}: choose other chains (all: leave chains empty)")
        raise TaskError(f"structure '{shown}' holds no protein or nucleic acid (model {model}): give the structure of "
                        "a protein or protein-nucleic acid complex")
    return chains


def polymer_sequence(st: Any, ch: Any, gemmi: Any) -> list[str]:
    """The full sequence (SEQRES / _entity_poly_seq) of a chain's polymer, [] when the file has none."""
    span = ch.get_polymer()
    if not len(span):
        return []
    entity = st.get_entity_of(span)
    if entity is None or not entity.full_sequence:
        return []
    return [gemmi.Entity.first_mon(m) for m in entity.full_sequence]


# --- fixing (PDBFixer) ------------------------------------------------------------------------------------------

#: A residue of the report: chain, number, insertion code, name.
ResidueKey = tuple[str, str, str, str]


def atoms_by_residue(found: Iterable[tuple[ResidueKey, Sequence[str]]]) -> list[dict[str, Any]]:
    """The atoms added, one report entry per residue (PDBFixer lists a residue's missing heavy atoms and its missing
    terminal OXT apart): residues in the order first met, each with its atom names in the order first met, once."""
    merged: dict[ResidueKey, list[str]] = {}
    for key, atoms in found:
        names = merged.setdefault(key, [])
        for atom in atoms:
            if atom not in names:
                names.append(atom)
    return [{"residue": name, "chain": chain, "number": number, "atoms": atoms}
            for (chain, number, _icode, name), atoms in merged.items()]


def fix(chains: list[Chain], replace: bool, add_atoms: bool, add_loops: bool, report: Report) -> list[Chain]:
    """PDBFixer on the selected chains: nonstandard residues replaced, missing heavy atoms (always those of the
    replaced residues) and, when asked, missing internal residues added (never missing termini)."""
    import io
    import logging

    logging.disable(logging.WARNING)  # importing pdbfixer logs a deprecation warning of OpenMM's old name
    try:
        from pdbfixer import PDBFixer  # type: ignore[import-not-found,import-untyped,unused-ignore]
    finally:
        logging.disable(logging.NOTSET)

    fixer = PDBFixer(pdbfile=io.StringIO(pdb_text(chains, seqres=True)))
    fixer.findMissingResidues()
    chain_list = list(fixer.topology.chains())
    loops = {}
    for (ci, ri), names in sorted(fixer.missingResidues.items()):
        chain = chain_list[ci]
        n_res = len(list(chain.residues()))
        where = "N-terminus" if ri == 0 else "C-terminus" if ri == n_res else "internal"
        residues = list(chain.residues())
        after = f"{residues[ri - 1].name}{residues[ri - 1].id}" if ri > 0 else ""
        entry = {"chain": chain.id, "where": where, "after": after, "residues": list(names)}
        if where == "internal" and add_loops:
            loops[(ci, ri)] = names
            report.residues_added.append(entry)
        else:
            report.missing_not_added.append(entry)
    fixer.missingResidues = loops

    replaced = set()
    if replace:
        fixer.findNonstandardResidues()
        for res, to in fixer.nonstandardResidues:
            report.replaced.append({"from": res.name, "to": to, "chain": res.chain.id, "number": res.id})
            replaced.add((res.chain.index, res.index))
        fixer.replaceNonstandardResidues()
    fixer.findMissingAtoms()
    added: list[tuple[ResidueKey, list[str]]] = []

    def key(res: Any) -> ResidueKey:
        return (res.chain.id, res.id, (res.insertionCode or "").strip(), res.name)

    for res, atoms in list(fixer.missingAtoms.items()):
        if add_atoms or (res.chain.index, res.index) in replaced:
            added.append((key(res), [a.name for a in atoms]))
        else:
            report.missing_atoms_not_added.append({"residue": res.name, "chain": res.chain.id, "number": res.id,
                                                   "atoms": [a.name for a in atoms]})
            del fixer.missingAtoms[res]
    for res, names in list(fixer.missingTerminals.items()):
        if add_atoms:
            added.append((key(res), list(names)))  # a terminal OXT: its residue may already have an entry
        else:
            del fixer.missingTerminals[res]
    report.atoms_added = atoms_by_residue(added)
    if fixer.missingAtoms or fixer.missingTerminals or fixer.missingResidues:
        fixer.addMissingAtoms(seed=FIXER_SEED)
    return from_openmm(fixer.topology, fixer.positions, chains)


def from_openmm(topology: Any, positions: Any, before: Sequence[Chain]) -> list[Chain]:
    """The fixed topology back as chains (OpenMM splits a chain at each TER: the parts join again by chain ID);
    kinds and sequences as before; added and replaced residues are polymer."""
    from openmm.unit import nanometer  # type: ignore[import-not-found,import-untyped,unused-ignore]

    kinds = {(c.id, r.number, r.icode, r.name): r.kind for c in before for r in c.residues}
    sequences = {c.id: c.sequence for c in before}
    chains: list[Chain] = []
    for chain in topology.chains():
        out = next((c for c in chains if c.id == chain.id), None)
        if out is None:
            out = Chain(chain.id, [], sequences.get(chain.id, []))
            chains.append(out)
        for res in chain.residues():
            icode = (res.insertionCode or "").strip()
            number = int(res.id)
            atoms = []
            for atom in res.atoms():
                p = positions[atom.index].value_in_unit(nanometer)
                atoms.append(Atom(atom.name, atom.element.symbol if atom.element is not None else "",
                                  (p[0] * 10.0, p[1] * 10.0, p[2] * 10.0)))
            kind = kinds.get((chain.id, number, icode, res.name), "polymer")
            out.residues.append(Residue(res.name, number, icode, atoms, kind))
    return chains


# --- the report -------------------------------------------------------------------------------------------------


def counts(chains: Sequence[Chain]) -> dict[str, Any]:
    per_chain = []
    for chain in chains:
        kinds: dict[str, int] = {}
        for r in chain.residues:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        per_chain.append({"chain": chain.id, "residues": len(chain.residues),
                          "atoms": sum(len(r.atoms) for r in chain.residues), **{f"{k}_residues": v
                                                                                 for k, v in sorted(kinds.items())}})
    return {"chains": per_chain, "residues": sum(len(c.residues) for c in chains),
            "atoms": sum(len(r.atoms) for c in chains for r in c.residues)}


def report_json(report: Report, options: dict[str, Any], chains: Sequence[Chain], ff: ForceField, top: Path,
                checked: Checked) -> dict[str, Any]:
    return {
        "structure": report.structure, "format": report.format, "gzip": report.gzip, "options": options,
        "models": {"count": report.models, "used": report.model},
        "chains": {"present": report.chains_present, "kept": report.chains_kept,
                   "dropped": [c for c in report.chains_present if c not in report.chains_kept]},
        "altloc": {"present": report.altlocs_present, "used": report.altloc_used or None,
                   "atoms_removed": report.altloc_atoms_removed,
                   "residues_with_another_letter": report.altloc_other_letter},
        "hydrogens_removed": report.hydrogens_removed,
        "waters": {"removed": report.waters_removed, "kept": report.waters_kept},
        "heterogens": {"removed": [{"name": n, "chain": c, "count": k}
                                   for (n, c), k in report.heterogens_removed.items()],
                       "kept": report.heterogens_kept},
        "residues_replaced": report.replaced,
        "atoms_added": report.atoms_added,
        "missing_atoms_not_added": report.missing_atoms_not_added,
        "residues_added": report.residues_added,
        "missing_residues_not_added": report.missing_not_added,
        "result": counts(chains),
        "force_field": {"name": ff.name, "dir": str(top), "check": "passed", "residues_checked": checked.residues,
                        "ions_renamed": checked.renamed, "phosphates_removed_5prime": checked.phosphates_removed},
    }


def report_text(data: dict[str, Any]) -> str:
    """The report for humans: a few lines."""
    def names(entries: Sequence[dict[str, Any]], key: str = "name") -> str:
        return ", ".join(f"{e[key]} {e['chain']}{e.get('number', '')}" for e in entries) or "none"

    res = data["result"]
    alt = data["altloc"]
    het = data["heterogens"]
    added = sum(len(a["atoms"]) for a in data["atoms_added"])
    lines = [
        f"structure {data['structure']}: {data['format']}{' (gzip)' if data['gzip'] else ''}, "
        f"model {data['models']['used']} of {data['models']['count']}",
        f"chains kept: {joined(data['chains']['kept'])}; dropped: {joined(data['chains']['dropped'])}",
        f"alternate locations: {joined(alt['present'])}; kept {alt['used'] or '-'} "
        f"({alt['atoms_removed']} atoms of other locations removed"
        + (f"; other letter where {alt['used']} is absent: {', '.join(alt['residues_with_another_letter'])}"
           if alt["residues_with_another_letter"] else "") + ")",
        f"hydrogens removed: {data['hydrogens_removed']} (pdb2gmx adds them)",
        f"waters removed: {data['waters']['removed']}, kept: {data['waters']['kept']}",
        "heterogens removed: " + (", ".join(f"{h['name']} chain {h['chain']} x{h['count']}" for h in het["removed"])
                                  or "none") + f"; kept: {names(het['kept'])}",
        "residues replaced: " + (", ".join(f"{r['from']}->{r['to']} {r['chain']}{r['number']}"
                                           for r in data["residues_replaced"]) or "none"),
        f"heavy atoms added: {added} in {len(data['atoms_added'])} residues"
        + (" (" + ", ".join(f"{a['residue']} {a['chain']}{a['number']}:{'+'.join(a['atoms'])}"
                            for a in data["atoms_added"]) + ")" if data["atoms_added"] else ""),
        "residues added: " + (", ".join(f"{len(r['residues'])} in chain {r['chain']} after {r['after']}"
                                        for r in data["residues_added"]) or "none")
        + "; missing, not added: " + (", ".join(f"{len(r['residues'])} at {r['where']} of chain {r['chain']}"
                                                for r in data["missing_residues_not_added"]) or "none"),
        f"result: {len(res['chains'])} chains, {res['residues']} residues, {res['atoms']} atoms",
        f"force field {data['force_field']['name']}: all {data['force_field']['residues_checked']} residues "
        "resolve as pdb2gmx needs" + ("; ions renamed: " + ", ".join(f"{r['from']}->{r['to']}"
                                                                      for r in data["force_field"]["ions_renamed"])
                                      if data["force_field"]["ions_renamed"] else "")
        + ("; 5' phosphates removed (the force field's 5' residues have none): "
           + ", ".join(data["force_field"]["phosphates_removed_5prime"])
           if data["force_field"].get("phosphates_removed_5prime") else ""),
    ]
    gaps = [r for r in data["missing_residues_not_added"] if r["where"] == "internal"]
    if gaps:
        lines.append("WARNING: internal gaps not filled (add_missing_loops false), pdb2gmx bonds across them: "
                     + ", ".join(f"{len(r['residues'])} residues after {r['chain']} {r['after']}" for r in gaps))
    if data["missing_atoms_not_added"]:
        lines.append("WARNING: missing heavy atoms not added (add_missing_atoms false): "
                     + ", ".join(f"{a['residue']} {a['chain']}{a['number']}" for a in data["missing_atoms_not_added"]))
    return "\n".join(lines) + "\n"


# --- the command ------------------------------------------------------------------------------------------------


def write_atomically(outputs: dict[str, str]) -> None:
    for path, text in outputs.items():
        Path(f"{path}.tmp").write_text(text, encoding="utf-8")
    for path in outputs:
        os.replace(f"{path}.tmp", path)


def prepare(a: argparse.Namespace) -> None:
    name = task_common.check_name("name", [one("name", a.name)])
    given = Path(one("structure", a.structure))
    ff_name = one("force_field", a.force_field)
    chains_wanted = items("chains", a.chains, a.chains_count)
    keep = [h.upper() for h in items("keep_heterogens", a.keep_heterogens, a.keep_heterogens_count)]
    altloc = check_altloc(optional("altloc", a.altloc))
    shown = given.name
    top = gmx_force_field_dir()
    ff = load_force_field(top, ff_name)
    fmt, data, gz = detect_format(given.read_bytes(), shown)
    report = Report(shown, fmt, gz)
    st = read_structure(fmt, data, shown)
    chains = select(st, shown, a.model, chains_wanted, altloc, a.keep_water, keep, report)
    check_pdb_limits(chains)
    try:
        chains = fix(chains, a.replace_nonstandard, a.add_missing_atoms, a.add_missing_loops, report)
    except (TaskError, OSError):
        raise
    except Exception as exc:  # PDBFixer/OpenMM raise plain Exceptions, KeyErrors... on what they cannot fix
        raise TaskError(f"PDBFixer could not fix structure '{shown}': {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]}: remove the residues it names (chains, "
                        "keep_heterogens) or set add_missing_atoms/add_missing_loops false") from exc
    checked = check_force_field(ff, chains, all_force_fields(top))
    options = {"model": a.model, "chains": chains_wanted, "altloc": altloc, "keep_water": a.keep_water,
               "keep_heterogens": keep, "replace_nonstandard": a.replace_nonstandard,
               "add_missing_atoms": a.add_missing_atoms, "add_missing_loops": a.add_missing_loops,
               "force_field": ff_name}
    result = report_json(report, options, chains, ff, top, checked)
    text = report_text(result)
    write_atomically({f"{name}.prepared.pdb": pdb_text(chains, f"{shown} prepared for pdb2gmx ({ff_name})"),
                      f"{name}.preparation.json": json.dumps(result, indent=2) + "\n",
                      f"{name}.preparation.txt": text})
    sys.stdout.write(text)


def parser() -> argparse.ArgumentParser:
    """Options are named as the task's inputs: String/File values and arrays as write_lines files."""
    p = argparse.ArgumentParser(prog="prepare-structure", description=__doc__.split("\n\n")[0])
    for v in ("name", "structure", "force_field", "chains", "keep_heterogens", "altloc"):
        p.add_argument(f"--{v}", required=True, metavar="FILE", help="a write_lines file holding the value(s)")
    for v in ("chains_count", "keep_heterogens_count"):
        p.add_argument(f"--{v}", type=int, required=True, metavar="N", help="the number of items of the array")
    p.add_argument("--model", type=int, default=1, metavar="N", help="the MODEL to use, 1-based (default 1)")
    for v, default in (("keep_water", False), ("replace_nonstandard", True), ("add_missing_atoms", True),
                       ("add_missing_loops", False)):
        p.add_argument(f"--{v}", type=boolean, default=default, metavar="true|false")
    p.set_defaults(command="prepare-structure")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parser(), {"prepare-structure": prepare}, argv)


if __name__ == "__main__":
    sys.exit(main())
