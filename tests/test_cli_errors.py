"""Failures outside our own checks still reach the user as one `error:` line, never a traceback."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from batchpipes import cli, settings


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_unreachable_aws_endpoint(fake_aws: str, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    err = run_cli(capsys, "aws", "status", "0f3b0c4e-1b2c-4d5e-8f90-123456789abc")
    assert "cannot reach AWS" in err and "127.0.0.1:9" in err


def test_malformed_vcf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = tmp_path / "calls.vcf"
    calls.write_text("##fileformat=VCFv4.2\nNC_001807.4 504 . C A 50 PASS .\n")  # spaces, not tabs
    err = run_cli(capsys, "evaluate", "--truth", str(settings.INPUTS_DIR / "genomics" / "truth.vcf.gz"),
                  "--calls", str(calls))
    assert f"{calls}:2: not a VCF record" in err


def test_malformed_bed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = settings.INPUTS_DIR / "genomics" / "truth.vcf.gz"
    bed = tmp_path / "t.bed"
    bed.write_text("NC_001807.4\tstart\t100\n")
    err = run_cli(capsys, "evaluate", "--truth", str(truth), "--calls", str(truth), "--regions", str(bed))
    assert f"{bed}:1: not a BED line" in err


def test_evaluate_agrees_with_itself_on_the_truth(capsys: pytest.CaptureFixture[str]) -> None:
    truth = settings.INPUTS_DIR / "genomics" / "truth.vcf.gz"
    assert cli.main(["evaluate", "--truth", str(truth), "--calls", str(truth)]) == 0
    out = capsys.readouterr().out
    n_snps = sum(1 for ln in gzip.open(truth, "rt") if not ln.startswith("#") and len(ln.split("\t")[3]) == 1
                 and len(ln.split("\t")[4]) == 1)
    assert f"snp   recall 1.000 precision 1.000 (TP {n_snps}, FP 0, FN 0)" in out
