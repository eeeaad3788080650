"""``batchpipes run``: run a pipeline locally with miniwdl in podman containers."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from . import local, results, samplesheet, settings, workflows
from .errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a pipeline locally (miniwdl + podman) on the bundled test data or your inputs",
        description="Validate the inputs, build and serve the images, and run the workflow with miniwdl "
        "in podman containers. Prints the outputs as JSON.",
    )
    p.add_argument("pipeline", help="pipeline name: " + ", ".join(sorted(workflows.known())))
    p.add_argument("-i", "--inputs", type=Path,
                   help="inputs JSON (default: inputs/<pipeline>.local.json)")
    p.add_argument("--samples", type=Path, metavar="SHEET",
                   help="genomics: a sample sheet (TSV or CSV, one line per lane: sample, lane, fastq_1, fastq_2, "
                   "...) run as a cohort by genomics_cohort, its other inputs from -i "
                   "(default: inputs/genomics_cohort.local.json)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                   help="override one input, e.g. --set caller='\"freebayes\"' or --set scatter_count=2")
    p.add_argument("--dir", type=Path, default=settings.REPO_ROOT / "runs",
                   help="folder for run directories (default: runs/)")
    p.add_argument("--no-cache", action="store_true", help="do not reuse results of earlier identical calls")
    p.set_defaults(func=_run)


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--set '{pair}' is not NAME=VALUE")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw  # a bare string
    return out


def _run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    name = args.pipeline
    if args.samples is not None:  # the sheet's lanes become the samples input of the cohort workflow
        name, overrides = samplesheet.apply(args.pipeline, args.samples, overrides, local=True, replace=False,
                                            inputs_file=args.inputs)
    flow = workflows.get(name)
    inputs_path = args.inputs or settings.INPUTS_DIR / f"{flow.name}.local.json"
    inputs = local.prepare_inputs(flow, inputs_path, overrides)
    result = local.run(flow, inputs, run_dir=args.dir.resolve(), call_cache=not args.no_cache,
                       verbose=args.verbose)
    log.info("%s finished: %s", flow.name, result.run_dir)
    for key, value in sorted(result.outputs.items()):  # one-line summaries: callable regions, snpEff genes
        if not (key.endswith("_summary") and isinstance(value, str)):
            continue
        if Path(value).is_absolute():  # a file: its first line, if it is text
            if value.endswith(".txt") and Path(value).is_file():
                log.info("%s: %s", key.partition(".")[2], Path(value).read_text(errors="replace").partition("\n")[0])
        else:  # a String output
            log.info("%s: %s", key.partition(".")[2], value)
    log.info("results (indexes beside their files): %s", result.results_dir)
    print(json.dumps({"dir": str(result.run_dir), "results": str(result.results_dir), "outputs": result.outputs},
                     indent=2))
    warnings = results.run_warnings(result.outputs)
    for warning in warnings:  # last, where the eye lands: the run finished, but this result went on despite it
        log.warning("%s finished WITH A WARNING: %s", flow.name, warning)
    return 0
