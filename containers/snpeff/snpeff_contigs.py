#!/usr/bin/env python3
"""Which contigs carry genes in a snpEff database, and do the reference and the calls match them?

snpEff gives every call on a contig it has no genes for a plausible-looking ``MODIFIER`` annotation
(intergenic, ``ERROR_CHROMOSOME_NOT_FOUND`` or ``ERROR_OUT_OF_CHROMOSOME_RANGE``) and exits 0, so a
contig naming mismatch between the reference and the annotation silently empties the annotation.
This script reads the built database itself (``snpEffectPredictor.bin``, snpEff 5.1's gzipped text
serialisation: CHROMOSOME and GENE records) and applies one rule, at two points:

``record`` (build_snpeff_db, before any read is aligned): count the genes per contig and biotype,
write ``contigs.tsv`` into the database and print ``snpEff database: ... genes on N contig(s)``.
Fail when the database has no genes, when no reference contig has genes, when a reference contig
without genes is evidently an annotated sequence under another name (same name once ``chr``,
versions and mitochondrion/plastid spellings are set aside, or the same length), or when a
reference contig and the annotated sequence of that name differ in length (another assembly).

``check`` (annotate_variants, before snpEff runs): every VCF contig carrying calls must have genes,
or be a reference contig without genes (unplaced scaffolds, decoys, ...) that is not evidently an
annotated sequence under another name. A VCF whose calls all fall on contigs without genes fails.

Contig names are compared as snpEff compares them: a leading ``chr``/``chromo``/``chromosome`` and
leading zeros do not count (``chr1`` is ``1``; ``chrM`` is ``M``, which is not ``MT``).
Every failure is one ``ERROR:`` line on stderr naming both names and exit status 1.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# task_common.py (containers/shared/, beside this script in the image): TaskError and the one-ERROR-line main.
from task_common import Command, TaskError, run_main

CODING = {"protein_coding", "IG_C_gene", "IG_D_gene", "IG_J_gene", "IG_V_gene",
          "TR_C_gene", "TR_D_gene", "TR_J_gene", "TR_V_gene"}
CATEGORY = {"Mt_tRNA": "tRNA", "Mt_rRNA": "rRNA", "rRNA": "rRNA"}
FIRST = ("protein_coding", "tRNA", "rRNA")
MITO = {"m", "mt", "mito", "mitochondrion", "mitochondria", "mitochondrial", "chrm"}
PLASTID = {"c", "pt", "cp", "chloroplast", "plastid", "chrc"}


class CheckError(TaskError):
    """A mismatch reported as one ERROR line."""


def simple_name(name: str) -> str:
    """The name snpEff files a contig under (org.snpeff.interval.ChromosomeSimpleName)."""
    prev = None
    name = name.strip()
    while prev != name:
        prev = name
        if name.lower() not in ("chromosome", "chromo", "chr"):
            for prefix in ("chromosome", "chromo", "chr"):
                for sep in (":", "_", "-", ""):
                    if name.lower().startswith(prefix + sep):
                        name = name[len(prefix + sep):]
        if name != "0" and name.startswith("0"):
            name = name[1:]
        name = name.strip()
    return name


def alias(name: str) -> str:
    """A looser key: the same sequence under the usual other spellings (M/MT, Pt/C, versions, UCSC)."""
    s = simple_name(name).lower()
    if s in MITO:
        return "mt"
    if s in PLASTID:
        return "pt"
    token = re.search(r"([a-z]{1,2}_?\d{5,})(?:v\d+|\.\d+)?", s)  # accession inside a UCSC name
    if token:
        return token[1]
    return re.sub(r"(\.\d+|v\d+)$", "", s)


@dataclass
class Contig:
    name: str  # as snpEff stores it
    length: int = 0  # 0: unknown
    biotypes: Counter[str] = field(default_factory=Counter)

    @property
    def genes(self) -> int:
        return sum(self.biotypes.values())


def read_database(path: Path) -> dict[str, Contig]:
    """Contigs of a snpEff 5.1 database with their lengths and gene biotypes, by snpEff name."""
    by_id: dict[str, Contig] = {}
    genes: list[tuple[str, str]] = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:1] != ["SnpEff"] or not header[1:2] or not header[1].startswith("5."):
            raise CheckError(f"'{path.name}' is not a snpEff 5 database: rebuild it with build_snpeff_db")
        for line in fh:
            kind, _, rest = line.partition("\t")
            if kind == "CHROMOSOME":
                f = rest.rstrip("\n").split("\t")
                by_id[f[0]] = Contig(name=f[4], length=int(f[3]) + 1)
            elif kind == "GENE":
                f = rest.rstrip("\n").split("\t")
                biotype = f[8] if len(f) > 8 and f[8] not in ("", "null") else "unknown_biotype"
                genes.append((f[1], biotype))
    for parent, biotype in genes:
        if parent in by_id:
            by_id[parent].biotypes[biotype] += 1
    return {c.name: c for c in by_id.values()}


def read_fai(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if len(f) >= 2 and f[1].isdigit():
            out[f[0]] = int(f[1])
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def quoted(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def describe(categories: Counter[str]) -> str:
    order = [c for c in FIRST if categories[c]] + sorted(
        (c for c in categories if c not in FIRST and categories[c]), key=lambda c: (-categories[c], c))
    return ", ".join(f"{categories[c]} {c}" for c in order)


def categorise(biotypes: Counter[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for biotype, n in biotypes.items():
        out["protein_coding" if biotype in CODING else CATEGORY.get(biotype, biotype)] += n
    return out


def read_summary(path: Path) -> dict[str, tuple[int, Counter[str]]]:
    """gbk2gff3.py --summary: sequence, length, genes, 'n category, ...' -> genes and categories."""
    out: dict[str, tuple[int, Counter[str]]] = {}
    for line in path.read_text().splitlines():
        f = line.split("\t")
        cats: Counter[str] = Counter()
        for item in f[3].split(", ") if f[3] != "no genes" else []:
            n, _, cat = item.partition(" ")
            cats[cat] += int(n)
        out[simple_name(f[0])] = (int(f[2]), cats)
    return out


def evidently_same(contig: str, length: int, orphans: list[Contig]) -> Contig | None:
    """An annotated sequence absent from the reference that is clearly ``contig`` under another name."""
    for o in orphans:
        if alias(o.name) == alias(contig) or (length and o.length == length):
            return o
    return None


def same_because(contig: str, length: int, other: Contig) -> str:
    if length and other.length == length:
        return f"{length} bp, as long as '{contig}'"
    return f"{other.length} bp" if other.length else "genes on it"


# -- record ----------------------------------------------------------------------------------------


def no_match(ref_order: list[str], annotated: list[str]) -> CheckError:
    """No reference contig is an annotated sequence: name both sides."""
    if len(ref_order) == 1 and len(annotated) == 1:
        return CheckError(f"reference contig '{ref_order[0]}' has no genes in the annotation, whose sequences "
                          f"are named '{annotated[0]}': rename one to match")
    return CheckError(f"no reference contig has genes in the annotation: the reference names its contigs "
                      f"{quoted(ref_order)} and the annotation {quoted(annotated)}: rename one to match")


def precheck(annotation: Path, fai: Path, label: str) -> None:
    """Before the build: some GFF3/GTF sequence with features must be a reference contig."""
    reference = read_fai(fai)
    ref_simple = {simple_name(r) for r in reference}
    features: Counter[str] = Counter()
    genes: Counter[str] = Counter()
    with annotation.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("##FASTA"):
                break
            if line.startswith("#"):
                continue
            f = line.split("\t", 3)
            if len(f) == 4:
                features[f[0]] += 1
                if f[2] == "gene":
                    genes[f[0]] += 1
    features = genes or features  # name the sequences with the most genes first
    if not features:
        raise CheckError(f"annotation '{label}' has no feature lines")
    if not any(simple_name(seqid) in ref_simple for seqid in features):
        raise no_match(sorted(reference, key=lambda r: (-reference[r], r)),
                       sorted(features, key=lambda n: (-features[n], n)))



def sequence_regions(annotation: Path | None) -> dict[str, int]:
    """Sequence lengths a GFF3 declares (##sequence-region name start end), by snpEff name."""
    out: dict[str, int] = {}
    if annotation is None:
        return out
    with annotation.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            f = line.split()
            if len(f) == 4 and f[0] == "##sequence-region" and f[3].isdigit():
                out[simple_name(f[1])] = int(f[3])
    return out


def record(db: Path, fai: Path, label: str, out: Path, summary: Path | None, annotation: Path | None = None) -> str:
    contigs = read_database(db)
    for name, length in sequence_regions(annotation).items():  # snpEff knows only the reference's lengths
        if name in contigs:
            contigs[name].length = length
    reference = read_fai(fai)
    ref_simple = {simple_name(r): r for r in reference}
    with_genes = [c for c in contigs.values() if c.genes]
    if not with_genes:
        raise CheckError(f"snpEff found no genes in annotation '{label}': give a GFF3 with gene/mRNA/exon "
                         "lines, a GTF with transcript_id and gene_id, or a GenBank file with features")
    covered = [c for c in with_genes if c.name in ref_simple]
    orphans = sorted((c for c in with_genes if c.name not in ref_simple), key=lambda c: (-c.genes, c.name))
    ref_order = sorted(reference, key=lambda r: (-reference[r], r))
    if not covered:
        raise no_match(ref_order, [o.name for o in orphans])
    for r in ref_order:
        c = contigs.get(simple_name(r))
        if c is not None and c.genes:
            if c.length and c.length != reference[r]:
                raise CheckError(f"reference contig '{r}' is {reference[r]} bp but the annotation's sequence "
                                 f"'{c.name}' is {c.length} bp: give the annotation of the reference's assembly")
            continue
        other = evidently_same(r, reference[r], orphans)
        if other is not None:
            raise CheckError(f"reference contig '{r}' has no genes in the annotation, whose sequence "
                             f"'{other.name}' ({same_because(r, reference[r], other)}) is not in the reference: "
                             "rename one to match")
    if summary is not None:  # GenBank: every gene the converter wrote must be in the database
        expected = read_summary(summary)
        categories: Counter[str] = Counter()
        for name, (n_genes, cats) in expected.items():
            got = contigs[name].genes if name in contigs else 0
            if got != n_genes:
                raise CheckError(f"snpEff kept {got} of the {n_genes} genes of sequence '{name}' in annotation "
                                 f"'{label}': see the build log")
            if name in ref_simple:
                categories.update(cats)
    else:
        categories = Counter()
        for c in with_genes:
            categories.update(categorise(c.biotypes))
    rows = ["#contig\tlength\tin_reference\tgenes\tbiotypes"]
    for r in ref_order:
        c = contigs.get(simple_name(r))
        bio = ",".join(f"{b}={n}" for b, n in sorted(c.biotypes.items())) if c else ""
        rows.append(f"{r}\t{reference[r]}\tyes\t{c.genes if c else 0}\t{bio}")
    for o in orphans:
        bio = ",".join(f"{b}={n}" for b, n in sorted(o.biotypes.items()))
        rows.append(f"{o.name}\t{o.length}\tno\t{o.genes}\t{bio}")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(rows) + "\n")
    tmp.replace(out)
    line = f"snpEff database: {describe(categories)} genes on {len(covered)} contig(s)"
    if orphans:
        genes = sum(o.genes for o in orphans)
        line += (f"; {genes} genes on {len(orphans)} annotated sequence(s) not in the reference "
                 f"(e.g. '{orphans[0].name}') are not used")
    return line


# -- check -----------------------------------------------------------------------------------------


@dataclass
class Manifest:
    contigs: dict[str, Contig]  # by snpEff name: annotated sequences and reference contigs
    reference: dict[str, int]  # reference contig -> length ({} when unknown)


def read_manifest(path: Path) -> Manifest:
    contigs: dict[str, Contig] = {}
    reference: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, length, in_ref, _genes, bio = (line.split("\t") + [""] * 5)[:5]
        c = Contig(name=simple_name(name), length=int(length or 0))
        for item in filter(None, bio.split(",")):
            b, _, n = item.partition("=")
            c.biotypes[b] = int(n)
        contigs[c.name] = c
        if in_ref == "yes":
            reference[name] = int(length or 0)
    return Manifest(contigs, reference)


def vcf_contigs(path: Path) -> tuple[Counter[str], dict[str, int]]:
    """Calls per contig, and contig lengths from the header."""
    calls: Counter[str] = Counter()
    lengths: dict[str, int] = {}
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open(path, "rt", encoding="utf-8", errors="replace") if gz else \
        path.open("r", encoding="utf-8", errors="replace")
    with opener as fh:
        for line in fh:
            if line.startswith("#"):
                m = re.match(r"##contig=<ID=([^,>]+)(?:.*?length=(\d+))?", line)
                if m and m[2]:
                    lengths[m[1]] = int(m[2])
                continue
            chrom = line.split("\t", 1)[0]
            if chrom.strip():
                calls[chrom] += 1
    return calls, lengths


def check(manifest: Manifest, vcf: Path) -> list[str]:
    """Raise CheckError on a mismatch; return notes (calls on contigs without genes)."""
    calls, header_lengths = vcf_contigs(vcf)
    with_genes = {n: c for n, c in manifest.contigs.items() if c.genes}
    ref_simple = {simple_name(r): r for r in manifest.reference}
    orphans = sorted((c for n, c in with_genes.items() if n not in ref_simple), key=lambda c: (-c.genes, c.name))
    annotated = sorted(with_genes.values(), key=lambda c: (-c.genes, c.name))
    uncovered = [v for v in calls if simple_name(v) not in with_genes]
    if calls and len(uncovered) == len(calls):
        v = max(calls, key=lambda k: calls[k])
        if len(calls) == 1:
            raise CheckError(f"VCF contig '{v}' ({plural(calls[v], 'call')}) has no genes in the annotation, "
                             f"whose sequences are named {quoted([c.name for c in annotated])}: rename one to match")
        raise CheckError(f"no VCF contig with calls has genes in the annotation: the VCF names its contigs "
                         f"{quoted(sorted(calls, key=lambda k: -calls[k]))} and the annotation "
                         f"{quoted([c.name for c in annotated])}: rename one to match")
    notes: list[str] = []
    for v in uncovered:
        length = manifest.reference.get(ref_simple.get(simple_name(v), ""), 0) or header_lengths.get(v, 0)
        other = evidently_same(v, length, orphans)
        if other is not None:
            raise CheckError(f"VCF contig '{v}' ({plural(calls[v], 'call')}) has no genes in the annotation, "
                             f"whose sequence '{other.name}' ({same_because(v, length, other)}) is not in the "
                             "reference: rename one to match")
        if manifest.reference and simple_name(v) not in ref_simple:
            raise CheckError(f"VCF contig '{v}' ({plural(calls[v], 'call')}) is not a contig of the reference the "
                             f"snpEff database was built with ({quoted(sorted(manifest.reference))}): annotate calls "
                             "made on that reference")
    if uncovered:
        n = sum(calls[v] for v in uncovered)
        notes.append(f"{n} call(s) on {len(uncovered)} contig(s) without genes ({quoted(uncovered)}) "
                     "are annotated as intergenic")
    return notes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="after the build: count genes per contig, write contigs.tsv, check names")
    rec.add_argument("--db", type=Path, required=True, help="data/<genome>/snpEffectPredictor.bin")
    rec.add_argument("--fai", type=Path, required=True, help="reference .fai")
    rec.add_argument("--out", type=Path, required=True, help="contigs.tsv to write")
    rec.add_argument("--summary", type=Path, help="gbk2gff3.py --summary of a GenBank annotation")
    rec.add_argument("--annotation", type=Path, help="the GFF3 built from: its ##sequence-region lengths")
    rec.add_argument("--label", default="annotation", help="annotation name in messages")
    pre = sub.add_parser("precheck", help="before the build: some annotated sequence must be a reference contig")
    pre.add_argument("--annotation", type=Path, required=True, help="GFF3 or GTF (plain)")
    pre.add_argument("--fai", type=Path, required=True, help="reference .fai")
    pre.add_argument("--label", default="annotation", help="annotation name in messages")
    chk = sub.add_parser("check", help="before annotating: every VCF contig with calls must match the database")
    chk.add_argument("--manifest", type=Path, help="contigs.tsv written by 'record'")
    chk.add_argument("--db", type=Path, help="snpEffectPredictor.bin (when there is no contigs.tsv)")
    chk.add_argument("--vcf", type=Path, required=True)
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.manifest is not None and args.manifest.is_file():
        manifest = read_manifest(args.manifest)
    elif args.db is not None:
        manifest = Manifest(read_database(args.db), {})
    else:
        raise CheckError("the snpEff database has no contigs.tsv: rebuild it with build_snpeff_db")
    for note in check(manifest, args.vcf):
        print(f"NOTE: {note}", file=sys.stderr)


COMMANDS: dict[str, Command] = {
    "precheck": lambda a: precheck(a.annotation, a.fai, a.label),
    "record": lambda a: print(record(a.db, a.fai, a.label, a.out, a.summary, a.annotation)),
    "check": _check,
}


def main(argv: list[str] | None = None) -> int:
    return run_main(_parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
