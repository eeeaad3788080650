"""``batchpipes aws submit|watch|status``: scripted AWS Batch runs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .. import files
from ..errors import UserError
from . import jobs, session
from .options import add_common, job_id


def _watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-spot-retries", type=int, default=2,
                   help="resubmit a job whose Spot host was reclaimed up to N times (default 2)")
    p.add_argument("--poll", type=float, default=5.0, help="first poll interval in seconds (default 5; doubles "
                   "while nothing changes, up to --max-poll)")
    p.add_argument("--max-poll", type=float, default=60.0, help="longest poll interval in seconds (default 60)")
    p.add_argument("--timeout", type=float, help="give up watching after this many seconds")


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser("submit", help="submit a plan of Batch jobs with dependencies (optionally watch it)",
                        description="Submit the jobs of a plan JSON ({\"jobs\": [{name, queue, definition, command, "
                        "depends_on, environment, vcpus, memory_mib, gpus}]}) in dependency order with dependsOn.")
    add_common(p)
    p.add_argument("plan", type=Path, help="plan JSON")
    p.add_argument("--record", type=Path, help="write {name: job id} here")
    p.add_argument("--watch", action="store_true", help="watch the jobs until they finish")
    _watch_args(p)
    p.set_defaults(func=run_submit)

    w = asub.add_parser("watch", help="follow Batch jobs to the end: status changes, log streams, Spot resubmits",
                        description="Poll DescribeJobs with exponential backoff and jitter; print each status change "
                        "with the CloudWatch log stream; resubmit jobs lost to Spot reclaims (status reason "
                        "'Host EC2...') and the dependents that failed only because of them. Exit 0 if all "
                        "succeeded, 1 otherwise.")
    add_common(w)
    w.add_argument("job_ids", nargs="+", type=job_id, metavar="JOB_ID")
    _watch_args(w)
    w.set_defaults(func=run_watch)

    s = asub.add_parser("status", help="one look at Batch jobs: status, reason, log stream")
    add_common(s)
    s.add_argument("job_ids", nargs="+", type=job_id, metavar="JOB_ID")
    s.set_defaults(func=run_status)


def _check_watch_args(args: argparse.Namespace) -> None:
    """The watch options, checked before anything is submitted."""
    if args.max_spot_retries < 0:
        raise UserError(f"--max-spot-retries must be 0 or more, not {args.max_spot_retries:g}")
    if not args.poll > 0:
        raise UserError(f"--poll must be a positive number of seconds, not {args.poll:g}")
    if not args.max_poll >= args.poll:
        raise UserError(f"--max-poll ({args.max_poll:g}) must be at least --poll ({args.poll:g})")
    if args.timeout is not None and not args.timeout > 0:
        raise UserError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")


def _watch(args: argparse.Namespace, batch: object, ids: list[str]) -> int:
    watcher = jobs.Watcher(batch, max_spot_retries=args.max_spot_retries, base_delay=args.poll,
                           max_delay=args.max_poll, timeout=args.timeout)
    outcome = watcher.watch(ids)
    for line in jobs.summary(outcome):
        print(line)
    return 0 if outcome.ok else 1


def run_submit(args: argparse.Namespace) -> int:
    plan = jobs.load_plan(args.plan)
    if args.watch:
        _check_watch_args(args)
    if args.record is not None:
        folder = args.record.parent
        if not folder.is_dir():
            raise UserError(f"--record '{args.record}': folder '{folder}' does not exist: create it or choose "
                            "another path")
        if args.record.is_dir():
            raise UserError(f"--record '{args.record}' is a folder: give a file path such as run.json")
        if not os.access(folder, os.W_OK):
            raise UserError(f"--record '{args.record}': folder '{folder}' is not writable: choose another path")
    batch = session.client(session.session(args.region, args.profile), "batch")
    ids = jobs.submit_plan(batch, plan)
    if args.record is not None:
        try:
            files.write_atomically(args.record, json.dumps(ids, indent=2) + "\n")
        except OSError as exc:  # the jobs are submitted: name them rather than lose them
            raise UserError(f"could not write --record '{args.record}' ({exc.strerror}); submitted jobs: "
                            f"{json.dumps(ids)}") from exc
    if args.watch:
        return _watch(args, batch, list(ids.values()))
    print(f"watch with: batchpipes aws watch {' '.join(ids.values())}")
    return 0


def run_watch(args: argparse.Namespace) -> int:
    _check_watch_args(args)
    batch = session.client(session.session(args.region, args.profile), "batch")
    return _watch(args, batch, args.job_ids)


def run_status(args: argparse.Namespace) -> int:
    batch = session.client(session.session(args.region, args.profile), "batch")
    found = jobs.describe(batch, args.job_ids)
    missing = [j for j in args.job_ids if j not in found]
    if missing:
        raise UserError(f"no such Batch job: {', '.join(missing)}: check the job id and --region")
    outcome = jobs.Outcome({j: found[j] for j in args.job_ids}, {}, {})
    for line in jobs.summary(outcome):
        print(line)
    return 0
