"""How the GROMACS task programs (gromacs-tasks, prepare-structure) read the values of a WDL task: every String and
File value arrives in a file the engine wrote with ``write_lines`` (one value per line; an optional value not given
is an empty file; an array is one item per line, with its length given as a number to detect an item holding a
newline), and Booleans as the words the engine writes. Installed beside task_common.py in the gromacs and
gromacs-cuda images (image.toml ``shared``). Python 3.10+ standard library only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_common import TaskError


def read_text(path: Path | str) -> str:
    """A file's text, bytes that are not UTF-8 kept as they are (surrogate escapes)."""
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` as awk and ``mapfile`` see them: split at newlines only, no empty line after the last."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def one(label: str, path: Path | str) -> str:
    """The single line of a ``write_lines`` file (a value holding a newline is refused)."""
    lines = text_lines(read_text(path))
    if len(lines) != 1:
        raise TaskError(f"{label} holds a newline: give it as one line")
    return lines[0]


def optional(label: str, path: Path | str) -> str:
    """As :func:`one`, but "" when the optional input was not given (an empty file)."""
    lines = text_lines(read_text(path))
    if len(lines) > 1:
        raise TaskError(f"{label} holds a newline: give it as one line")
    return lines[0] if lines else ""


def array_text(label: str, path: Path | str, count: int, problem: str = "") -> str:
    """The text of a write_lines file of ``count`` items, one line per item (else ``problem``, by default: an item
    of ``label`` holds a newline). An empty array is an empty file from miniwdl and one empty line from Cromwell
    (Scala's ``mkString("", "\\n", "\\n")``): both give ""."""
    text = read_text(path)
    if count == 0 and text == "\n":
        text = ""
    if len(text_lines(text)) != count:
        raise TaskError(problem or f"an item of {label} holds a newline: give each as its own list item")
    return text


def items(label: str, path: Path | str, count: int) -> list[str]:
    """The items of an array given as a write_lines file and its length (more lines: an item held a newline);
    surrounding blanks are dropped, empty items ignored."""
    lines = text_lines(array_text(label, path, count))
    return [line.strip() for line in lines if line.strip()]


def boolean(text: str) -> bool:
    """A WDL Boolean as the engine writes it: true or false (an argparse type)."""
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"'{text}' is not true or false")
    return text == "true"
