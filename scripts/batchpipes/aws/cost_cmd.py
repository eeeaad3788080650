"""``batchpipes aws cost``: what finished Batch jobs cost (job seconds x instance price)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import cost, session
from .options import add_common, job_id


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser("cost", help="cost of Batch jobs: job seconds x instance price, per job and total",
                        description=cost.__doc__)
    add_common(p)
    p.add_argument("job_ids", nargs="+", type=job_id, metavar="JOB_ID")
    p.add_argument("--price-file", type=Path, help="price table JSON (default: the bundled us-east-1 table)")
    p.add_argument("--instance-type", help="charge every attempt at this instance type")
    p.add_argument("--market", choices=cost.MARKETS, help="charge every attempt at this market")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prices = cost.load_prices(args.price_file)
    if args.instance_type:
        prices.hourly(args.instance_type, "on_demand")  # unknown type: error before any AWS call
    sess = session.session(args.region, args.profile)
    batch, ecs, ec2 = (session.client(sess, s) for s in ("batch", "ecs", "ec2"))
    costs = cost.job_costs(batch, ecs, ec2, args.job_ids, prices, instance_type=args.instance_type,
                           market=args.market)
    for line in cost.report(costs, prices):
        print(line)
    return 0
