"""The shell-safety contract of the project's WDL commands.

A value a user gives (a sample name, a file path) must never become shell code. In WDL 1.0 a placeholder
``~{x}`` pastes ``x`` into the command text, and quoting it (``'~{x}'``) breaks on a value holding a quote.
So a placeholder in a task's ``command`` may only be

* an Int, Float or Boolean (arrays of them, optionals of them): it cannot hold shell syntax, or
* a call of ``write_lines``, ``write_json``, ``write_tsv`` or ``write_map``: the engine writes the values to a
  file and pastes that file's path, a path the engine makes.

String and File values therefore reach the shell through files, read into double-quoted variables
(``mapfile -t v < ~{write_lines([sample_name, fastq_r1])}``).

The ``ShellSafety`` rule of :mod:`batchpipes.wdl_lint` (run by ``batchpipes check``) applies this contract to
every placeholder of every task command.
"""

from __future__ import annotations

import WDL

SAFE_FUNCTIONS = frozenset({"write_lines", "write_json", "write_tsv", "write_map"})


def _scalar_safe(ty: WDL.Type.Base) -> bool:
    if isinstance(ty, WDL.Type.Array):
        return _scalar_safe(ty.item_type)
    return isinstance(ty, WDL.Type.Int | WDL.Type.Float | WDL.Type.Boolean)


def placeholder_is_safe(expr: WDL.Expr.Base) -> bool:
    """True for an expression whose text cannot carry shell syntax into a command."""
    if isinstance(expr, WDL.Expr.Apply) and expr.function_name in SAFE_FUNCTIONS:
        return True
    return _scalar_safe(expr.type)


__all__ = ["SAFE_FUNCTIONS", "placeholder_is_safe"]
