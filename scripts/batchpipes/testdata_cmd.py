"""``batchpipes testdata``: regenerate the bundled test data sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("testdata", help="regenerate bundled test data (deterministic)",
                       description="Regenerate the bundled test data under inputs/.")
    tsub = p.add_subparsers(dest="testdata_command", metavar="DATASET", required=True)
    g = tsub.add_parser("genomics", help="human mitochondrion reference, spiked truth VCF, ART reads")
    g.add_argument("--out", type=Path, default=settings.INPUTS_DIR / "genomics", help="output folder")
    g.set_defaults(func=_genomics)
    c = tsub.add_parser("genomics-cohort", help="three samples (one in two lanes) with shared and private variants, "
                        "per-sample and cohort truth VCFs, a sample sheet",
                        description="Simulate the test cohort on the bundled reference: ART reads with Illumina "
                        "names, truth VCFs per sample and for the cohort, samples.tsv.")
    c.add_argument("--reference", type=Path, default=settings.INPUTS_DIR / "genomics" / "reference.fa",
                   help="one-record FASTA to simulate on")
    c.add_argument("--out", type=Path, default=settings.INPUTS_DIR / "genomics" / "cohort", help="output folder")
    c.set_defaults(func=_genomics_cohort)
    h = tsub.add_parser("hevc", help="8K synthetic test source for the HEVC workflow (ffmpeg, bit-identical)")
    h.add_argument("--out", type=Path, default=settings.INPUTS_DIR / "hevc", help="output folder")
    h.set_defaults(func=_hevc)


def _genomics(args: argparse.Namespace) -> int:
    from .testdata import genomics

    print(json.dumps(genomics.generate(args.out), indent=2))
    return 0


def _genomics_cohort(args: argparse.Namespace) -> int:
    from .testdata import genomics

    print(json.dumps(genomics.generate_cohort(args.out, args.reference), indent=2))
    return 0


def _hevc(args: argparse.Namespace) -> int:
    from .testdata import hevc

    print(json.dumps(hevc.write_bundled(args.out), indent=2))
    return 0
