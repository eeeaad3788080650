"""Record what tests/test_prepare_structure.py checks prepare-structure's force field <-> molecule check against.

Run on a Debian 12 host with the gromacs 2022.5 package (the gromacs image's GROMACS), from the repository root:

    PYTHONPATH=containers/shared:containers/gromacs /usr/bin/python3 tests/data/prepare_structure/record.py

It writes, beside this file:

* ``forcefields.json``: the residue database of oplsaa, amber99sb-ildn, charmm27 and gromos54a7 as
  prepare_structure.load_force_field reads it from /usr/share/gromacs/top (ForceField.to_json: rtp entry names,
  .r2b rows, residue types, terminus patches, single-atom entries and their masses), plus the list of every force
  field of that GROMACS with its DNA/RNA/ion facts;
* ``pdb2gmx_verdicts.json``: for every residue name below, in the middle, at the start and at the end of
  ubiquitin's chain (inputs/gromacs/1ubq.pdb without waters), whether the real ``gmx pdb2gmx -ff FF -water spc
  -ignh`` accepted the residue name ("reject": it stopped with "not found in residue topology database", "do not
  have a consistent type", "no residue type for", "while combining tdb and rtp"; "accept": it succeeded or stopped
  later, on the atoms, as it must with another residue's atoms).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import prepare_structure as ps

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TOP = Path("/usr/share/gromacs/top")
FORCE_FIELDS = ("oplsaa", "amber99sb-ildn", "charmm27", "gromos54a7")
POSITIONS = {"middle": 10, "start": 1, "end": 76}
EXTRA = ("MSE SEP TPO PTR CSO HYP NME UNK XYZ CYX CYM HID HIE HIP HSD HSE ASH GLH LYN ASPH GLUH HISA HIS1 LYSN "
         "ARGN ZN NA CL CA MG K NA+ CL- ZN2 IOD DA DT DA5 A U RA ACE NH2").split()
#: pdb2gmx's fatal errors about a residue (not its atoms), and what the verdicts file calls them.
REJECTS = (("not found in residue topology database", "not in the residue database"),
           ("do not have a consistent type", "chain of mixed residue types"),
           ("no residue type for", "no residue type at that position (.r2b '-')"),
           ("while combining tdb and rtp", "terminus patch needs an atom the entry lacks"),
           ("Residue type '", "not in the residue database (chain cyclicity check)"))


def ubiquitin() -> list[str]:
    """The ATOM lines of 1UBQ chain A (no waters), as pdb2gmx gets them."""
    return [line for line in (REPO / "inputs/gromacs/1ubq.pdb").read_text().splitlines()
            if line.startswith("ATOM")]


def renamed(lines: list[str], number: int, name: str) -> str:
    return "".join((line[:17] + f"{name:<4}" + line[21:] if int(line[22:26]) == number else line) + "\n"
                   for line in lines) + "TER\nEND\n"


def pdb2gmx(text: str, ff: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "in.pdb").write_text(text)
        proc = subprocess.run(["gmx", "-quiet", "pdb2gmx", "-f", "in.pdb", "-o", "o.gro", "-p", "t.top", "-i", "p.itp",
                               "-ff", ff, "-water", "spc", "-ignh"], cwd=d, capture_output=True, text=True,
                              env={**os.environ, "GMX_MAXBACKUP": "-1"}, check=False)
    found = re.search(r"Fatal error:\n(.*?)(?:\nFor more information|\n-----)", proc.stdout + proc.stderr, re.S)
    error = " ".join(found.group(1).split()) if found else ""
    why = next((kind for text, kind in REJECTS if text in error), "") if proc.returncode else ""
    return {"pdb2gmx": "reject", "why": why} if why else {"pdb2gmx": "accept"}


def main() -> None:
    loaded = {name: ps.load_force_field(TOP, name) for name in ps.force_fields_in(TOP)}
    facts = {name: {"dna": not ps.nucleic_problem(ff, "DNA"), "rna": not ps.nucleic_problem(ff, "RNA"),
                    "ions": {ion: "/".join(e) if (e := ps.ion_entry(ff, ion)) else None for ion in ps.RCSB_IONS}}
             for name, ff in loaded.items()}
    (HERE / "forcefields.json").write_text(json.dumps(
        {"recorded_from": f"{TOP} (Debian 12 gromacs-data 2022.5)", "all": facts,
         "force_fields": {name: loaded[name].to_json() for name in FORCE_FIELDS}}, indent=1) + "\n")

    lines = ubiquitin()
    chain = [line[17:21].strip() for i, line in enumerate(lines)
             if i == 0 or line[22:26] != lines[i - 1][22:26]]
    names = sorted({n for ff in FORCE_FIELDS for n in loaded[ff].residues if len(n) <= 4} | set(EXTRA))
    verdicts = []
    for ff in FORCE_FIELDS:
        for where, number in POSITIONS.items():
            for name in names:
                verdicts.append({"ff": ff, "where": where, "name": name, **pdb2gmx(renamed(lines, number, name), ff)})
        print(ff, "done", file=sys.stderr)
    head = {"command": "gmx pdb2gmx -f in.pdb -ff FF -water spc -ignh (GROMACS 2022.5, Debian 12)",
            "positions": POSITIONS, "chain": " ".join(chain)}
    (HERE / "pdb2gmx_verdicts.json").write_text(json.dumps(head, indent=1)[:-2] + ',\n "verdicts": [\n'
                                                 + ",\n".join(json.dumps(v) for v in verdicts) + "\n ]\n}\n")


if __name__ == "__main__":
    main()
