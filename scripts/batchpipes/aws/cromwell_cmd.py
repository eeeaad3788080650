"""``batchpipes aws cromwell-config`` and ``batchpipes aws cromwell-command``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
from pathlib import Path

from .. import settings, workflows
from ..errors import UserError
from ..files import write_atomically
from . import cromwell, cromwell_inputs, cromwell_run, ecr
from .buckets import check_bucket
from .options import add_common
from .session import client, session

log = logging.getLogger(__name__)


def register(asub: argparse._SubParsersAction) -> None:
    p = asub.add_parser(
        "cromwell-config", help="render cromwell_conf/aws.conf for a bucket and two Batch job queues",
        description="Fill the placeholders of cromwell_conf/aws.conf: AWS Batch backend with S3 root and script "
        "bucket, the CPU queue as default queueArn, the GPU queue for GPU tasks, call caching on a persistent "
        "database. Offline unless --check-bucket.")
    p.add_argument("--bucket", required=True, help="S3 bucket name for the execution root and job scripts")
    p.add_argument("--cpu-queue-arn", required=True, help="Batch job queue ARN for every task")
    p.add_argument("--gpu-queue-arn", required=True, help="Batch job queue ARN (GPU instances) for GPU tasks")
    p.add_argument("--db", help="call-cache database: a file path prefix (HSQLDB; default "
                   f"{cromwell.DEFAULT_HSQLDB}) or a jdbc:mysql:// or jdbc:postgresql:// URL (credentials from "
                   "CROMWELL_DB_USER / CROMWELL_DB_PASSWORD)")
    p.add_argument("-o", "--output", type=Path, default=cromwell.DEFAULT_RENDERED,
                   help="where to write the rendered file (default: %(default)s)")
    p.add_argument("--check-bucket", action="store_true",
                   help="also check with AWS that the bucket exists and is in the queues' region")
    p.add_argument("--concurrent-job-limit", type=int, default=cromwell.DEFAULT_CONCURRENT_JOB_LIMIT,
                   help="jobs Cromwell keeps in flight (default: %(default)s). Each job costs several Batch API "
                   "calls (job definition lookup, SubmitJob, status polls); users report HTTP 429 'Too Many "
                   "Requests' from Batch at 100 and more (broadinstitute/cromwell#4303, #4355). Raise it only "
                   "with a raised Batch API quota")
    add_common(p)
    p.set_defaults(func=_config)

    c = asub.add_parser(
        "cromwell-command", help="build the --imports zip and print the java ... cromwell.jar run line",
        description="Zip the WDL files a workflow imports (paths as it imports them), write the inputs for "
        "the run (on AWS: pinned images pointed at ECR, gpu_queue_arn filled from the configuration) and print "
        "the exact Cromwell command line. On AWS it first checks (DescribeImages) that every image the run pulls "
        "is in the Batch region's ECR and refuses, naming the images and the ecr-push line, when one is not.")
    c.add_argument("--workflow", required=True, help="workflow name (wdl/<name>.wdl)")
    c.add_argument("--inputs", type=Path,
                   help="inputs JSON (default: inputs/<workflow>.aws.json, or .local.json with a local config)")
    c.add_argument("--config", type=Path, default=cromwell.DEFAULT_RENDERED,
                   help="Cromwell configuration: a rendered aws.conf or cromwell_conf/local.conf "
                   "(default: %(default)s)")
    c.add_argument("--options", type=Path, help="Cromwell workflow options JSON, passed through")
    c.add_argument("--out-dir", type=Path, help="where to write <workflow>.imports.zip and <workflow>.inputs.json "
                   "(default: next to the configuration)")
    c.add_argument("--jar", default=os.environ.get("CROMWELL_JAR", "cromwell.jar"),
                   help="path of cromwell.jar as it should appear in the line (default: $CROMWELL_JAR or "
                   "%(default)s)")
    c.add_argument("--profile", help="AWS profile for the ECR check (default: AWS_PROFILE / default credentials "
                   "chain); the region is the configuration's")
    c.set_defaults(func=_command)


def _config(args: argparse.Namespace) -> int:
    rendered = cromwell.render_aws_conf(args.bucket, args.cpu_queue_arn, args.gpu_queue_arn,
                                        region=args.region, db=args.db,
                                        concurrent_job_limit=args.concurrent_job_limit)
    if args.check_bucket:
        check_bucket(client(session(rendered.region, args.profile), "s3"), args.bucket, region=rendered.region)
    if rendered.hsqldb_path is not None:
        rendered.hsqldb_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.output, rendered.text)
    log.info("wrote %s (region %s, bucket %s)", args.output, rendered.region, args.bucket)
    print(args.output)
    return 0


def _command(args: argparse.Namespace) -> int:
    flow = workflows.get(args.workflow)
    conf = cromwell.read_conf(args.config)
    aws_mode = conf.get("batchpipes", None) is not None
    inputs_path = args.inputs or settings.INPUTS_DIR / f"{flow.name}.{'aws' if aws_mode else 'local'}.json"
    data = workflows.read_json(inputs_path)
    validated = workflows.validate(flow, data, source=str(inputs_path),
                                   base_dir=inputs_path.resolve().parent,
                                   check_files=not aws_mode)
    if args.options is not None:
        cromwell_run.read_options(args.options)
    region = None
    if aws_mode:
        problems = cromwell.check_aws_config(conf)
        if problems:
            raise UserError(f"{args.config}: {problems[0]}")
        aws = cromwell.aws_settings(conf, args.config)
        region = aws.region
        validated = cromwell_inputs.aws_inputs(flow, validated, aws)
        _check_images_in_ecr(cromwell_inputs.images_to_check(flow, validated, aws), aws.region, args.profile)
    out_dir = args.out_dir or args.config.resolve().parent
    zip_path = cromwell_run.build_imports_zip(flow.path, out_dir / f"{flow.name}.imports.zip")
    inputs_out = out_dir / f"{flow.name}.inputs.json"
    write_atomically(inputs_out, json.dumps(validated, indent=2) + "\n")
    log.info("wrote %s and %s", zip_path, inputs_out)
    print(shlex.join(cromwell_run.java_command(args.config, flow.path, inputs_out, zip_path, args.options, args.jar,
                                               region=region)))
    return 0


def _check_images_in_ecr(references: list[str], region: str, profile: str | None) -> None:
    """Refuse (one line, before anything is written) when an image the run pulls is not in ECR."""
    if not references:
        return
    missing = ecr.missing_images(client(session(region, profile), "ecr"), references)
    if not missing:
        log.info("every image of the run is in ECR: %s", ", ".join(references))
        return
    names = sorted({ref.rsplit("/", 1)[-1].split(":", 1)[0] for ref in missing})
    raise UserError(f"not in ECR: {', '.join(missing)}: push with 'batchpipes aws ecr-push --region {region} "
                    f"{' '.join(names)}' (an image built on a GPU host: run the commands it prints there)")
