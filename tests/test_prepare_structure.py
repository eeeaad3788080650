"""prepare-structure (containers/gromacs/prepare_structure.py): a raw RCSB entry to the PDB pdb2gmx gets.

Fast lane: the pure parts, loaded without gemmi/PDBFixer: format detection by content, the write_lines values,
the PDB writer's columns and TERs, and the force field <-> molecule check on the residue databases of four real
force fields (recorded from GROMACS 2022.5's files, tests/data/prepare_structure/forcefields.json) against what
the real pdb2gmx accepted for ~250 residue names at three positions (pdb2gmx_verdicts.json; record.py there).

Container lane: the program in the gromacs image on the real structures of tests/data/structures/ (MSE, mmCIF,
gzip, altlocs and missing atoms, ligand, protein-DNA NMR entry): each prepared file goes through ``gmx pdb2gmx``
in the same container, and each bad input gives its exact one line.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, settings
from scriptload import load_script

REPO = settings.REPO_ROOT
SCRIPT = REPO / "containers" / "gromacs" / "prepare_structure.py"
DATA = REPO / "tests" / "data" / "prepare_structure"
STRUCTURES = REPO / "tests" / "data" / "structures"

ps = load_script(SCRIPT)

RECORDED = json.loads((DATA / "forcefields.json").read_text())
FFS = {name: ps.ForceField.from_json(data) for name, data in RECORDED["force_fields"].items()}


def others() -> list[Any]:
    return list(FFS.values())


def chain(chain_id: str, names: list[str], kind: str = "polymer", start: int = 1) -> Any:
    return ps.Chain(chain_id, [ps.Residue(n, start + i, "", [ps.Atom("CA", "C", (float(i), 0.0, 0.0))], kind)
                               for i, n in enumerate(names)])


def error(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(ps.TaskError) as caught:
        fn(*args)
    return str(caught.value)


# --- the input file and the values ------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "fmt", "gz"), [("1dpx.pdb", "pdb", False), ("1a8o.cif", "mmcif", False),
                                                 ("1cbs.cif.gz", "mmcif", True), ("1lcd.pdb", "pdb", False)])
def test_format_is_read_from_the_content(file: str, fmt: str, gz: bool) -> None:
    data = (STRUCTURES / file).read_bytes()
    found, text, was_gz = ps.detect_format(data, file)
    assert (found, was_gz) == (fmt, gz)
    assert text == (gzip.decompress(data) if gz else data)


def test_a_pdb_named_file_holding_mmcif_is_mmcif_and_gzip_pdb_is_pdb() -> None:
    cif = (STRUCTURES / "1a8o.cif").read_bytes()
    assert ps.detect_format(cif, "1a8o.pdb")[0] == "mmcif"
    assert ps.detect_format(gzip.compress((STRUCTURES / "1a8o.pdb").read_bytes()), "x.cif")[:1] == ("pdb",)


def test_neither_pdb_nor_mmcif_and_a_damaged_gzip_are_one_line() -> None:
    assert error(ps.detect_format, b">sp|P0CG48|UBC_HUMAN\nMQIFVKTLTGK\n", "ubq.fasta") == (
        "structure 'ubq.fasta' is neither PDB nor mmCIF (no ATOM/HETATM records, no _atom_site table): give a PDB "
        "or mmCIF file, optionally gzip-compressed")
    assert error(ps.detect_format, gzip.compress(b"ATOM  ")[:12], "x.pdb.gz") == (
        "structure 'x.pdb.gz' is a damaged gzip file: give the file again")


def test_values_arrive_as_write_lines_files(tmp_path: Path) -> None:
    def file(text: str) -> Path:
        path = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        path.write_text(text)
        return path

    assert ps.one("force_field", file("amber99sb-ildn\n")) == "amber99sb-ildn"
    assert ps.optional("altloc", file("")) == ""
    assert error(ps.optional, "altloc", file("A\nB\n")) == "altloc holds a newline: give it as one line"
    assert ps.items("chains", file("A\n B \n"), 2) == ["A", "B"]
    assert ps.items("chains", file(""), 0) == []
    assert error(ps.items, "keep_heterogens", file("ZN\nCA\n"), 1) == (
        "an item of keep_heterogens holds a newline: give each as its own list item")
    assert ps.check_altloc("B") == "B"
    assert error(ps.check_altloc, "AB") == (
        "altloc 'AB' is not one letter: give the letter of an alternate location (e.g. A) or leave it empty for "
        "the first")


def test_command_line_defaults_and_switches() -> None:
    files = [f"--{v}=f" for v in ("name", "structure", "force_field", "chains", "keep_heterogens", "altloc")]
    a = ps.parser().parse_args([*files, "--chains_count", "0", "--keep_heterogens_count", "0"])
    assert (a.model, a.keep_water, a.replace_nonstandard, a.add_missing_atoms, a.add_missing_loops) == (
        1, False, True, True, False)
    a = ps.parser().parse_args([*files, "--chains_count", "1", "--keep_heterogens_count", "0", "--model", "2",
                                "--keep_water", "true", "--add_missing_loops", "true"])
    assert (a.model, a.keep_water, a.add_missing_loops) == (2, True, True)
    with pytest.raises(SystemExit):
        ps.parser().parse_args([*files, "--chains_count", "0", "--keep_heterogens_count", "0", "--keep_water", "1"])


# --- the PDB pdb2gmx gets ---------------------------------------------------------------------------------------


def test_pdb_columns_ter_between_blocks_and_waters_last() -> None:
    a = chain("A", ["MET", "GLN"])
    a.residues += [ps.Residue("ZN2+", 201, "", [ps.Atom("ZN", "Zn", (1.0, 2.0, 3.0))], "heterogen"),
                   ps.Residue("HOH", 301, "", [ps.Atom("O", "O", (0.0, 0.0, 0.0))], "water"),
                   ps.Residue("CL-", 202, "", [ps.Atom("CL", "Cl", (1.0, 1.0, 1.0))], "heterogen")]
    b = chain("B", ["DA", "DC"], start=5)
    text = ps.pdb_text([a, b], "t")
    records = [line for line in text.splitlines() if line[:6] in ("ATOM  ", "HETATM", "TER   ")]
    shape = [(line[:6].strip(), line[17:21].strip(), line[21], line[22:26].strip()) for line in records]
    assert shape == [("ATOM", "MET", "A", "1"), ("ATOM", "GLN", "A", "2"), ("TER", "GLN", "A", "2"),
                     ("HETATM", "ZN2+", "A", "201"), ("TER", "ZN2+", "A", "201"),
                     ("HETATM", "CL-", "A", "202"), ("TER", "CL-", "A", "202"),
                     ("ATOM", "DA", "B", "5"), ("ATOM", "DC", "B", "6"), ("TER", "DC", "B", "6"),
                     ("HETATM", "HOH", "A", "301"), ("TER", "HOH", "A", "301")]
    zn = records[3]
    assert zn[12:16] == "ZN  " and zn[30:54] == "   1.000   2.000   3.000" and zn[76:78] == "ZN"
    assert records[0][12:16] == " CA " and records[0][76:78] == " C"
    assert text.endswith("END\n") and "MODEL" not in text


def test_seqres_records_for_pdbfixer() -> None:
    c = chain("A", ["MET"])
    c.sequence = ["MET", "GLN", "ILE"] * 5
    lines = ps.seqres_records([c])
    assert lines[0].startswith("SEQRES   1 A   15  MET GLN ILE MET")
    assert lines[1].startswith("SEQRES   2 A   15  GLN ILE")


def test_what_a_pdb_file_cannot_hold() -> None:
    assert error(ps.check_pdb_limits, [chain("AB", ["ALA"])]) == (
        "chain 'AB' has a name of 2 characters, which a PDB file (and pdb2gmx) cannot hold: select chains with "
        "one-character names (input chains)")
    assert error(ps.check_pdb_limits, [chain("A", ["ALA"], start=10000)]) == (
        "residue ALA (chain A, residue 10000) is numbered outside -999..9999, which a PDB file cannot hold: renumber "
        "the structure")


# --- the force field <-> molecule check against real pdb2gmx ---------------------------------------------------


def test_the_residue_check_agrees_with_pdb2gmx_on_every_recorded_case() -> None:
    """Each verdict: ubiquitin with one residue renamed, given to the real pdb2gmx (record.py). The check must
    reject exactly the residue names pdb2gmx stopped on (3,048 cases, 2,464 rejected)."""
    recorded = json.loads((DATA / "pdb2gmx_verdicts.json").read_text())
    sequence = recorded["chain"].split()
    positions = recorded["positions"]
    disagree = []
    for v in recorded["verdicts"]:
        names = list(sequence)
        names[positions[v["where"]] - 1] = v["name"]
        try:
            ps.check_force_field(FFS[v["ff"]], [chain("A", names)], others)
            mine = "accept"
        except ps.TaskError:
            mine = "reject"
        if mine != v["pdb2gmx"]:
            disagree.append((v["ff"], v["where"], v["name"], mine, v.get("why")))
    assert len(recorded["verdicts"]) > 3000
    assert not disagree, disagree[:10]


def test_pdb2gmx_internal_names_resolve_per_force_field() -> None:
    amber, opls, charmm, gromos = (FFS[n] for n in ("amber99sb-ildn", "oplsaa", "charmm27", "gromos54a7"))
    assert ps.resolve(amber, "HIS", False, False) == (["HID", "HIE", "HIP"], "")
    assert ps.resolve(amber, "ALA", True, False) == (["NALA"], "")
    assert ps.resolve(amber, "DA", False, True) == (["DA3"], "")
    assert ps.resolve(amber, "CYS", False, False, True) == (["CYS", "CYX"], "")
    assert ps.resolve(opls, "LYS", False, False) == (["LYSH"], "")
    assert ps.resolve(charmm, "HIS", False, False) == (["HSD", "HSE", "HSP"], "")
    assert ps.resolve(gromos, "NA", False, False) == (["NA+"], "")  # pdb2gmx's tolerance of a missing sign
    assert ps.resolve(amber, "ARGN", False, False) == ([], "force field amber99sb-ildn has no residue type for ARGN")
    assert ps.resolve(opls, "MSE", False, False) == (
        [], "MSE is not in force field oplsaa's residue topology database (not found)")


def test_force_fields_that_build_nucleic_acids_come_from_the_files() -> None:
    facts = RECORDED["all"]
    assert sorted(n for n, f in facts.items() if f["dna"]) == [
        "amber03", "amber94", "amber96", "amber99", "amber99sb", "amber99sb-ildn", "amberGS"]
    assert ps.nucleic_problem(FFS["oplsaa"], "DNA") == "no DNA residues"
    assert ps.nucleic_problem(FFS["charmm27"], "DNA") == (
        "pdb2gmx's default starting terminus NH3+ of force field charmm27 needs atom N, which its entry DA lacks")
    dna = chain("B", ["DA", "DC", "DG", "DT"])
    assert error(ps.check_force_field, FFS["oplsaa"], [chain("A", ["MET", "GLN"]), dna], others) == (
        "chain B is DNA, which force field oplsaa cannot build (no DNA residues): choose a force field that can: "
        "amber99sb-ildn")
    assert ps.check_force_field(FFS["amber99sb-ildn"], [dna], others).residues == 4


def test_unknown_residue_and_kept_ligand_are_one_line() -> None:
    assert error(ps.check_force_field, FFS["oplsaa"], [chain("A", ["MET", "MSE", "GLN"])], others) == (
        "residue MSE (chain A, residue 2): MSE is not in force field oplsaa's residue topology database (not found) "
        "(pdb2gmx would stop): replace it (replace_nonstandard), remove it or choose a force field that has it")
    # in the residue database but of another type than its chain (calcium in a protein chain)
    assert error(ps.check_force_field, FFS["amber99sb-ildn"], [chain("A", ["MET", "CA", "GLN"])], others) == (
        "residue CA (chain A, residue 2) is of type 'Ion' in GROMACS's residuetypes.dat while its chain starts "
        "as 'Protein' (pdb2gmx would stop): remove it, or replace it by a standard residue (replace_nonstandard)")
    assert error(ps.check_force_field, FFS["amber99sb-ildn"], [chain("A", ["ARGN", "GLN"])], others) == (
        "residue ARGN (chain A, residue 1): force field amber99sb-ildn has no residue type for ARGN as a starting "
        "terminus (pdb2gmx would stop): replace it (replace_nonstandard), remove it or choose a force field that "
        "has it")
    ligand = chain("A", ["MET", "GLN"])
    ligand.residues.append(ps.Residue("REA", 200, "", [ps.Atom("C1", "C", (0.0, 0.0, 0.0))], "heterogen"))
    assert error(ps.check_force_field, FFS["amber99sb-ildn"], [ligand], others) == (
        "kept heterogen REA (chain A, residue 200): REA is not in force field amber99sb-ildn's residue topology "
        "database (not found): ligand parametrisation is out of scope (see docs/gromacs.md: acpype or OpenFF build "
        "its topology): remove it from keep_heterogens")


def test_a_5prime_phosphate_the_force_field_lacks_is_removed() -> None:
    """AMBER's DA5 has no P (pdb2gmx would stop on the atom): the 5' phosphate goes, and is reported."""
    dna = chain("B", ["DA", "DC"])
    dna.residues[0].atoms += [ps.Atom(n, n[0], (1.0, 1.0, 1.0)) for n in ("P", "OP1", "OP2")]
    checked = ps.check_force_field(FFS["amber99sb-ildn"], [dna], others)
    assert checked.phosphates_removed == ["DA B1"]
    assert [a.name for a in dna.residues[0].atoms] == ["CA"]


@pytest.mark.parametrize(("ff", "ion", "entry"), [
    ("amber99sb-ildn", "ZN", ("ZN", "ZN")), ("charmm27", "ZN", ("ZN2", "ZN")), ("gromos54a7", "ZN", ("ZN2+", "ZN")),
    ("oplsaa", "ZN", None), ("charmm27", "NA", ("SOD", "SOD")), ("charmm27", "CL", ("CLA", "CLA")),
    ("gromos54a7", "CL", ("CL-", "CL")), ("oplsaa", "CA", ("CA", "CA")), ("charmm27", "CA", ("CAL", "CAL")),
    ("amber99sb-ildn", "MG", ("MG", "MG")),
])
def test_kept_rcsb_ions_take_the_force_fields_names(ff: str, ion: str, entry: tuple[str, str] | None) -> None:
    assert ps.ion_entry(FFS[ff], ion) == entry


def test_kept_ions_are_renamed_or_refused() -> None:
    def with_ion(name: str) -> list[Any]:
        c = chain("A", ["MET", "GLN"])
        c.residues.append(ps.Residue(name, 201, "", [ps.Atom(name, name.title(), (9.0, 9.0, 9.0))], "heterogen"))
        return [c]

    chains = with_ion("ZN")
    checked = ps.check_force_field(FFS["charmm27"], chains, others)
    assert checked.renamed == [{"from": "ZN", "to": "ZN2", "chain": "A", "number": 201}]
    assert (chains[0].residues[-1].name, chains[0].residues[-1].atoms[0].name) == ("ZN2", "ZN")
    assert error(ps.check_force_field, FFS["oplsaa"], with_ion("ZN"), others) == (
        "kept ion ZN (Zn2+, chain A, residue 201) is not in force field oplsaa: remove ZN from keep_heterogens or "
        "choose a force field that has it: amber99sb-ildn, charmm27, gromos54a7")


def test_termini_patches_as_pdb2gmx_filters_them() -> None:
    opls = FFS["oplsaa"]
    assert [t.name for t in ps.filter_ter(opls.nter, "GLY")][:2] == ["GLY-NH3+", "GLY-ZWITTERION_NH3+"]
    assert ps.filter_ter(opls.nter, "ALA")[0].name == "NH3+"
    assert ps.filter_ter(opls.nter, "ALA")[-1].name == "None"
    assert ps.filter_ter(FFS["charmm27"].nter, "DA")[0].name == "NH3+"


def test_atoms_added_are_one_entry_per_residue() -> None:
    """PDBFixer reports a residue's missing heavy atoms and its missing terminal OXT apart (1DPX: LEU A129 lacks C
    and O, then OXT): the report joins them, keeping the order; insertion codes keep residues apart."""
    found = [(("A", "129", "", "LEU"), ["C", "O"]), (("B", "7", "", "MET"), ["SD", "CE"]),
             (("A", "129", "", "LEU"), ["OXT"]), (("B", "7", "", "MET"), ["CE"]),
             (("A", "52", "", "GLY"), ["O"]), (("A", "52", "A", "GLY"), ["O"])]
    assert ps.atoms_by_residue(found) == [
        {"residue": "LEU", "chain": "A", "number": "129", "atoms": ["C", "O", "OXT"]},
        {"residue": "MET", "chain": "B", "number": "7", "atoms": ["SD", "CE"]},
        {"residue": "GLY", "chain": "A", "number": "52", "atoms": ["O"]},
        {"residue": "GLY", "chain": "A", "number": "52", "atoms": ["O"]}]
    assert ps.atoms_by_residue([]) == []


def test_the_report_for_humans() -> None:
    data = {
        "structure": "1a8o.pdb", "format": "pdb", "gzip": False, "models": {"count": 1, "used": 1},
        "chains": {"present": ["A"], "kept": ["A"], "dropped": []},
        "altloc": {"present": [], "used": None, "atoms_removed": 0, "residues_with_another_letter": []},
        "hydrogens_removed": 0, "waters": {"removed": 88, "kept": 0},
        "heterogens": {"removed": [], "kept": []},
        "residues_replaced": [{"from": "MSE", "to": "MET", "chain": "A", "number": "151"}],
        "atoms_added": [{"residue": "MET", "chain": "A", "number": "151", "atoms": ["SD"]}],
        "missing_atoms_not_added": [], "residues_added": [], "missing_residues_not_added": [],
        "result": {"chains": [{"chain": "A"}], "residues": 70, "atoms": 556},
        "force_field": {"name": "amber99sb-ildn", "residues_checked": 70, "ions_renamed": []},
    }
    text = ps.report_text(data)
    assert "residues replaced: MSE->MET A151" in text
    assert "heavy atoms added: 1 in 1 residues (MET A151:SD)" in text
    assert "result: 1 chains, 70 residues, 556 atoms" in text
    assert len(text.splitlines()) == 11


# --- the real program in the gromacs image ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def image(podman_ready: None) -> str:
    return containers.build(containers.get("gromacs"))


Run = Callable[..., tuple[subprocess.CompletedProcess[str], Path]]


@pytest.fixture()
def prepare(image: str, tmp_path: Path) -> Run:
    """Run prepare-structure in the image on a structure of tests/data/structures/ (values as write_lines
    files), then, when it succeeded and ``pdb2gmx`` is set, ``gmx pdb2gmx`` on the prepared file."""
    runs = iter(range(1000))

    def run(structure: str, force_field: str = "amber99sb-ildn", chains: tuple[str, ...] = (),
            keep_heterogens: tuple[str, ...] = (), altloc: str = "", pdb2gmx: bool = True,
            data: bytes | None = None, **options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        folder = tmp_path / f"run{next(runs)}"  # a folder per run: a failed run must leave it empty
        folder.mkdir()
        folder.chmod(0o777)  # the image's user need not be root
        (folder / structure).write_bytes(data if data is not None else (STRUCTURES / structure).read_bytes())
        values = {"name": "t\n", "structure": f"/data/{structure}\n", "force_field": f"{force_field}\n",
                  "chains": "".join(f"{c}\n" for c in chains), "altloc": f"{altloc}\n" if altloc else "",
                  "keep_heterogens": "".join(f"{h}\n" for h in keep_heterogens)}
        for key, text in values.items():
            (folder / f"{key}.txt").write_text(text)
        args = [f"--{key}=/data/{key}.txt" for key in values]
        args += [f"--chains_count={len(chains)}", f"--keep_heterogens_count={len(keep_heterogens)}"]
        args += [f"--{key}={value}" for key, value in options.items()]
        script = 'prepare-structure "$@"'
        if pdb2gmx:
            script += (f' && gmx -quiet pdb2gmx -f t.prepared.pdb -o t.gro -p topol.top -ff {force_field} '
                       '-water tip3p -ignh > pdb2gmx.log 2>&1 || { s=$?; tail -20 pdb2gmx.log >&2; exit $s; }')
        proc = subprocess.run(["podman", "run", "--rm", "-v", f"{folder}:/data", "-w", "/data", image,
                               "bash", "-c", script, "prepare", *args], capture_output=True, text=True,
                              timeout=600, check=False)
        return proc, folder

    return run


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The task's failure: status 1 and exactly one line on stderr."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def report(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "t.preparation.json").read_text())
    return data


def residues_in(pdb: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for line in pdb.splitlines():
        if line[:6] in ("ATOM  ", "HETATM"):
            key = (line[21], line[22:27].strip(), line[17:21].strip())
            if not found or found[-1] != key:
                found.append(key)
    return found


def gro_residues(gro: str) -> int:
    lines = gro.splitlines()[2:-1]
    return len({(line[:5], line[5:10]) for line in lines}) if lines else 0


def test_mse_entry_becomes_met_and_goes_through_pdb2gmx(prepare: Run) -> None:
    proc, out = prepare("1a8o.pdb")
    assert proc.returncode == 0, proc.stderr
    r = report(out)
    assert [(x["from"], x["to"]) for x in r["residues_replaced"]] == [("MSE", "MET")] * 4
    assert r["waters"]["removed"] == 88
    pdb = (out / "t.prepared.pdb").read_text()
    assert "MSE" not in pdb and "HOH" not in pdb
    assert len(residues_in(pdb)) == r["result"]["residues"] == gro_residues((out / "t.gro").read_text())
    assert "residues replaced: MSE->MET" in (out / "t.preparation.txt").read_text()


def test_mmcif_prepares_to_the_same_structure_as_the_pdb_file(prepare: Run) -> None:
    proc, pdb_out = prepare("1a8o.pdb", pdb2gmx=False)
    assert proc.returncode == 0, proc.stderr
    atoms_pdb = [line for line in (pdb_out / "t.prepared.pdb").read_text().splitlines() if line.startswith("ATOM")]
    proc, cif_out = prepare("1a8o.cif")
    assert proc.returncode == 0, proc.stderr
    assert report(cif_out)["format"] == "mmcif"
    atoms_cif = [line for line in (cif_out / "t.prepared.pdb").read_text().splitlines() if line.startswith("ATOM")]
    assert atoms_cif == atoms_pdb


def test_gzip_mmcif_ligand_removed_by_default_refused_when_kept(prepare: Run) -> None:
    proc, out = prepare("1cbs.cif.gz")
    assert proc.returncode == 0, proc.stderr
    r = report(out)
    assert (r["format"], r["gzip"]) == ("mmcif", True)
    assert [h["name"] for h in r["heterogens"]["removed"]] == ["REA"]
    proc, out = prepare("1cbs.cif.gz", keep_heterogens=("REA",), pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: kept heterogen REA (chain A, residue 200): REA is not in force field amber99sb-ildn's residue "
        "topology database (not found): ligand parametrisation is out of scope (see docs/gromacs.md: acpype or "
        "OpenFF build its topology): remove it from keep_heterogens")
    assert not list(out.glob("t.prep*"))


def test_altlocs_missing_atoms_and_kept_ions(prepare: Run) -> None:
    proc, out = prepare("1dpx.pdb", force_field="charmm27", keep_heterogens=("CL",))
    assert proc.returncode == 0, proc.stderr
    r = report(out)
    assert r["altloc"]["present"] == ["A", "B"] and r["altloc"]["used"] == "A" and r["altloc"]["atoms_removed"] > 0
    # PDBFixer lists the missing backbone C, O and the terminal OXT apart: one entry for the residue
    assert r["atoms_added"] == [{"residue": "LEU", "chain": "A", "number": "129", "atoms": ["C", "O", "OXT"]}]
    assert "heavy atoms added: 3 in 1 residues (LEU A129:C+O+OXT)\n" in (out / "t.preparation.txt").read_text()
    assert {x["to"] for x in r["force_field"]["ions_renamed"]} == {"CLA"}
    pdb = (out / "t.prepared.pdb").read_text()
    assert all(line[16] == " " for line in pdb.splitlines() if line.startswith("ATOM"))
    assert " CLA " in (out / "t.gro").read_text()  # pdb2gmx took the force field's chloride
    proc, out = prepare("1dpx.pdb", altloc="C", pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: altloc 'C' is not in the chosen chains of '1dpx.pdb': choose one of the alternate locations "
        "present: A, B (or leave altloc empty for the first)")


def test_nmr_protein_dna_model_choice_and_force_field_check(prepare: Run) -> None:
    proc, out = prepare("1lcd.pdb", model="2")
    assert proc.returncode == 0, proc.stderr
    r = report(out)
    assert r["models"] == {"count": 3, "used": 2}
    assert r["hydrogens_removed"] > 0
    proc, out = prepare("1lcd.pdb", model="4", pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: model 4 is not in structure '1lcd.pdb', which has 3 models: choose model 1 to 3")
    proc, out = prepare("1lcd.pdb", force_field="oplsaa", pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: chain B is DNA, which force field oplsaa cannot build (no DNA residues): choose a force field that "
        "can: amber03, amber94, amber96, amber99, amber99sb, amber99sb-ildn, amberGS")
    proc, out = prepare("1lcd.pdb", chains=("Z",), pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: chain 'Z' is not in structure '1lcd.pdb' (model 1): choose among the chains present: B, C, A")
    assert not list(out.glob("t.prep*"))


def test_missing_loop_added_only_when_asked(prepare: Run) -> None:
    """1DPX without residues 50-52 (a gap, as in entries with disordered loops; its SEQRES still lists them)."""
    lines = (STRUCTURES / "1dpx.pdb").read_text().splitlines(keepends=True)
    gapped = "".join(line for line in lines if not (line.startswith("ATOM") and 50 <= int(line[22:26]) <= 52))
    proc, out = prepare("gap.pdb", data=gapped.encode(), pdb2gmx=False)
    assert proc.returncode == 0, proc.stderr
    assert report(out)["missing_residues_not_added"] == [
        {"chain": "A", "where": "internal", "after": "GLY49", "residues": ["SER", "THR", "ASP"]}]
    assert "WARNING: internal gaps not filled" in (out / "t.preparation.txt").read_text()
    proc, out = prepare("gap.pdb", data=gapped.encode(), add_missing_loops="true")
    assert proc.returncode == 0, proc.stderr
    assert report(out)["residues_added"] == [
        {"chain": "A", "where": "internal", "after": "GLY49", "residues": ["SER", "THR", "ASP"]}]
    assert [r for r in residues_in((out / "t.prepared.pdb").read_text()) if r[1] in ("50", "51", "52")] == [
        ("A", "50", "SER"), ("A", "51", "THR"), ("A", "52", "ASP")]


def test_not_a_structure_is_one_line_and_writes_nothing(prepare: Run) -> None:
    proc, out = prepare("notes.pdb", data=b"just some notes\n", pdb2gmx=False)
    assert one_line(proc) == (
        "ERROR: structure 'notes.pdb' is neither PDB nor mmCIF (no ATOM/HETATM records, no _atom_site table): give "
        "a PDB or mmCIF file, optionally gzip-compressed")
    assert not list(out.glob("t.*"))


def test_recorded_force_fields_are_the_images(image: str) -> None:
    """The recorded residue databases are what the program reads from the image's GROMACS."""
    code = ("import json, sys\n"
            "from importlib.machinery import SourceFileLoader\n"
            "from importlib.util import module_from_spec, spec_from_loader\n"
            "sys.path.insert(0, '/usr/local/bin')\n"
            "loader = SourceFileLoader('prepare_structure', '/usr/local/bin/prepare-structure')\n"
            "ps = module_from_spec(spec_from_loader('prepare_structure', loader))\n"
            "sys.modules['prepare_structure'] = ps\n"
            "loader.exec_module(ps)\n"
            "top = ps.gmx_force_field_dir()\n"
            "print(json.dumps({n: ps.load_force_field(top, n).to_json() for n in sys.argv[1:]}))\n")
    proc = subprocess.run(["podman", "run", "--rm", image, "python3", "-c", code, *sorted(FFS)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == RECORDED["force_fields"]
