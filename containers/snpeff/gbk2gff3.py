#!/usr/bin/env python3
"""GenBank -> GFF3 + FASTA for ``snpEff build -gff3``, keeping every gene (coding and non-coding).

snpEff's own GenBank reader builds transcripts from CDS features only, so tRNA and rRNA genes vanish
and variants in them are called intergenic. This converter writes, for each gene of each record:

* ``gene``  with ``biotype`` (protein_coding, Mt_tRNA/Mt_rRNA in mitochondria, tRNA, rRNA, ...),
* one transcript per product feature (``mRNA`` for a CDS, ``transcript`` for an RNA) with the same
  biotype, its ``exon`` lines and, for coding transcripts, the ``CDS`` lines with their phase.

Each record's sequence gets the name the reference uses: the first of VERSION (accession.version),
LOCUS name and ACCESSION that is a contig of the reference ``.fai`` (compared as snpEff compares
names: a leading ``chr``/``chromosome`` and leading zeros do not count); when none is, VERSION (or
LOCUS when there is no VERSION) is kept and the contig check of the build reports the mismatch.

Standard library only: runs with Debian's python3 in the snpEff image and in the test suite.
Exit status 1 with one ``ERROR:`` line on stderr for input it cannot use; warnings are one line each.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Installed beside this script (/usr/local/bin): snpEff's own contig-name rule lives there, once, and
# task_common.py (containers/shared/): TaskError and the one-ERROR-line main.
from snpeff_contigs import read_fai, simple_name
from task_common import TaskError, run_main

log = logging.getLogger("gbk2gff3")

#: Feature keys that become non-coding transcripts, and the biotype snpEff 5.1 files them under.
#: snpEff's biotypes are a fixed list (org.snpeff.interval.BioType) with tRNA only as Mt_tRNA, and it
#: reads an unknown "tRNA" as protein_coding (a tRNA would get codon changes): outside mitochondria
#: tRNA and tmRNA genes are therefore misc_RNA in snpEff, while the counts still call them tRNA/tmRNA.
RNA_BIOTYPES = {
    "tRNA": "misc_RNA",
    "rRNA": "rRNA",
    "tmRNA": "misc_RNA",
    "ncRNA": "non_coding",
    "misc_RNA": "misc_RNA",
}
#: ncRNA /ncRNA_class values (INSDC vocabulary) that snpEff has a biotype for.
NCRNA_CLASSES = {
    "snRNA": "snRNA", "snoRNA": "snoRNA", "miRNA": "miRNA", "scRNA": "scRNA", "scaRNA": "scaRNA",
    "vault_RNA": "vaultRNA", "ribozyme": "ribozyme", "lncRNA": "lincRNA", "antisense_RNA": "antisense",
}
PRODUCT_KEYS = {"CDS", "mRNA", *RNA_BIOTYPES}
#: NCBI genetic code (/transl_table) -> snpEff 5.1 codon table (codon.* in snpEff.config).
CODON_TABLES = {
    1: "Standard", 2: "Vertebrate_Mitochondrial", 3: "Yeast_Mitochondrial", 4: "Mold_Mitochondrial",
    5: "Invertebrate_Mitochondrial", 6: "Ciliate_Nuclear", 9: "Echinoderm_Mitochondrial", 10: "Euplotid_Nuclear",
    11: "Bacterial_and_Plant_Plastid", 12: "Alternative_Yeast_Nuclear", 13: "Ascidian_Mitochondrial",
    14: "Alternative_Flatworm_Mitochondrial", 15: "Blepharisma_Macronuclear", 16: "Chlorophycean_Mitochondrial",
    21: "Trematode_Mitochondrial", 22: "Scenedesmus_obliquus_Mitochondrial", 23: "Thraustochytrium_Mitochondrial",
}


class InputError(TaskError):
    """Input this converter cannot use: reported as one ERROR line naming the annotation (``run``)."""


# -- locations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    start: int  # 1-based, inclusive
    end: int  # 1-based, inclusive
    strand: str  # "+" or "-"


class Unsupported(Exception):
    """A location snpEff cannot hold (remote reference, between-bases site)."""


def parse_location(text: str) -> list[Part]:
    """Parts of an INSDC location in biological (5'->3') order."""
    s = re.sub(r"\s+", "", text)
    parts, pos = _loc(s, 0, "+")
    if pos != len(s):
        raise Unsupported(f"cannot read location '{text}'")
    return parts


def _loc(s: str, i: int, strand: str) -> tuple[list[Part], int]:
    for op in ("complement(", "join(", "order("):
        if s.startswith(op, i):
            i += len(op)
            if op == "complement(":
                inner, i = _loc(s, i, "-" if strand == "+" else "+")
                inner = list(reversed(inner))
            else:
                inner = []
                while True:
                    sub, i = _loc(s, i, strand)
                    inner.extend(sub)
                    if i < len(s) and s[i] == ",":
                        i += 1
                        continue
                    break
            if i >= len(s) or s[i] != ")":
                raise Unsupported(f"unbalanced parentheses in location '{s}'")
            return inner, i + 1
    m = re.compile(r"<?(\d+)(?:\.\.>?(\d+)|\^(\d+)|\.(\d+))?>?").match(s, i)
    if m is None or m.end() == i:
        if re.match(r"[A-Za-z][\w.]*:", s[i:]):
            raise Unsupported("it refers to another record")
        raise Unsupported(f"cannot read location '{s}'")
    if m[3] is not None:
        raise Unsupported("it is a site between two bases")
    start = int(m[1])
    end = int(m[2] or m[4] or m[1])
    if end < start:
        raise Unsupported(f"range {start}..{end} runs backwards")
    return [Part(start, end, strand)], m.end()


# -- GenBank records -------------------------------------------------------------------------------


@dataclass
class Feature:
    key: str
    location: str
    qualifiers: dict[str, list[str]] = field(default_factory=dict)

    def q(self, name: str) -> str:
        values = self.qualifiers.get(name)
        return values[0] if values else ""

    def has(self, name: str) -> bool:
        return name in self.qualifiers


@dataclass
class Record:
    locus: str
    length: int
    circular: bool
    accession: str = ""
    version: str = ""
    features: list[Feature] = field(default_factory=list)
    sequence: str = ""
    has_contig: bool = False

    @property
    def names(self) -> list[str]:
        """Candidate sequence names in order of preference."""
        out: list[str] = []
        for name in (self.version, self.locus, self.accession):
            if name and name not in out:
                out.append(name)
        return out

    def genetic_code(self) -> int | None:
        """The /transl_table most CDS of the record give (None when they give none)."""
        codes = Counter(int(f.q("transl_table")) for f in self.features
                        if f.key == "CDS" and f.q("transl_table").isdigit())
        return codes.most_common(1)[0][0] if codes else None

    @property
    def mitochondrial(self) -> bool:
        return any("mitochondri" in v.lower() for f in self.features if f.key == "source"
                   for v in f.qualifiers.get("organelle", []))


_LOCUS = re.compile(r"^LOCUS\s+(\S+)\s+(\d+)\s+(?:bp|aa)\b(.*)$")
_FEATURE = re.compile(r"^ {5}(\S+)\s+(\S.*)$")


def open_text(path: Path) -> TextIO:
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def read_genbank(handle: TextIO) -> list[Record]:
    """Every record of a (multi-record) GenBank flat file."""
    records: list[Record] = []
    rec: Record | None = None
    section = ""
    seq: list[str] = []
    feat: Feature | None = None
    qual: list[str] | None = None  # [name, raw value] of the qualifier being read
    for lineno, raw in enumerate(handle, 1):
        line = raw.rstrip("\r\n")
        if rec is None:
            if not line.strip():
                continue
            m = _LOCUS.match(line)
            if not line.startswith("LOCUS"):
                if lineno == 1:
                    raise InputError("it is not GenBank: the first line does not start with LOCUS")
                raise InputError(f"line {lineno}: expected LOCUS after '//'")
            if m is None:
                # LOCUS with name and length run together ("LOCUS       NAME123456 bp")
                m2 = re.match(r"^LOCUS\s+(\S+?)(\d+)\s+(?:bp|aa)\b(.*)$", line)
                if m2 is None:
                    raise InputError(f"line {lineno}: cannot read the LOCUS line")
                m = m2
            rec = Record(locus=m[1], length=int(m[2]), circular="circular" in m[3].lower())
            section, seq, feat, qual = "header", [], None, None
            continue
        if line.startswith("//"):
            _close_qualifier(feat, qual)
            rec.sequence = "".join(seq).upper()
            records.append(rec)
            rec = None
            continue
        if line[:1].strip():  # a keyword in column 1 starts a new section
            _close_qualifier(feat, qual)
            feat, qual = None, None
            word = line.split()[0]
            if word == "FEATURES":
                section = "features"
            elif word == "ORIGIN":
                section = "origin"
            elif word == "CONTIG":
                section, rec.has_contig = "contig", True
            else:
                section = "header"
                if word == "VERSION" and len(line.split()) > 1:
                    rec.version = line.split()[1]
                elif word == "ACCESSION" and len(line.split()) > 1:
                    rec.accession = line.split()[1]
            continue
        if section == "features":
            m = _FEATURE.match(line)
            if m:
                _close_qualifier(feat, qual)
                qual = None
                feat = Feature(m[1], m[2].strip())
                rec.features.append(feat)
                continue
            if feat is None:
                continue
            body = line.strip()
            if qual is not None and not _qualifier_done(qual[1]):
                qual[1] += " " + body
                continue
            if body.startswith("/"):
                _close_qualifier(feat, qual)
                name, eq, value = body[1:].partition("=")
                qual = [name, value if eq else ""]
            elif qual is None:  # location continues on the next line
                feat.location += body
        elif section == "origin":
            seq.append(line[10:].replace(" ", ""))
    if rec is not None:
        raise InputError(f"record {rec.locus} does not end with '//': the file is truncated")
    return records


def _qualifier_done(value: str) -> bool:
    return not value.startswith('"') or (len(value) > 1 and value.endswith('"') and value.count('"') % 2 == 0)


def _close_qualifier(feat: Feature | None, qual: list[str] | None) -> None:
    if feat is None or qual is None:
        return
    value = qual[1]
    if value.startswith('"'):
        value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
        value = value.replace('""', '"')
    feat.qualifiers.setdefault(qual[0], []).append(value)


# -- gene models -----------------------------------------------------------------------------------


@dataclass
class Transcript:
    kind: str  # GFF3 type: mRNA or transcript
    biotype: str  # as snpEff knows it
    category: str  # as counted: protein_coding, tRNA, rRNA, pseudogene, ...
    exons: list[Part]
    cds: list[Part] = field(default_factory=list)
    codon_start: int = 1
    protein_id: str = ""


@dataclass
class Gene:
    gene_id: str
    name: str
    strand: str
    start: int
    end: int
    biotype: str = ""
    category: str = ""
    pseudo: bool = False
    locus_tag: str = ""
    gene_name: str = ""
    transcripts: list[Transcript] = field(default_factory=list)


@dataclass
class Skipped:
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.reasons[reason] += 1


def rna_biotype(feat: Feature, mito: bool) -> tuple[str, str]:
    """(snpEff biotype, category counted) of an RNA feature."""
    if feat.key == "ncRNA":
        cls = feat.q("ncRNA_class")
        return NCRNA_CLASSES.get(cls, "non_coding"), cls or "ncRNA"
    if mito and feat.key in ("tRNA", "rRNA"):
        return "Mt_" + feat.key, feat.key
    return RNA_BIOTYPES[feat.key], feat.key


def _span(parts: list[Part]) -> tuple[int, int]:
    return min(p.start for p in parts), max(p.end for p in parts)


def _wraps(parts: list[Part]) -> bool:
    """Parts out of order along their strand: the feature crosses the origin of a circular sequence."""
    for a, b in zip(parts, parts[1:], strict=False):
        if (a.strand == "+" and b.start < a.start) or (a.strand == "-" and b.start > a.start):
            return True
    return False


def build_genes(rec: Record, skipped: Skipped) -> list[Gene]:
    """Group the record's gene, CDS, mRNA and RNA features into genes with transcripts."""
    genes: list[Gene] = []
    used_ids: Counter[str] = Counter()

    def new_id(base: str) -> str:
        base = base or "gene"
        used_ids[base] += 1
        return base if used_ids[base] == 1 else f"{base}.{used_ids[base]}"

    def parts_of(feat: Feature) -> list[Part] | None:
        try:
            parts = parse_location(feat.location)
        except Unsupported as exc:
            skipped.add(f"{feat.key} at {feat.location[:40]}: {exc}")
            return None
        if len({p.strand for p in parts}) > 1:
            skipped.add(f"{feat.key} {_label(feat)}: trans-spliced across both strands")
            return None
        if _wraps(parts):
            why = "trans-spliced" if feat.has("trans_splicing") or not rec.circular else \
                f"crosses the origin of circular {rec.locus}"
            skipped.add(f"{feat.key} {_label(feat)}: {why}")
            return None
        if max(p.end for p in parts) > len(rec.sequence):
            skipped.add(f"{feat.key} {_label(feat)}: beyond the end of the sequence")
            return None
        return parts

    for feat in rec.features:
        if feat.key != "gene":
            continue
        parts = parts_of(feat)
        if parts is None:
            continue
        start, end = _span(parts)
        label = _label(feat)
        genes.append(Gene(gene_id=new_id(feat.q("locus_tag") or feat.q("gene") or f"gene_{start}"),
                          name=label or f"gene_{start}", strand=parts[0].strand, start=start, end=end,
                          pseudo=feat.has("pseudo") or feat.has("pseudogene"),
                          locus_tag=feat.q("locus_tag"), gene_name=feat.q("gene")))

    # Index the gene features: a product looks only at genes that can be its own.
    by_tag: dict[str, list[Gene]] = {}
    by_name: dict[str, list[Gene]] = {}
    for g in genes:
        by_tag.setdefault(g.locus_tag, []).append(g)
        by_name.setdefault(g.gene_name, []).append(g)
    products = [f for f in rec.features if f.key in PRODUCT_KEYS]
    mrnas: dict[int, list[tuple[Feature, list[Part]]]] = {}
    for feat in products:
        parts = parts_of(feat)
        if parts is None:
            continue
        start, end = _span(parts)
        tag, gname = feat.q("locus_tag"), feat.q("gene")
        if tag:
            candidates = by_tag.get(tag, []) + by_tag.get("", [])
        else:
            candidates = by_name.get(gname, []) + by_name.get("", []) if gname else genes
        gene = _find_gene(candidates, feat, parts[0].strand, start, end)
        if gene is None:
            gene = Gene(gene_id=new_id(feat.q("locus_tag") or feat.q("gene") or f"{feat.key}_{start}"),
                        name=_label(feat) or f"{feat.key}_{start}", strand=parts[0].strand, start=start, end=end,
                        locus_tag=feat.q("locus_tag"), gene_name=feat.q("gene"))
            genes.append(gene)
            by_tag.setdefault(gene.locus_tag, []).append(gene)
            by_name.setdefault(gene.gene_name, []).append(gene)
        gene.start, gene.end = min(gene.start, start), max(gene.end, end)
        pseudo = gene.pseudo or feat.has("pseudo") or feat.has("pseudogene")
        if feat.key == "mRNA":
            mrnas.setdefault(id(gene), []).append((feat, parts))
        elif feat.key == "CDS":
            if pseudo:
                gene.transcripts.append(Transcript("transcript", "pseudogene", "pseudogene", parts))
            else:
                codon_start = int(feat.q("codon_start")) if feat.q("codon_start") in ("1", "2", "3") else 1
                gene.transcripts.append(Transcript("mRNA", "protein_coding", "protein_coding", parts, cds=parts,
                                                   codon_start=codon_start, protein_id=feat.q("protein_id")))
        else:
            biotype, category = ("pseudogene", "pseudogene") if pseudo else rna_biotype(feat, rec.mitochondrial)
            gene.transcripts.append(Transcript("transcript", biotype, category, parts))

    # An mRNA gives the exons (with UTRs) of the CDS it contains.
    for gene in genes:
        for _feat, parts in mrnas.get(id(gene), []):
            start, end = _span(parts)
            coding = [t for t in gene.transcripts if t.cds and t.exons is t.cds
                      and start <= _span(t.cds)[0] and _span(t.cds)[1] <= end]
            if coding:
                coding[0].exons = parts
            else:
                kind = "pseudogene" if gene.pseudo else "processed_transcript"
                gene.transcripts.append(Transcript("transcript", kind, kind, parts))

    kept: list[Gene] = []
    for gene in genes:
        if not gene.transcripts:
            if gene.pseudo:
                gene.transcripts.append(Transcript("transcript", "pseudogene", "pseudogene",
                                                   [Part(gene.start, gene.end, gene.strand)]))
            else:
                skipped.add("gene features without a CDS or RNA feature")
                continue
        coding = [t for t in gene.transcripts if t.cds]
        first = coding[0] if coding else gene.transcripts[0]
        gene.biotype, gene.category = first.biotype, first.category
        kept.append(gene)
    return kept


def _label(feat: Feature) -> str:
    return feat.q("gene") or feat.q("locus_tag") or feat.q("product")


def _find_gene(genes: list[Gene], feat: Feature, strand: str, start: int, end: int) -> Gene | None:
    tag, name = feat.q("locus_tag"), feat.q("gene")
    best: Gene | None = None
    for g in genes:
        if g.strand != strand or not (g.start <= start and end <= g.end):
            continue
        if tag and g.locus_tag:
            if tag != g.locus_tag:
                continue
        elif name and g.gene_name:
            if name != g.gene_name:
                continue
        elif (g.locus_tag or g.gene_name) and (tag or name):
            continue
        if best is None or (g.end - g.start) < (best.end - best.start):
            best = g
    return best


# -- names and output ------------------------------------------------------------------------------


def choose_name(rec: Record, reference: dict[str, int]) -> str:
    by_simple = {simple_name(c): c for c in reference}
    for name in rec.names:
        if name in reference:
            return name
        if simple_name(name) in by_simple:
            return by_simple[simple_name(name)]
    return rec.names[0]


def gff_escape(value: str) -> str:
    out = []
    for ch in value:
        if ch in ";=&,%\t\n\r" or ord(ch) < 32:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def gff_lines(seqid: str, genes: list[Gene]) -> list[str]:
    def row(kind: str, start: int, end: int, strand: str, phase: str, attrs: dict[str, str]) -> str:
        text = ";".join(f"{k}={gff_escape(v)}" for k, v in attrs.items())
        return "\t".join([gff_escape(seqid), "batchpipes", kind, str(start), str(end), ".", strand, phase, text])

    lines: list[str] = []
    taken: set[str] = {g.gene_id for g in genes}
    for gene in sorted(genes, key=lambda g: (g.start, g.end, g.gene_id)):
        gid = gene.gene_id
        lines.append(row("gene", gene.start, gene.end, gene.strand, ".",
                         {"ID": gid, "Name": gene.name, "biotype": gene.biotype}))
        for n, tr in enumerate(gene.transcripts, 1):
            tid = tr.protein_id if tr.protein_id and tr.protein_id not in taken else f"{gid}.t{n}"
            taken.add(tid)
            start, end = _span(tr.exons)
            lines.append(row(tr.kind, start, end, gene.strand, ".",
                             {"ID": tid, "Parent": gid, "Name": gene.name, "biotype": tr.biotype}))
            for k, ex in enumerate(tr.exons, 1):
                lines.append(row("exon", ex.start, ex.end, gene.strand, ".", {"ID": f"{tid}.exon{k}", "Parent": tid}))
            done, first = 0, tr.codon_start - 1
            for k, cds in enumerate(tr.cds, 1):
                phase = first if k == 1 else (3 - (done - first) % 3) % 3
                lines.append(row("CDS", cds.start, cds.end, gene.strand, str(phase),
                                 {"ID": f"{tid}.cds{k}", "Parent": tid}))
                done += cds.end - cds.start + 1
    return lines


def codon_tables(records: list[Record], reference: dict[str, int], given: str | None) -> dict[str, str]:
    """snpEff codon table of each record with CDS, by sequence name, from its /transl_table.

    A given ``codon_table`` must agree with every record's code; an NCBI code snpEff lacks is an error.
    """
    tables: dict[str, str] = {}
    for rec in records:
        code = rec.genetic_code()
        if code is None:
            continue
        name = choose_name(rec, reference)
        if code not in CODON_TABLES:
            raise InputError(f"sequence '{name}' is coded with /transl_table={code}, which snpEff 5.1 has no codon "
                             "table for")
        table = CODON_TABLES[code]
        if given is not None and given != table:
            raise InputError(f"sequence '{name}' is coded with /transl_table={code} ({table}) but codon_table is "
                             f"'{given}': give codon_table {table} or leave it unset")
        tables[name] = table
    return tables


def convert(annotation: Path, fai: Path | None, gff_out: Path, fasta_out: Path,
            codon_table: str | None = None) -> tuple[list[str], Counter[str], dict[str, str]]:
    """Write GFF3 and FASTA; return one summary line per record, gene counts by biotype, codon tables."""
    with open_text(annotation) as fh:
        records = read_genbank(fh)
    if not records:
        raise InputError("it holds no GenBank record")
    reference = read_fai(fai) if fai else {}
    tables = codon_tables(records, reference, codon_table)
    gff_tmp, fasta_tmp = gff_out.with_name(gff_out.name + ".tmp"), fasta_out.with_name(fasta_out.name + ".tmp")
    try:
        summaries, totals = _write(records, reference, gff_tmp, fasta_tmp)
    except BaseException:
        gff_tmp.unlink(missing_ok=True)
        fasta_tmp.unlink(missing_ok=True)
        raise
    os.replace(gff_tmp, gff_out)
    os.replace(fasta_tmp, fasta_out)
    return summaries, totals, tables


def _write(records: list[Record], reference: dict[str, int], gff_tmp: Path,
           fasta_tmp: Path) -> tuple[list[str], Counter[str]]:
    totals: Counter[str] = Counter()
    summaries: list[str] = []
    seen: dict[str, str] = {}
    with gff_tmp.open("w") as gff, fasta_tmp.open("w") as fasta:
        gff.write("##gff-version 3\n")
        body: list[str] = []
        for rec in records:
            if not rec.sequence:
                why = "it is a CONTIG (assembly) record" if rec.has_contig else "it has no ORIGIN section"
                raise InputError(f"record {rec.locus} has no sequence ({why}): "
                                 "download the GenBank file with its sequence ('GenBank (full)' at NCBI)")
            if len(rec.sequence) != rec.length:
                raise InputError(f"record {rec.locus}: LOCUS says {rec.length} bp but the sequence has "
                                 f"{len(rec.sequence)}: the file is damaged")
            seqid = choose_name(rec, reference)
            if seqid in reference and reference[seqid] != len(rec.sequence):
                raise InputError(f"reference contig '{seqid}' is {reference[seqid]} bp but the annotation's sequence "
                                 f"'{rec.names[0]}' is {len(rec.sequence)} bp: give the annotation of the reference's "
                                 "assembly")
            if seqid in seen:
                raise InputError(f"records {seen[seqid]} and {rec.locus} have the same name '{seqid}'")
            seen[seqid] = rec.locus
            skipped = Skipped()
            genes = build_genes(rec, skipped)
            counts = Counter(g.category for g in genes)
            totals.update(counts)
            gff.write(f"##sequence-region {gff_escape(seqid)} 1 {len(rec.sequence)}\n")
            body.extend(gff_lines(seqid, genes))
            fasta.write(f">{seqid}\n")
            for i in range(0, len(rec.sequence), 60):
                fasta.write(rec.sequence[i:i + 60] + "\n")
            described = ", ".join(f"{n} {b}" for b, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            summaries.append(f"{seqid}\t{len(rec.sequence)}\t{len(genes)}\t{described or 'no genes'}")
            for reason, n in sorted(skipped.reasons.items()):
                log.warning("%s: skipped %d x %s", seqid, n, reason)
        gff.write("\n".join(body) + ("\n" if body else ""))
    if not totals:
        raise InputError("has no gene, CDS, tRNA, rRNA or other RNA features: give a GenBank file with its "
                         "annotation (features), not only the sequence")
    return summaries, totals


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.set_defaults(command="gbk2gff3")  # no subcommands: the name an OSError's ERROR line starts with
    parser.add_argument("annotation", type=Path, help="GenBank flat file, plain or gzip")
    parser.add_argument("--fai", type=Path, help="reference .fai: records are named as its contigs")
    parser.add_argument("--gff", type=Path, required=True, help="GFF3 to write")
    parser.add_argument("--fasta", type=Path, required=True, help="FASTA of the records' sequences to write")
    parser.add_argument("--summary", type=Path, help="TSV to write: sequence, length, genes, genes by biotype")
    parser.add_argument("--label", default="", help="name of the annotation in messages (default: its file name)")
    parser.add_argument("--codon-table", help="the codon_table given: must agree with the records' /transl_table")
    parser.add_argument("--genome", default="", help="snpEff genome name, for --codon-config")
    parser.add_argument("--codon-config", type=Path,
                        help="snpEff.config lines to write: the codon table of each sequence from its /transl_table")
    return parser


def run(argv: list[str]) -> None:
    """Convert as the command line ``argv`` says; a TaskError naming the annotation for input it cannot use."""
    _convert(_parser().parse_args(argv))


def _convert(args: argparse.Namespace) -> None:
    logging.basicConfig(format="WARNING: %(message)s", level=logging.WARNING, stream=sys.stderr)
    label = args.label or args.annotation.name
    try:
        summaries, _totals, tables = convert(args.annotation, args.fai, args.gff, args.fasta, args.codon_table)
    except (InputError, UnicodeDecodeError) as exc:
        sep = " " if str(exc).startswith("has no gene") else ": "
        raise TaskError(f"annotation '{label}'{sep}{exc}") from exc
    if args.summary:
        args.summary.write_text("".join(s + "\n" for s in summaries))
    if args.codon_config:
        args.codon_config.write_text("".join(f"{args.genome}.{name}.codonTable : {table}\n"
                                             for name, table in tables.items() if table != "Standard"))
    used = sorted({t for t in tables.values() if t != "Standard"})
    if used and args.codon_table is None:
        print(f"codon tables from the annotation's /transl_table: {', '.join(used)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    return run_main(_parser(), {"gbk2gff3": _convert}, argv)


if __name__ == "__main__":
    sys.exit(main())
