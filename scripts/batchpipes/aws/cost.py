"""Cost of finished Batch jobs: job seconds x instance price, per job, per Cromwell task and in total.

Prices, each attempt's price saying where it came from: On-Demand from the AWS Price List Query API
(``pricing`` GetProducts in us-east-1: AmazonEC2, instanceType, regionCode, Linux, Shared tenancy,
preInstalledSw NA, capacitystatus Used); Spot from EC2's Spot price history for the instance type in the
attempt's availability zone over the attempt's time window (time-weighted). When an API cannot be reached or
has no answer, the bundled ``prices.json`` (or ``--price-file``) is the fallback.

A Cromwell workflow's jobs come from its metadata (``GET /api/workflows/v1/<id>/metadata``: every call's
``jobId`` is its Batch job id; call-cache hits have none and cost nothing), or from the job tags Cromwell sets
with ``tagResources = true`` (``cromwell-root-workflow-id``, ``cromwell-workflow-id``, ``cromwell-task-id`` =
``<call>-<None|Some_<shard>_>-<attempt>``; AwsBatchJob.scala, Cromwell 92) on the jobs of the workflow's queues.

For each attempt of a job (Spot reclaims cost money too): seconds = ``stoppedAt - startedAt``; the instance
type and market come from the attempt's ECS container instance (``ecs.instance-type`` attribute, EC2
``InstanceLifecycle``) while it still exists, otherwise from the job queue's compute environment (its type
SPOT/EC2 and its instance type, if it names one), otherwise from ``--instance-type``/``--market``. The whole
instance price is charged to the job (an upper bound when several jobs share an instance); multi-node jobs
are charged once per node.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import botocore.exceptions

from .. import files
from ..errors import UserError
from .jobs import describe
from .session import describe_error

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
    hourly: float = 0.0
    price_source: str = ""  # where the hourly price came from


@dataclass
class JobCost:
    job_id: str
    name: str
    status: str
    attempts: list[AttemptCost]
    task: str = ""  # the Cromwell call (workflow reports)

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
        #: availability zone of each container instance seen (for Spot prices)
        self.zones: dict[str, str] = {}

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
                instance = res[0]["Instances"][0]
                market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on_demand"
                zone = instance.get("Placement", {}).get("AvailabilityZone")
                if zone:
                    self.zones[container_instance_arn] = str(zone)
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


# -- prices from AWS -----------------------------------------------------------------------------------

#: GetProducts filters besides instanceType and regionCode: the price Batch's ECS hosts pay (Linux, shared
#: tenancy, no pre-installed software, capacity actually used -- not reservations).
PRODUCT_FILTERS = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                   "capacitystatus": "Used"}
#: The Price List Query API's endpoint region (it also answers in eu-central-1 and ap-south-1).
PRICING_REGION = "us-east-1"
#: Spot history's product descriptions for Linux (accounts in a VPC get either).
SPOT_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
_UNREACHABLE = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def _ms_datetime(ms: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def on_demand_from_price_list(price_list: list[str]) -> tuple[float, str] | None:
    """The hourly USD On-Demand price in a GetProducts ``PriceList`` (JSON strings) and its publication date."""
    found = []
    for text in price_list:
        try:
            item = json.loads(text)
        except ValueError:
            continue
        for term in item.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if dim.get("unit") in ("Hrs", "Hours") and usd not in (None, ""):
                    price = float(usd)
                    if price > 0:
                        found.append((price, str(item.get("publicationDate", "?"))[:10]))
    if not found:
        return None
    return min(found)  # several products left: the plain one is the cheapest (others carry extras)


def spot_average(history: list[dict[str, Any]], start_ms: float, end_ms: float) -> tuple[float, list[str]] | None:
    """Time-weighted mean Spot price over [start, end] from ``DescribeSpotPriceHistory`` entries (each price holds
    from its timestamp to the next one of its zone; the mean is over the zones found); None without data."""
    by_zone: dict[str, list[tuple[float, float]]] = {}
    for entry in history:
        stamp = entry.get("Timestamp")
        ts = stamp.timestamp() * 1000 if isinstance(stamp, dt.datetime) else None
        if ts is None or not entry.get("SpotPrice"):
            continue
        by_zone.setdefault(str(entry.get("AvailabilityZone", "?")), []).append((ts, float(entry["SpotPrice"])))
    means = []
    end_ms = max(end_ms, start_ms + 1)
    for changes in by_zone.values():
        changes.sort()
        total = weight = 0.0
        for i, (ts, price) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else end_ms
            lo, hi = max(ts, start_ms), min(until, end_ms)
            if hi > lo:
                total += price * (hi - lo)
                weight += hi - lo
        if weight:
            means.append(total / weight)
    if not means:
        return None
    return sum(means) / len(means), sorted(by_zone)


@dataclass
class PriceBook:
    """Hourly prices from the AWS APIs when reachable, else from the table; every answer names its source."""

    table: Prices
    region: str
    pricing: Any = None  # a ``pricing`` client (us-east-1), or None: table only
    ec2: Any = None  # an ``ec2`` client of the jobs' region for Spot history, or None
    _on_demand: dict[str, tuple[float, str] | None] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def _fallback(self, api: str, why: str) -> None:
        if api not in self._warned:
            self._warned.add(api)
            log.warning("%s: %s; using %s", api, why, self.table_source())

    def table_source(self) -> str:
        return f"table {self.table.source} ({self.table.region}, {self.table.date})"

    def on_demand(self, instance_type: str) -> tuple[float, str]:
        if self.pricing is not None:
            if instance_type not in self._on_demand:
                self._on_demand[instance_type] = self._price_list(instance_type)
            got = self._on_demand[instance_type]
            if got is not None:
                return got[0], f"AWS Price List API ({self.region}, published {got[1]})"
        return self.table.hourly(instance_type, "on_demand"), self.table_source()

    def _price_list(self, instance_type: str) -> tuple[float, str] | None:
        filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v}
                   for k, v in {"instanceType": instance_type, "regionCode": self.region, **PRODUCT_FILTERS}.items()]
        try:
            resp = self.pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1",
                                             MaxResults=100)
        except botocore.exceptions.ClientError as exc:
            self._fallback("AWS Price List API", describe_error(exc))
            return None
        except botocore.exceptions.BotoCoreError as exc:
            self._fallback("AWS Price List API", str(exc))
            return None
        got = on_demand_from_price_list(list(resp.get("PriceList", [])))
        if got is None:
            self._fallback("AWS Price List API", f"no Linux On-Demand price for {instance_type} in {self.region}")
        return got

    def spot(self, instance_type: str, zone: str | None, start_ms: float, end_ms: float) -> tuple[float, str]:
        if self.ec2 is not None:
            kwargs: dict[str, Any] = {"InstanceTypes": [instance_type], "ProductDescriptions": SPOT_PRODUCTS,
                                      "StartTime": _ms_datetime(start_ms), "EndTime": _ms_datetime(end_ms)}
            if zone:
                kwargs["AvailabilityZone"] = zone
            history: list[dict[str, Any]] | None = None
            try:
                history = [e for page in self.ec2.get_paginator("describe_spot_price_history").paginate(**kwargs)
                           for e in page.get("SpotPriceHistory", [])]
            except botocore.exceptions.ClientError as exc:
                self._fallback("EC2 Spot price history", describe_error(exc))
            except botocore.exceptions.BotoCoreError as exc:
                self._fallback("EC2 Spot price history", str(exc))
            got = spot_average(history or [], start_ms, end_ms)
            if got is not None:
                where = zone or ",".join(got[1])
                return got[0], f"EC2 Spot price history ({where}, attempt's time window)"
            if history is not None:
                self._fallback(f"EC2 Spot price history of {instance_type}", f"none in {zone or self.region}")
        price = self.table.hourly(instance_type, "spot")
        entry = self.table.table.get(instance_type, {})
        how = "" if "spot" in entry else f", on-demand x {self.table.spot_fraction}"
        return price, f"{self.table_source()}{how}"

    def hourly(self, instance_type: str, market: str, zone: str | None, start_ms: float,
               end_ms: float) -> tuple[float, str]:
        if market == "spot":
            return self.spot(instance_type, zone, start_ms, end_ms)
        return self.on_demand(instance_type)


def table_only(prices: Prices) -> PriceBook:
    return PriceBook(prices, prices.region)


# -- jobs of a Cromwell workflow ----------------------------------------------------------------------

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: ``cromwell-task-id``: ``<fully qualified call>-<index>-<attempt>``, the index an Option printed by Scala
#: (``None`` / ``Some(3)``, whose parentheses Cromwell's tag cleaning turns into ``_``).
TASK_ID_RE = re.compile(r"(?P<call>.+)-(?:None|Some_(?P<shard>\d+)_)-(?P<attempt>\d+)")


@dataclass(frozen=True)
class WorkflowJob:
    job_id: str
    task: str  # the fully qualified call, e.g. genomics.align_shard
    shard: int | None = None
    attempt: int | None = None


def jobs_from_metadata(meta: Any, source: str = "metadata") -> tuple[str, list[WorkflowJob], int]:
    """(workflow id, its Batch jobs, number of call-cache hits) from Cromwell's workflow metadata JSON.

    Sub-workflows are followed when the metadata was fetched with ``expandSubWorkflows=true``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("calls"), dict):
        raise UserError(f"{source} is not Cromwell workflow metadata (no 'calls' object): fetch it with "
                        "curl http://<cromwell>/api/workflows/v1/<id>/metadata?expandSubWorkflows=true")
    jobs: list[WorkflowJob] = []
    hits = 0
    for call, entries in _calls(meta):
        for entry in entries:
            job_id = entry.get("jobId")
            if isinstance(job_id, str) and UUID_RE.fullmatch(job_id):
                shard = entry.get("shardIndex")
                jobs.append(WorkflowJob(job_id, call, shard if isinstance(shard, int) and shard >= 0 else None,
                                        entry.get("attempt") if isinstance(entry.get("attempt"), int) else None))
            elif (entry.get("callCaching") or {}).get("hit") is True:
                hits += 1
    return str(meta.get("id", "?")), jobs, hits


def _calls(meta: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for call, entries in meta.get("calls", {}).items():
        if not isinstance(entries, list):
            continue
        plain = [e for e in entries if isinstance(e, dict)]
        yield str(call), plain
        for e in plain:
            sub = e.get("subWorkflowMetadata")
            if isinstance(sub, dict):
                yield from _calls(sub)


def jobs_by_tags(batch: Any, queues: list[str], workflow_id: str, *, since_ms: float) -> list[WorkflowJob]:
    """The jobs of ``queues`` created since ``since_ms`` that Cromwell tagged with ``workflow_id`` (root or own).

    ListJobs with a filter returns jobs in every status; DescribeJobs (100 at a time) gives their tags."""
    ids: list[str] = []
    for queue in queues:
        try:
            pages = batch.get_paginator("list_jobs").paginate(
                jobQueue=queue, filters=[{"name": "AFTER_CREATED_AT", "values": [str(int(since_ms))]}])
            ids += [s["jobId"] for page in pages for s in page.get("jobSummaryList", [])]
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"ListJobs on {queue} failed: {describe_error(exc)}") from exc
    found = describe(batch, list(dict.fromkeys(ids)))
    out = []
    for job_id, job in found.items():
        tags = job.get("tags") or {}
        if workflow_id not in (tags.get("cromwell-root-workflow-id"), tags.get("cromwell-workflow-id")):
            continue
        m = TASK_ID_RE.fullmatch(str(tags.get("cromwell-task-id", "")))
        if m:
            out.append(WorkflowJob(job_id, m["call"], int(m["shard"]) if m["shard"] else None, int(m["attempt"])))
        else:
            out.append(WorkflowJob(job_id, str(job.get("jobName", "?"))))
    return sorted(out, key=lambda j: (j.task, j.shard if j.shard is not None else -1, j.attempt or 0))


# -- costs --------------------------------------------------------------------------------------------


def job_costs(batch: Any, ecs: Any, ec2: Any, job_ids: list[str], prices: Prices | PriceBook, *,
              instance_type: str | None = None, market: str | None = None,
              now_ms: float | None = None, tasks: dict[str, str] | None = None) -> list[JobCost]:
    book = prices if isinstance(prices, PriceBook) else table_only(prices)
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
            start, stop = float(a["startedAt"]), float(a.get("stoppedAt") or now)
            secs = max(0.0, (stop - start) / 1000)
            itype, mkt, source = resolver.resolve(job, a, instance_type, market)
            zone = resolver.zones.get(str(a.get("container", {}).get("containerInstanceArn", "")))
            hourly, price_source = book.hourly(itype, mkt, zone, start, stop)
            usd = secs / 3600 * hourly * nodes
            costs.append(AttemptCost(secs, itype, mkt, nodes, usd, source, hourly, price_source))
        out.append(JobCost(jid, str(job["jobName"]), str(job["status"]), costs, (tasks or {}).get(jid, "")))
    return out


def report(costs: list[JobCost], prices: Prices | PriceBook) -> list[str]:
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
    lines += price_lines(costs, prices)
    return lines


def price_lines(costs: list[JobCost], prices: Prices | PriceBook) -> list[str]:
    """One line per price used: instance type, market, USD per hour and where the price came from."""
    used: dict[tuple[str, str, str], list[float]] = {}
    for c in costs:
        for a in c.attempts:
            used.setdefault((a.instance_type, a.market, a.price_source), []).append(a.hourly)
    if not used:
        table = prices.table if isinstance(prices, PriceBook) else prices
        return [f"prices: none used (fallback table {table.source}, {table.region}, {table.date})"]
    lines = ["prices (USD per instance-hour; the whole instance is charged to each job):"]
    for (itype, market, source), hourly in sorted(used.items()):
        shown = f"{min(hourly):.4f}" if min(hourly) == max(hourly) else f"{min(hourly):.4f}-{max(hourly):.4f}"
        lines.append(f"  {itype:14s} {market:9s} {shown:>15s}  {source}")
    return lines


def workflow_report(workflow_id: str, costs: list[JobCost], prices: PriceBook, cache_hits: int = 0) -> list[str]:
    """Per Cromwell task: jobs, attempts, job seconds, USD; then the total and the prices used."""
    by_task: dict[str, list[JobCost]] = {}
    for c in costs:
        by_task.setdefault(c.task or c.name, []).append(c)
    lines = [f"workflow {workflow_id}: {len(costs)} Batch job(s)"
             + (f", {cache_hits} call-cache hit(s) at no cost" if cache_hits else ""),
             f"{'task':40s} {'jobs':>5s} {'attempts':>8s} {'seconds':>9s} {'instance':20s} {'USD':>10s}"]
    for task, group in sorted(by_task.items()):
        types = ",".join(sorted({a.instance_type for c in group for a in c.attempts})) or "-"
        lines.append(f"{task[:40]:40s} {len(group):5d} {sum(len(c.attempts) for c in group):8d} "
                     f"{sum(c.seconds for c in group):9.0f} {types[:20]:20s} {sum(c.usd for c in group):10.4f}")
    lines.append(f"{'total':40s} {len(costs):5d} {sum(len(c.attempts) for c in costs):8d} "
                 f"{sum(c.seconds for c in costs):9.0f} {'':20s} {sum(c.usd for c in costs):10.4f}")
    return lines + price_lines(costs, prices)
