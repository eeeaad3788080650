"""``batchpipes evaluate``: n/a where there is nothing to measure, recall inside and outside callable regions,
BED files as they come (bgzip, CRLF, header lines)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from batchpipes import cli, evaluate

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\n"


def vcf(path: Path, records: list[tuple[str, int, str, str]], filt: str = "PASS") -> Path:
    body = "".join(f"{c}\t{p}\t.\t{r}\t{a}\t50\t{filt}\t.\tGT\t1/1\n" for c, p, r, a in records)
    path.write_text(HEADER + body)
    return path


TRUTH = [("c", 100, "A", "G"), ("c", 200, "C", "T"), ("c", 300, "AT", "A"), ("c", 900, "G", "C")]


def run_cli(capsys, *args: str) -> list[str]:
    assert cli.main(["evaluate", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_no_calls_gives_na_precision_not_one(tmp_path, capsys):
    truth, calls = vcf(tmp_path / "t.vcf", TRUTH), vcf(tmp_path / "c.vcf", [])
    lines = run_cli(capsys, "--truth", str(truth), "--calls", str(calls))
    assert lines == ["snp   recall 0.000 precision n/a (TP 0, FP 0, FN 3)",
                     "indel recall 0.000 precision n/a (TP 0, FP 0, FN 1)"]


def test_no_truth_gives_na_recall(tmp_path, capsys):
    truth, calls = vcf(tmp_path / "t.vcf", []), vcf(tmp_path / "c.vcf", TRUTH[:1])
    lines = run_cli(capsys, "--truth", str(truth), "--calls", str(calls), "--json")
    data = json.loads(lines[0])
    assert data["snp"] == {"recall": None, "precision": 0.0, "tp": 0, "fp": 1, "fn": 0}
    assert data["indel"]["recall"] is None and data["indel"]["precision"] is None


def test_recall_inside_and_outside_callable_regions(tmp_path, capsys):
    truth = vcf(tmp_path / "t.vcf", TRUTH)
    # 900 missed (in a blind spot), 300 missed inside callable, one false call at 500 (callable)
    calls = vcf(tmp_path / "c.vcf", [TRUTH[0], TRUTH[1], ("c", 500, "T", "G")])
    bed = tmp_path / "callable.bed.gz"
    with gzip.open(bed, "wt") as fh:  # as the workflow publishes it: bgzip/gzip, 0-based half-open
        fh.write("c\t0\t150\nc\t150\t600\n")  # touching intervals; 600 < 900
    lines = run_cli(capsys, "--truth", str(truth), "--calls", str(calls), "--callable", str(bed))
    assert lines == [
        "snp   recall 0.667 precision 0.667 (TP 2, FP 1, FN 1)",
        "indel recall 0.000 precision n/a (TP 0, FP 0, FN 1)",
        "callable regions: 600 bp in callable.bed.gz",
        "snp   callable     recall 1.000 precision 0.667 (TP 2, FP 1, FN 0)",
        "indel callable     recall 0.000 precision n/a (TP 0, FP 0, FN 1)",
        "snp   not callable recall 0.000 precision n/a (TP 0, FP 0, FN 1)",
        "indel not callable recall n/a precision n/a (TP 0, FP 0, FN 0)",
    ]
    data = json.loads(run_cli(capsys, "--truth", str(truth), "--calls", str(calls), "--callable", str(bed),
                              "--json")[0])
    assert data["not_callable"]["snp"]["fn"] == 1 and data["callable"]["snp"]["recall"] == 1.0


@pytest.mark.parametrize("pos, inside", [(100, False), (101, True), (200, True), (201, False)])
def test_bed_is_zero_based_half_open(pos, inside):
    assert evaluate.Regions([("c", 100, 200)]).contains("c", pos) is inside


def test_bed_as_found_in_the_wild(tmp_path):
    bed = tmp_path / "ucsc.bed"
    bed.write_bytes(b'browser position c:1-1000\r\ntrack name="t"\r\n# comment\r\n'
                    b"c\t500\t600\tname\t0\t+\r\nc 10 20\r\n\r\n")
    assert evaluate.read_bed(bed) == [("c", 500, 600), ("c", 10, 20)]
    assert evaluate.Regions(evaluate.read_bed(bed)).size == 110


def test_bad_bed_line_is_one_line(tmp_path, expect_user_error):
    bed = tmp_path / "x.bed"
    bed.write_text("c\t1\t5\nchrom\tstart\tend\n")
    msg = expect_user_error(evaluate.read_bed, bed)
    assert msg == (f"{bed}:2: not a BED line (chrom<TAB>start<TAB>end, whole numbers): remove it or start it with #")


def test_missing_callable_file(tmp_path, expect_user_error):
    truth = vcf(tmp_path / "t.vcf", TRUTH)
    assert cli.main(["evaluate", "--truth", str(truth), "--calls", str(truth), "--callable",
                     str(tmp_path / "nope.bed")]) == 2


# --- cohorts: multi-sample VCFs as callers write them ------------------------------------------------------------

COHORT_TRUTH = """\
##fileformat=VCFv4.2
##contig=<ID=chrM,length=16569>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878\tNA12891\tNA12892
chrM\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1\t0/0
chrM\t200\t.\tA\tG\t.\tPASS\t.\tGT\t1/1\t0/0\t0/1
chrM\t300\t.\tCT\tC\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1
chrM\t400\t.\tG\tGTTA\t.\tPASS\t.\tGT\t1/1\t1/1\t1/1
chrM\t500\t.\tT\tC\t.\tPASS\t.\tGT\t0/0\t0/0\t0/1
chrM\t600\t.\tC\tA\t.\tPASS\t.\tGT\t1/1\t0/0\t0/0
chrM\t700\t.\tG\tT\t.\tPASS\t.\tGT\t0/1\t0/1\t0/1
chrM\t800\t.\tA\tC\t.\tPASS\t.\tGT\t0/0\t1/1\t0/0
"""

# Samples in another order than the truth's; FORMAT as bcftools call (GT:PL, GT:AD:DP), freebayes
# (GT:DP:AD:RO:QR:AO:QA:GL) and GATK (sample-level FT) write it; a phased, a haploid and a missing GT;
# multi-allelic records (one with indels of different lengths sharing a longer REF); a LowQual record.
COHORT_CALLS = """\
##fileformat=VCFv4.2
##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=LowQual,Description="Low quality">
##contig=<ID=chrM,length=16569>
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12892\tNA12878\tNA12891
chrM\t100\t.\tA\tG\t225\tPASS\tDP=90\tGT:PL\t0/0:0,90,255\t0|1:200,0,180\t1/1:255,90,0
chrM\t200\t.\tA\tG,T\t180\tPASS\tDP=88\tGT:PL\t0/1:150,0,160,200,190,255\t1/1:255,90,0,255,90,255\t\
0/2:160,190,255,0,200,150
chrM\t300\t.\tCTT\tCT,C\t150\tPASS\tINDEL;IDV=20\tGT:AD:DP\t1/1:0,30,0:30\t0/2:15,0,14:29\t0/1:16,15,0:31
chrM\t400\t.\tG\tGTTA\t200\tPASS\tINDEL\tGT:AD:DP\t1/1:0,31:31\t1:0,28:28\t./.:.:0
chrM\t500\t.\tT\tC\t90.5\tPASS\tAB=0.5\tGT:DP:AD:RO:QR:AO:QA:GL\t0/1:30:15,15:15:540:15:540:-40,0,-40\t\
0/1:29:20,9:20:720:9:320:-20,0,-60\t0/0:30:30,0:30:1080:0:0:0,-9,-90
chrM\t600\t.\tC\tA\t12\tLowQual\t.\tGT:PL\t0/0:0,30,200\t1/1:90,20,0\t0/0:0,30,200
chrM\t700\t.\tG\tT\t300\tPASS\t.\tGT:AD:DP:FT\t0/1:14,15:29:PASS\t0/1:15,15:30:PASS\t0/1:2,3:5:DP10
chrM\t800\t.\tA\tC\t222\tPASS\t.\tGT:PL\t0/0:0,90,255\t0/0:0,90,255\t1/1:255,90,0
chrM\t900\t.\tT\tA\t50\tPASS\t.\tGT:PL\t0/0:0,90,255\t0/1:90,0,200\t0/0:0,90,255
"""


@pytest.fixture
def cohort_files(tmp_path: Path) -> tuple[Path, Path]:
    truth = tmp_path / "truth_cohort.vcf"
    truth.write_text(COHORT_TRUTH)
    calls = tmp_path / "cohort.vcf.gz"
    with gzip.open(calls, "wt") as fh:
        fh.write(COHORT_CALLS)
    return truth, calls


def test_cohort_per_sample_recall_and_precision(cohort_files):
    report = evaluate.compare_cohort(*cohort_files)
    assert report.samples == ("NA12878", "NA12891", "NA12892")  # the truth's order, not the calls'
    got = {s: {k: (a.true_positives, a.false_positives, a.false_negatives) for k, a in accs.items()}
           for s, accs in report.accuracy.items()}
    assert got == {
        # 600 filtered (FN); 500 and 900 called but 0/0 in the truth (FP); 300's second ALT CTT>C is an FP indel;
        # the haploid "1" at 400 is a TP
        "NA12878": {"snp": (3, 2, 1), "indel": (1, 1, 0)},
        # 200 called A>T (FP, the truth's A>G is 0/0 here); 300's CTT>CT is the truth's CT>C; 400 ./. and 700
        # filtered by its own FT are FNs
        "NA12891": {"snp": (2, 1, 1), "indel": (1, 0, 1)},
        "NA12892": {"snp": (3, 0, 0), "indel": (2, 0, 0)},
    }


def test_cohort_genotype_concordance_counts_truth_hom_ref(cohort_files):
    report = evaluate.compare_cohort(*cohort_files)
    c = report.concordance
    assert (c["NA12878"].concordant, c["NA12878"].discordant, c["NA12878"].no_call, c["NA12878"].not_called) \
        == (5, 2, 0, 1)
    assert c["NA12878"].mismatches == ((("chrM", 300, "CT", "C"), "0/0", "0/x"),
                                       (("chrM", 500, "T", "C"), "0/0", "0/1"))
    assert c["NA12878"].rate == pytest.approx(5 / 7)
    assert (c["NA12891"].concordant, c["NA12891"].discordant, c["NA12891"].no_call) == (4, 1, 2)
    assert c["NA12891"].mismatches == ((("chrM", 200, "A", "G"), "0/0", "0/x"),)
    assert (c["NA12892"].concordant, c["NA12892"].discordant, c["NA12892"].rate) == (7, 0, 1.0)


def test_cohort_private_variant_called_in_another_sample(cohort_files):
    private = evaluate.compare_cohort(*cohort_files).private
    assert (private["NA12892"].variants, private["NA12892"].found) == (1, 1)
    assert private["NA12892"].elsewhere == ((("chrM", 500, "T", "C"), ("NA12878",)),) and not private["NA12892"].ok
    assert (private["NA12878"].found, private["NA12878"].ok) == (0, True)  # its private 600 was LowQual
    assert (private["NA12891"].found, private["NA12891"].ok) == (1, True)


def test_cohort_cli_text_and_json(cohort_files, capsys):
    truth, calls = cohort_files
    lines = run_cli(capsys, "--cohort", "--truth", str(truth), "--calls", str(calls), "--sample", "NA12878")
    assert lines == [
        "NA12878 snp   recall 0.750 precision 0.600 (TP 3, FP 2, FN 1)",
        "NA12878 indel recall 1.000 precision 0.500 (TP 1, FP 1, FN 0)",
        "NA12878 genotype concordance 0.714 (5 of 7 called truth sites agree; 0 no-call, 1 truth sites not called): "
        "chrM:300 CT>C truth 0/0 called 0/x, chrM:500 T>C truth 0/0 called 0/1",
        "NA12878 private variants: 0 of 1 called in NA12878, 0 called in another sample",
    ]
    data = json.loads(run_cli(capsys, "--cohort", "--truth", str(truth), "--calls", str(calls), "--json")[0])
    assert list(data["samples"]) == ["NA12878", "NA12891", "NA12892"]
    assert data["samples"]["NA12892"]["private"]["elsewhere"] == [{"site": "chrM:500 T>C", "samples": ["NA12878"]}]
    assert data["samples"]["NA12891"]["indel"] == {"recall": 0.5, "precision": 1.0, "tp": 1, "fp": 0, "fn": 1}


def test_cohort_regions_limit_every_measure(cohort_files):
    report = evaluate.compare_cohort(*cohort_files, regions=[("chrM", 0, 250)])
    assert report.accuracy["NA12892"]["snp"].true_positives == 1 and report.concordance["NA12878"].concordant == 2


def test_single_sample_api_on_a_cohort_file_reads_its_first_sample(cohort_files):
    truth, _ = cohort_files  # the existing API keeps reading the first sample column
    assert evaluate.read_variants(truth, pass_only=False) == {("chrM", 100, "A", "G"), ("chrM", 200, "A", "G"),
                                                             ("chrM", 400, "G", "GTTA"), ("chrM", 600, "C", "A"),
                                                             ("chrM", 700, "G", "T")}


@pytest.mark.parametrize("args, message", [
    (["--sample", "NA19240"], "no sample 'NA19240' in the truth (it has NA12878, NA12891, NA12892): compare "
                              "samples present in both files"),
    (["--callable", "TRUTH"], "--callable works on one sample's calls: leave it out with --cohort, or evaluate "
                              "a sample's VCF without --cohort"),
])
def test_cohort_cli_errors_are_one_line(cohort_files, capsys, args, message):
    truth, calls = cohort_files
    args = [str(truth) if a == "TRUTH" else a for a in args]
    assert cli.main(["evaluate", "--cohort", "--truth", str(truth), "--calls", str(calls), *args]) == 2
    assert message in capsys.readouterr().err


def test_cohort_sample_missing_from_calls(tmp_path, cohort_files, expect_user_error):
    truth, _ = cohort_files
    calls = tmp_path / "two.vcf"
    calls.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878\tNA12892\n"
                     "chrM\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\t0/0\n")
    msg = expect_user_error(evaluate.compare_cohort, truth, calls)
    assert msg == (f"{calls}: no sample 'NA12891' in the calls (it has NA12878, NA12892): compare samples present "
                   "in both files")
    assert evaluate.compare_cohort(truth, calls, samples=["NA12892"]).accuracy["NA12892"]["snp"].false_negatives == 3


@pytest.mark.parametrize("record, message", [
    ("chrM\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n", "not a VCF record of 2 samples (11 tab-separated fields"),
    ("chrM\t100\t.\tA\tG\t50\tPASS\t.\tDP\t30\t20\n", "FORMAT 'DP' has no GT"),
    ("chrM\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/2\t0/0\n", "sample S1 has GT '0/2' but the record has 1 ALT allele(s)"),
])
def test_bad_cohort_records_are_one_line(tmp_path, expect_user_error, record, message):
    path = tmp_path / "bad.vcf"
    path.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n" + record)
    assert f"{path}:3: {message}" in expect_user_error(evaluate.read_cohort, path)
