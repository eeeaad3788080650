"""snpEff annotation: complete databases, contig-name mismatches caught, hostile names refused.

Two kinds of tests:

* the helper scripts of ``containers/snpeff`` (GenBank -> GFF3, the contig rule), run directly;
* the two tasks of ``wdl/tasks/annotation.wdl`` run one at a time under miniwdl in the real snpEff
  image, on the bundled human mitochondrion, on GenBank records of Debian's ``cct-examples``
  (a 48-contig Prokka assembly, plasmids, a record without features) and on tiny VCFs written here.
"""

from __future__ import annotations

import gzip
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, settings
from batchpipes.testdata import annotation as td
from batchpipes.testdata import genbank
from conftest import RunTask, TaskFailed
from scriptload import load_script

WDL = settings.REPO_ROOT / "wdl" / "tasks" / "annotation.wdl"
SNPEFF_DIR = settings.CONTAINERS_DIR / "snpeff"
BUNDLED = settings.INPUTS_DIR / "genomics" / "annotation.gbk.gz"
MITO = "Vertebrate_Mitochondrial"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


gbk2gff3 = load_script(SNPEFF_DIR / "gbk2gff3.py")
snpeff_contigs = load_script(SNPEFF_DIR / "snpeff_contigs.py")


def bundled_record() -> genbank.Record:
    return genbank.parse(gzip.open(BUNDLED, "rt").read())


# -- the helper scripts, without containers ------------------------------------------------------


@pytest.mark.parametrize(("location", "parts"), [
    ("100..200", [(100, 200, "+")]),
    ("complement(100..200)", [(100, 200, "-")]),
    ("join(1..10,20..30)", [(1, 10, "+"), (20, 30, "+")]),
    ("complement(join(1..10,20..30))", [(20, 30, "-"), (1, 10, "-")]),
    ("join(complement(20..30),complement(1..10))", [(20, 30, "-"), (1, 10, "-")]),
    ("order(1..10, 20..30)", [(1, 10, "+"), (20, 30, "+")]),
    ("<1..>99", [(1, 99, "+")]),
    ("42", [(42, 42, "+")]),
])
def test_locations(location, parts):
    assert [(p.start, p.end, p.strand) for p in gbk2gff3.parse_location(location)] == parts


@pytest.mark.parametrize("location", ["J00194.1:100..202", "join(1..10,AB000001.1:5..9)", "102^103", "join(1..10"])
def test_unsupported_locations(location):
    with pytest.raises(gbk2gff3.Unsupported):
        gbk2gff3.parse_location(location)


def test_bundled_genbank_keeps_every_gene(tmp_path):
    rec = bundled_record()
    kinds = [f.kind for f in rec.features]
    summaries, totals, _ = gbk2gff3.convert(BUNDLED, None, tmp_path / "g.gff", tmp_path / "s.fa")
    assert totals == {"protein_coding": kinds.count("CDS"), "tRNA": kinds.count("tRNA"), "rRNA": kinds.count("rRNA")}
    assert totals == {"protein_coding": 13, "tRNA": 22, "rRNA": 2}
    gff = [ln.split("\t") for ln in (tmp_path / "g.gff").read_text().splitlines() if not ln.startswith("#")]
    genes = {dict(kv.split("=") for kv in f[8].split(";"))["Name"]: f for f in gff if f[2] == "gene"}
    trnf = next(f for f in rec.features if f.kind == "tRNA")
    assert genes[trnf.gene][3:5] == [str(trnf.start + 1), str(trnf.end)]
    assert "biotype=Mt_tRNA" in genes[trnf.gene][8]
    # CDS phases follow the coding frame; the FASTA is the record's sequence
    assert {f[7] for f in gff if f[2] == "CDS"} == {"0"}
    assert (tmp_path / "s.fa").read_text().split("\n", 1)[1].replace("\n", "") == rec.sequence
    assert summaries == [f"{rec.version}\t{len(rec.sequence)}\t37\t22 tRNA, 13 protein_coding, 2 rRNA"]


def test_genbank_names_follow_the_reference(tmp_path):
    rec = bundled_record()
    n = len(rec.sequence)
    cases = [({}, rec.version), ({rec.locus: n}, rec.locus), ({"chr" + rec.version: n}, "chr" + rec.version),
             ({rec.version: n, rec.locus: n}, rec.version), ({"chrM": n}, rec.version)]
    for contigs, expected in cases:
        fai = tmp_path / "ref.fai"
        fai.write_text("".join(f"{c}\t{n}\t0\t60\t61\n" for c, n in contigs.items()))
        gbk2gff3.convert(BUNDLED, fai, tmp_path / "g.gff", tmp_path / "s.fa")
        assert (tmp_path / "s.fa").read_text().splitlines()[0] == f">{expected}", contigs


def test_bacterial_rnas_are_never_protein_coding(tmp_path):
    """snpEff reads biotype 'tRNA' as protein_coding: outside mitochondria tRNAs must be misc_RNA."""
    src = td.cct_file("prokka_multicontig.gbk")
    summaries, totals, _ = gbk2gff3.convert(src, None, tmp_path / "g.gff", tmp_path / "s.fa")
    keys = [k for r in td.genbank_records(src) for k in r.feature_keys]
    assert totals == {"protein_coding": keys.count("CDS"), "tRNA": keys.count("tRNA"), "rRNA": keys.count("rRNA"),
                      "tmRNA": keys.count("tmRNA")}
    assert len(summaries) == len(td.genbank_records(src)) == 48
    for line in (tmp_path / "g.gff").read_text().splitlines():
        f = line.split("\t")
        if len(f) == 9 and f[2] in ("gene", "transcript"):
            biotype = dict(kv.split("=") for kv in f[8].split(";"))["biotype"]
            assert biotype in ("protein_coding", "misc_RNA", "rRNA"), line
            assert biotype != "protein_coding" or f[2] == "gene" or "CDS" in line


def test_genbank_without_features_is_one_line(tmp_path, capsys):
    src = td.cct_file("X52329.gbk.gz")
    assert gbk2gff3.main([str(src), "--gff", str(tmp_path / "g.gff"), "--fasta", str(tmp_path / "s.fa")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("ERROR: annotation 'X52329.gbk.gz' has no gene, CDS, tRNA, rRNA or other RNA features: "
                   "give a GenBank file with its annotation (features), not only the sequence")
    assert not (tmp_path / "g.gff").exists() and not (tmp_path / "s.fa").exists()


def test_codon_tables_follow_transl_table(tmp_path, capsys):
    rec = bundled_record()
    *_, tables = gbk2gff3.convert(BUNDLED, None, tmp_path / "g.gff", tmp_path / "s.fa")
    assert tables == {rec.version: MITO}
    args = [str(BUNDLED), "--gff", str(tmp_path / "g"), "--fasta", str(tmp_path / "f"), "--genome", "hs_mt",
            "--codon-config", str(tmp_path / "codons.config")]
    assert gbk2gff3.main(args) == 0
    assert (tmp_path / "codons.config").read_text() == f"hs_mt.{rec.version}.codonTable : {MITO}\n"
    assert gbk2gff3.main([*args, "--codon-table", "Standard"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"ERROR: annotation 'annotation.gbk.gz': sequence '{rec.version}' is coded with /transl_table=2 "
        f"({MITO}) but codon_table is 'Standard': give codon_table {MITO} or leave it unset")


def test_genbank_of_another_assembly(tmp_path, capsys):
    rec = bundled_record()
    fai = tmp_path / "ref.fai"
    fai.write_text(f"{rec.version}\t16569\t13\t70\t71\n")
    assert gbk2gff3.main([str(BUNDLED), "--fai", str(fai), "--gff", str(tmp_path / "g"),
                          "--fasta", str(tmp_path / "f")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"ERROR: annotation 'annotation.gbk.gz': reference contig '{rec.version}' is 16569 bp but the annotation's "
        f"sequence '{rec.version}' is {len(rec.sequence)} bp: give the annotation of the reference's assembly")
    assert not (tmp_path / "g").exists()


def test_not_genbank_and_truncated(tmp_path, capsys):
    bad = tmp_path / "ref.gbk"
    bad.write_text(">chrM\nACGT\n")
    assert gbk2gff3.main([str(bad), "--gff", str(tmp_path / "g"), "--fasta", str(tmp_path / "f")]) == 1
    assert capsys.readouterr().err.strip() == \
        "ERROR: annotation 'ref.gbk': it is not GenBank: the first line does not start with LOCUS"
    text = gzip.open(BUNDLED, "rt").read()
    bad.write_text(text[: len(text) // 2])
    assert gbk2gff3.main([str(bad), "--gff", str(tmp_path / "g"), "--fasta", str(tmp_path / "f")]) == 1
    assert capsys.readouterr().err.strip() == \
        "ERROR: annotation 'ref.gbk': record NC_001807 does not end with '//': the file is truncated"
    assert not (tmp_path / "g").exists() and not (tmp_path / "f").exists()


@pytest.mark.parametrize(("a", "b", "same"), [
    ("chr1", "1", True), ("chr01", "1", True), ("Chromosome_2", "2", True), ("chrM", "M", True),
    ("chrM", "MT", False), ("ChrC", "C", True), ("Pt", "C", False), ("NC_001807.4", "NC_001807", False),
])
def test_snpeff_name_rule(a, b, same):
    assert (snpeff_contigs.simple_name(a) == snpeff_contigs.simple_name(b)) is same


@pytest.mark.parametrize(("a", "b"), [
    ("chrM", "MT"), ("MT", "Mito"), ("ChrC", "Pt"), ("chloroplast", "ChrC"), ("chrUn_KI270728v1", "KI270728.1"),
    ("chr1_KI270706v1_random", "KI270706.1"), ("NC_012920.1", "NC_012920.2"),
])
def test_evident_aliases(a, b):
    assert snpeff_contigs.alias(a) == snpeff_contigs.alias(b)


@pytest.mark.parametrize(("a", "b"), [("chr1", "chr2"), ("chrM", "chrUn_KI270728v1"), ("NODE_1", "contig_1")])
def test_different_names_stay_different(a, b):
    assert snpeff_contigs.alias(a) != snpeff_contigs.alias(b)


def manifest(*rows: tuple[str, int, bool, dict[str, int]]) -> Any:
    contigs, reference = {}, {}
    for name, length, in_ref, bio in rows:
        c = snpeff_contigs.Contig(name=snpeff_contigs.simple_name(name), length=length)
        c.biotypes.update(bio)
        contigs[c.name] = c
        if in_ref:
            reference[name] = length
    return snpeff_contigs.Manifest(contigs, reference)


HUMAN = manifest(("chr1", 248956422, True, {"protein_coding": 2000}), ("chrM", 16569, True, {}),
                 ("chrUn_JTFH01000001v1_decoy", 25139, True, {}), ("MT", 16569, False, {"protein_coding": 13}))


def check(m: Any, tmp_path: Path, calls: list[str]) -> list[str]:
    vcf = td.write_vcf(tmp_path / "calls.vcf", {}, [(c, 100 + i, "A", "G") for i, c in enumerate(calls)])
    return snpeff_contigs.check(m, vcf)


def test_check_accepts_calls_on_gene_less_scaffolds(tmp_path):
    notes = check(HUMAN, tmp_path, ["chr1", "1", "chrUn_JTFH01000001v1_decoy"])
    assert notes == ["1 call(s) on 1 contig(s) without genes ('chrUn_JTFH01000001v1_decoy') "
                     "are annotated as intergenic"]


def test_check_names_chrM_and_MT(tmp_path):
    with pytest.raises(snpeff_contigs.CheckError) as info:
        check(HUMAN, tmp_path, ["chr1", "chrM", "chrM"])
    assert str(info.value) == ("VCF contig 'chrM' (2 calls) has no genes in the annotation, whose sequence 'MT' "
                               "(16569 bp, as long as 'chrM') is not in the reference: rename one to match")


def test_check_all_calls_without_genes(tmp_path):
    m = manifest(("NC_012920.1", 16569, True, {"protein_coding": 13, "Mt_tRNA": 22}))
    with pytest.raises(snpeff_contigs.CheckError) as info:
        check(m, tmp_path, ["chrM"] * 3)
    assert str(info.value) == ("VCF contig 'chrM' (3 calls) has no genes in the annotation, whose sequences are "
                               "named 'NC_012920.1': rename one to match")


def test_check_contig_of_another_reference(tmp_path):
    m = manifest(("NC_000932.1", 154478, True, {"protein_coding": 85}), ("NC_037304.1", 367808, True, {}))
    with pytest.raises(snpeff_contigs.CheckError) as info:
        check(m, tmp_path, ["NC_000932.1", "Pt2"])
    assert str(info.value) == ("VCF contig 'Pt2' (1 call) is not a contig of the reference the snpEff database "
                               "was built with ('NC_000932.1', 'NC_037304.1'): annotate calls made on that reference")


# -- the tasks, in the real snpEff image -----------------------------------------------------------


@dataclass
class TaskRun:
    outputs: dict[str, Any]
    error: str | None  # "<task>: <the task's ERROR line>"
    error_lines: list[str]  # the ERROR lines of the task's stderr
    work: Path | None  # the task's working folder


@pytest.fixture(scope="module")
def snpeff_image(podman_ready: None) -> str:
    return containers.publish_local(containers.get("snpeff"))


@pytest.fixture(scope="module")
def run_task(run_task: RunTask, snpeff_image: str):
    """The shared ``run_task`` for the snpEff tasks, as a TaskRun."""

    def _run(task: str, **inputs: Any) -> TaskRun:
        try:
            done = run_task(WDL, task, {**inputs, "docker_image": snpeff_image})
        except TaskFailed as failed:
            return TaskRun({}, f"{task}: {failed.line}", failed.error_lines, failed.work)
        return TaskRun(done.outputs, None, [], done.run_dir / "work")

    return _run


def build(run_task, annotation: Path, contigs: list[tuple[str, str]], where: Path, **extra: Any) -> TaskRun:
    fasta = td.write_fasta(where / "reference.fa", contigs)
    return run_task("build_snpeff_db", annotation=annotation, reference_fasta=fasta,
                    reference_fai=Path(f"{fasta}.fai"), **extra)


def assert_failed(run: TaskRun, task: str, line: str, leftovers: tuple[str, ...]) -> None:
    assert run.error == f"{task}: {line}"
    assert run.error_lines == [f"ERROR: {line}"], run.error_lines
    assert run.work is not None
    for name in leftovers:
        assert not (run.work / name).exists(), f"{name} left behind"


@pytest.fixture(scope="module")
def mito_db(run_task, tmp_path_factory) -> tuple[Path, genbank.Record, str]:
    rec = bundled_record()
    # no codon_table: the records' /transl_table=2 selects the vertebrate mitochondrial code
    run = build(run_task, BUNDLED, [(rec.version, rec.sequence)], tmp_path_factory.mktemp("mito"),
                genome_name="human_mt")
    assert run.error is None, run.error
    return Path(run.outputs["build_snpeff_db.database"]), rec, run.outputs["build_snpeff_db.summary"]


def ata_codon_position(rec: genbank.Record, gene: str) -> tuple[int, int]:
    """1-based position of the third base of the first inner ATA codon of a plus-strand CDS, and its codon number."""
    cds = next(f for f in rec.features if f.kind == "CDS" and f.gene == gene)
    seq = rec.sequence[cds.start:cds.end]
    k = next(i for i in range(3, len(seq) - 2, 3) if seq[i:i + 3] == "ATA")  # not the start codon
    return cds.start + k + 3, k // 3 + 1


@pytest.mark.containers
def test_bundled_genbank_database(run_task, mito_db, tmp_path):
    """13 protein-coding, 22 tRNA and 2 rRNA genes; a tRNA variant is non-coding, an ND1 one is coded."""
    database, rec, summary = mito_db
    kinds = [f.kind for f in rec.features]
    assert summary == (f"snpEff database: {kinds.count('CDS')} protein_coding, {kinds.count('tRNA')} tRNA, "
                       f"{kinds.count('rRNA')} rRNA genes on 1 contig(s)")
    assert summary == "snpEff database: 13 protein_coding, 22 tRNA, 2 rRNA genes on 1 contig(s)"
    with tarfile.open(database) as tar:
        names = tar.getnames()
        contigs = tar.extractfile("./data/human_mt/contigs.tsv").read().decode()  # type: ignore[union-attr]
    assert "./data/human_mt/snpEffectPredictor.bin" in names
    assert f"{rec.version}\t{len(rec.sequence)}\tyes\t37\t" in contigs

    trna = next(f for f in rec.features if f.kind == "tRNA")
    rrna = next(f for f in rec.features if f.kind == "rRNA")
    t_pos, r_pos = trna.start + 20, (rrna.start + rrna.end) // 2
    c_pos, codon = ata_codon_position(rec, "ND1")
    calls = [(rec.version, p, rec.sequence[p - 1], "G" if rec.sequence[p - 1] != "G" else "A")
             for p in sorted([t_pos, r_pos, c_pos])]
    assert rec.sequence[c_pos - 1] == "A"
    vcf = td.write_vcf(tmp_path / "calls.vcf", {rec.version: len(rec.sequence)}, calls)
    run = run_task("annotate_variants", vcf=vcf, database=database, genome_name="human_mt", sample_name="S1")
    assert run.error is None, run.error
    ann = td.ann_entries(Path(run.outputs["annotate_variants.annotated_vcf"]))
    assert Path(run.outputs["annotate_variants.annotated_vcf_index"]).stat().st_size > 0

    def entry(pos: int, gene: str) -> list[str]:
        hits = [e for e in ann[(rec.version, pos)] if e[3] == gene]
        assert hits, (pos, gene, ann[(rec.version, pos)])
        return hits[0]

    t = entry(t_pos, trna.gene)
    assert (t[1], t[2], t[7]) == ("non_coding_transcript_exon_variant", "MODIFIER", "Mt_tRNA")
    r = entry(r_pos, rrna.gene)
    assert (r[1], r[7]) == ("non_coding_transcript_exon_variant", "Mt_rRNA")
    c = entry(c_pos, "ND1")
    # ATA is Met in the vertebrate mitochondrial code (Ile in the standard one): ATA>ATG is synonymous.
    assert (c[1], c[2], c[7], c[10]) == ("synonymous_variant", "LOW", "protein_coding", f"p.Met{codon}Met")
    assert not any("ERROR_" in field for entries in ann.values() for e in entries for field in e)


@pytest.mark.containers
def test_calls_beyond_the_contig_fail(run_task, mito_db, tmp_path):
    """Calls made on a longer assembly of the same contig are refused, not published as MODIFIER."""
    database, rec, _ = mito_db
    end = len(rec.sequence)
    vcf = td.write_vcf(tmp_path / "calls.vcf", {rec.version: end + 500},
                       [(rec.version, 3400, rec.sequence[3399], "C"), (rec.version, end + 100, "A", "G")])
    run = run_task("annotate_variants", vcf=vcf, database=database, genome_name="human_mt", sample_name="S3")
    assert_failed(run, "annotate_variants", f"snpEff could not place 1 call(s) (the first at "
                  f"{rec.version}:{end + 100}) in genome 'human_mt' (beyond the end of the contig, or an unknown "
                  "contig): the calls were made on another assembly than the database's reference",
                  ("S3.ann.vcf.gz", "S3.ann.vcf.gz.part"))


@pytest.mark.containers
@pytest.mark.parametrize("contig", ["chrM", "MT"])
def test_reference_named_differently_fails_at_build(run_task, tmp_path, contig):
    rec = bundled_record()
    run = build(run_task, BUNDLED, [(contig, rec.sequence)], tmp_path, codon_table=MITO)
    assert_failed(run, "build_snpeff_db", f"reference contig '{contig}' has no genes in the annotation, whose "
                  f"sequences are named '{rec.version}': rename one to match", ("snpeff_db.tar.gz",))


@pytest.mark.containers
def test_vcf_named_differently_fails_before_annotating(run_task, mito_db, tmp_path):
    database, rec, _ = mito_db
    vcf = td.write_vcf(tmp_path / "calls.vcf", {"chrM": len(rec.sequence)},
                       [("chrM", p, rec.sequence[p - 1], "T" if rec.sequence[p - 1] != "T" else "C")
                        for p in (700, 3400, 9000)])
    run = run_task("annotate_variants", vcf=vcf, database=database, genome_name="human_mt", sample_name="S1")
    assert_failed(run, "annotate_variants", f"VCF contig 'chrM' (3 calls) has no genes in the annotation, whose "
                  f"sequences are named '{rec.version}': rename one to match", ("S1.ann.vcf.gz", "S1.ann.vcf.gz.part"))


@pytest.mark.containers
def test_gene_less_scaffold_is_legitimate(run_task, tmp_path):
    """A reference with an unplaced scaffold the annotation does not cover builds and annotates."""
    rec = bundled_record()
    rng = random.Random(8)
    scaffold = "".join(rng.choice("ACGT") for _ in range(3000))
    run = build(run_task, BUNDLED, [(rec.version, rec.sequence), ("chrUn_scaffold_1", scaffold)], tmp_path,
                genome_name="mt_plus", codon_table=MITO)
    assert run.error is None, run.error
    assert run.outputs["build_snpeff_db.summary"] == \
        "snpEff database: 13 protein_coding, 22 tRNA, 2 rRNA genes on 1 contig(s)"
    alt = "T" if scaffold[1499] != "T" else "C"
    vcf = td.write_vcf(tmp_path / "calls.vcf", {rec.version: len(rec.sequence), "chrUn_scaffold_1": 3000},
                       [(rec.version, 3400, rec.sequence[3399], "C"), ("chrUn_scaffold_1", 1500, scaffold[1499], alt)])
    ann_run = run_task("annotate_variants", vcf=vcf, database=Path(run.outputs["build_snpeff_db.database"]),
                       genome_name="mt_plus", sample_name="S2")
    assert ann_run.error is None, ann_run.error
    ann = td.ann_entries(Path(ann_run.outputs["annotate_variants.annotated_vcf"]))
    assert [e[1] for e in ann[("chrUn_scaffold_1", 1500)]] == ["intergenic_region"]
    assert any(e[3] == "ND1" and e[7] == "protein_coding" for e in ann[(rec.version, 3400)])


@pytest.mark.containers
def test_renamed_plasmid_in_a_two_record_genbank_fails(run_task, tmp_path):
    """Mitochondrion matches, the plasmid contig was renamed: same length as the annotated record -> error."""
    plasmid = td.cct_file("NC_007719.gbk.gz")
    both = tmp_path / "two.gbk"
    both.write_text(gzip.open(BUNDLED, "rt").read() + gzip.open(plasmid, "rt").read())
    mito, pl = bundled_record(), td.genbank_records(plasmid)[0]
    run = build(run_task, both, [(mito.version, mito.sequence), ("pBP1", pl.sequence)], tmp_path)
    assert_failed(run, "build_snpeff_db", f"reference contig 'pBP1' has no genes in the annotation, whose sequence "
                  f"'{pl.version}' ({len(pl.sequence)} bp, as long as 'pBP1') is not in the reference: "
                  "rename one to match", ("snpeff_db.tar.gz",))


@pytest.mark.containers
def test_prokka_assembly_48_contigs(run_task, tmp_path):
    """A real multi-contig GenBank named by LOCUS only (no VERSION), genes without gene features."""
    src = td.cct_file("prokka_multicontig.gbk")
    records = td.genbank_records(src)
    keys = [k for r in records for k in r.feature_keys]
    run = build(run_task, src, [(r.locus, r.sequence) for r in records], tmp_path, genome_name="prokka",
                codon_table="Bacterial_and_Plant_Plastid")
    assert run.error is None, run.error
    with_genes = sum(1 for r in records if set(r.feature_keys) - {"source"})
    assert run.outputs["build_snpeff_db.summary"] == (
        f"snpEff database: {keys.count('CDS')} protein_coding, {keys.count('tRNA')} tRNA, {keys.count('rRNA')} rRNA, "
        f"{keys.count('tmRNA')} tmRNA genes on {with_genes} contig(s)")
    # a call in a tRNA is non-coding (snpEff would read biotype "tRNA" as protein_coding), one in a CDS is coded
    texts = [t + "//\n" for t in src.read_text().split("//\n") if t.strip()]
    rec = next(r for r in map(genbank.parse, texts) if any(f.kind == "tRNA" for f in r.features))
    trna = next(f for f in rec.features if f.kind == "tRNA")
    cds = next(f for f in rec.features if f.kind == "CDS")
    t_pos, c_pos = trna.start + 10, cds.start + 31
    calls = sorted((rec.locus, p, rec.sequence[p - 1], "A" if rec.sequence[p - 1] != "A" else "C")
                   for p in (t_pos, c_pos))
    vcf = td.write_vcf(tmp_path / "calls.vcf", {rec.locus: len(rec.sequence)}, calls)
    ann_run = run_task("annotate_variants", vcf=vcf, database=Path(run.outputs["build_snpeff_db.database"]),
                       genome_name="prokka", sample_name="P1")
    assert ann_run.error is None, ann_run.error
    ann = td.ann_entries(Path(ann_run.outputs["annotate_variants.annotated_vcf"]))
    t = ann[(rec.locus, t_pos)]
    assert ("non_coding_transcript_exon_variant", "misc_RNA") in {(e[1], e[7]) for e in t}, t
    assert not any(e[10] for e in t), t  # no protein change claimed for a tRNA
    assert any(e[7] == "protein_coding" and e[10].startswith("p.") for e in ann[(rec.locus, c_pos)])
    # the same assembly with contigs renamed contig_1..: no reference contig carries genes
    (tmp_path / "renamed").mkdir()
    renamed_contigs = [(f"contig_{i}", r.sequence) for i, r in enumerate(records, 1)]
    renamed = build(run_task, src, renamed_contigs, tmp_path / "renamed")
    biggest = [n for n, _ in sorted(renamed_contigs, key=lambda c: (-len(c[1]), c[0]))]
    annotated = [r.locus for r in sorted((r for r in records if set(r.feature_keys) - {"source"}),
                                         key=lambda r: (-sum(k != "source" for k in r.feature_keys), r.locus))]
    assert_failed(renamed, "build_snpeff_db", "no reference contig has genes in the annotation: the reference names "
                  f"its contigs '{biggest[0]}', '{biggest[1]}', '{biggest[2]}' (+{len(records) - 3} more) and the "
                  f"annotation '{annotated[0]}', '{annotated[1]}', '{annotated[2]}' (+{len(annotated) - 3} more): "
                  "rename one to match", ("snpeff_db.tar.gz",))


@pytest.mark.containers
def test_genbank_without_features_fails(run_task, tmp_path):
    src = td.cct_file("X52329.gbk.gz")
    rec = td.genbank_records(src)[0]
    run = build(run_task, src, [(rec.version or rec.locus, rec.sequence)], tmp_path)
    assert_failed(run, "build_snpeff_db", "annotation 'X52329.gbk.gz' has no gene, CDS, tRNA, rRNA or other RNA "
                  "features: give a GenBank file with its annotation (features), not only the sequence",
                  ("snpeff_db.tar.gz",))


HOSTILE = ["O'Brien", "x';touch /tmp/pwned-annotation;: '", "$(touch /tmp/pwned-annotation)", "two\nlines", "my genome",
           "-rf", ""]


@pytest.mark.containers
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_genome_name_refused_in_task(run_task, tmp_path, name):
    rec = bundled_record()
    run = build(run_task, BUNDLED, [(rec.version, rec.sequence)], tmp_path, genome_name=name)
    shown = name.replace("\n", " ")
    assert_failed(run, "build_snpeff_db", f"genome_name '{shown}' {NAME_RULE}", ("snpeff_db.tar.gz", "db"))
    assert not Path("/tmp/pwned-annotation").exists()


@pytest.mark.containers
@pytest.mark.parametrize("name", ["x';touch /tmp/pwned-annotation;: '", "a\nb"])
def test_hostile_sample_name_refused_in_task(run_task, mito_db, tmp_path, name):
    database, rec, _ = mito_db
    vcf = td.write_vcf(tmp_path / "c.vcf", {rec.version: len(rec.sequence)}, [(rec.version, 3400, "A", "G")])
    run = run_task("annotate_variants", vcf=vcf, database=database, genome_name="human_mt", sample_name=name)
    assert_failed(run, "annotate_variants", f"sample_name '{name.replace(chr(10), ' ')}' {NAME_RULE}", ("db",))
    assert not Path("/tmp/pwned-annotation").exists()


@pytest.mark.containers
def test_file_names_with_quotes_and_spaces_work(run_task, mito_db, tmp_path):
    """Legal but awkward file names reach snpEff intact (no quoting in the command)."""
    database, rec, _ = mito_db
    odd = tmp_path / "it's $(a) db.tar.gz"
    odd.write_bytes(database.read_bytes())
    vcf = td.write_vcf(tmp_path / "O'Brien calls $(x).vcf", {rec.version: len(rec.sequence)},
                       [(rec.version, 3400, rec.sequence[3399], "C")])
    run = run_task("annotate_variants", vcf=vcf, database=odd, genome_name="human_mt", sample_name="OBrien")
    assert run.error is None, run.error
    assert td.ann_entries(Path(run.outputs["annotate_variants.annotated_vcf"]))[(rec.version, 3400)]


@pytest.mark.containers
def test_gff3_with_chr_names(run_task, tmp_path):
    """A GFF3 (UCSC-style 'chrM') is built as is; its biotypes are counted from the database."""
    rec = bundled_record()
    gff, fasta = tmp_path / "mt.gff3", tmp_path / "mt.fa"
    gbk2gff3.convert(BUNDLED, None, gff, fasta)
    gff.write_text(gff.read_text().replace(rec.version, "chrM"))  # as a UCSC-named GFF3 would be
    assert gff.read_text().splitlines()[2].startswith("chrM\t")
    run = build(run_task, gff, [("chrM", rec.sequence)], tmp_path, codon_table=MITO)
    assert run.error is None, run.error
    assert run.outputs["build_snpeff_db.summary"] == \
        "snpEff database: 13 protein_coding, 22 tRNA, 2 rRNA genes on 1 contig(s)"
    (tmp_path / "ensembl").mkdir()
    other = build(run_task, gff, [("MT", rec.sequence)], tmp_path / "ensembl", codon_table=MITO)
    assert_failed(other, "build_snpeff_db", "reference contig 'MT' has no genes in the annotation, whose sequences "
                  "are named 'chrM': rename one to match", ("snpeff_db.tar.gz",))


@pytest.mark.containers
@pytest.mark.parametrize("table", ["$(touch /tmp/pwned-annotation)", "Vertebrate_Mito", "Standard\nStandard"])
def test_hostile_or_unknown_codon_table_refused(run_task, tmp_path, table):
    rec = bundled_record()
    run = build(run_task, BUNDLED, [(rec.version, rec.sequence)], tmp_path, codon_table=table)
    assert_failed(run, "build_snpeff_db", f"codon_table '{table.replace(chr(10), ' ')}' is not a snpEff codon table "
                  "(e.g. Vertebrate_Mitochondrial, Bacterial_and_Plant_Plastid; see codon.* in snpEff.config)",
                  ("snpeff_db.tar.gz", "db"))
    assert not Path("/tmp/pwned-annotation").exists()


@pytest.mark.containers
def test_build_with_awkward_file_names(run_task, tmp_path):
    rec = bundled_record()
    odd = tmp_path / "it's $(touch pwned) ann.gbk.gz"
    odd.write_bytes(BUNDLED.read_bytes())
    where = tmp_path / "ref 'x' $(y)"
    where.mkdir()
    run = build(run_task, odd, [(rec.version, rec.sequence)], where, codon_table=MITO)
    assert run.error is None, run.error
    assert run.outputs["build_snpeff_db.summary"] == \
        "snpEff database: 13 protein_coding, 22 tRNA, 2 rRNA genes on 1 contig(s)"
    assert run.work is not None and not (run.work / "pwned").exists()
