"""``batchpipes docs``: rewrite the generated tables of README.md and docs/*.md from the WDL."""

from __future__ import annotations

import argparse
import logging

from . import docs, settings
from .errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("docs", help="rewrite the generated tables (inputs, outputs) of README.md and docs/*.md",
                       description="Render every generated block of README.md and docs/*.md (the tables between "
                       "'<!-- BEGIN inputs|outputs wdl/X.wdl ... -->' and '<!-- END inputs|outputs -->') from the "
                       "workflow's parameter_meta and meta, and rewrite the files whose blocks changed.")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 2 naming the first file whose generated tables are stale")
    p.set_defaults(func=_docs)


def _docs(args: argparse.Namespace) -> int:
    root = settings.REPO_ROOT
    paths = docs.markdown_files(root)
    if args.check:
        stale = docs.stale(paths, root)
        if stale:
            names = ", ".join(str(p.relative_to(root)) for p in stale)
            raise UserError(f"{names}: generated tables are stale (the WDL changed): run 'batchpipes docs'")
        log.info("ok  generated tables are current in %d file(s)", len(paths))
        return 0
    for path in docs.regenerate(paths, root):
        log.info("rewrote %s", path.relative_to(root))
    return 0
