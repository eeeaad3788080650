"""Small inputs for the snpEff annotation tests: FASTA/.fai writers, tiny VCFs, real GenBank records.

The second annotation source is Debian's ``cct-examples`` package (CGView Comparison Tool examples):
GenBank records from NCBI of bacteria, plasmids, mitochondria and a 48-contig Prokka assembly. It is
downloaded once with ``apt-get download`` and unpacked under the batchpipes cache.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import UserError
from ..proc import run

log = logging.getLogger(__name__)

CCT_PACKAGE = "cct-examples"


def cct_examples() -> Path:
    """The unpacked ``cct-examples`` package (downloaded on first use); returns its root folder."""
    root = settings.CACHE_DIR / "cct-examples"
    done = root / ".unpacked"
    if done.exists():
        return root / "x"
    work = root / "download"
    shutil.rmtree(root, ignore_errors=True)
    work.mkdir(parents=True)
    run(["apt-get", "download", CCT_PACKAGE], what=f"apt-get download {CCT_PACKAGE}", cwd=work, capture=True)
    debs = sorted(work.glob(f"{CCT_PACKAGE}_*.deb"))
    if not debs:
        raise UserError(f"apt-get download {CCT_PACKAGE} produced no .deb: run 'apt-get update' first")
    run(["dpkg-deb", "-x", debs[-1], root / "x"], what=f"unpacking {debs[-1].name}")
    done.touch()
    return root / "x"


def cct_file(name: str) -> Path:
    """One file of cct-examples by its base name (e.g. ``prokka_multicontig.gbk``)."""
    hits = sorted(cct_examples().rglob(name))
    if not hits:
        raise UserError(f"{name} is not in {CCT_PACKAGE}")
    return hits[0]


@dataclass(frozen=True)
class GenbankRecord:
    locus: str
    version: str
    sequence: str
    feature_keys: list[str]


def genbank_records(path: Path) -> list[GenbankRecord]:
    """Name, sequence and feature keys of every record: a reader independent of the converter under test."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    records: list[GenbankRecord] = []
    locus = version = ""
    keys: list[str] = []
    seq: list[str] = []
    section = ""
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith("LOCUS"):
                locus, version, keys, seq, section = line.split()[1], "", [], [], ""
            elif line.startswith("VERSION") and len(line.split()) > 1:
                version = line.split()[1]
            elif line.startswith("FEATURES"):
                section = "features"
            elif line.startswith("ORIGIN"):
                section = "origin"
            elif line.startswith("//"):
                records.append(GenbankRecord(locus, version, "".join(seq).upper(), keys))
            elif section == "features" and len(line) > 5 and line[5] != " " and line.startswith("     "):
                keys.append(line.split()[0])
            elif section == "origin":
                seq.append("".join(line.split()[1:]))
    return records


def write_fasta(path: Path, contigs: Iterable[tuple[str, str]], width: int = 70) -> Path:
    """Write a FASTA and its samtools-style ``.fai``; return the FASTA path."""
    fai: list[str] = []
    offset = 0
    with path.open("w") as fh:
        for name, seq in contigs:
            header = f">{name}\n"
            fh.write(header)
            offset += len(header)
            fai.append(f"{name}\t{len(seq)}\t{offset}\t{width}\t{width + 1}")
            for i in range(0, len(seq), width):
                line = seq[i:i + width] + "\n"
                fh.write(line)
                offset += len(line)
    Path(f"{path}.fai").write_text("\n".join(fai) + "\n")
    return path


def write_vcf(path: Path, contigs: dict[str, int], calls: Iterable[tuple[str, int, str, str]]) -> Path:
    """A minimal VCF 4.2 with ``##contig`` lines and one PASS record per (contig, pos, ref, alt)."""
    lines = ["##fileformat=VCFv4.2"]
    lines += [f"##contig=<ID={name},length={length}>" for name, length in contigs.items()]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines += [f"{c}\t{p}\t.\t{r}\t{a}\t50\tPASS\t." for c, p, r, a in calls]
    path.write_text("\n".join(lines) + "\n")
    return path


def ann_entries(vcf: Path) -> dict[tuple[str, int], list[list[str]]]:
    """The ANN entries of every record, split into their fields, by (contig, position)."""
    out: dict[tuple[str, int], list[list[str]]] = {}
    opener = gzip.open if vcf.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(vcf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            info = dict(kv.partition("=")[::2] for kv in f[7].split(";"))
            out[(f[0], int(f[1]))] = [e.split("|") for e in info.get("ANN", "").split(",") if e]
    return out
