"""``batchpipes evaluate``: accuracy of a genomics run against a truth VCF."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import evaluate

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="SNP/indel recall and precision of calls against a truth VCF",
                       description="Compare PASS calls with a truth VCF (both normalised against the "
                       "same reference) and print SNP and indel recall and precision; 'n/a' where there "
                       "is nothing to find (recall) or nothing was called (precision). With --callable, "
                       "also inside and outside the callable regions. With --cohort, both VCFs are multi-sample "
                       "(samples matched by name): per sample, SNP and indel recall and precision of the calls its "
                       "GT carries, genotype concordance over the truth sites present in the calls (truth 0/0 "
                       "included, unphased), and whether its private truth variants were called in other samples.")
    p.add_argument("--truth", type=Path, required=True, help="truth VCF (plain or gzip)")
    p.add_argument("--calls", type=Path, required=True, help="called VCF (plain or gzip)")
    p.add_argument("--regions", type=Path, help="BED: compare only inside these intervals")
    p.add_argument("--callable", type=Path, metavar="BED",
                   help="callable regions (the workflow's callable_bed, plain or bgzip): "
                   "also report accuracy inside and outside them")
    p.add_argument("--cohort", action="store_true",
                   help="multi-sample truth and calls (e.g. truth_cohort.vcf.gz and the cohort VCF): per-sample "
                   "results, genotype concordance, private variants")
    p.add_argument("--sample", action="append", metavar="NAME",
                   help="with --cohort: compare only this sample (repeat for more; default: every truth sample)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text (null for n/a)")
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from .errors import UserError

    for what, path in (("truth", args.truth), ("calls", args.calls), ("regions", args.regions),
                       ("callable", args.callable)):
        if path is not None and not path.is_file():
            raise UserError(f"--{what} file '{path}' not found")
    regions = evaluate.read_bed(args.regions) if args.regions else None
    if args.cohort:
        if args.callable is not None:
            raise UserError("--callable works on one sample's calls: leave it out with --cohort, or evaluate a "
                            "sample's VCF without --cohort")
        report = evaluate.compare_cohort(args.truth, args.calls, regions, args.sample)
        print(json.dumps(report.as_dict()) if args.json else "\n".join(report.lines()))
        return 0
    if args.sample:
        raise UserError("--sample needs --cohort: add --cohort, or leave --sample out")
    callable_bed = evaluate.read_bed(args.callable) if args.callable else None
    result = evaluate.compare(args.truth, args.calls, regions)
    split = evaluate.compare_callable(args.truth, args.calls, callable_bed, regions) if callable_bed is not None \
        else None
    if args.json:
        data: dict[str, object] = {k: v.as_dict() for k, v in result.items()}
        if split is not None:
            data.update({scope: {k: v.as_dict() for k, v in accs.items()} for scope, accs in split.items()})
        print(json.dumps(data))
        return 0
    for acc in result.values():
        print(acc.line())
    if split is not None and callable_bed is not None:
        size = evaluate.Regions(callable_bed).size
        print(f"callable regions: {size} bp in {args.callable.name}")
        for accs in split.values():
            for acc in accs.values():
                print(acc.line())
    return 0
