"""``batchpipes bench <name>``: benchmarks that print ratios measured in one run (never tests)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from . import bench


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: workflow vs bare tools, printed as ratios",
                       description="Benchmarks. Each prints what it measured and the ratio; none asserts a time.")
    bsub = p.add_subparsers(dest="bench_name", metavar="BENCHMARK", required=True)
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"batchpipes.bench.{info.name}")
        doc = (module.__doc__ or info.name).strip().splitlines()[0]
        bp = bsub.add_parser(info.name, help=doc, description=module.__doc__)
        module.add_arguments(bp)
        bp.set_defaults(func=module.main)
