#!/usr/bin/env python3
"""The checks and files of the snpEff tasks (wdl/tasks/annotation.wdl), installed in the snpeff image as
``snpeff-tasks``, beside gbk2gff3.py and snpeff_contigs.py (imported from the same folder).

Values reach this script as arguments (shell variables read from ``write_lines`` files; after ``--`` or as
``--option=value``, so that a value starting with '-' stays a value) or files, never pasted into its source.
Every bad input is one ``ERROR:`` line on stderr (problem and fix) and exit status 1.

  check-name   a name that becomes paths (genome_name, sample_name): one line, letters, digits, . _ -
  prepare      build_snpeff_db, before snpEff runs: check codon_table, recognise the annotation (GenBank, GFF3,
               GTF), write data/<genome>/genes.gff|genes.gtf (GenBank through gbk2gff3.py, every gene kept),
               check that some annotated sequence is a reference contig, write snpEff.config; print the format
  check-db     annotate_variants: the unpacked database holds the genome asked for
  unplaced     annotate_variants, after snpEff: no call snpEff could not place (another assembly)
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import gbk2gff3
import snpeff_contigs
from task_common import Command, TaskError, add_check_name, printable, run_main

SNPEFF_CONFIG = Path("/etc/snpeff/snpEff.config")
UNPLACED = re.compile(r"ERROR_(OUT_OF_CHROMOSOME_RANGE|CHROMOSOME_NOT_FOUND)")


def codon_tables(config: Iterable[str]) -> set[str]:
    """The codon table names a snpEff.config defines (``codon.<name> : ...`` lines)."""
    return {m[1] for m in (re.match(r"codon\.([^\s:]*)\s*:", line) for line in config) if m}


def check_codon_table(values: Sequence[str], known: set[str]) -> str | None:
    """``values``: the lines of write_lines(select_all([codon_table])): none (absent) or one known name."""
    if not values or list(values) == [""]:
        return None  # not given: an empty file (miniwdl) or one empty line (Cromwell's write_lines([]))
    if len(values) > 1 or values[0] not in known:
        raise TaskError(f"codon_table '{printable(values)}' is not a snpEff codon table (e.g. "
                        "Vertebrate_Mitochondrial, Bacterial_and_Plant_Plastid; see codon.* in snpEff.config)")
    return values[0]


def _open_text(path: Path) -> IO[str]:
    """A plain or gzip file as text (as ``gzip -cdf``)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", errors="replace")
    return path.open(errors="replace")


def annotation_format(path: Path) -> str:
    """genbank (LOCUS), gff3 (##gff-version 3) or gtf22 (the first 5 lines that are not # comments have 9
    tab-separated columns, the 9th with gene_id); TaskError otherwise."""
    with _open_text(path) as fh:
        first = fh.readline()
        if first.startswith("LOCUS"):
            return "genbank"
        if first.startswith("##gff-version 3"):
            return "gff3"
        lines = [first] if first and not first.startswith("#") else []
        for line in fh:
            if len(lines) >= 5:
                break
            if not line.startswith("#"):
                lines.append(line)
    for line in lines[:5]:
        cols = line.rstrip("\n").split("\t")
        if len(cols) != 9 or "gene_id" not in cols[8]:
            raise TaskError(f"annotation '{path.name}' is not GenBank (LOCUS), GFF3 (##gff-version 3) or GTF "
                            "(9 columns with gene_id)")
    return "gtf22"


def config_text(base: Iterable[str], genome: str, codon: str | None, contigs: Sequence[str],
                codon_lines: str = "") -> str:
    """snpEff.config of the database: snpEff's own without data.dir, then ours; every contig's codon table
    (``codon`` given) or the records' own (``codon_lines`` from gbk2gff3.py)."""
    out = [line if line.endswith("\n") else line + "\n" for line in base if not line.startswith("data.dir")]
    out += ["data.dir = ./data/\n", f"{genome}.genome : {genome}\n"]
    if codon is not None:
        out += [f"{genome}.{contig}.codonTable : {codon}\n" for contig in contigs]
    else:
        out.append(codon_lines)
    return "".join(out)


def prepare(annotation: Path, fai: Path, genome: str, codon_values: Sequence[str], label: str, data: Path,
            config: Path, snpeff_config: Path = SNPEFF_CONFIG) -> tuple[str, Path]:
    """Everything build_snpeff_db does before snpEff: return snpEff's format option and the genes file."""
    base = snpeff_config.read_text().splitlines()
    codon = check_codon_table(codon_values, codon_tables(base))
    data.mkdir(parents=True, exist_ok=True)
    kind = annotation_format(annotation)
    codon_lines = ""
    if kind == "genbank":
        # snpEff's own GenBank reader keeps only CDS: converted to GFF3 with every gene; the records'
        # /transl_table gives each sequence its codon table (a given codon_table must agree).
        genes = data / "genes.gff"
        extra = ["--codon-table", codon] if codon is not None else []
        gbk2gff3.run(["--fai", str(fai), "--gff", str(genes), "--fasta", "gbk_sequences.fa", "--summary",
                      "gbk_summary.tsv", "--label", label, "--genome", genome, "--codon-config", "codons.config",
                      *extra, "--", str(annotation)])
        codon_lines = Path("codons.config").read_text()
        kind = "gff3"
    else:
        genes = data / ("genes.gff" if kind == "gff3" else "genes.gtf")
        with _open_text(annotation) as src, genes.open("w") as dst:
            shutil.copyfileobj(src, dst)
    # Names first (seconds), before snpEff spends minutes building: some annotated sequence must be a contig.
    snpeff_contigs.precheck(genes, fai, label)  # its CheckError is a TaskError
    contigs = [line.split("\t", 1)[0] for line in fai.read_text().splitlines() if line]
    config.write_text(config_text(base, genome, codon, contigs, codon_lines))
    return kind, genes


def check_db(data: Path, genome: str) -> None:
    db = data / genome / "snpEffectPredictor.bin"
    if db.is_file() and db.stat().st_size > 0:
        return
    have = sorted(p.parent.name for p in data.glob("*/snpEffectPredictor.bin")) if data.is_dir() else []
    raise TaskError(f"the snpEff database has no genome '{genome}' (it has: {','.join(have) or 'none'}): give the "
                    "genome_name used to build it")


def unplaced(lines: Iterable[str], genome: str) -> None:
    """snpEff placed every call: none annotated ERROR_OUT_OF_CHROMOSOME_RANGE or ERROR_CHROMOSOME_NOT_FOUND."""
    count = 0
    first = ""
    for line in lines:
        if line.startswith("#") or not UNPLACED.search(line):
            continue
        count += 1
        if count == 1:
            cols = line.split("\t")
            first = f"{cols[0]}:{cols[1] if len(cols) > 1 else ''}"
    if count:
        raise TaskError(f"snpEff could not place {count} call(s) (the first at {first}) in genome '{genome}' (beyond "
                        "the end of the contig, or an unknown contig): the calls were made on another assembly than "
                        "the database's reference")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snpeff-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    add_check_name(sub)
    s = sub.add_parser("prepare", help="build_snpeff_db before snpEff: checks, genes file, snpEff.config")
    s.add_argument("--annotation", type=Path, required=True)
    s.add_argument("--fai", type=Path, required=True)
    s.add_argument("--genome", required=True)
    s.add_argument("--codon-table-file", type=Path, required=True,
                   help="write_lines(select_all([codon_table])): empty, or the table's name")
    s.add_argument("--label", required=True, help="the annotation's file name, for messages")
    s.add_argument("--data", type=Path, required=True, help="data/<genome> folder to write the genes file into")
    s.add_argument("--config", type=Path, required=True, help="snpEff.config to write")
    s.add_argument("--snpeff-config", type=Path, default=SNPEFF_CONFIG)
    s = sub.add_parser("check-db", help="the unpacked database holds the genome")
    s.add_argument("data", type=Path)
    s.add_argument("genome")
    s = sub.add_parser("unplaced", help="refuse an annotated VCF with calls snpEff could not place")
    s.add_argument("vcf", type=Path, help="annotated VCF, plain or bgzip")
    s.add_argument("genome")
    return p


def _prepare(args: argparse.Namespace) -> None:
    codon = args.codon_table_file.read_text().splitlines()
    kind, genes = prepare(args.annotation, args.fai, args.genome, codon, args.label, args.data, args.config,
                          args.snpeff_config)
    print(f"{kind}\t{genes}")


def _unplaced(args: argparse.Namespace) -> None:
    with _open_text(args.vcf) as fh:
        unplaced(fh, args.genome)


COMMANDS: dict[str, Command] = {
    "prepare": _prepare,
    "check-db": lambda a: check_db(a.data, a.genome),
    "unplaced": _unplaced,
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
