"""The genomics tasks' programs run directly, without containers: ``containers/genomics/genomics_tasks.py``
(``genomics-tasks`` in the genomics image) and ``containers/snpeff/snpeff_tasks.py`` (``snpeff-tasks``).

Both import ``containers/shared/task_common.py`` (the name rule, the ERROR-line convention).

Recorded real tool output, from the images (samtools 1.16.1, gzip 1.12, bwa 0.7.17, mosdepth 0.3.3, snpEff 5.1d):
tests/data/genomics_scripts/ holds samtools faidx's stderr on a FASTA naming a contig twice / with a short inner
line / with binary bytes, bwa mem | samtools fixmate's stderr on a reference naming a contig twice, gzip's stderr on a
truncated file, and mosdepth --quantize 0:1:4: --mapq 20 over 1000 read pairs of the bundled sample;
tests/data/snpeff_scripts/ the codon.* lines of the image's snpEff.config, the codon lines gbk2gff3.py writes for the
bundled GenBank, and snpEff ann's output for calls past the end of the contig and on an unknown contig.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from batchpipes import settings
from scriptload import load_script

GENOMICS = settings.CONTAINERS_DIR / "genomics"
SNPEFF = settings.CONTAINERS_DIR / "snpeff"
DATA = Path(__file__).parent / "data" / "genomics_scripts"
SNPEFF_DATA = Path(__file__).parent / "data" / "snpeff_scripts"
INPUTS = settings.INPUTS_DIR / "genomics"
CONTIG = "NC_001807.4"
LENGTH = 16571
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


gt = load_script(GENOMICS / "genomics_tasks.py")
fl = load_script(GENOMICS / "fastq_lane.py")
co = load_script(GENOMICS / "cohort.py")
st = load_script(SNPEFF / "snpeff_tasks.py")


def run(capsys: pytest.CaptureFixture[str], module: ModuleType, *argv: str) -> tuple[int, str, str]:
    status = module.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def error_of(capsys: pytest.CaptureFixture[str], module: ModuleType, *argv: str) -> str:
    status, out, err = run(capsys, module, *argv)
    assert status == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), err
    return lines[0][len("ERROR: "):]


# -- names and choices -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [gt, st], ids=["genomics", "snpeff"])
@pytest.mark.parametrize(("values", "shown"), [
    (["x';touch PWNED;: '"], "x';touch PWNED;: '"),
    (["two", "lines"], "two lines"),  # a newline splits write_lines' file
    ([""], ""),
    ([], ""),
    (["-rf"], "-rf"),
    (["a" * 65], "a" * 65),
    (["Café"], "Caf??"),  # each byte outside printable ASCII as '?', as tr -c '[:print:]' '?'
    (["tab\there"], "tab?here"),
])
def test_bad_names(capsys, module, values, shown):
    assert error_of(capsys, module, "check-name", "sample_name", "--", *values) == f"sample_name '{shown}' {NAME_RULE}"


@pytest.mark.parametrize("module", [gt, st], ids=["genomics", "snpeff"])
@pytest.mark.parametrize("name", ["S1", "NA12878", "a.b_c-d", "0", "a" * 64])
def test_good_names(capsys, module, name):
    assert run(capsys, module, "check-name", "genome_name", name) == (0, "", "")


def test_choices(capsys):
    assert run(capsys, gt, "choice", "caller", "freebayes") == (0, "", "")
    assert error_of(capsys, gt, "choice", "caller", "gatk") == "unknown caller 'gatk': choose bcftools or freebayes"
    assert error_of(capsys, gt, "choice", "aligner", "bowtie2") == \
        "unknown aligner 'bowtie2': choose bwa or minimap2"


def test_choices_match_parameter_meta():
    """The one table of choices the tasks check is the one the CLI checks (parameter_meta ``choices``)."""
    from batchpipes import workflows
    doc = workflows.load(settings.WDL_DIR / "genomics.wdl")
    assert doc.workflow is not None
    for name, options in gt.CHOICES.items():
        assert doc.workflow.parameter_meta[name]["choices"] == list(options)


def test_read_group_line(capsys):
    status, out, _ = run(capsys, gt, "read-group", "S1", "run7.L001", "ILLUMINA")
    assert status == 0 and out == "@RG\\tID:run7.L001\\tSM:S1\\tPL:ILLUMINA\\tLB:S1\n"  # bwa/minimap2 expand \t


@pytest.mark.parametrize("rg_id", ["", "a\tb", "back\\slash", "bell\x07"])
def test_read_group_refuses_control_characters(capsys, rg_id):
    assert error_of(capsys, gt, "read-group", "--", "S1", rg_id, "ILLUMINA") == (
        f"read group ID '{rg_id}' is empty or holds a tab, backslash or control character: give plain text")


def test_read_group_checks_the_sample_name_first(capsys):
    assert error_of(capsys, gt, "read-group", "x y", "", "") == f"sample_name 'x y' {NAME_RULE}"


# -- reference -------------------------------------------------------------------------------------------------


def reference_sequence() -> str:
    return "".join(INPUTS.joinpath("reference.fa").read_text().splitlines()[1:])


def test_gzipped_and_not_fasta_reference(tmp_path, capsys):
    gz = tmp_path / "ref.fa.gz"
    gz.write_bytes(gzip.compress(b">x\nACGT\n"))
    assert error_of(capsys, gt, "faidx", str(gz), "ref.fa.gz") == (
        "reference_fasta 'ref.fa.gz' is gzip-compressed: give the uncompressed FASTA (gunzip it first)")
    fq = tmp_path / "reads.fq"
    fq.write_text("@r1\nACGT\n+\nIIII\n")
    assert error_of(capsys, gt, "faidx", str(fq), "reads.fq") == (
        "reference_fasta 'reads.fq' is not FASTA: it should start with '>', found '@'")
    blank = tmp_path / "blank.fa"
    blank.write_text("\n>x\nACGT\n")
    assert error_of(capsys, gt, "faidx", str(blank), "blank.fa") == (
        "reference_fasta 'blank.fa' is not FASTA: it should start with '>', found ''")


def test_faidx_errors_from_recorded_samtools_output():
    other = (DATA / "faidx_other.log").read_text()
    assert gt.faidx_problem(other, "bin.fa") == (
        "reference_fasta 'bin.fa': sequence 'a' has lines of different lengths, which samtools cannot index: rewrap "
        "the FASTA to one line length")
    ragged = (DATA / "faidx_ragged.log").read_text()
    assert gt.faidx_problem(ragged, "ragged.fa") == (
        "reference_fasta 'ragged.fa' could not be indexed (Format error, unexpected \"A\" at line 4): give a "
        "complete, uncompressed FASTA")
    assert "Ignoring duplicate sequence" in (DATA / "faidx_duplicate.log").read_text()


def test_duplicate_contig_names_with_their_lines():
    seq = reference_sequence()
    text = f">{CONTIG} first\n{seq[:5000]}\n>other\n{seq[5000:9000]}\n>{CONTIG} again\n{seq[9000:]}\n"
    assert gt.duplicate_contig(text.splitlines(keepends=True)) == (CONTIG, 1, 5)
    assert gt.duplicate_contig([">chr1\r\n", "A\r\n", ">chr1\tx\r\n"]) == ("chr1", 1, 3)
    assert gt.duplicate_contig([">chr1\n", "A\n", ">chr10\n"]) is None


def test_sam_header_error_from_recorded_fixmate_output():
    log = (DATA / "fixmate_duplicate.log").read_text()
    assert gt.sam_header_problem(log) == (f"reference_fasta names contig '{CONTIG}' more than once: give every "
                                          "sequence a unique name and rebuild the index")
    assert gt.sam_header_problem("[bam_sort_core] merging from 0 files\n") is None


# -- the aligner index -----------------------------------------------------------------------------------------


def test_link_bwa_index_under_fixed_names(tmp_path, capsys):
    idx = tmp_path / "localized" / "12"
    idx.mkdir(parents=True)
    files = [idx / f"my ref.fa.{ext}" for ext in ("amb", "ann", "bwt", "pac", "sa", "fai")]
    for f in files:
        f.write_text("x")
    status, out, _ = run(capsys, gt, "link-index", "bwa", str(tmp_path / "ref"), str(tmp_path / "ref.fa"),
                         *map(str, files))
    assert status == 0 and out == f"{tmp_path / 'ref' / 'genome.fa'}\n"
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == [
        "genome.fa", "genome.fa.amb", "genome.fa.ann", "genome.fa.bwt", "genome.fa.pac", "genome.fa.sa"]


def test_bwa_index_file_missing(tmp_path, capsys):
    files = [tmp_path / f"ref.fa.{ext}" for ext in ("amb", "ann", "bwt", "pac")]
    for f in files:
        f.write_text("x")
    assert error_of(capsys, gt, "link-index", "bwa", str(tmp_path / "ref"), str(tmp_path / "ref.fa"),
                    *map(str, files)) == ("bwa index file .sa is missing from aligner_index: give all of .amb .ann "
                                          ".bwt .pac .sa, or leave aligner_index out to build it")


def test_minimap2_uses_its_index_or_the_fasta(tmp_path, capsys):
    mmi = tmp_path / "ref.fa.mmi"
    mmi.write_text("x")
    status, out, _ = run(capsys, gt, "link-index", "minimap2", str(tmp_path / "a"), str(tmp_path / "ref.fa"), str(mmi))
    assert out == f"{tmp_path / 'a' / 'genome.mmi'}\n"
    status, out, _ = run(capsys, gt, "link-index", "minimap2", str(tmp_path / "b"), str(tmp_path / "ref.fa"))
    assert status == 0 and out == f"{tmp_path / 'b' / 'genome.fa'}\n"


# -- FASTQ pairs -----------------------------------------------------------------------------------------------


@functools.cache
def _all_records(mate: int) -> tuple[tuple[str, ...], ...]:
    lines = gzip.open(INPUTS / f"sample_R{mate}.fastq.gz", "rt").read().splitlines()
    return tuple(tuple(lines[i:i + 4]) for i in range(0, len(lines), 4))


def records(mate: int, n: int | None = 200) -> list[list[str]]:
    """The first ``n`` records (all with None) of the bundled sample's mate file, as lists of 4 lines."""
    return [list(rec) for rec in _all_records(mate)[:n]]


def fastq(path: Path, recs: list[list[str]], compress: bool = True, end: str = "\n") -> Path:
    text = "".join(line + end for rec in recs for line in rec)
    path.write_bytes(gzip.compress(text.encode(), compresslevel=1) if compress else text.encode())
    return path


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], r1: Path, r2: Path) -> tuple[int, str]:
    status, out, err = run(capsys, gt, "split-lane", "--fastq", str(r1), str(r2), "--names", "fastq_r1", "fastq_r2",
                           "--check-only", "--counts", str(tmp_path / "counts.tsv"))
    assert out == ""
    if status == 0:
        return 0, (tmp_path / "counts.tsv").read_text()
    assert not (tmp_path / "counts.tsv").exists()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), err
    return status, lines[0][len("ERROR: "):]


def test_the_bundled_pairs_pass(tmp_path, capsys):
    assert check(tmp_path, capsys, INPUTS / "sample_R1.fastq.gz", INPUTS / "sample_R2.fastq.gz") == \
        (0, "fastq_r1\t3300\nfastq_r2\t3300\n")


def test_plain_and_gzip_mates_with_casava_comments(tmp_path, capsys):
    r1 = [[rec[0].rsplit("/", 1)[0] + " 1:N:0:ACGTACGT", *rec[1:]] for rec in records(1, 50)]
    r2 = [[rec[0].rsplit("/", 1)[0] + " 2:N:0:ACGTACGT", *rec[1:]] for rec in records(2, 50)]
    assert check(tmp_path, capsys, fastq(tmp_path / "R1.fastq", r1, compress=False), fastq(tmp_path / "R2.fq.gz", r2)) \
        == (0, "fastq_r1\t50\nfastq_r2\t50\n")


def _swap(recs: list[list[str]]) -> list[list[str]]:
    recs[100], recs[101] = recs[101], recs[100]
    return recs


def _drop_line(recs: list[list[str]]) -> list[list[str]]:
    recs[10] = recs[10][1:]
    return recs


def _short_quality(recs: list[list[str]]) -> list[list[str]]:
    recs[6][3] = recs[6][3][:-1]
    return recs


def _long_name(recs: list[list[str]]) -> list[list[str]]:
    recs[3][0] = "@" + "n" * 80 + "/2"
    return recs


def _no_plus(recs: list[list[str]]) -> list[list[str]]:
    recs[2][2] = "-"
    return recs


PAIR_CASES = {
    "mates out of sync": (None, _swap, "fastq_r1 and fastq_r2 are out of sync at read 101: 'hap1_101' in fastq_r1 but "
                          "'hap1_102' in fastq_r2: give both mates of every pair in the same order (the two files of "
                          "one paired run)"),
    "long names shortened": (None, _long_name, "fastq_r1 and fastq_r2 are out of sync at read 4: 'hap1_4' in "
                             f"fastq_r1 but '{'n' * 57}...' in fastq_r2: give both mates of every pair in the same "
                             "order (the two files of one paired run)"),
    "a line missing": (_drop_line, None, "fastq_r1 'R1.fastq.gz' is not FASTQ: line 41: record header expected "
                       "(line starting with @)"),
    "no separator": (None, _no_plus, "fastq_r2 'R2.fastq.gz' is not FASTQ: line 11: separator line starting with + "
                     "expected"),
    "quality shorter": (_short_quality, None, "fastq_r1 'R1.fastq.gz' read 7 (line 28): the quality has 149 characters "
                        "but the sequence 150: the file is damaged, copy or export it again"),
    "no reads": (lambda recs: [], None, "fastq_r1 'R1.fastq.gz' holds no reads: give the reads of the sample"),
    "fewer second mates": (None, lambda recs: recs[:150], "mates differ in length: fastq_r1 has 200 reads, fastq_r2 "
                           "has 150; give the two files of one paired run"),
    "fewer first mates": (lambda recs: recs[:150], None, "mates differ in length: fastq_r1 has 150 reads, fastq_r2 "
                          "has 200; give the two files of one paired run"),
}


@pytest.mark.parametrize("case", sorted(PAIR_CASES))
def test_bad_pairs(tmp_path, capsys, case):
    change1, change2, expected = PAIR_CASES[case]
    r1 = fastq(tmp_path / "R1.fastq.gz", change1(records(1)) if change1 else records(1))
    r2 = fastq(tmp_path / "R2.fastq.gz", change2(records(2)) if change2 else records(2))
    assert check(tmp_path, capsys, r1, r2) == (1, expected)


def test_windows_line_ends(tmp_path, capsys):
    r1 = fastq(tmp_path / "R1.fastq.gz", records(1, 20))
    r2 = fastq(tmp_path / "R2.fastq.gz", records(2, 20), end="\r\n")
    assert check(tmp_path, capsys, r1, r2) == (1, "fastq_r2 'R2.fastq.gz' has Windows line ends (CRLF): convert it "
                                                  "first (dos2unix, or tr -d '\\r')")


def test_truncated_inside_a_record(tmp_path, capsys):
    """A download cut short: the second mates end in the middle of record 11."""
    r1 = fastq(tmp_path / "R1.fastq.gz", records(1, 20))
    r2 = tmp_path / "R2.fastq"
    lines = [line for rec in records(2, 20) for line in rec][:42]
    r2.write_text("\n".join(lines)[:-7])  # and the last line cut short, without its newline
    assert check(tmp_path, capsys, r1, r2) == (1, "fastq_r2 'R2.fastq' is truncated: 42 lines is not a whole number "
                                                  "of 4-line records: copy or download it again")


def test_truncated_gzip_is_named_by_gzip(tmp_path, capsys):
    """gzip's own complaint (recorded: an empty line, then 'gzip: <file>: unexpected end of file')."""
    assert fl.gzip_problem((DATA / "gzip_truncated.log").read_text()) == "unexpected end of file"
    whole = gzip.compress("".join(line + "\n" for rec in records(1, None) for line in rec).encode(), compresslevel=1)
    r1 = tmp_path / "R1.fastq.gz"
    r1.write_bytes(whole[: len(whole) // 2])
    status, message = check(tmp_path, capsys, r1, INPUTS / "sample_R2.fastq.gz")
    assert (status, message) == (1, "fastq_r1 'R1.fastq.gz' is not a valid gzip file (unexpected end of file): copy "
                                    "or download it again")


def test_fasta_given_and_empty_file(tmp_path, capsys):
    assert check(tmp_path, capsys, INPUTS / "reference.fa", INPUTS / "sample_R2.fastq.gz") == (
        1, "fastq_r1 'reference.fa' is FASTA, not FASTQ (starts with '>'): give sequencing reads with qualities")
    empty = tmp_path / "R2.fastq.gz"
    empty.write_bytes(b"")
    assert check(tmp_path, capsys, INPUTS / "sample_R1.fastq.gz", empty) == (
        1, "fastq_r2 'R2.fastq.gz' is empty: give the reads of the sample")


def test_same_file_twice(tmp_path, capsys):
    r2 = INPUTS / "sample_R2.fastq.gz"
    assert check(tmp_path, capsys, r2, r2) == (1, "fastq_r1 and fastq_r2 hold the same reads (read 1 is identical in "
                                                  "both): give the second mates as fastq_r2")


# -- targets BED and shards ------------------------------------------------------------------------------------


FAI = f"{CONTIG}\t{LENGTH}\t13\t70\t71\n"


def cds_rows() -> list[tuple[str, int, int, str]]:
    out = []
    for line in (INPUTS / "targets.bed").read_text().splitlines():
        chrom, start, end, name = line.split("\t")
        out.append((chrom, int(start), int(end), name))
    return out


def split(tmp_path: Path, capsys: pytest.CaptureFixture[str], bed_bytes: bytes | None, *, fai: str = FAI,
          padding: int = 0, count: int = 3, name: str = "my targets.bed") -> tuple[int, str]:
    (tmp_path / "ref.fa.fai").write_text(fai)
    argv = ["split-regions", "--fai", str(tmp_path / "ref.fa.fai"), "--padding", str(padding), "--count", str(count),
            "--out-dir", str(tmp_path / "regions"), "--intervals", str(tmp_path / "intervals.bed")]
    if bed_bytes is not None:
        (tmp_path / name).write_bytes(bed_bytes)
        argv += ["--targets", str(tmp_path / name)]
    status, out, err = run(capsys, gt, *argv)
    if status:
        assert not (tmp_path / "intervals.bed").exists() and not list(tmp_path.glob("regions/*"))
        assert len(err.splitlines()) == 1
        return status, err.strip().removeprefix("ERROR: ")
    return status, (tmp_path / "intervals.bed").read_text()


def shard_rows(tmp_path: Path) -> list[list[tuple[str, int, int]]]:
    return [[(c, int(s), int(e)) for c, s, e in (ln.split("\t") for ln in p.read_text().splitlines())]
            for p in sorted((tmp_path / "regions").glob("region_*.bed"))]


def test_ucsc_bed_with_track_lines_crlf_spaces_and_overlaps(tmp_path, capsys):
    import random
    rows = cds_rows()
    random.Random(8).shuffle(rows)
    lines = [f"browser position {CONTIG}:1-16571", 'track name="CDS" description="mito CDS" visibility=2',
             "# exported by hand", ""]
    lines += [(" " if i % 4 == 0 else "\t").join([c, str(s), str(e), n, "0", "+"]) for i, (c, s, e, n) in
              enumerate(rows)]
    status, text = split(tmp_path, capsys, ("\r\n".join(lines) + "\r\n").encode())
    assert status == 0
    intervals = [(c, int(s), int(e)) for c, s, e in (ln.split("\t") for ln in text.splitlines())]
    assert intervals[:3] == [(CONTIG, 3306, 4264), (CONTIG, 4469, 5511), (CONTIG, 5903, 7445)] or \
        intervals[:3] == [(CONTIG, 3307, 4264), (CONTIG, 4470, 5512), (CONTIG, 5904, 7446)]
    assert (CONTIG, 8366, 9988) in intervals or (CONTIG, 8365, 9990) in intervals
    total = sum(e - s for _, s, e in intervals)
    shards = shard_rows(tmp_path)
    assert len(shards) == 3 and sum(e - s for shard in shards for _, s, e in shard) == total
    assert [sum(e - s for _, s, e in shard) for shard in shards][:2] == [-(-total // 3)] * 2


def test_merge_overlapping_and_touching_with_padding_clipped(tmp_path, capsys):
    bed = f"{CONTIG}\t0\t10\n{CONTIG}\t200\t300\n{CONTIG}\t300\t310\n{CONTIG}\t250\t260\n{CONTIG}\t16561\t16571\n"
    assert split(tmp_path, capsys, bed.encode(), padding=50) == (
        0, f"{CONTIG}\t0\t60\n{CONTIG}\t150\t360\n{CONTIG}\t16511\t16571\n")


def test_reference_order_not_name_order(tmp_path, capsys):
    fai = "chr2\t1000\t6\t60\t61\nchr10\t500\t1030\t60\t61\nchr1\t800\t1550\t60\t61\n"
    bed = b"chr1\t10\t20\nchr10\t5\t15\nchr2\t100\t200\n"
    assert split(tmp_path, capsys, bed, fai=fai) == (0, "chr2\t100\t200\nchr10\t5\t15\nchr1\t10\t20\n")


def test_whole_genome_shards_cut_across_contigs(tmp_path, capsys):
    fai = "1\t1000\t3\t60\t61\n2\t500\t1023\t60\t61\nMT\t100\t1535\t60\t61\n"
    assert split(tmp_path, capsys, None, fai=fai, count=4) == (0, "1\t0\t1000\n2\t0\t500\nMT\t0\t100\n")
    assert shard_rows(tmp_path) == [[("1", 0, 400)], [("1", 400, 800)], [("1", 800, 1000), ("2", 0, 200)],
                                    [("2", 200, 500), ("MT", 0, 100)]]


def test_more_shards_than_bases(tmp_path, capsys):
    assert split(tmp_path, capsys, b"chrM\t5\t7\n", fai="chrM\t16569\t6\t70\t71\n", count=4)[0] == 0
    assert shard_rows(tmp_path) == [[("chrM", 5, 6)], [("chrM", 6, 7)]]


BED_ERRORS = {
    "chr prefix, reference without": (f"chr{CONTIG}\t100\t200\n", FAI, f"line 1 names contig chr{CONTIG}, but the "
                                      f'reference names it {CONTIG}: remove the chr prefix (e.g. sed "s/^chr//")'),
    "no chr prefix, reference with": ("1\t100\t200\n", "chr1\t248956422\t6\t60\t61\n", "line 1 names contig 1, but "
                                      'the reference names it chr1: add the chr prefix (e.g. sed "s/^/chr/")'),
    "chrM vs MT": ("chrM\t1\t2\n", "1\t1000\t3\t60\t61\nMT\t16569\t1020\t60\t61\n",
                   "line 1 names contig chrM, but the reference names it MT: rename it"),
    "MT vs chrM": ("#c\nMT\t1\t2\n", "chrM\t16569\t6\t60\t61\n",
                   "line 2 names contig MT, but the reference names it chrM: rename it"),
    "accession vs chromosome name": ("chr1\t1\t2\n", "NC_000001.11\t1000\t14\t60\t61\nNC_000002.12\t10\t1034\t60\t61\n"
                                     "NC_000003.12\t10\t1060\t60\t61\nNC_012920.1\t10\t1090\t60\t61\n",
                                     "line 1 names contig chr1, which is not in the reference (NC_000001.11, "
                                     "NC_000002.12, NC_000003.12, ...): use the reference's contig names"),
    "column header without #": (f"chrom\tstart\tend\n{CONTIG}\t100\t200\n", FAI, "line 1 is not a BED interval "
                                "(chrom, start, end; whole numbers): remove it or start it with #"),
    "two columns": (f"{CONTIG}\t100\n", FAI, "line 1 is not a BED interval (chrom, start, end; whole numbers): remove "
                    "it or start it with #"),
    "past the end": (f"{CONTIG}\t100\t200\n{CONTIG}\t16500\t16600\n", FAI, f"line 2 ends at 16600, past the end of "
                     f"{CONTIG} (16571 bp): is the BED for another reference build?"),
    "start after end": (f"{CONTIG}\t300\t200\n", FAI, "line 1 has start 300 after end 200: fix or remove the line"),
    "1-based point": (f"{CONTIG}\t300\t300\n", FAI, "line 1 is an empty interval (start = end = 300): BED is 0-based, "
                      "half-open; give end = start + length"),
    "only headers": ("track name=nothing\r\nbrowser hide all\r\n\r\n", FAI,
                     "has no intervals: give at least one chrom<TAB>start<TAB>end line"),
}


@pytest.mark.parametrize("case", sorted(BED_ERRORS))
def test_bad_targets(tmp_path, capsys, case):
    text, fai, expected = BED_ERRORS[case]
    assert split(tmp_path, capsys, text.encode(), fai=fai) == (1, f"targets_bed 'my targets.bed' {expected}")


@pytest.mark.parametrize(("fai", "expected"), [
    ("chr1\t1000\t6\t60\t61\nchr1\t10\t1030\t60\t61\n", "reference_fai names contig chr1 twice (lines 1 and 2): give "
     "every reference sequence a unique name and rebuild the index"),
    (">chr1\nACGT\n", "reference_fai line 1 is not a samtools .fai line (name<TAB>length...): rebuild it with samtools "
     "faidx"),
])
def test_bad_fai(tmp_path, capsys, fai, expected):
    assert split(tmp_path, capsys, None, fai=fai) == (1, expected)


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--count", "0", "scatter_count must be at least 1, got 0"),
    ("--padding", "-1", "target_padding must be 0 or more, got -1"),
])
def test_bad_numbers(tmp_path, capsys, option, value, expected):
    (tmp_path / "ref.fa.fai").write_text(FAI)
    argv = ["split-regions", "--fai", str(tmp_path / "ref.fa.fai"), "--count", "2", "--out-dir", str(tmp_path / "r"),
            "--intervals", str(tmp_path / "i.bed"), option, value]
    assert error_of(capsys, gt, *argv) == expected


def test_bed_for_samtools_stats_is_one_based(tmp_path, capsys):
    bed = tmp_path / "t.bed"
    bed.write_text(f"track name=x\n#c\n{CONTIG}\t0\t10\tname\n{CONTIG}\t99\t200\n")
    assert run(capsys, gt, "bed", "--one-based", str(bed)) == (0, f"{CONTIG}\t1\t10\n{CONTIG}\t100\t200\n", "")
    assert run(capsys, gt, "bed", str(bed)) == (0, f"{CONTIG}\t0\t10\n{CONTIG}\t99\t200\n", "")
    assert run(capsys, gt, "bed", "--fai", str(DATA / "reference.fa.fai")) == (0, f"{CONTIG}\t0\t{LENGTH}\n", "")


# -- callable regions ------------------------------------------------------------------------------------------


def test_mosdepth_classes():
    argv, env = gt.mosdepth_command(Path("in/s.bam"), "tmp/q", 4, 20, 2)
    assert argv == ["mosdepth", "-t", "2", "-n", "--quantize", "0:1:4:", "--mapq", "20", "tmp/q", "in/s.bam"]
    assert env == {"MOSDEPTH_Q0": "NO_COVERAGE", "MOSDEPTH_Q1": "LOW_COVERAGE", "MOSDEPTH_Q2": "CALLABLE"}
    argv, env = gt.mosdepth_command(Path("s.bam"), "q", 1, 0, 1)
    assert "0:1:" in argv and env == {"MOSDEPTH_Q0": "NO_COVERAGE", "MOSDEPTH_Q1": "CALLABLE"}
    with pytest.raises(gt.TaskError, match="min_depth must be at least 1, got 0"):
        gt.mosdepth_command(Path("s.bam"), "q", 0, 20, 1)
    with pytest.raises(gt.TaskError, match="min_mapq must be 0 or more, got -1"):
        gt.mosdepth_command(Path("s.bam"), "q", 4, -1, 1)


def recorded_classes() -> list[tuple[str, int, int, str]]:
    return [(c, int(s), int(e), k) for c, s, e, k in
            (ln.split("\t") for ln in (DATA / "mosdepth_quantized.bed").read_text().splitlines())]


def test_callable_summary_of_the_genome_from_recorded_mosdepth(tmp_path, capsys):
    classes = recorded_classes()
    good = sum(e - s for _, s, e, k in classes if k == "CALLABLE")
    low = sum(e - s for _, s, e, k in classes if k == "LOW_COVERAGE")
    scope = tmp_path / "scope.bed"
    scope.write_text(f"{CONTIG}\t0\t{LENGTH}\nchrUn_without_reads\t0\t1000\n")  # a contig mosdepth did not list
    status, out, _ = run(capsys, gt, "callable", "--scope", str(scope), "--scope-name", "genome", "--classes",
                         str(DATA / "mosdepth_quantized.bed"), "--sample", "S1", "--min-depth", "4", "--min-mapq", "20",
                         "--bed-out", str(tmp_path / "c.bed"), "--summary-out", str(tmp_path / "s.txt"))
    assert status == 0
    total = LENGTH + 1000
    bad = total - good
    summary = (tmp_path / "s.txt").read_text().splitlines()
    assert summary[0] == (f"S1: {bad} bp ({100 * bad / total:.2f}%) of the genome not callable (fewer than 4 reads "
                          f"with MAPQ >= 20); {good} of {total} bp callable")
    assert dict(ln.split("\t") for ln in summary[1:]) == {
        "scope": "genome", "total_bp": str(total), "callable_bp": str(good), "not_callable_bp": str(bad),
        "no_coverage_bp": str(bad - low), "low_coverage_bp": str(low), "min_depth": "4", "min_mapq": "20"}
    bed = (tmp_path / "c.bed").read_text().splitlines()
    assert bed[0] == f"{CONTIG}\t94\t1625" and len(bed) == sum(1 for c in classes if c[3] == "CALLABLE")


def test_callable_summary_of_padded_targets():
    spec = gt.Callable("S1", "targets", 4, 20, padding=50)
    bed, summary = gt.callable_summary(spec, "c\t0\t100\nc\t200\t300\n",
                                       "c\t0\t40\tCALLABLE\nc\t40\t100\tLOW_COVERAGE\nc\t200\t300\tCALLABLE\n")
    assert bed == "c\t0\t40\nc\t200\t300\n"
    assert summary.splitlines()[0] == ("S1: 60 bp (30.00%) of the targets (padded by 50 bp) not callable (fewer than 4 "
                                       "reads with MAPQ >= 20); 140 of 200 bp callable")
    _, summary = gt.callable_summary(gt.Callable("S1", "targets", 4, 20), "c\t0\t100\n", "")
    assert summary.splitlines()[0].startswith("S1: 100 bp (100.00%) of the targets not callable")


# -- snpEff ----------------------------------------------------------------------------------------------------


def codon_config() -> list[str]:
    return (SNPEFF_DATA / "snpeff_config_codons.txt").read_text().splitlines()


def test_codon_tables_of_the_recorded_config():
    known = st.codon_tables(codon_config())
    assert {"Standard", "Vertebrate_Mitochondrial", "Bacterial_and_Plant_Plastid"} <= known and len(known) == 25
    assert st.check_codon_table([], known) is None
    assert st.check_codon_table(["Vertebrate_Mitochondrial"], known) == "Vertebrate_Mitochondrial"
    for bad, shown in ((["Vertebrate_Mito"], "Vertebrate_Mito"), (["Standard", "Standard"], "Standard Standard"),
                       (["$(touch x)"], "$(touch x)")):
        with pytest.raises(st.TaskError) as info:
            st.check_codon_table(bad, known)
        assert str(info.value) == (f"codon_table '{shown}' is not a snpEff codon table (e.g. Vertebrate_Mitochondrial, "
                                   "Bacterial_and_Plant_Plastid; see codon.* in snpEff.config)")


@pytest.mark.parametrize(("text", "kind"), [
    ("LOCUS       NC_001807   16571 bp    DNA     circular MAM 09-JUL-2009\n", "genbank"),
    ("##gff-version 3\n##sequence-region chrM 1 16569\n", "gff3"),
    ('#!genome-build GRCh38\nchrM\tENSEMBL\tgene\t3307\t4262\t.\t+\t.\tgene_id "ND1";\n', "gtf22"),
])
def test_annotation_format(tmp_path, text, kind):
    plain = tmp_path / "a.txt"
    plain.write_text(text)
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert st.annotation_format(plain) == st.annotation_format(packed) == kind


def test_annotation_of_unknown_format(tmp_path):
    bed = tmp_path / "genes.bed"
    bed.write_text("chrM\t3306\t4262\tND1\n")
    with pytest.raises(st.TaskError, match="annotation 'genes.bed' is not GenBank \\(LOCUS\\), GFF3 "):
        st.annotation_format(bed)


def test_prepare_bundled_genbank(tmp_path, monkeypatch, capsys):
    """GenBank -> GFF3 with every gene; the record's /transl_table gives the contig's codon table in snpEff.config
    (as recorded from the image's gbk2gff3.py)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "snpEff.config"
    config.write_text("\n".join(codon_config()) + "\n")
    codon = tmp_path / "codon.txt"
    codon.write_text("")
    data = tmp_path / "db" / "data" / "g"
    status, out, err = run(capsys, st, "prepare", "--annotation", str(INPUTS / "annotation.gbk.gz"), "--fai",
                           str(DATA / "reference.fa.fai"), "--genome", "g", "--codon-table-file", str(codon), "--label",
                           "annotation.gbk.gz", "--data", str(data), "--config", str(tmp_path / "db" / "snpEff.config"),
                           "--snpeff-config", str(config))
    assert status == 0, err
    assert out == f"gff3\t{data / 'genes.gff'}\n"
    written = (tmp_path / "db" / "snpEff.config").read_text().splitlines()
    assert not any(line.startswith("data.dir = ~") for line in written)
    assert written[-3:] == ["data.dir = ./data/", "g.genome : g",
                            (SNPEFF_DATA / "codons_from_transl_table.config").read_text().strip()]
    assert (tmp_path / "gbk_summary.tsv").is_file()


def test_prepare_gff3_with_a_codon_table_for_every_contig(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "snpEff.config"
    config.write_text("\n".join(codon_config()) + "\n")
    gff = tmp_path / "mt.gff3"
    gff.write_text(f"##gff-version 3\n{CONTIG}\tx\tgene\t3307\t4262\t.\t+\t.\tID=ND1;Name=ND1\n")
    fai = tmp_path / "ref.fa.fai"
    fai.write_text(FAI + "plasmid\t100\t20000\t60\t61\n")
    codon = tmp_path / "codon.txt"
    codon.write_text("Vertebrate_Mitochondrial\n")
    data = tmp_path / "d"
    kind, genes = st.prepare(gff, fai, "mt", codon.read_text().splitlines(), "mt.gff3", data, tmp_path / "out.config",
                             config)
    assert (kind, genes) == ("gff3", data / "genes.gff") and genes.read_text() == gff.read_text()
    assert (tmp_path / "out.config").read_text().splitlines()[-2:] == [
        f"mt.{CONTIG}.codonTable : Vertebrate_Mitochondrial", "mt.plasmid.codonTable : Vertebrate_Mitochondrial"]


def test_prepare_refuses_before_writing(tmp_path, capsys):
    config = tmp_path / "snpEff.config"
    config.write_text("\n".join(codon_config()) + "\n")
    with pytest.raises(st.TaskError, match="codon_table 'Mito' is not"):
        st.prepare(INPUTS / "annotation.gbk.gz", DATA / "reference.fa.fai", "g", ["Mito"], "a", tmp_path / "db" / "g",
                   tmp_path / "db" / "snpEff.config", config)
    assert not (tmp_path / "db").exists()


def test_check_db_names_the_genomes_it_has(tmp_path, capsys):
    (tmp_path / "data" / "human_mt").mkdir(parents=True)
    (tmp_path / "data" / "human_mt" / "snpEffectPredictor.bin").write_bytes(b"x")
    assert run(capsys, st, "check-db", str(tmp_path / "data"), "human_mt") == (0, "", "")
    assert error_of(capsys, st, "check-db", str(tmp_path / "data"), "custom") == (
        "the snpEff database has no genome 'custom' (it has: human_mt): give the genome_name used to build it")


def test_unplaced_calls_from_recorded_snpeff_output(tmp_path, capsys):
    vcf = tmp_path / "ann.vcf.gz"
    vcf.write_bytes(gzip.compress((SNPEFF_DATA / "snpeff_ann_unplaced.vcf").read_bytes()))
    assert error_of(capsys, st, "unplaced", str(vcf), "g") == (
        f"snpEff could not place 2 call(s) (the first at {CONTIG}:16600) in genome 'g' (beyond the end of the contig, "
        "or an unknown contig): the calls were made on another assembly than the database's reference")
    placed = [ln for ln in (SNPEFF_DATA / "snpeff_ann_unplaced.vcf").read_text().splitlines(keepends=True)
              if "ERROR_" not in ln]
    assert len(placed) > 5
    vcf.write_bytes(gzip.compress("".join(placed).encode()))
    assert run(capsys, st, "unplaced", str(vcf), "g") == (0, "", "")


# -- one lane in one pass: blocks, interleaving, single-end (fastq_lane.py) -------------------------------------


def _stream(recs1: list[list[str]], recs2: list[list[str]] | None, block: int) -> tuple[int, bytes]:
    import io

    m = fl.Mates("fastq_1", "a.fq", "fastq_2", "b.fq") if recs2 is not None else fl.Mates("fastq_1", "a.fq")
    s1 = io.BytesIO("".join(line + "\n" for rec in recs1 for line in rec).encode())
    s2 = io.BytesIO("".join(line + "\n" for rec in recs2 for line in rec).encode()) if recs2 is not None else None
    sink = io.BytesIO()
    reads = fl.stream_pairs(m, s1, s2, sink, block_records=block)
    return reads, sink.getvalue()


@pytest.mark.parametrize("block", [1, 7, 200, 5000])
def test_pairs_are_interleaved_whatever_the_block_size(block):
    r1, r2 = records(1), records(2)
    reads, out = _stream(r1, r2, block)
    expected = "".join(line + "\n" for a, b in zip(r1, r2, strict=True) for line in a + b).encode()
    assert reads == 200 and out == expected


@pytest.mark.parametrize("block", [3, 64])
def test_a_problem_past_the_first_block_names_its_read(block):
    import io

    r2 = _swap(records(2))
    m = fl.Mates("fastq_1", "a.fq", "fastq_2", "b.fq")
    s1 = io.BytesIO("".join(line + "\n" for rec in records(1) for line in rec).encode())
    s2 = io.BytesIO("".join(line + "\n" for rec in r2 for line in rec).encode())
    with pytest.raises(fl.TaskError, match="out of sync at read 101: 'hap1_101' in fastq_1 but 'hap1_102' in fastq_2"):
        fl.stream_pairs(m, s1, s2, None, block_records=block)


def test_single_end_lane_and_a_last_line_without_newline():
    import io

    text = "".join(line + "\n" for rec in records(1, 30) for line in rec).rstrip("\n")
    reads = fl.stream_pairs(fl.Mates("fastq_1", "se.fq"), io.BytesIO(text.encode()), None, None, block_records=4)
    assert reads == 30
    with pytest.raises(fl.TaskError, match=r"fastq_1 'se.fq' is truncated: 118 lines is not a whole number"):
        fl.stream_pairs(fl.Mates("fastq_1", "se.fq"), io.BytesIO("\n".join(text.split("\n")[:118]).encode()), None,
                        None, block_records=4)


def test_fastp_command_line():
    fp = fl.Fastp(reads_per_shard=2_000_000, threads=4)
    argv = fp.argv(True, Path("w"))
    assert argv[:2] == ["fastp", "--stdin"] and "--interleaved_in" in argv
    assert argv[argv.index("--split_by_lines") + 1] == "8000000" and argv[argv.index("-w") + 1] == "4"
    assert "-A" not in argv
    untouched = fl.Fastp(1000, trim=False).argv(False, Path("w"))
    assert {"-A", "-Q", "-L", "-G"} <= set(untouched) and "--interleaved_in" not in untouched


def test_fastp_shards_skip_the_empty_last_file(tmp_path):
    """fastp 0.23.2 leaves an empty last file when the reads fill the shards exactly (seen on the bundled sample
    with 1000 reads per shard)."""
    for i, size in ((1, 10), (2, 10), (3, 0)):
        for mate in (1, 2):
            (tmp_path / f"{i:04d}.R{mate}.fq.gz").write_bytes(b"x" * size)
    assert [r1.name for r1, _ in fl._shards(tmp_path, True)] == ["0001.R1.fq.gz", "0002.R1.fq.gz"]


def test_reads_per_shard_has_a_floor(tmp_path, capsys):
    status, _, err = run(capsys, gt, "split-lane", "--fastq", str(INPUTS / "sample_R1.fastq.gz"), "--names",
                         "fastq_1", "--reads-per-shard", "10", "--counts", str(tmp_path / "c.tsv"))
    assert status == 1 and err == "ERROR: reads_per_shard must be at least 1000, got 10\n"


@pytest.mark.parametrize(("paths", "problem"), [
    (["/a/1/shard_0003_R1.fq.gz", "/b/7/shard_0003_R2.fq.gz"], None),
    (["/a/shard_0012_R1.fq.gz"], None),
    (["/a/shard_0003_R1.fq.gz", "/b/shard_0004_R2.fq.gz"], "the first and second mates of one shard"),
    (["/a/shard_0003_R2.fq.gz", "/b/shard_0003_R1.fq.gz"], "the first and second mates of one shard"),
    (["/a/reads_R1.fastq.gz"], "give the shards of split_lane"),
])
def test_align_shard_takes_the_two_mates_of_one_shard(paths, problem):
    if problem is None:
        gt.same_shard(paths)
    else:
        with pytest.raises(gt.TaskError, match=problem):
            gt.same_shard(paths)


def test_read_group_carries_the_library():
    assert gt.read_group("S1", "S1.L002", "ILLUMINA", "LIB7") == "@RG\\tID:S1.L002\\tSM:S1\\tPL:ILLUMINA\\tLB:LIB7"
    assert gt.read_group("S1", "S1", "ILLUMINA").endswith("\\tLB:S1")
    with pytest.raises(gt.TaskError, match="library 'a\tb' is empty or holds a tab"):
        gt.read_group("S1", "S1", "ILLUMINA", "a\tb")


# -- the cohort (cohort.py) ---------------------------------------------------------------------------------------

LANES = [["S1", "S1.L001", "S1", "ILLUMINA", "/d/S1_L001_R1.fq.gz", "/d/S1_L001_R2.fq.gz"],
         ["S1", "S1.L002", "S1", "illumina", "/d/S1_L002_R1.fq.gz", "/d/S1_L002_R2.fq.gz"],
         ["S2", "FCX.3", "libB", "ILLUMINA", "s3://bucket/S2_R1.fq.gz", "s3://bucket/S2_R2.fq.gz"],
         ["S3", "S3.L001", "S3", "ONT", "/d/S3.fq.gz", ""]]


def test_a_cohort_passes_with_its_summary():
    assert co.check_lanes(LANES, 3) == "3 samples, 4 lanes (3 paired, 1 single-end)"


def _bad(change: int, column: int, value: str) -> list[list[str]]:
    rows = [list(r) for r in LANES]
    rows[change][column] = value
    return rows


BAD_COHORTS = {
    "sample name": (_bad(0, 0, "S 1"), "sample name 'S 1' may hold only"),
    "read group twice": (_bad(1, 1, "S1.L001"), "read group 'S1.L001' is given twice (samples 'S1' and 'S1')"),
    "read group with a slash": (_bad(2, 1, "a/b"), "read group 'a/b' may hold only"),
    "platform": (_bad(2, 3, "HiSeq"), "platform 'HiSeq' is not a SAM platform"),
    "same file twice": (_bad(1, 4, "/d/S1_L001_R1.fq.gz"), "'/d/S1_L001_R1.fq.gz' is already the reads of lane 1"),
    "mates the same file": (_bad(2, 5, "s3://bucket/S2_R1.fq.gz"), "fastq_1 and fastq_2 are the same file"),
    "mixed single and paired": (_bad(1, 5, ""), "sample 'S1' mixes paired and single-end lanes (1 paired, 1 single"),
    "a tab in a value": ([*LANES[:1], [*LANES[1], "extra"]], "lane 2 has 7 fields, not 6"),
}


@pytest.mark.parametrize("case", sorted(BAD_COHORTS))
def test_bad_cohorts(case):
    rows, problem = BAD_COHORTS[case]
    with pytest.raises(co.TaskError, match=re.escape(problem)):
        co.check_lanes(rows, 3)


def test_a_sample_split_in_two_by_the_json_is_refused():
    with pytest.raises(co.TaskError, match="4 samples are given but 3 distinct names"):
        co.check_lanes(LANES, 4)


def test_check_samples_writes_the_scatter_order(tmp_path):
    lanes = tmp_path / "lanes.tsv"
    lanes.write_text("".join("\t".join(r) + "\n" for r in LANES))
    co.check_samples(lanes, 3, tmp_path / "i.json", tmp_path / "s.txt")
    assert json.loads((tmp_path / "i.json").read_text()) == [0, 1, 2]
    assert (tmp_path / "s.txt").read_text() == "3 samples, 4 lanes (3 paired, 1 single-end)\n"


def test_cohort_callable_is_the_intersection():
    a = [("chrM", 0, 100), ("chrM", 200, 300), ("chr1", 0, 50)]
    b = [("chrM", 50, 250), ("chr1", 10, 20)]
    c = [("chrM", 0, 1000), ("chr1", 0, 15)]
    rows, summary = co.cohort_callable("coh", ["A", "B", "C"], [a, b, c], ["x\ntotal_bp\t2000\n"] * 3)
    assert rows == [("chrM", 50, 100), ("chrM", 200, 250), ("chr1", 10, 15)]
    assert summary.splitlines()[0] == "coh: 105 bp callable in all 3 samples (5.25% of 2000 bp)"
    assert summary.splitlines()[1:] == ["A\t250", "B\t210", "C\t1015"]


@pytest.mark.parametrize("case", ["sample name", "read group twice", "read group with a slash", "platform",
                                  "same file twice", "mates the same file", "mixed single and paired"])
def test_the_cli_refuses_what_the_task_refuses(tmp_path, case):
    """The cohort check of the task (containers/genomics/cohort.py, for Cromwell users) and the CLI's sample-sheet
    check (scripts/batchpipes/samplesheet.py) hold the same rules: each cohort the task refuses, the CLI refuses
    as a sheet too (s3:// paths: only the rules are compared, not the files)."""
    from batchpipes import samplesheet
    from batchpipes.errors import UserError

    rows, _ = BAD_COHORTS[case]
    lines = ["sample\tread_group\tlibrary\tplatform\tfastq_1\tfastq_2"]
    lines += ["\t".join([r[0], r[1], r[2], r[3], *(p.replace("/d/", "s3://b/") for p in r[4:])]) for r in rows]
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    with pytest.raises(co.TaskError):
        co.check_lanes(rows, 3)
    with pytest.raises(UserError):
        samplesheet.read(sheet, local=False)
    good = tmp_path / "good.tsv"
    good.write_text("\n".join(lines[:1] + ["\t".join([*r[:4], *(p.replace("/d/", "s3://b/") for p in r[4:])])
                                           for r in LANES]) + "\n")
    assert samplesheet.read(good, local=False).summary().startswith("3 samples")


# -- duplicates within each library (markdup.py) ------------------------------------------------------------------

md = load_script(GENOMICS / "markdup.py")


def _header(*groups: str) -> str:
    return "@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:chrM\tLN:16571\n" + "".join(f"@RG\t{g}\n" for g in groups) + \
        "@PG\tID:bwa\tPN:bwa\n"


def test_shards_are_grouped_by_the_library_of_their_read_group():
    shards = [("/x/1/shard.bam", _header("ID:S1.L001\tSM:S1\tPL:ILLUMINA\tLB:libA")),
              ("/x/2/shard.bam", _header("ID:S1.L002\tSM:S1\tLB:libB\tPL:ILLUMINA")),
              ("/x/3/shard.bam", _header("ID:S1.L003\tSM:S1\tPL:ILLUMINA\tLB:libA")),
              ("/x/4/shard.bam", _header("ID:S1.L004\tSM:S1\tPL:ILLUMINA"))]  # no LB: its read group alone
    assert md.group_by_library(shards) == {"libA": ["/x/1/shard.bam", "/x/3/shard.bam"], "libB": ["/x/2/shard.bam"],
                                           "S1.L004": ["/x/4/shard.bam"]}


def test_a_shard_with_several_read_groups_is_refused():
    with pytest.raises(md.TaskError, match="shard BAM 'merged.bam' has 2 read groups, not 1"):
        md.library_of(_header("ID:a\tLB:x", "ID:b\tLB:y"), "merged.bam")


def test_cohort_intersection_equals_base_by_base_on_random_beds():
    """The sweep against a base-by-base count, on random sorted, non-overlapping BEDs of two contigs."""
    import random

    rng = random.Random(7)

    def bed() -> list[tuple[str, int, int]]:
        rows = []
        for chrom in ("chr1", "chrM"):
            pos = rng.randrange(0, 5)
            while pos < 2000:
                length = rng.randrange(1, 60)
                rows.append((chrom, pos, pos + length))
                pos += length + rng.randrange(1, 40)
        return rows

    for _ in range(20):
        beds = [bed() for _ in range(3)]
        common = beds[0]
        for other in beds[1:]:
            common = co.intersect(common, other)
        bases = [{(c, x) for c, s, e in b for x in range(s, e)} for b in beds]
        assert {(c, x) for c, s, e in common for x in range(s, e)} == bases[0] & bases[1] & bases[2]
        assert all(e > s for _, s, e in common)
