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
