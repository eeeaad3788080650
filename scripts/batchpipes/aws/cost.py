"""Cost of finished Batch jobs: job seconds x instance price (from a bundled or given price table).

For each attempt of a job (Spot reclaims cost money too): seconds = ``stoppedAt - startedAt``; the instance
type and market come from the attempt's ECS container instance (``ecs.instance-type`` attribute, EC2
``InstanceLifecycle``) while it still exists, otherwise from the job queue's compute environment (its type
SPOT/EC2 and its instance type, if it names one), otherwise from ``--instance-type``/``--market``. The whole
instance price is charged to the job (an upper bound when several jobs share an instance); multi-node jobs
are charged once per node.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import botocore.exceptions

from .. import files
from ..errors import UserError
from .jobs import describe

log = logging.getLogger(__name__)

MARKETS = ("on_demand", "spot")


@dataclass
class Prices:
    table: dict[str, dict[str, float]]
    spot_fraction: float
    source: str
    date: str
    region: str

    def hourly(self, instance_type: str, market: str) -> float:
        entry = self.table.get(instance_type)
        if entry is None:
            raise UserError(f"no price for instance type '{instance_type}': add it to a --price-file "
                            f"(known: {', '.join(sorted(self.table)[:6])}, ...)")
        if market == "spot":
            return float(entry.get("spot", entry["on_demand"] * self.spot_fraction))
        return float(entry["on_demand"])


def load_prices(path: Path | None = None) -> Prices:
    if path is None:
        data = json.loads(resources.files("batchpipes.aws").joinpath("prices.json").read_text())
    else:
        data = files.read_json(path, "price file")
    try:
        table = {k: {m: float(v) for m, v in entry.items() if m in MARKETS} for k, entry in data["prices"].items()}
        if any("on_demand" not in e for e in table.values()):
            raise KeyError("on_demand")
        return Prices(table, float(data.get("spot_fraction", 0.35)), str(data.get("source", path)),
                      str(data.get("date", "?")), str(data.get("region", "?")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"price file '{path}' is not valid: expected {{\"prices\": {{\"c5.xlarge\": "
                        f"{{\"on_demand\": 0.17, \"spot\": 0.06}}}}}} ({exc})") from exc


@dataclass
class AttemptCost:
    seconds: float
    instance_type: str
    market: str
    nodes: int
    usd: float
    source: str  # where the instance type came from


@dataclass
class JobCost:
    job_id: str
    name: str
    status: str
    attempts: list[AttemptCost]

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    @property
    def usd(self) -> float:
        return sum(a.usd for a in self.attempts)


class Resolver:
    """Finds the instance type and market of an attempt, with caches for the AWS lookups."""

    def __init__(self, batch: Any, ecs: Any, ec2: Any) -> None:
        self.batch, self.ecs, self.ec2 = batch, ecs, ec2
        self._queues: dict[str, tuple[str | None, str | None]] = {}

    def from_instance(self, container_instance_arn: str) -> tuple[str, str | None] | None:
        # arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>
        parts = container_instance_arn.split("/")
        if len(parts) != 3:
            return None
        try:
            found = self.ecs.describe_container_instances(cluster=parts[1], containerInstances=[container_instance_arn])
            ci = found["containerInstances"][0]
        except (botocore.exceptions.ClientError, IndexError, KeyError):
            return None
        itype = next((a.get("value") for a in ci.get("attributes", []) if a["name"] == "ecs.instance-type"), None)
        if not itype:
            return None
        market: str | None = None
        try:
            res = self.ec2.describe_instances(InstanceIds=[ci["ec2InstanceId"]])["Reservations"]
            if res:
                market = "spot" if res[0]["Instances"][0].get("InstanceLifecycle") == "spot" else "on_demand"
        except (botocore.exceptions.ClientError, KeyError, IndexError):
            pass  # instance gone: the queue's market decides
        return str(itype), market

    def _queue(self, queue: str) -> tuple[str | None, str | None]:
        """(instance type if the queue's first environment names exactly one, market) of a job queue."""
        if queue in self._queues or not queue:
            return self._queues.get(queue, (None, None))
        itype = market = None
        try:
            q = self.batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
            order = sorted(q[0]["computeEnvironmentOrder"], key=lambda o: o["order"]) if q else []
            if order:
                ce = self.batch.describe_compute_environments(
                    computeEnvironments=[order[0]["computeEnvironment"]])["computeEnvironments"]
                cr = ce[0].get("computeResources", {}) if ce else {}
                market = "spot" if cr.get("type") in ("SPOT", "FARGATE_SPOT") else "on_demand" if cr else None
                types = [t for t in cr.get("instanceTypes", []) if "." in t]
                itype = types[0] if len(types) == 1 else None
        except botocore.exceptions.ClientError as exc:
            log.debug("queue %s: %s", queue, exc)
        self._queues[queue] = (itype, market)
        return itype, market

    def resolve(self, job: dict[str, Any], attempt: dict[str, Any], instance_type: str | None,
                market: str | None) -> tuple[str, str, str]:
        q_type, q_market = self._queue(str(job.get("jobQueue", "")))
        found = None
        arn = attempt.get("container", {}).get("containerInstanceArn")
        if arn and not instance_type:
            found = self.from_instance(str(arn))
        if instance_type:
            itype, source = instance_type, "--instance-type"
        elif found:
            itype, source = found[0], "container instance"
        elif q_type:
            itype, source = q_type, "compute environment"
        else:
            raise UserError(f"cannot tell the instance type of job {job['jobName']} ({job['jobId']}): its "
                            "instance is gone and its compute environment allows several: pass --instance-type")
        mkt = market or (found[1] if found else None) or q_market or "on_demand"
        return itype, mkt, source


def job_costs(batch: Any, ecs: Any, ec2: Any, job_ids: list[str], prices: Prices, *,
              instance_type: str | None = None, market: str | None = None,
              now_ms: float | None = None) -> list[JobCost]:
    found = describe(batch, job_ids)
    missing = [j for j in job_ids if j not in found]
    if missing:
        raise UserError(f"no such Batch job: {', '.join(missing)}: check the job id and --region")
    resolver = Resolver(batch, ecs, ec2)
    now = now_ms if now_ms is not None else time.time() * 1000
    out = []
    for jid in job_ids:
        job = found[jid]
        nodes = int(job.get("nodeProperties", {}).get("numNodes", 1))
        attempts = list(job.get("attempts", []))
        if not attempts and job.get("startedAt"):
            attempts = [{"startedAt": job["startedAt"], "stoppedAt": job.get("stoppedAt"),
                         "container": job.get("container", {})}]
        costs = []
        for a in attempts:
            if not a.get("startedAt"):
                continue
            secs = max(0.0, (float(a.get("stoppedAt") or now) - float(a["startedAt"])) / 1000)
            itype, mkt, source = resolver.resolve(job, a, instance_type, market)
            usd = secs / 3600 * prices.hourly(itype, mkt) * nodes
            costs.append(AttemptCost(secs, itype, mkt, nodes, usd, source))
        out.append(JobCost(jid, str(job["jobName"]), str(job["status"]), costs))
    return out


def report(costs: list[JobCost], prices: Prices) -> list[str]:
    lines = [f"{'job':24s} {'id':36s} {'status':9s} {'seconds':>8s} {'instance':14s} {'market':9s} {'USD':>9s}"]
    for c in costs:
        types = ",".join(sorted({a.instance_type for a in c.attempts})) or "-"
        markets = ",".join(sorted({a.market for a in c.attempts})) or "-"
        nodes = max((a.nodes for a in c.attempts), default=1)
        extra = f"  ({len(c.attempts)} attempts)" if len(c.attempts) > 1 else ""
        extra += f"  ({nodes} nodes)" if nodes > 1 else ""
        lines.append(f"{c.name[:24]:24s} {c.job_id:36s} {c.status:9s} {c.seconds:8.0f} {types:14s} {markets:9s} "
                     f"{c.usd:9.4f}{extra}")
    total = sum(c.usd for c in costs)
    lines.append(f"{'total':24s} {'':36s} {'':9s} {sum(c.seconds for c in costs):8.0f} {'':14s} {'':9s} "
                 f"{total:9.4f}")
    lines.append(f"prices: {prices.source} ({prices.region}, {prices.date}); spot = on-demand x "
                 f"{prices.spot_fraction} unless the table gives it; whole instance charged to each job")
    return lines
