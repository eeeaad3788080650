"""Sample sheets (``--samples``): real-looking sheets read into the cohort's ``samples`` input, every bad sheet
refused with one line naming the sheet line and the fix before anything runs, and the sheet's FASTQ files staged to
S3 (moto). The sheets are in tests/data/samplesheets/; the tests write the tiny FASTQ files they name."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from batchpipes import cli, local, samplesheet, settings, workflows
from batchpipes.aws import stage
from batchpipes.errors import UserError

DATA = Path(__file__).parent / "data" / "samplesheets"

#: Two reads as an Illumina NovaSeq writes them (read 1; read 2 differs only in the comment's read number).
FASTQ = ("@LH00123:42:22FJKLLT3:1:1101:10004:1028 {r}:N:0:ACGTACGT+TGCATGCA\n"
         "NTGGCAGCTTTGAGATCCTGGGCACCAGGTCGTTGCAGGTGGAATTCCTCAGCCTGGCGGTGGCTTGAGCAGCAGACGCTGC\n+\n"
         "#FFFFFFFFFFFFFFF:FFFFFFFFFFFFFFFFFFFFFFF,FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\n"
         "@LH00123:42:22FJKLLT3:1:1101:10022:1028 {r}:N:0:ACGTACGT+TGCATGCA\n"
         "NCCTTTGGAAGATGATTTGCTGGTCAGGACAGTGAGCCCGGAGAGCTGCACAGTAAAGAGCAGAAGGAGCCCATGTTCATCT\n+\n"
         "#FFFFFFFFFFFFFFFFFFFFFFFFFF:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:FFFFFFFFFFFFFFFFFFFFF\n")


def write_fastq(path: Path, read: int = 1) -> Path:
    """A two-read FASTQ at ``path``: gzip-compressed when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = FASTQ.format(r=read).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def sheet_in(tmp: Path, name: str, fastqs: list[str], folder: str = ".") -> Path:
    """Copy the data sheet ``name`` into ``tmp/folder`` and write the FASTQ files it names (paths relative to
    ``tmp/folder``, listed here by hand: R2 files get read number 2)."""
    dest = tmp / folder / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / name, dest)
    for rel in fastqs:
        write_fastq(dest.parent / rel, 2 if "_R2" in rel else 1)
    return dest


def write_sheet(tmp: Path, text: str, name: str = "samples.tsv", fastqs: tuple[str, ...] = ()) -> Path:
    for rel in fastqs:
        write_fastq(tmp / rel, 2 if "_R2" in rel else 1)
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def lanes_of(cohort: samplesheet.Cohort) -> list[tuple[str, str, str, str, str, str | None]]:
    return [(s.name, lane.read_group, lane.library, lane.platform, lane.fastq_1, lane.fastq_2)
            for s in cohort.samples for lane in s.lanes]


# -- sheets users write ---------------------------------------------------------------------------

def test_nf_core_sarek_sheet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    fq = [f"fastq/{s}_L00{lane}_R{r}_001.fastq.gz" for s, lane in
          (("P001_N_S1", 1), ("P001_N_S1", 2), ("P002_N_S2", 1), ("P003_N_S3", 1)) for r in (1, 2)]
    sheet = sheet_in(tmp_path, "sarek.csv", fq)
    cohort = samplesheet.read(sheet)
    d = str(tmp_path / "fastq")
    assert lanes_of(cohort) == [
        ("P001_N", "P001_N.lane_1", "P001_N", "ILLUMINA", f"{d}/P001_N_S1_L001_R1_001.fastq.gz",
         f"{d}/P001_N_S1_L001_R2_001.fastq.gz"),
        ("P001_N", "P001_N.lane_2", "P001_N", "ILLUMINA", f"{d}/P001_N_S1_L002_R1_001.fastq.gz",
         f"{d}/P001_N_S1_L002_R2_001.fastq.gz"),
        ("P002_N", "P002_N.lane_1", "P002_N", "ILLUMINA", f"{d}/P002_N_S2_L001_R1_001.fastq.gz",
         f"{d}/P002_N_S2_L001_R2_001.fastq.gz"),
        ("P003_N", "P003_N.lane_1", "P003_N", "ILLUMINA", f"{d}/P003_N_S3_L001_R1_001.fastq.gz",
         f"{d}/P003_N_S3_L001_R2_001.fastq.gz"),
    ]
    assert cohort.summary() == "3 samples, 4 lanes (4 paired)"
    assert [lane.line for lane in cohort.lanes] == [2, 3, 4, 5]
    assert "columns patient, sex, status not used" in caplog.text
    assert "tumour" not in caplog.text
    sheet.write_text(sheet.read_text().replace("P002,XY,0,", "P002,XY,1,"))
    samplesheet.read(sheet)
    assert f"sample sheet {sheet}: P002_N marked as tumour (status 1): the cohort workflow calls germline" \
        in caplog.text


def test_excel_csv_with_bom_crlf_quotes_and_empty_rows(tmp_path: Path) -> None:
    raw = (DATA / "excel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b'"run 7, repeat/' in raw, "the file lost its shape"
    fq = ["NA12878_L001_R1.fq.gz", "NA12878_L001_R2.fq.gz", "run 7, repeat/NA12878_L002_R1.fq.gz",
          "run 7, repeat/NA12878_L002_R2.fq.gz", "NA12891_L001_R1.fq.gz", "NA12891_L001_R2.fq.gz"]
    cohort = samplesheet.read(sheet_in(tmp_path, "excel.csv", fq))
    assert cohort.samples_json() == [
        {"name": "NA12878", "lanes": [
            {"read_group": "NA12878.L001", "library": "NA12878-lib1", "platform": "ILLUMINA",
             "fastq_1": f"{tmp_path}/NA12878_L001_R1.fq.gz", "fastq_2": f"{tmp_path}/NA12878_L001_R2.fq.gz"},
            {"read_group": "NA12878.L002", "library": "NA12878-lib1", "platform": "ILLUMINA",
             "fastq_1": f"{tmp_path}/run 7, repeat/NA12878_L002_R1.fq.gz",
             "fastq_2": f"{tmp_path}/run 7, repeat/NA12878_L002_R2.fq.gz"}]},
        {"name": "NA12891", "lanes": [
            {"read_group": "NA12891.L001", "library": "NA12891", "platform": "ILLUMINA",
             "fastq_1": f"{tmp_path}/NA12891_L001_R1.fq.gz", "fastq_2": f"{tmp_path}/NA12891_L001_R2.fq.gz"}]},
    ]


def test_excel_unicode_text_utf16(tmp_path: Path) -> None:
    assert (DATA / "excel_unicode.txt").read_bytes().startswith(b"\xff\xfe")
    fq = ["HG002_R1.fastq.gz", "HG002_R2.fastq.gz", "HG003_R1.fastq.gz", "HG003_R2.fastq.gz"]
    cohort = samplesheet.read(sheet_in(tmp_path, "excel_unicode.txt", fq))
    assert [(s.name, [lane.read_group for lane in s.lanes]) for s in cohort.samples] == \
        [("HG002", ["HG002.L001"]), ("HG003", ["HG003.L001"])]


def test_tsv_with_two_lanes_comments_and_relative_paths(tmp_path: Path) -> None:
    fq = [f"../fastq/{s}_L00{lane}_R{r}_001.fastq.gz" for s, lane in
          (("SIM001_S1", 1), ("SIM001_S1", 2), ("SIM002_S2", 1), ("SIM003_S3", 2)) for r in (1, 2)]
    sheet = sheet_in(tmp_path, "lanes.tsv", fq, folder="sheets")
    cohort = samplesheet.read(sheet)
    d = tmp_path / "fastq"
    assert lanes_of(cohort) == [
        ("SIM001", "A22FJKLLT3.1.SIM001", "LIB-SIM001", "ILLUMINA", f"{d}/SIM001_S1_L001_R1_001.fastq.gz",
         f"{d}/SIM001_S1_L001_R2_001.fastq.gz"),
        ("SIM001", "A22FJKLLT3.2.SIM001", "LIB-SIM001", "ILLUMINA", f"{d}/SIM001_S1_L002_R1_001.fastq.gz",
         f"{d}/SIM001_S1_L002_R2_001.fastq.gz"),
        ("SIM002", "A22FJKLLT3.1.SIM002", "LIB-SIM002", "ILLUMINA", f"{d}/SIM002_S2_L001_R1_001.fastq.gz",
         f"{d}/SIM002_S2_L001_R2_001.fastq.gz"),
        ("SIM003", "A22FJKLLT3.2.SIM003", "LIB-SIM003", "ILLUMINA", f"{d}/SIM003_S3_L002_R1_001.fastq.gz",
         f"{d}/SIM003_S3_L002_R2_001.fastq.gz"),
    ]
    assert [lane.line for lane in cohort.lanes] == [5, 6, 8, 11], "physical line numbers, comments counted"
    assert not (d / "SIM003_S3_L001_R1_001.fastq.gz").exists(), "the commented-out lane is not read"


def test_single_end_lanes(tmp_path: Path) -> None:
    fq = ["reads/ONT_A.run1.fastq.gz", "reads/ONT_A.run2.fastq", "reads/ION_B.fastq.gz"]
    cohort = samplesheet.read(sheet_in(tmp_path, "single_end.tsv", fq))
    assert cohort.samples_json() == [
        {"name": "ONT_A", "lanes": [
            {"read_group": "ONT_A.1", "library": "ONT_A", "platform": "ONT",
             "fastq_1": f"{tmp_path}/reads/ONT_A.run1.fastq.gz"},
            {"read_group": "ONT_A.2", "library": "ONT_A", "platform": "ONT",
             "fastq_1": f"{tmp_path}/reads/ONT_A.run2.fastq"}]},
        {"name": "ION_B", "lanes": [
            {"read_group": "ION_B.1", "library": "ION_B", "platform": "IONTORRENT",
             "fastq_1": f"{tmp_path}/reads/ION_B.fastq.gz"}]},
    ]
    assert cohort.summary() == "2 samples, 3 lanes (3 single-end)"


def test_absolute_home_and_s3_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_fastq(tmp_path / "home" / "runs" / "a_R1.fq.gz")
    write_fastq(tmp_path / "home" / "runs" / "a_R2.fq.gz", 2)
    abs_r1 = write_fastq(tmp_path / "elsewhere" / "b_R1.fastq")
    sheet = write_sheet(tmp_path / "sheets", "sample,lane,fastq_1,fastq_2\n"
                        "A,1,~/runs/a_R1.fq.gz,~/runs/a_R2.fq.gz\n"
                        f"B,1,{abs_r1},\n"
                        "C,1,s3://seq-archive/run42/C_R1.fastq.gz,\n", name="cohort.csv")
    cohort = samplesheet.read(sheet, local=False)
    assert [(lane.fastq_1, lane.fastq_2) for lane in cohort.lanes] == [
        (f"{tmp_path}/home/runs/a_R1.fq.gz", f"{tmp_path}/home/runs/a_R2.fq.gz"),
        (str(abs_r1), None),
        ("s3://seq-archive/run42/C_R1.fastq.gz", None),
    ]


def test_only_the_first_bytes_are_read(tmp_path: Path) -> None:
    """A FASTQ whose first gzip member is sound and whose rest is garbage passes: the full check is the
    pipeline's streaming pass, not this one (a 30x genome is 60 GB)."""
    big = tmp_path / "S1_R1.fastq.gz"
    big.write_bytes(gzip.compress(FASTQ.format(r=1).encode() * 200) + os.urandom(4 * 1024 * 1024))
    write_fastq(tmp_path / "S1_R2.fastq.gz", 2)
    cohort = samplesheet.read(write_sheet(tmp_path, "sample\tlane\tfastq_1\tfastq_2\n"
                                          "S1\tL001\tS1_R1.fastq.gz\tS1_R2.fastq.gz\n"))
    assert cohort.summary() == "1 sample, 1 lane (1 paired)"


def test_bgzf_fastq_is_accepted(tmp_path: Path) -> None:
    """bgzip output: many gzip members; the first may hold nothing (an empty block before the data)."""
    empty_member = gzip.compress(b"", mtime=0)
    (tmp_path / "r1.fq.gz").write_bytes(empty_member + gzip.compress(FASTQ.format(r=1).encode(), mtime=0))
    write_fastq(tmp_path / "r2.fq.gz", 2)
    cohort = samplesheet.read(write_sheet(tmp_path, "sample\tlane\tfastq_1\tfastq_2\nS1\t1\tr1.fq.gz\tr2.fq.gz\n"))
    assert len(cohort.lanes) == 1


# -- bad sheets: one line naming the line and the fix ---------------------------------------------

HEADER = "sample\tlane\tfastq_1\tfastq_2\n"
PAIR = ("a_R1.fq.gz", "a_R2.fq.gz")
PAIRS = ("a_R1.fq.gz", "a_R2.fq.gz", "b_R1.fq.gz", "b_R2.fq.gz")


@pytest.mark.parametrize("text, fastqs, expected", [
    ("sample\tlane\tfastq_1\nS1\tL001\ta_R1.fq.gz\n", PAIR,
     "{s}:1: the header has no fastq_2 column: the columns are sample, lane and/or read_group, fastq_1, fastq_2 "
     "(empty for single-end), optional library and platform"),
    ("sample\tfastq_1\tfastq_2\nS1\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:1: the header has no lane (or read_group) column: the columns are sample, lane and/or read_group, "
     "fastq_1, fastq_2 (empty for single-end), optional library and platform"),
    ("sample\tlane\tfastq1\tfastq2\nS1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:1: unknown columns 'fastq1' (did you mean 'fastq_1'?), 'fastq2' (did you mean 'fastq_2'?): the columns "
     "are sample, lane and/or read_group, fastq_1, fastq_2 (empty for single-end), optional library and platform; "
     "nf-core/sarek's patient, sex and status are ignored"),
    ("#sample\tlane\tfastq_1\tfastq_2\nS1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: the header line ('S1', 'L001', 'a_R1.fq.gz', 'a_R2.fq.gz') names none of the columns (the header seems "
     "to be the '#' line above it: remove its '#'): start the sheet with the header; the columns are sample, lane "
     "and/or read_group, fastq_1, fastq_2 (empty for single-end), optional library and platform"),
    ("Sample\tLane\tFASTQ 1\tFASTQ 2\nS1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:1: unknown columns 'FASTQ 1' (did you mean 'fastq_1'?), 'FASTQ 2' (did you mean 'fastq_2'?): the columns "
     "are sample, lane and/or read_group, fastq_1, fastq_2 (empty for single-end), optional library and platform; "
     "nf-core/sarek's patient, sex and status are ignored"),
    ("sample,lane,fastq_1,fastq_2,,notes\nS1,L001,a_R1.fq.gz,a_R2.fq.gz,,resequenced\n", PAIR,
     "{s}:1: column 5 of the header has no name: name it or delete the column (the columns are sample, lane and/or "
     "read_group, fastq_1, fastq_2 (empty for single-end), optional library and platform)"),
    ("sample lane fastq_1 fastq_2\nS1 L001 a_R1.fq.gz a_R2.fq.gz\n", PAIR,
     "{s}: the header 'sample lane fastq_1 fastq_2' has no tabs or commas: separate the columns with tabs (TSV) or "
     "commas (CSV); spaces do not separate them"),
    ("sample\tlane\tfastq_1\tfastq_2\tLane\nS1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\t1\n", PAIR,
     "{s}:1: the header names column 'lane' twice (columns 2 and 5): keep one"),
    (HEADER, (), "sample sheet '{s}' has a header but no data lines: add one line per lane (sample, lane, fastq_1, "
     "fastq_2)"),
    ("# samples of run 42\n\n", (), "sample sheet '{s}' has no header line: start it with the column names (sample, "
     "lane, fastq_1, fastq_2, ...)"),
    (HEADER + "\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR, "{s}:2: sample is empty: give the sample name"),
    (HEADER + "S1\tL001\n", PAIR,
     "{s}:2: fastq_1 is empty (the line has 2 of the header's 4 fields): give the lane's (read 1) FASTQ file"),
    (HEADER + "S1\tL001\t\ta_R2.fq.gz\n", PAIR, "{s}:2: fastq_1 is empty (the read 2 file is given: put read 1 in "
     "fastq_1): give the lane's (read 1) FASTQ file"),
    (HEADER + "S1\t\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR, "{s}:2: lane is empty: give the lane (e.g. L001)"),
    ("sample\tlane\tread_group\tfastq_1\tfastq_2\nS1\t\t\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: lane and read_group are empty: give the lane (e.g. L001) or the read group ID"),
    (HEADER + "Patient 7\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: sample 'Patient 7' may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ "
     "-): rename it"),
    (HEADER + "cohort\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: sample 'cohort' is reserved (results/cohort/ holds the cohort's files): rename the sample"),
    (HEADER + "NA12878\tL001\ta_R1.fq.gz\ta_R2.fq.gz\nna12878\tL002\tb_R1.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: sample 'na12878' differs from sample 'NA12878' of line 2 only in case: write one sample's name one way"),
    (HEADER + "S1\tlane 1\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: lane 'lane 1' makes the read group ID 'S1.lane 1', which may hold only letters, digits, '.', '_' "
     "and '-' (at most 100, not starting with . _ -): change the lane"),
    ("sample\tread_group\tfastq_1\tfastq_2\nS1\tFC1/1\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: read_group 'FC1/1' may hold only letters, digits, '.', '_' and '-' (at most 100, not starting "
     "with . _ -): change it"),
    ("sample\tlane\tlibrary\tfastq_1\tfastq_2\nS1\tL001\tPCR-free lib\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: library 'PCR-free lib' may hold only letters, digits, '.', '_' and '-' (at most 100, not "
     "starting with . _ -): change it"),
    ("sample\tlane\tplatform\tfastq_1\tfastq_2\nS1\tL001\tNovaSeq 6000\ta_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: platform 'NovaSeq 6000' is not a SAM platform: give one of CAPILLARY, DNBSEQ, ELEMENT, HELICOS, "
     "ILLUMINA, IONTORRENT, LS454, ONT, PACBIO, SINGULAR, SOLID, ULTIMA (any case)"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\nS1\tL001\tb_R1.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: sample 'S1' lane 'L001' is already on line 2: give each lane of a sample once (lanes of two flow "
     "cells need distinct lane values, e.g. FC1.L001 and FC2.L001)"),
    ("sample\tread_group\tfastq_1\tfastq_2\nS1\tFC1.1\ta_R1.fq.gz\ta_R2.fq.gz\nS2\tFC1.1\tb_R1.fq.gz\tb_R2.fq.gz\n",
     PAIRS, "{s}:3: read group ID 'FC1.1' is already used on line 2: read group IDs must be unique in the cohort: "
     "change the read_group (or lane)"),
    ("sample\tlane\tread_group\tfastq_1\tfastq_2\nS1\tL001\t\ta_R1.fq.gz\ta_R2.fq.gz\n"
     "S1\tL002\tS1.L001\tb_R1.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: read group ID 'S1.L001' is already used on line 2: read group IDs must be unique in the cohort: change "
     "the read_group (or lane)"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\nS2\tL001\ta_R1.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: fastq_1 'a_R1.fq.gz' is already fastq_1 of line 2: each FASTQ file belongs to one lane: fix the path"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\nS1\tL002\ta_R2.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: fastq_1 'a_R2.fq.gz' is already fastq_2 of line 2: each FASTQ file belongs to one lane: fix the path"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\t./a_R1.fq.gz\n", PAIR,
     "{s}:2: fastq_1 and fastq_2 are the same file ('a_R1.fq.gz'): give the lane's read 1 and read 2 files"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\nS1\tL002\tb_R1.fq.gz\t\n", PAIRS,
     "{s}:3: sample 'S1' has a single-end lane here and a paired lane on line 2: a sample's lanes must be all "
     "paired or all single-end: give fastq_2 for every lane or for none"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\t\nS1\tL002\tb_R1.fq.gz\tb_R2.fq.gz\n", PAIRS,
     "{s}:3: sample 'S1' has a paired lane here and a single-end lane on line 2: a sample's lanes must be all "
     "paired or all single-end: give fastq_2 for every lane or for none"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\tfastq/a_R2.fq.gz\n", PAIR,
     "{s}:2: fastq_2 'fastq/a_R2.fq.gz' (read as {d}/fastq/a_R2.fq.gz) does not exist: fix the path (relative "
     "paths are read from the sheet's folder)"),
    (HEADER + "S1\tL001\ta_R1.fq.gz\t/data/run42/a_R2.fq.gz\n", PAIR,
     "{s}:2: fastq_2 '/data/run42/a_R2.fq.gz' does not exist: fix the path"),
    (HEADER + "S1\tL001\tC:\\seq\\a_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: fastq_1 'C:\\seq\\a_R1.fq.gz' holds a backslash: write paths with '/' (a Windows path "
     "C:\\data\\x.fastq.gz is /mnt/c/data/x.fastq.gz under WSL)"),
    (HEADER + "S1\tL001\ts3://seq-archive/a_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: fastq_1 is the S3 URI 's3://seq-archive/a_R1.fq.gz', and a local run reads local files: download it "
     "and name the local copy, or stage the sheet (batchpipes aws stage --samples) and run on AWS"),
    (HEADER + "S1\tL001\thttps://example.org/a_R1.fq.gz\ta_R2.fq.gz\n", PAIR,
     "{s}:2: fastq_1 'https://example.org/a_R1.fq.gz' is a URL: give a local path or an s3:// URI"),
    ("sample,lane,fastq_1,fastq_2\nS1,L001,run 7, repeat/a_R1.fq.gz,a_R2.fq.gz\n", PAIR,
     "{s}:2: 5 fields where the header has 4: remove the extra fields, or put a field that holds a ',' in double "
     "quotes"),
    ('sample,lane,fastq_1,fastq_2\nS1,L001,"a_R1.fq.gz,a_R2.fq.gz\n', PAIR,
     "{s}:2: badly quoted field (unexpected end of data): close each quoted field and put the ',' right after its "
     "closing quote"),
])
def test_bad_sheet_is_one_line(tmp_path: Path, expect_user_error: Callable[..., str], text: str,
                               fastqs: tuple[str, ...], expected: str) -> None:
    name = "samples.csv" if text.startswith("sample,") else "samples.tsv"
    sheet = write_sheet(tmp_path, text, name, fastqs)
    before = sorted(tmp_path.rglob("*"))
    assert expect_user_error(samplesheet.read, sheet) == expected.format(s=sheet, d=tmp_path)
    assert sorted(tmp_path.rglob("*")) == before, "nothing written"


def lane_sheet(tmp: Path, r1: Path, r2: Path | None = None) -> Path:
    return write_sheet(tmp, HEADER + f"S1\tL001\t{r1.name}\t{r2.name if r2 else ''}\n")


@pytest.mark.parametrize("content, why", [
    (b"", "is empty (0 bytes): give the lane's FASTQ file (a copy or download may have failed)"),
    (gzip.compress(b"", mtime=0), "holds no reads (the gzip stream is empty): give the lane's FASTQ file"),
    (b">NC_001807.4 Homo sapiens mitochondrion\nGATCACAGGTCTATCACCCTATTAACCAC\n",
     "is FASTA (it starts with '>'), not FASTQ: give the FASTQ file, with its base qualities"),
    (gzip.compress(b"BAM\x01" + bytes(64), mtime=0),
     "is a BAM file, not FASTQ: convert it (samtools fastq) or give the FASTQ files"),
    (bz2.compress(FASTQ.encode()), "is bzip2-compressed: recompress it with gzip (bunzip2 -c FILE | gzip > FILE.gz)"),
    (b"sample\tlane\tfastq_1\tfastq_2\n", "is not FASTQ: it starts with 's' where a FASTQ record starts with '@': "
     "give the lane's FASTQ file (plain or gzip)"),
    (gzip.compress(b"\n@r1\nACGT\n+\nIIII\n", mtime=0), "is not FASTQ: it starts with byte 0x0a after decompression "
     "where a FASTQ record starts with '@': give the lane's FASTQ file (plain or gzip)"),
    (b"\x1f\x8b\x08\x00" + random.Random(12).randbytes(2000), None),
], ids=["empty", "empty-gzip", "fasta", "bam", "bzip2", "a-sheet", "gzip-blank-line", "damaged-gzip"])
def test_file_that_is_not_fastq(tmp_path: Path, expect_user_error: Callable[..., str], content: bytes,
                                why: str | None) -> None:
    bad = tmp_path / "S1_L001_R1.fastq.gz"
    bad.write_bytes(content)
    sheet = lane_sheet(tmp_path, bad, write_fastq(tmp_path / "S1_L001_R2.fastq.gz", 2))
    msg = expect_user_error(samplesheet.read, sheet)
    prefix = f"{sheet}:2: fastq_1 'S1_L001_R1.fastq.gz' (read as {bad}) "
    if why is None:  # random bytes after a gzip header: zlib names the damage
        assert msg.startswith(prefix + "is not a valid gzip file (") and msg.endswith("): download or compress it "
                                                                                      "again"), msg
    else:
        assert msg == prefix + why


def test_same_file_under_two_names(tmp_path: Path, expect_user_error: Callable[..., str]) -> None:
    r1, r2 = write_fastq(tmp_path / "S1_R1.fq.gz"), write_fastq(tmp_path / "S1_R2.fq.gz", 2)
    (tmp_path / "renamed_R1.fq.gz").symlink_to(r1)
    os.link(r2, tmp_path / "hardlink_R2.fq.gz")
    write_fastq(tmp_path / "S2_R2.fq.gz", 2)
    sheet = write_sheet(tmp_path, HEADER + "S1\tL001\tS1_R1.fq.gz\tS1_R2.fq.gz\n"
                        "S2\tL001\trenamed_R1.fq.gz\tS2_R2.fq.gz\n")
    assert expect_user_error(samplesheet.read, sheet) == (
        f"{sheet}:3: fastq_1 'renamed_R1.fq.gz' is already fastq_1 of line 2 ('S1_R1.fq.gz', the same file under "
        "another name): each FASTQ file belongs to one lane: fix the path")
    sheet.write_text(HEADER + "S1\tL001\tS1_R1.fq.gz\tS1_R2.fq.gz\nS2\tL001\tS2_R2.fq.gz\thardlink_R2.fq.gz\n")
    assert expect_user_error(samplesheet.read, sheet) == (
        f"{sheet}:3: fastq_2 'hardlink_R2.fq.gz' is already fastq_2 of line 2 ('S1_R2.fq.gz', the same file under "
        "another name): each FASTQ file belongs to one lane: fix the path")


def test_broken_link(tmp_path: Path, expect_user_error: Callable[..., str]) -> None:
    link = tmp_path / "S1_R1.fq.gz"
    link.symlink_to("/mnt/seqstore/run42/S1_R1.fq.gz")
    sheet = lane_sheet(tmp_path, link)
    assert expect_user_error(samplesheet.read, sheet) == (
        f"{sheet}:2: fastq_1 'S1_R1.fq.gz' (read as {link}) is a link to '/mnt/seqstore/run42/S1_R1.fq.gz', which "
        "does not exist: fix the link or the path")


@pytest.mark.parametrize("content, name, expected", [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "samples.xlsx",
     "sample sheet '{s}' is a spreadsheet workbook, not text: save it as CSV UTF-8 or as tab-delimited text"),
    ("sample\tlane\tfastq_1\tfastq_2\nJosé\tL001\ta.fq\t\n".encode("latin-1"), "samples.tsv",
     "sample sheet '{s}' is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8 (in Excel: CSV UTF-8)"),
    (gzip.compress(b"sample\tlane\tfastq_1\tfastq_2\n", mtime=0), "samples.tsv.gz",
     "sample sheet '{s}' is gzip-compressed: decompress it (gunzip)"),
], ids=["xlsx", "latin-1", "gzip"])
def test_sheet_that_is_not_text(tmp_path: Path, expect_user_error: Callable[..., str], content: bytes, name: str,
                                expected: str) -> None:
    sheet = tmp_path / name
    sheet.write_bytes(content)
    assert expect_user_error(samplesheet.read, sheet) == expected.format(s=sheet)


def test_missing_sheet(tmp_path: Path, expect_user_error: Callable[..., str]) -> None:
    assert expect_user_error(samplesheet.read, tmp_path / "samples.tsv") == (
        f"sample sheet '{tmp_path}/samples.tsv' not found: give the path of a TSV or CSV file")


# -- the sheet in the inputs ----------------------------------------------------------------------

def test_apply_sets_the_samples_input_and_replaces_the_files(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path, HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", fastqs=PAIR)
    inputs = {"genomics_cohort.reference_fasta": "genomics/reference.fa", "genomics_cohort.samples": []}
    name, out = samplesheet.apply("genomics", sheet, inputs)
    assert name == "genomics_cohort"
    assert out == {"genomics_cohort.reference_fasta": "genomics/reference.fa", "genomics_cohort.samples": [
        {"name": "S1", "lanes": [{"read_group": "S1.L001", "library": "S1", "platform": "ILLUMINA",
                                 "fastq_1": f"{tmp_path}/a_R1.fq.gz", "fastq_2": f"{tmp_path}/a_R2.fq.gz"}]}]}
    assert inputs["genomics_cohort.samples"] == [], "the caller's dict is left as it was"


@pytest.mark.parametrize("pipeline, inputs, replace, expected", [
    ("hevc", {}, True, "--samples is for the genomics pipeline, not 'hevc': run `batchpipes run genomics --samples "
     "SHEET`, or drop --samples"),
    ("genomics", {"samples": []}, False, "--set samples and --samples both give the samples: keep one"),
    ("genomics", {"genomics.sample_name": "SIM001", "genomics.fastq_r1": "x"}, True,
     "the inputs JSON holds 'genomics.sample_name', an input of workflow 'genomics', but a sample sheet runs "
     "genomics_cohort: give inputs for genomics_cohort (e.g. inputs/genomics_cohort.local.json)"),
])
def test_apply_refuses(tmp_path: Path, expect_user_error: Callable[..., str], pipeline: str, inputs: dict[str, Any],
                       replace: bool, expected: str) -> None:
    sheet = write_sheet(tmp_path, HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n", fastqs=PAIR)
    assert expect_user_error(samplesheet.apply, pipeline, sheet, inputs, replace=replace) == expected


#: A stand-in for wdl/genomics_cohort.wdl with the data model of docs/genomics.md (Lane, Sample), so these tests do
#: not depend on the cohort workflow's other inputs.
STAND_IN = """version 1.0
struct Lane {
    String read_group
    String library
    String platform
    File fastq_1
    File? fastq_2
}
struct Sample {
    String name
    Array[Lane] lanes
}
workflow genomics_cohort {
    input {
        Array[Sample] samples
        File reference_fasta
        Int align_cpu = 2
    }
    output {
        Int n = length(samples)
    }
}
"""


@pytest.fixture()
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wdl/ and inputs/ folders holding the stand-in workflow and its local inputs; returns the inputs folder."""
    wdl, inputs = tmp_path / "repo" / "wdl", tmp_path / "repo" / "inputs"
    wdl.mkdir(parents=True)
    inputs.mkdir()
    (wdl / "genomics_cohort.wdl").write_text(STAND_IN)
    shutil.copyfile(settings.WDL_DIR / "genomics.wdl", wdl / "genomics.wdl")  # keys of genomics.* are known
    (inputs / "genomics").mkdir()
    shutil.copyfile(settings.INPUTS_DIR / "genomics" / "reference.fa", inputs / "genomics" / "reference.fa")
    (inputs / "genomics_cohort.local.json").write_text(json.dumps({
        "genomics_cohort.samples": [{"name": "SIM001", "lanes": [{
            "read_group": "SIM001.L001", "library": "SIM001", "platform": "ILLUMINA",
            "fastq_1": "genomics/reference.fa"}]}],
        "genomics_cohort.reference_fasta": "genomics/reference.fa",
        "genomics_cohort.align_cpu": 2}))
    monkeypatch.setattr(settings, "WDL_DIR", wdl)
    monkeypatch.setattr(settings, "INPUTS_DIR", inputs)
    return inputs


def cohort_sheet(tmp: Path) -> Path:
    fq = [f"fastq/{s}_L00{lane}_R{r}_001.fastq.gz" for s, lane in
          (("P001_N_S1", 1), ("P001_N_S1", 2), ("P002_N_S2", 1), ("P003_N_S3", 1)) for r in (1, 2)]
    return sheet_in(tmp, "sarek.csv", fq, folder="sheet")


def test_run_with_samples_runs_the_cohort_workflow(stand_in: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``batchpipes run genomics --samples``: the cohort workflow, its other inputs from its local inputs file, the
    samples from the sheet (the file's own samples replaced). local.run is stopped at its door."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def fake_run(flow: workflows.Workflow, inputs: dict[str, Any], **kw: object) -> None:
        seen.append((flow.name, inputs))
        raise UserError("stopped before running")

    monkeypatch.setattr(local, "run", fake_run)
    sheet = cohort_sheet(tmp_path)
    assert cli.main(["run", "genomics", "--samples", str(sheet), "--set", "align_cpu=4"]) == 2
    assert capsys.readouterr().err.strip() == "error: stopped before running"
    [(name, inputs)] = seen
    assert name == "genomics_cohort"
    assert inputs["genomics_cohort.reference_fasta"] == str(stand_in / "genomics" / "reference.fa")
    assert inputs["genomics_cohort.align_cpu"] == 4
    samples = inputs["genomics_cohort.samples"]
    assert [s["name"] for s in samples] == ["P001_N", "P002_N", "P003_N"]
    assert samples[0]["lanes"][1] == {
        "read_group": "P001_N.lane_2", "library": "P001_N", "platform": "ILLUMINA",
        "fastq_1": f"{sheet.parent}/fastq/P001_N_S1_L002_R1_001.fastq.gz",
        "fastq_2": f"{sheet.parent}/fastq/P001_N_S1_L002_R2_001.fastq.gz"}


def test_cli_samples_with_single_sample_inputs(stand_in: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    inputs = settings.REPO_ROOT / "inputs" / "genomics.local.json"
    assert cli.main(["run", "genomics", "--samples", str(cohort_sheet(tmp_path)), "-i", str(inputs)]) == 2
    assert capsys.readouterr().err == (
        f"error: {inputs} holds 'genomics.sample_name', an input of workflow 'genomics', but a sample sheet runs "
        "genomics_cohort: give inputs for genomics_cohort (e.g. inputs/genomics_cohort.local.json)\n")


def test_cli_bad_sheet_exits_2_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(local, "run", lambda *a, **kw: pytest.fail("a run started"))
    write_fastq(tmp_path / "a_R1.fq.gz")
    sheet = write_sheet(tmp_path, HEADER + "S1\tL001\ta_R1.fq.gz\ta_R2.fq.gz\n")
    runs = tmp_path / "runs"
    assert cli.main(["run", "genomics", "--samples", str(sheet), "--dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {sheet}:2: fastq_2 'a_R2.fq.gz' (read as {tmp_path}/a_R2.fq.gz) does not exist: fix the "
                   "path (relative paths are read from the sheet's folder)\n")
    assert not runs.exists()


def test_cli_samples_with_another_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "hevc", "--samples", str(tmp_path / "samples.tsv")]) == 2
    assert capsys.readouterr().err == ("error: --samples is for the genomics pipeline, not 'hevc': run `batchpipes "
                                       "run genomics --samples SHEET`, or drop --samples\n")


def test_sheet_matches_the_cohort_workflow(tmp_path: Path) -> None:
    """The samples value the sheet gives type-checks against the real wdl/genomics_cohort.wdl."""
    if "genomics_cohort" not in workflows.known():
        pytest.skip("wdl/genomics_cohort.wdl is not written yet")
    flow = workflows.get("genomics_cohort")
    wf = workflows.load(flow.path).workflow
    assert wf is not None
    sheet = cohort_sheet(tmp_path)
    _, inputs = samplesheet.apply("genomics", sheet, {})
    seen: list[str] = []
    workflows.map_files(wf, inputs, lambda key, v: seen.append(v.value) or v.value)
    assert len(seen) == 8 and all(p.startswith(str(sheet.parent)) for p in seen)


# -- staging the sheet's FASTQ files to S3 --------------------------------------------------------

@pytest.fixture()
def sess(stage_session: boto3.session.Session) -> boto3.session.Session:
    return stage_session


def test_stage_uploads_every_lane_and_writes_s3_uris(stand_in: Path, tmp_path: Path,
                                                     sess: boto3.session.Session) -> None:
    sheet = cohort_sheet(tmp_path)
    sheet.write_text(sheet.read_text() + "P004,XY,0,P004_N,lane_1,s3://seq-archive/run42/P004_N_R1.fastq.gz,"
                     "s3://seq-archive/run42/P004_N_R2.fastq.gz\n")
    out = tmp_path / "staged.json"
    result = stage.stage(sess, stand_in / "genomics_cohort.local.json", "stage-bkt", output=out,
                         state_dir=tmp_path / "state", progress=False, samples=sheet)
    assert sorted(e.action for e in result.entries) == ["uploaded"] * 9  # 8 FASTQs and the reference
    staged = json.loads(out.read_text())
    prefix = "s3://stage-bkt/inputs/genomics_cohort/fastq/"
    lanes = [(s["name"], lane["fastq_1"], lane["fastq_2"]) for s in staged["genomics_cohort.samples"]
             for lane in s["lanes"]]
    assert lanes == [
        ("P001_N", prefix + "P001_N_S1_L001_R1_001.fastq.gz", prefix + "P001_N_S1_L001_R2_001.fastq.gz"),
        ("P001_N", prefix + "P001_N_S1_L002_R1_001.fastq.gz", prefix + "P001_N_S1_L002_R2_001.fastq.gz"),
        ("P002_N", prefix + "P002_N_S2_L001_R1_001.fastq.gz", prefix + "P002_N_S2_L001_R2_001.fastq.gz"),
        ("P003_N", prefix + "P003_N_S3_L001_R1_001.fastq.gz", prefix + "P003_N_S3_L001_R2_001.fastq.gz"),
        ("P004_N", "s3://seq-archive/run42/P004_N_R1.fastq.gz", "s3://seq-archive/run42/P004_N_R2.fastq.gz"),
    ]
    assert staged["genomics_cohort.reference_fasta"] == "s3://stage-bkt/inputs/genomics_cohort/genomics/reference.fa"
    s3 = sess.client("s3")
    body = s3.get_object(Bucket="stage-bkt", Key="inputs/genomics_cohort/fastq/P002_N_S2_L001_R2_001.fastq.gz")
    assert body["Body"].read() == (sheet.parent / "fastq" / "P002_N_S2_L001_R2_001.fastq.gz").read_bytes()
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["samples"] == str(sheet) and manifest["workflow"] == "genomics_cohort"


def test_stage_bad_sheet_uploads_nothing(stand_in: Path, tmp_path: Path, sess: boto3.session.Session,
                                         expect_user_error: Callable[..., str]) -> None:
    sheet = cohort_sheet(tmp_path)
    (sheet.parent / "fastq" / "P003_N_S3_L001_R2_001.fastq.gz").write_bytes(b"")
    puts = []
    sess.events.register("provide-client-params.s3.*", lambda params, **kw: puts.append(params))
    msg = expect_user_error(stage.stage, sess, stand_in / "genomics_cohort.local.json", "stage-bkt",
                            output=tmp_path / "staged.json", state_dir=tmp_path / "state", progress=False,
                            samples=sheet)
    assert msg == (f"{sheet}:5: fastq_2 'fastq/P003_N_S3_L001_R2_001.fastq.gz' (read as "
                   f"{sheet.parent}/fastq/P003_N_S3_L001_R2_001.fastq.gz) is empty (0 bytes): give the lane's FASTQ "
                   "file (a copy or download may have failed)")
    assert puts == [] and not (tmp_path / "staged.json").exists() and not (tmp_path / "state").exists()


def test_cli_stage_with_samples_defaults_to_the_cohort_inputs(stand_in: Path, tmp_path: Path,
                                                             sess: boto3.session.Session,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    sheet = cohort_sheet(tmp_path)
    args = ["aws", "stage", "--bucket", "stage-bkt", "--samples", str(sheet), "--state-dir", str(tmp_path / "st"),
            "--no-progress"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "9 file(s): 9 uploaded" in out
    staged = json.loads((stand_in / "genomics_cohort.staged.json").read_text())
    assert all(lane[k].startswith("s3://stage-bkt/inputs/genomics_cohort/fastq/P00")
               for s in staged["genomics_cohort.samples"] for lane in s["lanes"] for k in ("fastq_1", "fastq_2"))
    assert cli.main([*args, "--verify"]) == 0
    assert "verified 9 object(s): 9 match, 0 mismatch" in capsys.readouterr().out


def test_cli_stage_needs_inputs_or_samples(fake_aws: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["aws", "stage", "--bucket", "stage-bkt"]) == 2
    assert capsys.readouterr().err == ("error: give the inputs JSON to stage with -i/--inputs (e.g. -i "
                                       "inputs/genomics.local.json)\n")


def test_bundled_sheet_is_the_bundled_cohort() -> None:
    """inputs/genomics/cohort/samples.tsv and the samples of inputs/genomics_cohort.local.json name the same lanes."""
    sheet = settings.INPUTS_DIR / "genomics" / "cohort" / "samples.tsv"
    inputs = settings.INPUTS_DIR / "genomics_cohort.local.json"
    if not sheet.is_file() or not inputs.is_file():
        pytest.skip("the bundled cohort is not written yet")
    from_json = workflows.validate(workflows.get("genomics_cohort"), json.loads(inputs.read_text()),
                                   source=str(inputs), base_dir=inputs.parent)["genomics_cohort.samples"]
    for sample in from_json:
        for lane in sample["lanes"]:
            if lane.get("fastq_2") is None:
                lane.pop("fastq_2", None)
    assert samplesheet.read(sheet).samples_json() == from_json


def test_stage_the_bundled_cohort_sheet_for_the_real_workflow(tmp_path: Path, sess: boto3.session.Session) -> None:
    """``aws stage --samples inputs/genomics/cohort/samples.tsv`` with the real cohort workflow and inputs: every
    lane's FASTQ files and the reference files become s3:// URIs that type-check against the workflow."""
    sheet = settings.INPUTS_DIR / "genomics" / "cohort" / "samples.tsv"
    inputs = settings.INPUTS_DIR / "genomics_cohort.local.json"
    if not sheet.is_file() or not inputs.is_file():
        pytest.skip("the bundled cohort is not written yet")
    out = tmp_path / "staged.json"
    stage.stage(sess, inputs, "stage-bkt", output=out, state_dir=tmp_path / "state", progress=False, samples=sheet)
    staged = json.loads(out.read_text())
    flow = workflows.get("genomics_cohort")
    workflows.validate(flow, staged, source="staged", check_files=False)
    wf = workflows.load(flow.path).workflow
    assert wf is not None
    uris: list[str] = []
    workflows.map_files(wf, staged, lambda key, v: uris.append(v.value) or v.value)
    lanes = samplesheet.read(sheet).lanes
    assert len(uris) >= 2 * len(lanes) + 2 and all(u.startswith("s3://stage-bkt/inputs/genomics_cohort/") for u in uris)
    staged_lanes = [lane for s in staged["genomics_cohort.samples"] for lane in s["lanes"]]
    assert [lane["read_group"] for lane in staged_lanes] == [lane.read_group for lane in lanes]
    key = staged_lanes[0]["fastq_1"].removeprefix("s3://stage-bkt/")
    body = sess.client("s3").get_object(Bucket="stage-bkt", Key=key)["Body"].read()
    assert body == Path(lanes[0].fastq_1).read_bytes()
