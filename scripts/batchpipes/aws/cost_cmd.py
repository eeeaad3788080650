"""``batchpipes aws cost``: what finished Batch jobs, or a Cromwell workflow's jobs, cost (job seconds x instance
price, the price from the AWS Price List API / Spot price history when reachable, else the bundled table)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from botocore.config import Config

from .. import files
from ..errors import UserError
from . import cost, cromwell, session
from .options import add_common, job_id, matching

log = logging.getLogger(__name__)

#: Short timeouts and few retries for the price APIs: an unreachable endpoint falls back to the table quickly.
PRICE_API = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"},
                   user_agent_appid="batchpipes")
workflow_id = matching(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                       "'{value}' is not a Cromwell workflow id (a UUID)")


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser("cost", help="cost of Batch jobs or of a Cromwell workflow: per job/task and total",
                        description=cost.__doc__)
    add_common(p)
    p.add_argument("job_ids", nargs="*", type=job_id, metavar="JOB_ID")
    p.add_argument("--workflow-id", type=workflow_id, help="a Cromwell workflow id: its jobs are found by the tags "
                   "Cromwell sets (tagResources = true, as in the rendered configuration) on the jobs of "
                   "--job-queue (default: both queues of --config)")
    p.add_argument("--metadata", type=Path, help="a Cromwell workflow metadata JSON (GET /api/workflows/v1/<id>/"
                   "metadata?expandSubWorkflows=true): its calls' jobIds are the Batch jobs")
    p.add_argument("--job-queue", action="append", default=[], help="job queue (name or ARN) to search with "
                   "--workflow-id; repeat for several")
    p.add_argument("--config", type=Path, default=cromwell.DEFAULT_RENDERED,
                   help="rendered aws.conf whose queues --workflow-id searches (default: %(default)s)")
    p.add_argument("--days", type=float, default=14.0, help="with --workflow-id: look at jobs created in the last "
                   "DAYS days (default: %(default)s)")
    p.add_argument("--price-file", type=Path, help="fallback price table JSON (default: the bundled us-east-1 "
                   "table)")
    p.add_argument("--offline-prices", action="store_true",
                   help="use the price table only (no Price List API, no Spot price history)")
    p.add_argument("--instance-type", help="charge every attempt at this instance type")
    p.add_argument("--market", choices=cost.MARKETS, help="charge every attempt at this market")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = [bool(args.job_ids), args.workflow_id is not None, args.metadata is not None]
    if sum(chosen) != 1:
        raise UserError("give Batch job ids, or --workflow-id, or --metadata (one of them)")
    if not 0 < args.days <= 365:
        raise UserError(f"--days must be more than 0 and at most 365, not {args.days}")
    table = cost.load_prices(args.price_file)
    if args.instance_type:
        table.hourly(args.instance_type, "on_demand")  # unknown type: error before any AWS call
    meta_jobs: list[cost.WorkflowJob] = []
    hits = 0
    wf = args.workflow_id
    queues = list(args.job_queue)
    if args.metadata is not None:
        wf, meta_jobs, hits = cost.jobs_from_metadata(files.read_json(args.metadata, "Cromwell metadata file"),
                                                      str(args.metadata))
    elif wf is not None and not queues:
        aws = cromwell.aws_settings(cromwell.read_conf(args.config), args.config)
        queues = list(dict.fromkeys([aws.cpu_queue_arn, aws.gpu_queue_arn]))
    sess = session.session(args.region, args.profile)
    batch, ecs, ec2 = (session.client(sess, s) for s in ("batch", "ecs", "ec2"))
    book = cost.PriceBook(table, str(sess.region_name))
    if not args.offline_prices:
        book.pricing = sess.client("pricing", region_name=cost.PRICING_REGION, config=PRICE_API)
        book.ec2 = sess.client("ec2", config=PRICE_API)
    if args.workflow_id is not None and args.metadata is None:
        since = (time.time() - args.days * 86400) * 1000
        meta_jobs = cost.jobs_by_tags(batch, queues, wf, since_ms=since)
        if not meta_jobs:
            raise UserError(f"no Batch job of {', '.join(queues)} created in the last {args.days:g} days is tagged "
                            f"with Cromwell workflow {wf}: was tagResources = true in the configuration? Otherwise "
                            "pass --metadata with the workflow's metadata JSON")
    if args.job_ids:
        costs = cost.job_costs(batch, ecs, ec2, args.job_ids, book, instance_type=args.instance_type,
                               market=args.market)
        lines = cost.report(costs, book)
    else:
        if not meta_jobs:
            raise UserError(f"{args.metadata} names no Batch job (no call has a jobId): nothing ran on AWS Batch, "
                            "or every call was a cache hit")
        tasks = {j.job_id: j.task for j in meta_jobs}
        costs = cost.job_costs(batch, ecs, ec2, list(tasks), book, instance_type=args.instance_type,
                               market=args.market, tasks=tasks)
        lines = cost.workflow_report(str(wf), costs, book, hits)
    for line in lines:
        print(line)
    return 0
