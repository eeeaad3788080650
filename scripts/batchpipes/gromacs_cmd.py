"""``batchpipes gromacs mnp-definition|mnp-submit``: the old spelling of ``batchpipes aws mnp definition|submit``,
kept so that existing scripts go on working."""

from __future__ import annotations

import argparse

from .aws import mnp_cmd


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gromacs", help="old spelling of 'batchpipes aws mnp' (GROMACS multi-node jobs on AWS)",
                       description="The old spelling of 'batchpipes aws mnp definition|submit'; use that instead.")
    mnp_cmd.add_actions(p.add_subparsers(dest="gromacs_command", metavar="ACTION", required=True),
                        "mnp-definition", "mnp-submit")
