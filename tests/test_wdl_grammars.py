"""Every WDL file parses under two grammars that share no code with miniwdl:

* openwdl's WDL 1.0 ANTLR4 grammar, as generated for Python by PyPI ``wdl-parsers`` (module
  ``wdl_parsers.v1_0``: ``WdlV1Lexer`` / ``WdlV1Parser``, start rule ``document``; it pins
  ``antlr4-python3-runtime==4.8``, which breaks moto's Step Functions parser (4.13), so it runs from its own
  venv ``.tools/wdl-parsers``, one subprocess per file). Parsed with SLL prediction first (fast; an SLL success
  is a valid parse) and again with full LL only when SLL reports errors, so the messages are the grammar's own.
  Known gap of that grammar (openwdl/wdl#492, moved to openwdl/wdl-parsers#1): an escaped quote ``\\"`` inside a
  string is not lexed, although the WDL 1.0 spec allows it; Cromwell accepts it since its own fix
  (broadinstitute/cromwell#4500). Keep escaped quotes out of WDL strings, meta included.
* sprocket's Rust grammar (``wdl-grammar``/``wdl-ast``) through PyPI ``sprocket-bio``
  (``sprocket_bio.ast.Document.parse(source, None)`` -> (document, diagnostics)). The PyPI package is the
  Python binding of the parser only: no ``sprocket`` CLI and no lint rules come with it, so there is no lint
  noise to filter; every diagnostic (error, warning or note) fails the test. It checks syntax and the version
  statement (e.g. ``version 1.5`` is "unsupported WDL version"), not types or names (miniwdl does that:
  tests/test_wdl_lint.py).

A failure names the file, the line and column, and the grammar's message.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WDL_DIR = REPO / "wdl"
FILES = sorted([*WDL_DIR.glob("*.wdl"), *WDL_DIR.glob("tasks/*.wdl")])

#: wdl-parsers pins antlr4-python3-runtime==4.8; moto (in .venv) needs 4.13 for its Step Functions parser, so
#: wdl-parsers lives in a venv of its own, like checkov.
ANTLR_VENV = REPO / ".tools" / "wdl-parsers"
ANTLR_PYTHON = ANTLR_VENV / "bin" / "python"
ANTLR_INSTALL = "python3 -m venv .tools/wdl-parsers && .tools/wdl-parsers/bin/pip install wdl-parsers==0.2.0"
SPROCKET_INSTALL = ".venv/bin/pip install sprocket-bio==0.32.0"

BROKEN = {  # each one a mistake the grammar must reject, with the line it is on
    "unterminated heredoc": ("version 1.0\ntask t {\n  command <<<\n    echo hi\n  runtime { docker: \"x\" }\n}\n",
                             None),
    "output without expression": ("version 1.0\ntask t {\n  command <<< echo >>>\n  output { File f }\n}\n", 4),
    "missing brace": ("version 1.0\nworkflow w {\n  input { Int n }\n  call t { input: n = n \n}\n", None),
}


def _excerpt(lines: list[str], line: int, col: int) -> str:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    start = max(col - 60, 0)
    return f"    {'...' if start else ''}{text[start:col + 40]}\n    {' ' * (col - 1 - start + (3 if start else 0))}^"


def _line_col(source: str, byte_offset: int) -> tuple[int, int]:
    head = source.encode()[:byte_offset].decode(errors="replace")
    return head.count("\n") + 1, len(head) - (head.rfind("\n") + 1) + 1


# -- openwdl 1.0 ANTLR4 ---------------------------------------------------------------------------------------


#: Run inside the wdl-parsers venv (the generated parser needs antlr4 runtime 4.8, which moto's Step Functions
#: parser in .venv cannot share: it needs 4.13). Reads WDL on stdin, prints [[line, column, message], ...].
_ANTLR_SCRIPT = """
import json, sys
from antlr4 import CommonTokenStream, InputStream
from antlr4.atn.PredictionMode import PredictionMode
from antlr4.error.ErrorListener import ErrorListener
from wdl_parsers.v1_0.WdlV1Lexer import WdlV1Lexer
from wdl_parsers.v1_0.WdlV1Parser import WdlV1Parser

class Collect(ErrorListener):
    def __init__(self):
        self.errors = []
    def syntaxError(self, recognizer, symbol, line, column, msg, e):
        self.errors.append((line, column + 1, msg))

def run(source, mode):
    listener = Collect()
    lexer = WdlV1Lexer(InputStream(source))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = WdlV1Parser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser._interp.predictionMode = mode
    parser.document()
    return listener.errors

source = sys.stdin.read()
print(json.dumps(run(source, PredictionMode.SLL) and run(source, PredictionMode.LL)))
"""


def antlr_errors(source: str) -> list[tuple[int, int, str]]:
    """(line, column from 1, message) of every syntax error the WDL 1.0 ANTLR grammar reports."""
    if not ANTLR_PYTHON.is_file():
        pytest.fail(f"the wdl-parsers venv is missing: {ANTLR_INSTALL}")
    proc = subprocess.run([str(ANTLR_PYTHON), "-W", "ignore", "-c", _ANTLR_SCRIPT], input=source,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"wdl-parsers failed to run ({ANTLR_INSTALL}):\n{proc.stderr[-2000:]}"
    return [(int(line), int(col), str(msg)) for line, col, msg in json.loads(proc.stdout)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(WDL_DIR)))
def test_parses_under_openwdl_1_0_antlr_grammar(path: Path) -> None:
    source = path.read_text()
    errors = antlr_errors(source)
    lines = source.splitlines()
    assert errors == [], "\n".join(
        f"{path.relative_to(REPO)}:{line}:{col}: {msg}\n{_excerpt(lines, line, col)}"
        for line, col, msg in errors[:3])


@pytest.mark.parametrize("name", BROKEN)
def test_antlr_grammar_rejects_broken_wdl(name: str) -> None:
    source, line = BROKEN[name]
    errors = antlr_errors(source)
    assert errors, f"{name}: accepted"
    if line is not None:
        assert errors[0][0] == line, errors


def test_antlr_grammar_gap_on_escaped_quotes() -> None:
    """Documents the grammar's known gap (see the module docstring), so a fixed wdl-parsers is noticed."""
    assert antlr_errors('version 1.0\nworkflow w {\n  String s = "a b"\n}\n') == []
    assert antlr_errors('version 1.0\nworkflow w {\n  String s = "a \\"b\\" c"\n}\n') != []


# -- sprocket ---------------------------------------------------------------------------------------------------


def sprocket_diagnostics(source: str) -> list[tuple[int, int, str, str]]:
    """(line, column, severity, message) of every diagnostic sprocket's parser reports."""
    try:
        from sprocket_bio.ast import Document
    except ImportError as exc:
        pytest.fail(f"sprocket-bio is not installed ({exc}): {SPROCKET_INSTALL}")
    _doc, diagnostics = Document.parse(source, None)
    out = []
    for d in diagnostics:
        start = d.labels[0].span.start if d.labels else 0
        line, col = _line_col(source, start)
        detail = "; ".join(label.message for label in d.labels)
        out.append((line, col, str(d.severity).rsplit(".", 1)[-1].lower(), f"{d.message} ({detail})"))
    return sorted(out)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(WDL_DIR)))
def test_parses_under_sprocket(path: Path) -> None:
    source = path.read_text()
    found = sprocket_diagnostics(source)
    lines = source.splitlines()
    assert found == [], "\n".join(
        f"{path.relative_to(REPO)}:{line}:{col}: {sev}: {msg}\n{_excerpt(lines, line, col)}"
        for line, col, sev, msg in found[:3])


@pytest.mark.parametrize("name", BROKEN)
def test_sprocket_rejects_broken_wdl(name: str) -> None:
    source, line = BROKEN[name]
    found = sprocket_diagnostics(source)
    assert any(sev == "error" for _l, _c, sev, _m in found), f"{name}: accepted"
    if line is not None:
        assert found[0][0] == line, found


def test_sprocket_checks_the_version() -> None:
    assert "unsupported WDL version" in sprocket_diagnostics("version 1.5\ntask t { command <<< >>> }\n")[0][3]
    assert sprocket_diagnostics("version 1.0\ntask t { command <<< >>> }\n") == []
