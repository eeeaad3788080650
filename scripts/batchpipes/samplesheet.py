"""Sample sheets: one line per sequencing lane of a cohort (``batchpipes run genomics --samples SHEET``,
``batchpipes aws stage --samples SHEET``).

A sheet is a TSV or CSV file with a header line. Columns (names in any case):

* ``sample`` (required): the sample name (SM), under the project's name rule (``workflows.NAME_PATTERN``);
* ``lane`` and/or ``read_group`` (at least one): the read group ID is ``read_group`` when given, else
  ``<sample>.<lane>``; IDs are unique in the cohort;
* ``fastq_1``, ``fastq_2`` (both columns required; ``fastq_2`` empty for a single-end lane): local paths (relative
  ones from the sheet's folder, ``~`` expanded) or, when staging for AWS, ``s3://`` URIs passed on as they are;
* ``library`` (LB; default: the sample name) and ``platform`` (PL; default ILLUMINA; one of the SAM
  specification's values, any case).

nf-core/sarek's ``patient``, ``sex`` and ``status`` columns are read and ignored; any other column is refused, so
that a misspelt column (``fastq1``) cannot be dropped silently. The file checks are cheap (a stat and the first
bytes, gunzipped when gzip); the full FASTQ validation is the pipeline's own streaming pass.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import results, workflows
from .errors import UserError

log = logging.getLogger(__name__)

#: The workflow a sample sheet feeds, the pipelines that accept ``--samples``, and the input the sheet fills.
COHORT_WORKFLOW = "genomics_cohort"
SHEET_PIPELINES = ("genomics", COHORT_WORKFLOW)
SAMPLES_INPUT = "samples"

#: Read group IDs and library names: safe in a SAM header and as one word, and in file names (each lane's reports
#: are named after its read group): no ':' (podman cannot mount a path holding one; write FLOWCELL.LANE).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ID_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 100, not starting with . _ -)"
#: The @RG PL values of the SAM specification (SAMv1, section 1.3).
PLATFORMS = ("CAPILLARY", "DNBSEQ", "ELEMENT", "HELICOS", "ILLUMINA", "IONTORRENT", "LS454", "ONT", "PACBIO",
             "SINGULAR", "SOLID", "ULTIMA")
DEFAULT_PLATFORM = "ILLUMINA"

COLUMNS = ("sample", "lane", "read_group", "fastq_1", "fastq_2", "library", "platform")
#: nf-core/sarek columns read and ignored.
IGNORED_COLUMNS = ("patient", "sex", "status")
_FIX_COLUMNS = ("the columns are sample, lane and/or read_group, fastq_1, fastq_2 (empty for single-end), "
                "optional library and platform")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_READ_CHUNK = 64 * 1024
_MAX_PROBE = 1024 * 1024  # compressed bytes read at most to find the first decompressed ones


@dataclass(frozen=True)
class Lane:
    """One line of the sheet: a read group and its FASTQ file(s) (absolute local paths or s3:// URIs)."""

    read_group: str
    library: str
    platform: str
    fastq_1: str
    fastq_2: str | None
    line: int

    def json(self) -> dict[str, str]:
        out = {"read_group": self.read_group, "library": self.library, "platform": self.platform,
               "fastq_1": self.fastq_1}
        if self.fastq_2 is not None:
            out["fastq_2"] = self.fastq_2
        return out


@dataclass(frozen=True)
class Sample:
    name: str
    lanes: tuple[Lane, ...]

    @property
    def paired(self) -> bool:
        return self.lanes[0].fastq_2 is not None


@dataclass(frozen=True)
class Cohort:
    """A sheet read and checked: samples in order of first appearance, lanes in sheet order."""

    source: Path
    samples: tuple[Sample, ...]

    def samples_json(self) -> list[dict[str, Any]]:
        """The value of ``genomics_cohort.samples`` (Array[Sample] in JSON; fastq_2 left out when single-end)."""
        return [{"name": s.name, "lanes": [lane.json() for lane in s.lanes]} for s in self.samples]

    @property
    def lanes(self) -> list[Lane]:
        return [lane for s in self.samples for lane in s.lanes]

    def summary(self) -> str:
        """E.g. ``3 samples, 4 lanes (4 paired)``."""
        lanes = self.lanes
        paired = sum(1 for lane in lanes if lane.fastq_2 is not None)
        kinds = [f"{paired} paired"] if paired else []
        if len(lanes) - paired:
            kinds.append(f"{len(lanes) - paired} single-end")
        n_samples = len(self.samples)
        return (f"{n_samples} sample{'s' if n_samples != 1 else ''}, {len(lanes)} lane{'s' if len(lanes) != 1 else ''}"
                f" ({', '.join(kinds)})")


# -- the text and its lines -----------------------------------------------------------------------

def _text(path: Path) -> str:
    """The sheet's text: UTF-8 (with or without a BOM) or UTF-16 with a BOM (Excel's "Unicode Text")."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"sample sheet '{path}' not found: give the path of a TSV or CSV file") from None
    except IsADirectoryError:
        raise UserError(f"sample sheet '{path}' is a folder: give the sheet file inside it") from None
    except PermissionError:
        raise UserError(f"sample sheet '{path}' cannot be read (permission denied): fix its permissions") from None
    if raw.startswith(b"PK\x03\x04") or raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise UserError(f"sample sheet '{path}' is a spreadsheet workbook, not text: save it as CSV UTF-8 or as "
                        "tab-delimited text")
    if raw.startswith(b"\x1f\x8b"):
        raise UserError(f"sample sheet '{path}' is gzip-compressed: decompress it (gunzip)")
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(f"sample sheet '{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}): "
                        "save it as UTF-8 (in Excel: CSV UTF-8)") from None
    if "\x00" in text:
        raise UserError(f"sample sheet '{path}' holds NUL bytes, so it is not a text file: give a TSV or CSV file")
    return text


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _delimiter(path: Path, header: str) -> str:
    """Tab or comma from the header's content (names never hold either), the extension breaking ties;
    a semicolon (Excel's CSV in locales where the comma is the decimal mark) when there is neither."""
    tab, comma = "\t" in header, "," in header
    if tab and comma:
        return "," if path.suffix.lower() == ".csv" else "\t"
    if tab or comma:
        return "\t" if tab else ","
    if ";" in header:
        return ";"
    if len(header.split()) > 1:
        raise UserError(f"{path}: the header '{header.strip()}' has no tabs or commas: separate the columns with "
                        "tabs (TSV) or commas (CSV); spaces do not separate them")
    return "," if path.suffix.lower() == ".csv" else "\t"


def _cells(line: str, delimiter: str, where: str) -> list[str]:
    try:
        row = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True, strict=True))
    except csv.Error as exc:
        sep = "tab" if delimiter == "\t" else repr(delimiter)
        raise UserError(f"{where}: badly quoted field ({exc}): close each quoted field and put the {sep} right "
                        "after its closing quote") from None
    return [cell.strip() for cell in row]


# -- the header -----------------------------------------------------------------------------------

def _columns(path: Path, cells: list[str], header_line: int, comments: list[str]) -> list[str]:
    """The column names (lower case) of the header ``cells``, checked."""
    where = f"{path}:{header_line}"
    while cells and not cells[-1]:
        cells.pop()  # empty columns at the end (spreadsheets export columns once used)
    names = [c.lower() for c in cells]
    hint = ""
    for comment in comments:  # a header written as a comment, like VCF's #CHROM line
        body = comment.lstrip().lstrip("#").lower()
        if "sample" in body and "fastq_1" in body:
            hint = " (the header seems to be the '#' line above it: remove its '#')"
    if not any(name in COLUMNS for name in names):
        shown = ", ".join(f"'{c}'" for c in cells[:4]) + (", ..." if len(cells) > 4 else "")
        raise UserError(f"{where}: the header line ({shown}) names none of the columns{hint}: start the sheet with "
                        f"the header; {_FIX_COLUMNS}")
    seen: dict[str, int] = {}
    unknown: list[str] = []
    for i, (cell, name) in enumerate(zip(cells, names, strict=True)):
        if not name:
            raise UserError(f"{where}: column {i + 1} of the header has no name: name it or delete the column "
                            f"({_FIX_COLUMNS})")
        if name in seen:
            raise UserError(f"{where}: the header names column '{name}' twice (columns {seen[name] + 1} and "
                            f"{i + 1}): keep one")
        seen[name] = i
        if name not in COLUMNS and name not in IGNORED_COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.6)
            unknown.append(f"'{cell}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if unknown:
        raise UserError(f"{where}: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                        f"{_FIX_COLUMNS}; nf-core/sarek's patient, sex and status are ignored")
    missing = [c for c in ("sample", "fastq_1", "fastq_2") if c not in seen]
    if "lane" not in seen and "read_group" not in seen:
        missing.insert(1, "lane (or read_group)")
    if missing:
        raise UserError(f"{where}: the header has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
                        f"{hint}: {_FIX_COLUMNS}")
    ignored = [c for c in IGNORED_COLUMNS if c in seen]
    if ignored:
        log.info("sample sheet %s: column%s %s not used", path, "s" if len(ignored) > 1 else "", ", ".join(ignored))
    return names


# -- the FASTQ files ------------------------------------------------------------------------------

def _head(path: Path, n: int = 4) -> tuple[bytes, bool]:
    """The first ``n`` bytes of ``path``'s content, gunzipped when it starts with gzip's magic bytes, and whether
    it was gzip. Reads at most _MAX_PROBE bytes: this is a cheap look, not a validation."""
    with open(path, "rb") as fh:
        start = fh.read(_READ_CHUNK)
        if not start.startswith(b"\x1f\x8b"):
            return start[:n], False
        out = b""
        inflater = zlib.decompressobj(31)
        data, read = start, len(start)
        while len(out) < n:
            if not data:
                if read >= _MAX_PROBE:
                    break
                data = fh.read(_READ_CHUNK)
                read += len(data)
                if not data:
                    break
            out += inflater.decompress(data, n - len(out))
            if inflater.eof:  # a member ended (BGZF files are many): the next one starts in unused_data
                data = inflater.unused_data
                if data:
                    inflater = zlib.decompressobj(31)
            else:
                data = inflater.unconsumed_tail
        return out, True


def _not_fastq(head: bytes, gz: bool) -> str | None:
    """Why content starting with ``head`` is not FASTQ (and what to do), or None when it may be."""
    if head.startswith(b"@"):
        return None
    if not head:
        return "holds no reads (the gzip stream is empty): give the lane's FASTQ file"
    if head.startswith(b">"):
        return "is FASTA (it starts with '>'), not FASTQ: give the FASTQ file, with its base qualities"
    if head.startswith(b"BAM\x01"):
        return "is a BAM file, not FASTQ: convert it (samtools fastq) or give the FASTQ files"
    if head.startswith(b"CRAM"):
        return "is a CRAM file, not FASTQ: convert it (samtools fastq) or give the FASTQ files"
    if not gz and head.startswith(b"BZh"):
        return "is bzip2-compressed: recompress it with gzip (bunzip2 -c FILE | gzip > FILE.gz)"
    if not gz and head.startswith(b"\x28\xb5\x2f\xfd"):
        return "is zstd-compressed: recompress it with gzip (zstd -dc FILE | gzip > FILE.gz)"
    shown = head[:1].decode("latin-1")
    first = repr(shown) if shown.isprintable() else f"byte 0x{head[0]:02x}"
    inside = " after decompression" if gz else ""
    return (f"is not FASTQ: it starts with {first}{inside} where a FASTQ record starts with '@': "
            "give the lane's FASTQ file (plain or gzip)")


#: FASTQ files met so far: (device, inode), or the URI, -> (line, column, the cell as written).
_Seen = dict[object, tuple[int, str, str]]


def _fastq(raw: str, column: str, base: Path, where: str, line: int, local: bool, seen: _Seen) -> str:
    """The absolute path (or s3:// URI) of one FASTQ cell, checked cheaply; refuses a file met before
    (compared by device and inode, so a link or a second path to the same file is found)."""
    if "://" in raw:
        if not raw.startswith("s3://"):
            raise UserError(f"{where}: {column} '{raw}' is a URL: give a local path or an s3:// URI")
        if local:
            raise UserError(f"{where}: {column} is the S3 URI '{raw}', and a local run reads local files: download "
                            "it and name the local copy, or stage the sheet (batchpipes aws stage --samples) and run "
                            "on AWS")
        bucket, _, key = raw.removeprefix("s3://").partition("/")
        if not bucket or not key or key.endswith("/"):
            raise UserError(f"{where}: {column} '{raw}' is not an S3 object URI: write s3://BUCKET/KEY")
        identity: object = raw
        location = raw
    else:
        if "\\" in raw:
            raise UserError(f"{where}: {column} '{raw}' holds a backslash: write paths with '/' (a Windows path "
                            "C:\\data\\x.fastq.gz is /mnt/c/data/x.fastq.gz under WSL)")
        given = Path(raw).expanduser()
        path = given if given.is_absolute() else base / given
        shown = f"'{raw}'" if given.is_absolute() else f"'{raw}' (read as {path})"
        try:
            st = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                raise UserError(f"{where}: {column} {shown} is a link to '{os.readlink(path)}', which does not "
                                "exist: fix the link or the path") from None
            fix = "fix the path" if given.is_absolute() else \
                "fix the path (relative paths are read from the sheet's folder)"
            raise UserError(f"{where}: {column} {shown} does not exist: {fix}") from None
        except OSError as exc:
            raise UserError(f"{where}: {column} {shown} cannot be read ({exc.strerror}): fix the path or its "
                            "permissions") from None
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{where}: {column} {shown} is not a file (a folder?): name the lane's FASTQ file")
        if st.st_size == 0:
            raise UserError(f"{where}: {column} {shown} is empty (0 bytes): give the lane's FASTQ file (a copy "
                            "or download may have failed)")
        try:
            head, gz = _head(path)
        except zlib.error as exc:
            raise UserError(f"{where}: {column} {shown} is not a valid gzip file ({exc}): download or compress "
                            "it again") from None
        except OSError as exc:
            raise UserError(f"{where}: {column} {shown} cannot be read ({exc.strerror}): fix its permissions") \
                from None
        if (why := _not_fastq(head, gz)) is not None:
            raise UserError(f"{where}: {column} {shown} {why}")
        identity = (st.st_dev, st.st_ino)
        location = str(path.resolve())
    if identity in seen:
        other_line, other_column, other_raw = seen[identity]
        if other_line == line:
            raise UserError(f"{where}: fastq_1 and fastq_2 are the same file ('{other_raw}'): give the lane's "
                            "read 1 and read 2 files")
        same = "" if other_raw == raw else f" ('{other_raw}', the same file under another name)"
        raise UserError(f"{where}: {column} '{raw}' is already {other_column} of line {other_line}{same}: each "
                        "FASTQ file belongs to one lane: fix the path")
    seen[identity] = (line, column, raw)
    return location


# -- reading a sheet ------------------------------------------------------------------------------

def read(path: Path, *, local: bool = True) -> Cohort:
    """Read and check the sample sheet ``path``; raises UserError with one line naming the sheet line, the
    problem and the fix. ``local``: for a local run (``s3://`` URIs refused); else s3:// URIs pass unchanged.
    Local FASTQ files must exist either way (a staging uploads them)."""
    text = _text(path)
    lines = re.split(r"\r\n|\r|\n", text)
    base = path.expanduser().absolute().parent
    numbered = [(i + 1, line) for i, line in enumerate(lines)]
    comments: list[str] = []
    header_at = 0
    for number, line in numbered:
        if not line.strip():
            continue
        if _is_comment(line):
            comments.append(line)
            continue
        header_at = number
        break
    if not header_at:
        raise UserError(f"sample sheet '{path}' has no header line: start it with the column names "
                        "(sample, lane, fastq_1, fastq_2, ...)")
    delimiter = _delimiter(path, lines[header_at - 1])
    names = _columns(path, _cells(lines[header_at - 1], delimiter, f"{path}:{header_at}"), header_at, comments)

    rows = _Rows(base, local)
    tumour: list[str] = []  # nf-core/sarek's status 1
    for number, line in numbered[header_at:]:
        if not line.strip() or _is_comment(line):
            continue
        where = f"{path}:{number}"
        cells = _cells(line, delimiter, where)
        if not any(cells):
            continue  # a spreadsheet's empty row: ",,,,"
        if len(cells) > len(names) and any(cells[len(names):]):
            sep = "tab" if delimiter == "\t" else f"'{delimiter}'"
            raise UserError(f"{where}: {len(cells)} fields where the header has {len(names)}: remove the extra "
                            f"fields, or put a field that holds a {sep} in double quotes")
        row = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(names)}
        short = f" (the line has {len(cells)} of the header's {len(names)} fields)" if len(cells) < len(names) else ""
        for name, value in row.items():
            if (bad := _CONTROL.search(value)) is not None:
                what = "a tab" if bad.group() == "\t" else f"the control character 0x{ord(bad.group()):02x}"
                raise UserError(f"{where}: {name} holds {what}: remove it")
        rows.add(row, number, where, short)
        if row.get("status") == "1":
            tumour.append(row["sample"])
    if not rows.samples:
        raise UserError(f"sample sheet '{path}' has a header but no data lines: add one line per lane "
                        "(sample, lane, fastq_1, fastq_2)")
    cohort = Cohort(path, tuple(Sample(name, tuple(lanes)) for name, lanes in rows.samples.items()))
    if tumour:
        log.warning("sample sheet %s: %s marked as tumour (status 1): the cohort workflow calls germline variants "
                    "jointly and does not pair tumour and normal samples", path, ", ".join(dict.fromkeys(tumour)))
    log.info("sample sheet %s: %s", path, cohort.summary())
    return cohort


class _Rows:
    """The data lines read so far, and what the next one must not repeat."""

    def __init__(self, base: Path, local: bool) -> None:
        self.base, self.local = base, local
        self.samples: dict[str, list[Lane]] = {}
        self.folded: dict[str, tuple[str, int]] = {}  # sample name in lower case -> (name, first line)
        self.lane_lines: dict[tuple[str, str], int] = {}
        self.group_lines: dict[str, int] = {}
        self.files: _Seen = {}

    def add(self, row: dict[str, str], number: int, where: str, short: str) -> None:
        """Check one data line (``row``: column -> stripped cell) and add its lane to its sample."""
        name = row["sample"]
        if not name:
            raise UserError(f"{where}: sample is empty{short}: give the sample name")
        if re.fullmatch(workflows.NAME_PATTERN.lstrip("^").rstrip("$"), name) is None:
            raise UserError(f"{where}: sample '{name}' {workflows.NAME_RULE}")
        if name.lower() == results.COHORT_FOLDER:
            raise UserError(f"{where}: sample '{name}' is reserved (results/{results.COHORT_FOLDER}/ holds the "
                            "cohort's files): rename the sample")
        first_name, first_line = self.folded.setdefault(name.lower(), (name, number))
        if first_name != name:
            raise UserError(f"{where}: sample '{name}' differs from sample '{first_name}' of line {first_line} only "
                            "in case: write one sample's name one way")
        group = self._read_group(row, name, number, where, short)
        library = row.get("library") or name
        if ID_PATTERN.fullmatch(library) is None:
            raise UserError(f"{where}: library '{library}' {ID_RULE}: change it")
        platform = (row.get("platform") or DEFAULT_PLATFORM).upper()
        if platform not in PLATFORMS:
            raise UserError(f"{where}: platform '{row.get('platform')}' is not a SAM platform: give one of "
                            f"{', '.join(PLATFORMS)} (any case)")
        if not row["fastq_1"]:
            hint = " (the read 2 file is given: put read 1 in fastq_1)" if row["fastq_2"] else ""
            raise UserError(f"{where}: fastq_1 is empty{short}{hint}: give the lane's (read 1) FASTQ file")
        fastq_1 = _fastq(row["fastq_1"], "fastq_1", self.base, where, number, self.local, self.files)
        fastq_2 = _fastq(row["fastq_2"], "fastq_2", self.base, where, number, self.local, self.files) \
            if row["fastq_2"] else None
        if name in self.samples and (self.samples[name][0].fastq_2 is None) != (fastq_2 is None):
            kinds = ("paired", "single-end") if fastq_2 is None else ("single-end", "paired")
            raise UserError(f"{where}: sample '{name}' has a {kinds[1]} lane here and a {kinds[0]} lane on line "
                            f"{self.samples[name][0].line}: a sample's lanes must be all paired or all single-end: "
                            "give fastq_2 for every lane or for none")
        self.samples.setdefault(name, []).append(Lane(group, library, platform, fastq_1, fastq_2, number))

    def _read_group(self, row: dict[str, str], name: str, number: int, where: str, short: str) -> str:
        """The line's read group ID: its read_group, else <sample>.<lane>; unique in the cohort."""
        lane, group = row.get("lane", ""), row.get("read_group", "")
        if not lane and not group:
            columns = " and ".join(c for c in ("lane", "read_group") if c in row)
            raise UserError(f"{where}: {columns} {'are' if ' and ' in columns else 'is'} empty{short}: give the "
                            "lane (e.g. L001)" + (" or the read group ID" if "read_group" in row else ""))
        if group:
            if ID_PATTERN.fullmatch(group) is None:
                raise UserError(f"{where}: read_group '{group}' {ID_RULE}: change it")
        else:
            group = f"{name}.{lane}"
            if ID_PATTERN.fullmatch(group) is None:
                raise UserError(f"{where}: lane '{lane}' makes the read group ID '{group}', which {ID_RULE}: "
                                "change the lane")
            if (name, lane) in self.lane_lines:
                raise UserError(f"{where}: sample '{name}' lane '{lane}' is already on line "
                                f"{self.lane_lines[(name, lane)]}: give each lane of a sample once (lanes of two "
                                "flow cells need distinct lane values, e.g. FC1.L001 and FC2.L001)")
            self.lane_lines[(name, lane)] = number
        if group in self.group_lines:
            raise UserError(f"{where}: read group ID '{group}' is already used on line {self.group_lines[group]}: "
                            "read group IDs must be unique in the cohort: change the read_group (or lane)")
        self.group_lines[group] = number
        return group


# -- the sheet in a workflow's inputs -------------------------------------------------------------

def cohort_workflow(pipeline: str) -> str:
    """The workflow a sample sheet runs, for ``pipeline`` as the user named it; refuses other pipelines."""
    if pipeline not in SHEET_PIPELINES:
        raise UserError(f"--samples is for the genomics pipeline, not '{pipeline}': run `batchpipes run genomics "
                        "--samples SHEET`, or drop --samples")
    return COHORT_WORKFLOW


def _foreign_keys(keys: list[str], workflow: str, where: str) -> None:
    """Refuse keys of another workflow (a single-sample ``genomics.*`` inputs file given with a sheet)."""
    prefixes = {k.split(".")[0] for k in keys if "." in k and not k.startswith(("#", "_"))}
    others = sorted((prefixes - {workflow}) & set(workflows.known()))
    if others:
        example = next(k for k in keys if k.split(".")[0] == others[0])
        raise UserError(f"{where} holds '{example}', an input of workflow '{others[0]}', but a sample sheet runs "
                        f"{workflow}: give inputs for {workflow} (e.g. inputs/{workflow}.local.json)")


def apply(pipeline: str, sheet: Path, inputs: dict[str, Any], *, local: bool = True, replace: bool = True,
          inputs_file: Path | None = None) -> tuple[str, dict[str, Any]]:
    """``(workflow, inputs)``: the cohort workflow and ``inputs`` with ``<workflow>.samples`` set from ``sheet``.

    ``inputs`` is an inputs JSON's object (``replace``: its samples value, if any, is replaced; ``inputs_file``:
    where it was read) or ``--set`` values (not ``replace``: a samples value there is refused; ``inputs_file``: the
    inputs JSON the run will read, whose keys are checked here). Keys of another workflow are refused."""
    workflow = cohort_workflow(pipeline)
    key = f"{workflow}.{SAMPLES_INPUT}"
    if replace:
        _foreign_keys(list(inputs), workflow, str(inputs_file) if inputs_file else "the inputs JSON")
    else:
        _foreign_keys(list(inputs), workflow, "--set")
        if inputs_file is not None:
            _foreign_keys(list(workflows.read_json(inputs_file)), workflow, str(inputs_file))
    given = [k for k in inputs if k in (key, SAMPLES_INPUT)]
    if given and not replace:
        raise UserError(f"--set {given[0]} and --samples both give the samples: keep one")
    cohort = read(sheet, local=local)
    out = {k: v for k, v in inputs.items() if k not in given}
    out[key] = cohort.samples_json()
    if given:
        log.info("the samples of %s replace those of the inputs file", sheet)
    return workflow, out


__all__ = ["Cohort", "Lane", "Sample", "read", "apply", "cohort_workflow", "COHORT_WORKFLOW", "PLATFORMS"]
