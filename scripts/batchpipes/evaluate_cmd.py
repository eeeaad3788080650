"""``batchpipes evaluate``: accuracy of a genomics run against a truth VCF."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import evaluate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="SNP/indel recall and precision of calls against a truth VCF",
                       description="Compare PASS calls with a truth VCF (both normalised against the "
                       "same reference) and print SNP and indel recall and precision.")
    p.add_argument("--truth", type=Path, required=True, help="truth VCF (plain or gzip)")
    p.add_argument("--calls", type=Path, required=True, help="called VCF (plain or gzip)")
    p.add_argument("--regions", type=Path, help="BED: compare only inside these intervals")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from .errors import UserError

    for what, path in (("truth", args.truth), ("calls", args.calls), ("regions", args.regions)):
        if path is not None and not path.is_file():
            raise UserError(f"--{what} file '{path}' not found")
    regions = evaluate.read_bed(args.regions) if args.regions else None
    result = evaluate.compare(args.truth, args.calls, regions)
    if args.json:
        print(json.dumps({k: {"recall": v.recall, "precision": v.precision, "tp": v.true_positives,
                              "fp": v.false_positives, "fn": v.false_negatives} for k, v in result.items()}))
    else:
        for acc in result.values():
            print(acc.line())
    return 0
