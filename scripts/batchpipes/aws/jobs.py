"""Scripted AWS Batch runs: submit a small DAG of jobs, watch it, resubmit Spot reclaims.

A plan file is JSON::

    {"jobs": [
      {"name": "simulate", "queue": "bp-cpu", "definition": "bp-readsim", "command": ["readsim", "..."]},
      {"name": "align", "queue": "bp-cpu", "definition": "bp-genomics", "command": ["..."],
       "depends_on": ["simulate"], "vcpus": 4, "memory_mib": 7500, "environment": {"K": "V"}}
    ]}

Jobs are submitted in dependency order with ``dependsOn``. The watcher polls ``DescribeJobs`` with exponential
backoff and jitter, prints every status change with the CloudWatch log stream, and when a job fails because its
Spot host was reclaimed (status reason ``Host EC2 ...``) after Batch's own retries, submits it again (up to N
times) together with the dependents that failed only because of it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions

from .. import files
from ..errors import UserError
from .constants import SPOT_RECLAIM_REASON
from .session import describe_error, parse_queue_arn

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED")
DEPENDENCY_REASON = "Dependent Job failed"

Sleep = Callable[[float], None]
Report = Callable[[str], None]


@dataclass
class PlanJob:
    name: str
    queue: str
    definition: str
    command: list[str] | None = None
    depends_on: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    vcpus: int | None = None
    memory_mib: int | None = None
    gpus: int | None = None

    def submit_args(self, ids: dict[str, str]) -> dict[str, Any]:
        args: dict[str, Any] = {"jobName": self.name, "jobQueue": self.queue, "jobDefinition": self.definition}
        overrides: dict[str, Any] = {}
        if self.command is not None:
            overrides["command"] = list(self.command)
        if self.environment:
            overrides["environment"] = [{"name": k, "value": v} for k, v in sorted(self.environment.items())]
        res = [{"type": t, "value": str(v)} for t, v in (("VCPU", self.vcpus), ("MEMORY", self.memory_mib),
                                                          ("GPU", self.gpus)) if v is not None]
        if res:
            overrides["resourceRequirements"] = res
        if overrides:
            args["containerOverrides"] = overrides
        if self.depends_on:
            args["dependsOn"] = [{"jobId": ids[d]} for d in self.depends_on]
        return args


def _check_job(path: Path, i: int, raw: Any, known: set[str]) -> PlanJob:
    """One plan entry as a PlanJob, or a one-line UserError naming the job and the field."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: job {i} is not an object")
    extra = set(raw) - known
    if extra:
        raise UserError(f"{path}: job {i} has unknown field(s) {', '.join(sorted(extra))}: allowed are "
                        f"{', '.join(sorted(known))}")
    for req in ("name", "queue", "definition"):
        if not isinstance(raw.get(req), str) or not raw[req]:
            raise UserError(f"{path}: job {i} needs a string '{req}'")
    where = f"{path}: job '{raw['name']}'"
    if raw["queue"].startswith("arn:"):
        parse_queue_arn(raw["queue"])
    for key in ("command", "depends_on"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise UserError(f"{where}: {key} must be a list of strings, e.g. [\"a\", \"b\"], not {json.dumps(value)}")
    env = raw.get("environment")
    if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
        raise UserError(f"{where}: environment must be an object of strings, e.g. {{\"KEY\": \"value\"}}, "
                        f"not {json.dumps(env)}")
    for num in ("vcpus", "memory_mib", "gpus"):
        value = raw.get(num)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{where}: {num} must be a positive integer, not {json.dumps(value)}")
    return PlanJob(**{k: v for k, v in raw.items() if v is not None})


def load_plan(path: Path) -> list[PlanJob]:
    """Read and check a plan; returns its jobs in an order where every dependency comes first."""
    data = files.read_json_object(path, "plan file")
    if not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise UserError(f"plan file '{path}' must hold {{\"jobs\": [...]}} with at least one job")
    jobs: dict[str, PlanJob] = {}
    known = set(PlanJob.__dataclass_fields__)
    for i, raw in enumerate(data["jobs"], start=1):
        job = _check_job(path, i, raw, known)
        if job.name in jobs:
            raise UserError(f"{path}: two jobs are named '{job.name}': names must be unique")
        jobs[job.name] = job
    for j in jobs.values():
        for d in j.depends_on:
            if d not in jobs:
                raise UserError(f"{path}: job '{j.name}' depends on unknown job '{d}'")
    order: list[PlanJob] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise UserError(f"{path}: dependency cycle {' -> '.join([*trail, name])}")
        state[name] = 1
        for d in jobs[name].depends_on:
            visit(d, [*trail, name])
        state[name] = 2
        order.append(jobs[name])

    for name in jobs:
        visit(name, [])
    return order


def submit_plan(batch: Any, jobs: list[PlanJob], report: Report = print) -> dict[str, str]:
    """Submit ``jobs`` (dependency order) and return name -> job id."""
    ids: dict[str, str] = {}
    for job in jobs:
        try:
            resp = batch.submit_job(**job.submit_args(ids))
        except botocore.exceptions.ClientError as exc:
            done = f" (already submitted: {' '.join(ids.values())})" if ids else ""
            raise UserError(f"submitting job '{job.name}' failed: {describe_error(exc)}{done}") from exc
        ids[job.name] = str(resp["jobId"])
        deps = f" after {', '.join(job.depends_on)}" if job.depends_on else ""
        report(f"submitted {job.name} {resp['jobId']} to {job.queue}{deps}")
    return ids


def describe(batch: Any, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(job_ids), 100):
        try:
            resp = batch.describe_jobs(jobs=job_ids[i:i + 100])
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"DescribeJobs failed: {describe_error(exc)}") from exc
        for job in resp.get("jobs", []):
            out[str(job["jobId"])] = dict(job)
    return out


def log_stream(job: dict[str, Any]) -> str | None:
    stream = job.get("container", {}).get("logStreamName")
    if stream:
        return str(stream)
    for attempt in reversed(job.get("attempts", [])):
        if attempt.get("container", {}).get("logStreamName"):
            return str(attempt["container"]["logStreamName"])
    return None


def spot_reclaimed(job: dict[str, Any]) -> bool:
    """The job failed because its Spot instance was taken back (on its last attempt)."""
    if job.get("status") != "FAILED":
        return False
    reasons = [str(job.get("statusReason", ""))]
    if job.get("attempts"):
        reasons.append(str(job["attempts"][-1].get("statusReason", "")))
    return any(r.startswith(SPOT_RECLAIM_REASON) for r in reasons)


def resubmit_args(job: dict[str, Any], replaced: dict[str, str]) -> dict[str, Any]:
    """SubmitJob arguments that repeat ``job`` (as DescribeJobs returned it), with dependencies remapped."""
    args: dict[str, Any] = {"jobName": job["jobName"], "jobQueue": job["jobQueue"],
                            "jobDefinition": job["jobDefinition"]}
    container = job.get("container")
    if container and not job.get("nodeProperties"):
        over: dict[str, Any] = {}
        if container.get("command"):
            over["command"] = list(container["command"])
        env = [e for e in container.get("environment", []) if not str(e.get("name", "")).startswith("AWS_BATCH")]
        if env:
            over["environment"] = env
        if container.get("resourceRequirements"):
            over["resourceRequirements"] = container["resourceRequirements"]
        if over:
            args["containerOverrides"] = over
    if job.get("dependsOn"):
        args["dependsOn"] = [{"jobId": replaced.get(d["jobId"], d["jobId"]), **({"type": d["type"]}
                                                                                if d.get("type") else {})}
                             for d in job["dependsOn"]]
    for key in ("parameters", "timeout", "tags", "propagateTags"):
        if job.get(key):
            args[key] = job[key]
    return args


@dataclass
class Outcome:
    jobs: dict[str, dict[str, Any]]  # current id -> last description
    replaced: dict[str, str]  # old id -> new id
    resubmits: dict[str, int]  # job name -> Spot resubmissions

    @property
    def ok(self) -> bool:
        return all(j.get("status") == "SUCCEEDED" for j in self.jobs.values())


class Watcher:
    """Polls jobs until all are SUCCEEDED or FAILED; resubmits Spot reclaims."""

    def __init__(self, batch: Any, *, max_spot_retries: int = 2, base_delay: float = 5.0, max_delay: float = 60.0,
                 timeout: float | None = None, sleep: Sleep = time.sleep, rng: random.Random | None = None,
                 report: Report = print, clock: Callable[[], float] = time.monotonic) -> None:
        self.batch = batch
        self.max_spot_retries = max_spot_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.report = report
        self.clock = clock
        self.delays: list[float] = []

    def next_delay(self, delay: float) -> float:
        """Sleep for a jittered ``delay`` (half to all of it); returns the next, doubled, capped delay."""
        pause = self.rng.uniform(delay / 2, delay)
        self.delays.append(pause)
        self.sleep(pause)
        return min(delay * 2, self.max_delay)

    def watch(self, job_ids: list[str]) -> Outcome:
        live = list(dict.fromkeys(job_ids))
        last: dict[str, str] = {}
        jobs: dict[str, dict[str, Any]] = {}
        replaced: dict[str, str] = {}
        resubmits: dict[str, int] = {}
        delay = self.base_delay
        start = self.clock()
        while True:
            found = describe(self.batch, live)
            missing = [j for j in live if j not in found]
            if missing:
                raise UserError(f"no such Batch job: {', '.join(missing)}: check the job id and --region")
            changed = False
            for jid in list(live):
                job = found[jid]
                jobs[jid] = job
                status = str(job["status"])
                if last.get(jid) == status:
                    continue
                changed = True
                self._show(job, last.get(jid))
                last[jid] = status
                if status != "FAILED":
                    continue
                new = self._maybe_resubmit(job, replaced, resubmits)
                if new is not None:
                    replaced[jid] = new
                    live[live.index(jid)] = new
                    jobs.pop(jid, None)
                    changed = True
            if all(last.get(j) in TERMINAL for j in live):
                return Outcome({j: jobs[j] for j in live}, replaced, resubmits)
            if self.timeout is not None and self.clock() - start > self.timeout:
                raise UserError(f"jobs still running after {int(self.timeout)} s: re-run 'batchpipes aws watch "
                                f"{' '.join(live)}' to keep watching")
            delay = self.base_delay if changed else delay
            delay = self.next_delay(delay)

    def _show(self, job: dict[str, Any], before: str | None) -> None:
        status = job["status"]
        arrow = f"{before} -> {status}" if before else status
        parts = [f"{job['jobName']} {job['jobId']} {arrow}"]
        if status in TERMINAL and job.get("statusReason"):
            parts.append(f"reason: {job['statusReason']}")
        stream = log_stream(job)
        if stream and status in ("RUNNING", *TERMINAL):
            parts.append(f"log stream: {stream}")
        code = job.get("container", {}).get("exitCode")
        if status in TERMINAL and code is not None:
            parts.append(f"exit {code}")
        self.report("  ".join(parts))

    def _maybe_resubmit(self, job: dict[str, Any], replaced: dict[str, str], resubmits: dict[str, int]) -> str | None:
        name = str(job["jobName"])
        if spot_reclaimed(job):
            used = resubmits.get(name, 0)
            if used >= self.max_spot_retries:
                self.report(f"{name} {job['jobId']}: Spot reclaim, but {used} resubmission(s) already used")
                return None
            resubmits[name] = used + 1
            why = f"Spot reclaim ({used + 1}/{self.max_spot_retries})"
        elif str(job.get("statusReason", "")).startswith(DEPENDENCY_REASON) and any(
                d["jobId"] in replaced for d in job.get("dependsOn", [])):
            why = "its dependency was resubmitted"
        else:
            return None
        try:
            resp = self.batch.submit_job(**resubmit_args(job, replaced))
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"resubmitting '{name}' failed: {describe_error(exc)}") from exc
        new = str(resp["jobId"])
        self.report(f"{name} {job['jobId']}: {why}: resubmitted as {new}")
        return new


def summary(outcome: Outcome) -> list[str]:
    lines = []
    for jid, job in outcome.jobs.items():
        started, stopped = job.get("startedAt"), job.get("stoppedAt")
        secs = f"{(stopped - started) / 1000:.0f} s" if started and stopped else "-"
        lines.append(f"{job['jobName']:24s} {jid}  {job['status']:9s} {secs:>8s}  log {log_stream(job) or '-'}")
    return lines
