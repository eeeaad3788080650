"""One task of each workflow run the way Cromwell's AWS Batch backend runs it, on moto_server instead of AWS.

What Cromwell writes to S3 before ``SubmitJob`` (the call's script, write_* files, the job script under its MD5;
tests/cromwell_jobscript.py, from Cromwell's source) goes to moto_server with the task's inputs; the task's image
then runs the job definition's command, ``/bin/bash -c /var/scratch/fetch_and_run.sh``, as the image's user, with
our ``fetch_and_run.sh`` exactly as the AMI user-data installs it (extracted from ami_userdata.sh) and an AWS CLI
mounted at ``/usr/local/aws-cli`` as on the host. The job script localises the inputs from S3, runs the command and
delocalises rc, stdout, stderr and the outputs to the call's S3 root; those must equal the outputs of the same task
run locally by miniwdl (``run_task``) on the same input files.

The AWS CLI: the host has AWS CLI v2 (a PyInstaller bundle with its own Python, awscli 2.x). It is not on PyPI, so
the mount holds PyPI ``awscli`` (v1, pure Python with its own copies of botocore and s3transfer) installed with
``pip --target`` and run by the image's python3 through a wrapper at ``v2/current/bin/aws``, the path Cromwell's
script and fetch_and_run.sh call. The commands used (``s3 cp``, ``s3 cp --recursive --exclude``, ``s3 ls``,
``s3api head-object --query``, ``configure set default.s3.multipart_*``) have the same syntax and semantics in v1 and
v2 (both use s3transfer; v2 only adds the CRT transfer client, which is opt-in, and prompts/pagers that scripts do
not hit); both honour ``AWS_ENDPOINT_URL`` (botocore >= 1.31), which points them at moto_server.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import WDL
from batchpipes import REPO_ROOT, containers, settings
from batchpipes.podman import podman

sys.path.insert(0, str(Path(__file__).parent))
import cromwell_jobscript as cj  # noqa: E402
from conftest import FAKE_REGION, RunTask  # noqa: E402
from scriptload import load_script  # noqa: E402

log = logging.getLogger(__name__)

REPO = REPO_ROOT
INPUTS = settings.INPUTS_DIR
#: PyPI awscli standing in for the host's AWS CLI v2 (pinned: the mount is cached per version).
AWSCLI_VERSION = "1.46.3"
USERDATA = REPO / "scripts" / "batchpipes" / "aws" / "ami_userdata.sh"
EXEC_BUCKET = "bp-jobrun-exec"  # the rendered aws.conf's bucket: root s3://<it>/cromwell-execution, scriptBucketName
DATA_BUCKET = "bp-jobrun-data"  # where the user's inputs are (another bucket, as in a real run)
CONTAINER_TIMEOUT_S = 300


# -- the host: AWS CLI, fetch_and_run.sh, instance id -------------------------------------------------------------


def _build_awscli(dest: Path) -> None:
    """``dest/lib``: PyPI awscli for the images' python3 (3.11, as this venv); ``dest/v2/current/bin/aws``: the
    wrapper at the path of the host's AWS CLI v2."""
    staging = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", str(staging / "lib"), f"awscli=={AWSCLI_VERSION}"], check=True)
    # Byte code next to the sources (the mount is read-only; the images' python3 is 3.11 as this one): without it
    # every call compiles botocore again (4 s instead of 1 s per call).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(staging / "lib")], check=True, capture_output=True)
    wrapper = staging / "v2" / "current" / "bin" / "aws"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(
        "#!/bin/sh\n"
        f"# PyPI awscli {AWSCLI_VERSION} (v1) standing in for the host's AWS CLI v2 in tests, run by the image's\n"
        "# python3.\n"
        'PYTHONPATH=/usr/local/aws-cli/lib PYTHONDONTWRITEBYTECODE=1 exec python3 -m awscli "$@"\n')
    wrapper.chmod(0o755)
    for path in [staging, *staging.rglob("*")]:  # the image's user reads it
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    try:
        staging.rename(dest)
    except OSError:  # another test worker built it meanwhile
        if not dest.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="module")
def host_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local stand-ins for the host paths Cromwell's job definitions mount (``cromwell_jobscript.HOST_MOUNTS``)."""
    cli = settings.CACHE_DIR / "jobrun" / f"awscli-{AWSCLI_VERSION}"
    if not (cli / "v2" / "current" / "bin" / "aws").is_file():
        cli.parent.mkdir(parents=True, exist_ok=True)
        _build_awscli(cli)
    host = tmp_path_factory.mktemp("host")
    fetch_and_run = host / "fetch_and_run.sh"
    fetch_and_run.write_text(cj.fetch_and_run_from_userdata(USERDATA.read_text()))
    fetch_and_run.chmod(0o755)  # as the user-data sets it
    instance_id = host / "instance-id"
    instance_id.write_text("i-0123456789abcdef0\n")
    instance_id.chmod(0o644)
    return {"/usr/local/bin/fetch_and_run.sh": fetch_and_run, "/usr/local/aws-cli": cli,
            "/var/lib/cloud/data/instance-id": instance_id}


@pytest.fixture()
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 S3 client on a fresh moto_server with the execution and data buckets."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    for key, value in _credentials(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", region_name=FAKE_REGION, endpoint_url=moto_endpoint)
    for bucket in (EXEC_BUCKET, DATA_BUCKET):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": FAKE_REGION})
    return client


def _credentials(endpoint: str) -> dict[str, str]:
    """In a real job the ECS agent hands the job role's credentials to the SDK (container credentials endpoint);
    here fake keys and the endpoint of moto_server."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": FAKE_REGION,
            "AWS_REGION": FAKE_REGION, "AWS_ENDPOINT_URL": endpoint}


# -- the cases -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    wdl: str
    task: str
    image: str  # containers/<image>
    inputs: dict[str, Any]  # File inputs as paths under inputs/


CASES = {
    "genomics": Case("wdl/tasks/reference.wdl", "index_reference", "genomics",
                     {"reference_fasta": INPUTS / "genomics" / "reference.fa"}),
    # Lysozyme with altlocs, 2 Cl- and missing C-terminal atoms (tests/data/structures/README.md); chains and
    # keep_heterogens given: with the defaults ([]) Cromwell's write_lines files are refused (see below).
    "gromacs": Case("wdl/tasks/gromacs.wdl", "prepare_structure", "gromacs",
                    {"structure": REPO / "tests" / "data" / "structures" / "1dpx.pdb", "name": "1dpx",
                     "force_field": "charmm27", "chains": ["A"], "keep_heterogens": ["CL"]}),
    "hevc": Case("wdl/tasks/hevc.wdl", "probe_source", "ffmpeg",
                 {"source": INPUTS / "hevc" / "source_8k.mp4", "encoder": "libx265", "profile": "main10",
                  "preset": "ultrafast", "rate_control": "crf", "audio": "auto", "chunks": 1,
                  "expected_resolution": "7680x4320"}),
}


@functools.cache
def _backend() -> cj.BackendConfig:
    """The job-script settings of our aws.conf, rendered for the test bucket as `batchpipes aws cromwell-config`
    renders it."""
    from batchpipes.aws import cromwell

    queue = f"arn:aws:batch:{FAKE_REGION}:123456789012:job-queue/bp-%s"
    rendered = cromwell.render_aws_conf(EXEC_BUCKET, queue % "cpu", queue % "gpu")
    config = cj.BackendConfig.from_conf(cromwell.parse_conf(rendered.text))
    assert (config.root, config.script_bucket) == (f"s3://{EXEC_BUCKET}/cromwell-execution", EXEC_BUCKET)
    return config


def _task(case: Case) -> WDL.Tree.Task:
    doc = WDL.load(str(REPO / case.wdl))
    return next(t for t in doc.tasks if t.name == case.task)


def _image(case: Case, task: WDL.Tree.Task) -> str:
    """The task's default image, built by our own builder if it is not cached."""
    image = containers.get(case.image)
    default = next(d for d in task.inputs or [] if d.name == "docker_image")
    assert str(default.expr.literal.value) == image.pinned, "the WDL pins another image than containers/ builds"  # type: ignore[union-attr]
    return containers.build(image)


def _get(s3: Any, url: str) -> bytes:
    bucket, key = cj.split_s3(url)
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


class _S3OutputLib(WDL.StdLib.Base):
    """Output expressions evaluated on the delocalised files, as Cromwell evaluates them after the job."""

    def __init__(self, version: str, s3: Any, paths: cj.CallPaths, folder: Path) -> None:
        super().__init__(version)
        self._s3, self._paths, self._folder = s3, paths, folder

    def _devirtualize_filename(self, filename: str) -> str:
        local = self._folder / filename.replace("/", "_")
        local.write_bytes(_get(self._s3, self._paths.under_root(filename)))
        return str(local)


def _run_job(image: str, host: dict[str, Path], env: dict[str, str],
             cromwell_root: Path) -> subprocess.CompletedProcess[str]:
    args = cj.podman_run_args(image, host, env, cromwell_root=cromwell_root, cpu=1, memory_mib=2048)
    return subprocess.run(podman() + args, capture_output=True, text=True, timeout=CONTAINER_TIMEOUT_S, check=False)


@pytest.mark.containers
@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_cromwell_job_on_moto_equals_local_run(pipeline: str, s3: Any, moto_endpoint: str, host_files: dict[str, Path],
                                              run_task: RunTask, tmp_path: Path) -> None:
    case = CASES[pipeline]
    task = _task(case)
    image = _image(case, task)

    # Inputs in S3, as the user stages them; the call as Cromwell sets it up; what Cromwell writes before SubmitJob.
    cromwell_inputs: dict[str, Any] = {}
    local_copies: dict[str, str] = {}
    for name, value in case.inputs.items():
        if isinstance(value, Path):
            url = f"s3://{DATA_BUCKET}/{pipeline}/{value.name}"
            s3.put_object(Bucket=DATA_BUCKET, Key=f"{pipeline}/{value.name}", Body=value.read_bytes())
            cromwell_inputs[name], local_copies[url] = url, str(value)
        else:
            cromwell_inputs[name] = value
    backend = _backend()
    paths = cj.CallPaths(backend.root, pipeline, case.task)
    call = cj.instantiate(task, cromwell_inputs, paths, local_copies.__getitem__)
    job = cj.job_script(call, paths, backend)
    batch_file_url = cj.stage(s3, job, backend.script_bucket)
    assert batch_file_url == f"s3://{EXEC_BUCKET}/scripts/{cj.md5_hex(job.reconfigured)}"

    cromwell_root = tmp_path / "cromwell_root"  # the host's local-disk (root-owned, as on the AMI)
    cromwell_root.mkdir()
    started = time.monotonic()
    proc = _run_job(image, host_files, {**cj.job_environment(batch_file_url), **_credentials(moto_endpoint)},
                    cromwell_root)
    log.info("%s: Cromwell job ran in %.1f s", case.task, time.monotonic() - started)
    (tmp_path / "job.log").write_text(proc.stdout + proc.stderr)
    log.debug("job output:\n%s\n%s", proc.stdout, proc.stderr)
    assert proc.returncode == 0, f"job exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "*** COMPLETED LOCALIZATION ***" in proc.stdout and "*** COMPLETED DELOCALIZATION ***" in proc.stdout
    assert _get(s3, paths.under_root(paths.rc_name)).decode().strip() == "0"
    # The job works in /tmp/scratch, in the container's writable layer (Docker's data-root on the host), and leaves
    # the host's /cromwell_root (local-disk) untouched.
    assert list(cromwell_root.iterdir()) == []
    stderr_log = _get(s3, paths.under_root(paths.stderr_name)).decode()
    assert "ERROR" not in stderr_log, stderr_log

    # The same task under miniwdl on the same files.
    started = time.monotonic()
    local = run_task(case.wdl, case.task, case.inputs).outputs
    log.info("%s: miniwdl run in %.1f s", case.task, time.monotonic() - started)

    outputs_lib = _S3OutputLib(task.effective_wdl_version, s3, paths, tmp_path)
    env = _declarations(task, cromwell_inputs, local_copies)
    compared = 0
    for out in task.outputs:
        expected = local[f"{case.task}.{out.name}"]
        globs = [g for g in call.globs if _is_glob_of(out, g)]
        if globs:  # Array[File] = glob(...): the .list file names the files in the glob folder
            (glob,) = globs
            listed = _get(s3, paths.under_root(glob.listing)).decode().split()
            assert sorted(listed) == sorted(Path(p).name for p in expected)
            for path in expected:
                got = _get(s3, paths.under_root(f"{glob.directory}/{Path(path).name}"))
                assert got == Path(path).read_bytes(), f"{out.name}: {Path(path).name} differs"
                compared += 1
        elif isinstance(out.type, WDL.Type.File):
            relative = out.expr.eval(env, stdlib=outputs_lib).value  # type: ignore[union-attr]
            got = _get(s3, paths.under_root(relative))
            # Byte for byte: none of these outputs holds a date or a path (prepare-structure writes PDB without a
            # timestamp; source_info.json names the source by its base name).
            assert got == Path(expected).read_bytes(), f"{out.name} differs"
            compared += 1
        else:  # read_*() of a delocalised file
            value = out.expr.eval(env, stdlib=outputs_lib).coerce(out.type)  # type: ignore[union-attr]
            assert value.json == expected, f"{out.name}: {value.json!r} != {expected!r}"
            compared += 1
    assert compared >= len(task.outputs)


def _is_glob_of(out: WDL.Tree.Decl, glob: cj.Glob) -> bool:
    assert out.expr is not None
    return any(a.function_name == "glob" and isinstance(a.arguments[0], WDL.Expr.String)
               and a.arguments[0].literal is not None and a.arguments[0].literal.value == glob.pattern
               for a in cj.applies(out.expr))


def _declarations(task: WDL.Tree.Task, inputs: dict[str, Any], local_copies: dict[str, str]) -> WDL.Env.Bindings[Any]:
    """The task's inputs and declarations (s3:// File values), for evaluating output expressions."""
    lib = cj.CromwellStdLib(task.effective_wdl_version, cj.CallPaths("s3://x/y", "w", "c"), local_copies.__getitem__)
    env: WDL.Env.Bindings[WDL.Value.Base] = WDL.Env.Bindings()
    for decl in [*(task.inputs or []), *task.postinputs]:
        if decl.name in inputs:
            value = WDL.Value.from_json(decl.type, inputs[decl.name])
        elif decl.expr is not None:
            value = decl.expr.eval(env, stdlib=lib).coerce(decl.type)
        else:
            value = WDL.Value.Null()
        env = env.bind(decl.name, value)
    return env


def test_fetch_and_run_is_the_installed_heredoc() -> None:
    """The extractor takes the script the user-data writes, not something else: shebang, the CLI path Cromwell's
    jobs mount, and the exec of the downloaded script."""
    text = cj.fetch_and_run_from_userdata(USERDATA.read_text())
    assert text.startswith("#!/bin/bash\n")
    assert cj.AWS_CMD in text and "BATCH_FILE_S3_URL" in text and "exec " in text
    assert "FETCH_AND_RUN" not in text  # the here-document body only
    with pytest.raises(ValueError):
        cj.fetch_and_run_from_userdata(USERDATA.read_text().replace('cat > "${FETCH_AND_RUN}"', 'cat > "${X}"'))


def test_prepare_structure_defaults_read_cromwells_write_lines_files() -> None:
    """The write_lines files Cromwell's AWS backend writes for prepare_structure with its defaults (no chains, no
    kept heterogens: what the gromacs workflow passes unless the user sets them), read by the image's reader."""
    tv = load_script(REPO / "containers" / "shared" / "task_values.py")
    task = _task(Case("wdl/tasks/gromacs.wdl", "prepare_structure", "gromacs", {}))
    paths = cj.CallPaths("s3://bp-bucket/cromwell-execution", "gromacs", "prepare_structure")
    url = "s3://bp-data/1dpx.pdb"
    call = cj.instantiate(task, {"structure": url, "name": "1dpx", "force_field": "oplsaa"}, paths,
                          {url: str(REPO / "tests" / "data" / "structures" / "1dpx.pdb")}.__getitem__)
    files = {name: content for url, content in call.created.items() for name in [url.rpartition("/")[2]]}
    args = dict(re.findall(r"--(chains|keep_heterogens) (\S+)", call.command))
    counts = dict(re.findall(r"--(chains|keep_heterogens)_count (\d+)", call.command))
    assert set(args) == set(counts) == {"chains", "keep_heterogens"}
    for label, path in args.items():
        content = files[path.rpartition("/")[2]]
        assert content == b"\n"  # Scala's mkString("", "\\n", "\\n") of an empty array
        local = Path(tempfile.mkdtemp()) / "values"
        local.write_bytes(content)
        assert tv.items(label, local, int(counts[label])) == []


@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_job_script_is_valid_bash_and_names_every_s3_path(pipeline: str) -> None:
    """The generated job script (fast lane): ``bash -n`` passes; every input and created file is localised to
    /tmp/scratch/<bucket>/<key>, every output delocalised under the call root, and no /cromwell_root remains."""
    case = CASES[pipeline]
    task = _task(case)
    inputs = {k: f"s3://{DATA_BUCKET}/{pipeline}/{v.name}" if isinstance(v, Path) else v
              for k, v in case.inputs.items()}
    local = {f"s3://{DATA_BUCKET}/{pipeline}/{v.name}": str(v) for v in case.inputs.values() if isinstance(v, Path)}
    backend = _backend()
    paths = cj.CallPaths(backend.root, pipeline, case.task)
    job = cj.job_script(cj.instantiate(task, inputs, paths, local.__getitem__), paths, backend)
    subprocess.run(["bash", "-n"], input=job.reconfigured, text=True, check=True)
    rest = [line for line in job.reconfigured.splitlines() if not line.startswith("sed -i 's#/cromwell_root#")]
    assert not [line for line in rest if cj.CROMWELL_ROOT in line] and cj.CROMWELL_ROOT in job.script
    for url in [*local, *job.call.created, paths.script]:
        bucket, key = cj.split_s3(url)
        assert f'_s3_localize_with_retry "{url}" "{cj.WORK_DIR}/{bucket}/{key}"' in job.reconfigured
    for name, _optional in job.call.files:
        assert f'_s3_delocalize_with_retry "{cj.WORK_DIR}/{name}" "{paths.call_root}/{name}"' in job.reconfigured
    assert job.reconfigured.startswith("#!/bin/bash\n\nexport AWS_METADATA_SERVICE_TIMEOUT=10\n")
    assert job.reconfigured.rstrip().endswith("exit $rc\n}")


def test_read_outputs_are_evaluated_on_the_delocalised_objects(fake_aws: str) -> None:
    """The engine's side after the job (fast lane, in-process moto): probe_source's read_*() outputs come from the
    objects the job script delocalised under the call root, with WDL's conversions."""
    import boto3
    from moto import mock_aws

    task = _task(CASES["hevc"])
    paths = cj.CallPaths(f"s3://{EXEC_BUCKET}/cromwell-execution", "hevc", "probe_source")
    delocalised = {"width.txt": "7680\n", "duration_s.txt": "0.32\n", "has_audio.txt": "false\n",
                   "frame_rate.txt": "25/1\n"}
    with mock_aws():
        s3 = boto3.client("s3", region_name=fake_aws)
        s3.create_bucket(Bucket=EXEC_BUCKET, CreateBucketConfiguration={"LocationConstraint": fake_aws})
        for name, text in delocalised.items():
            s3.put_object(Bucket=EXEC_BUCKET, Key=cj.split_s3(paths.under_root(name))[1], Body=text.encode())
        lib = _S3OutputLib(task.effective_wdl_version, s3, paths, Path(tempfile.mkdtemp()))
        got = {out.name: out.expr.eval(WDL.Env.Bindings(), stdlib=lib).coerce(out.type).json  # type: ignore[union-attr]
               for out in task.outputs if out.name in ("width", "duration_s", "has_audio", "frame_rate")}
    assert got == {"width": 7680, "duration_s": 0.32, "has_audio": False, "frame_rate": "25/1"}


def _cromwell_empty_write_lines(tmp: Path) -> Path:
    """The file Cromwell writes for ``write_lines([])`` (also for ``write_lines(select_all([unset]))``)."""
    path = tmp / "write_lines_empty.tmp"
    path.write_text(cj.write_lines_content(WDL.Value.Array(WDL.Type.String(), [])))
    assert path.read_bytes() == b"\n"  # miniwdl writes b""
    return path


def test_snpeff_reads_cromwells_empty_codon_table_file(tmp_path: Path) -> None:
    snpeff = load_script(containers.get("snpeff").context / "snpeff_tasks.py")
    codon = _cromwell_empty_write_lines(tmp_path).read_text().splitlines()  # as snpeff_tasks._prepare reads it
    assert snpeff.check_codon_table(codon, {"Standard", "Vertebrate_Mitochondrial"}) is None


def test_hevc_reads_cromwells_empty_audio_track_file(tmp_path: Path) -> None:
    hevc = load_script(containers.get("ffmpeg").context / "hevc_tasks.py")
    assert hevc.read_lines(_cromwell_empty_write_lines(tmp_path)) == []


def test_gromacs_md_stage_reads_cromwells_empty_overrides_file(tmp_path: Path) -> None:
    """md_stage reads its overrides with task_values.array_text: Cromwell's empty array is no override, and a
    count that disagrees with the lines (an override holding a newline) is still refused."""
    tv = load_script(REPO / "containers" / "shared" / "task_values.py")
    assert tv.array_text("mdp_overrides", _cromwell_empty_write_lines(tmp_path), 0) == ""
    two = tmp_path / "two"
    two.write_text("nsteps = 10\ndt = 0.001\n")
    assert tv.text_lines(tv.array_text("mdp_overrides", two, 2)) == ["nsteps = 10", "dt = 0.001"]
    with pytest.raises(Exception, match="holds a newline"):
        tv.array_text("mdp_overrides", two, 1)
    assert "array_text(" in (REPO / "containers" / "shared" / "gromacs_tasks.py").read_text()


def test_glob_link_command_from_the_conf_replaces_the_default_link() -> None:
    """``glob-link-command`` (A/README.md's EFS advice) replaces ``ln -L ... || ln ...`` in the call's script."""
    task = _task(CASES["genomics"])
    paths = cj.CallPaths(f"s3://{EXEC_BUCKET}/cromwell-execution", "genomics", "index_reference")
    call = cj.instantiate(task, {"reference_fasta": f"s3://{DATA_BUCKET}/r.fa"}, paths,
                          lambda _url: str(CASES["genomics"].inputs["reference_fasta"]))
    (glob,) = call.globs
    default = cj.job_script(call, paths).script
    assert f"( ln -L /cromwell_root/index/* {glob.directory}/ 2> /dev/null ) || " in default
    conf = cj.BackendConfig(paths.root, EXEC_BUCKET,
                            glob_link_command="shopt -s nullglob; ln -fs GLOB_PATTERN GLOB_DIRECTORY")
    linked = cj.job_script(call, paths, conf).script
    assert f"( shopt -s nullglob; ln -fs /cromwell_root/index/* {glob.directory}/ )" in linked
    assert "ln -L" not in linked


# An optional value alone (``select_all([targets])``); ``select_all([fastq_1, fastq_2])`` always holds fastq_1.
GUARDED_MAPFILE = re.compile(r'^(\s*)mapfile -t (\w+) < ~\{write_lines\(select_all\(\[\w+\]\)\)\}$')


def test_optional_values_read_by_bash_are_empty_under_both_engines() -> None:
    """A WDL command that reads an optional value with ``mapfile`` from ``write_lines(select_all([x]))`` gets one
    empty line from Cromwell when x is unset (miniwdl: an empty file). Each such read is followed by the guard that
    empties the array, and the guard gives 0 items for both engines' empty files and 1 for a value."""
    found = 0
    for wdl in sorted((REPO / "wdl").rglob("*.wdl")):
        lines = wdl.read_text().splitlines()
        for i, line in enumerate(lines):
            m = GUARDED_MAPFILE.match(line)
            if not m:
                continue
            found += 1
            name = m.group(2)
            guard = lines[i + 1].strip()
            assert guard.startswith(f'[ -n "${{{name}[*]}}" ] || {name}=()'), f"{wdl.name}:{i + 2}: {guard}"
            for content, want in ((b"\n", 0), (b"", 0), (b"/data/targets.bed\n", 1)):
                src = Path(tempfile.mkdtemp()) / "values"
                src.write_bytes(content)
                script = (f'set -euo pipefail\nmapfile -t {name} < "$1"\n{guard}\n'
                          f'printf "%s\\n" "${{#{name}[@]}}"\n')
                got = subprocess.run(["bash", "-c", script, "bash", str(src)], capture_output=True, text=True,
                                     check=True).stdout.strip()
                assert got == str(want), (wdl.name, i + 1, content, got)
    assert found >= 3  # qc (2) and variant_calling (1) read their optional targets BED this way
