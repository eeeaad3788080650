"""What the task scripts of several images share (copied beside them into /usr/local/bin, see image.toml
``shared``): the rule for names that become file names, and the one-``ERROR:``-line convention of a subcommand.

Used by containers/genomics/genomics_tasks.py (genomics-tasks), containers/snpeff/ (snpeff-tasks, gbk2gff3.py,
snpeff_contigs.py), containers/ffmpeg/hevc_tasks.py (hevc-tasks) and containers/shared/gromacs_tasks.py
(gromacs-tasks). Python 3.10+ standard library only (gromacs-cuda's python3 is 3.10).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence

#: Names that become file names: the ``pattern`` of every name input in the WDL parameter_meta, there anchored
#: (``^...$``, as batchpipes.workflows.NAME_PATTERN; tests/test_code_quality.py checks they agree).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


class TaskError(Exception):
    """A problem with the task's input: the message is the one ERROR line (problem and fix)."""


def printable(values: Sequence[str]) -> str:
    """The lines of a write_lines file joined by spaces, each byte outside printable ASCII as '?' (as
    ``tr -c '[:print:]' '?'``)."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in " ".join(values).encode("utf-8", "surrogateescape"))


def check_name(what: str, values: Sequence[str]) -> str:
    """``values`` are the lines of a write_lines file: exactly one, matching NAME_PATTERN."""
    if len(values) == 1 and re.fullmatch(NAME_PATTERN, values[0]):
        return values[0]
    raise TaskError(f"{what} '{printable(values)}' {NAME_RULE}")


def add_check_name(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("check-name", help="a name that becomes file names: one line, letters, digits, . _ -")
    s.add_argument("what")
    s.add_argument("values", nargs="*", help="the lines of its write_lines file (after --)")


#: A subcommand: its return value is ignored.
Command = Callable[[argparse.Namespace], object]


def run_main(parser: argparse.ArgumentParser, commands: Mapping[str, Command], argv: Sequence[str] | None) -> int:
    """Parse ``argv``, run its subcommand (``dest="command"``, or ``set_defaults(command=...)`` for a program
    without subcommands); a TaskError, or an OSError (a given file that cannot be read, a full disk), is one
    ``ERROR:`` line on stderr and status 1."""
    args = parser.parse_args(argv)
    try:
        if args.command == "check-name":
            check_name(args.what, args.values)
        else:
            commands[args.command](args)
    except TaskError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = "" if exc.filename is None else f": {exc.filename}"
        print(f"ERROR: {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0
