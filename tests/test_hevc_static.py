"""The HEVC workflow checked without running it: the GPU path's runtime, the CPU path's, input choices.

The NVENC path cannot run here (no NVIDIA GPU), so what Cromwell would send to AWS Batch for it is
checked by evaluating the WDL's own expressions with miniwdl's Python API for encoder=hevc_nvenc.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import WDL
from batchpipes import containers, settings, workflows
from scriptload import load_script

WDL_PATH = settings.WDL_DIR / "hevc.wdl"
TASKS_PATH = settings.WDL_DIR / "tasks" / "hevc.wdl"


class _LocalStdLib(WDL.StdLib.Base):
    """The WDL standard library reading local paths directly (for size() on a test file)."""

    def _devirtualize_filename(self, filename: str) -> str:
        return filename


STDLIB = _LocalStdLib(wdl_version="1.0")
GPU_QUEUE = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-gpu"
CPU_QUEUE = "arn:aws:batch:eu-west-1:123456789012:job-queue/bp-cpu"


def _doc() -> WDL.Document:
    return WDL.load(str(WDL_PATH))


def _eval_decls(decls: list[WDL.Decl], given: dict[str, Any], want: set[str],
                env: WDL.Env.Bindings | None = None) -> WDL.Env.Bindings:
    """Evaluate ``decls`` in order (inputs from ``given`` or their defaults); stop once ``want`` are bound."""
    env = env if env is not None else WDL.Env.Bindings()
    for decl in decls:
        if decl.name in given:
            value = WDL.Value.from_json(decl.type, given[decl.name])
        elif decl.expr is not None:
            try:
                value = decl.expr.eval(env, stdlib=STDLIB)
            except WDL.Error.EvalError:
                continue  # needs a file or a call output: not part of what is checked here
        elif decl.type.optional:
            value = WDL.Value.Null()
        else:
            continue
        env = env.bind(decl.name, value)
        if want <= {b.name for b in env}:
            break
    return env


def workflow_values(want: set[str] | None = None, probe: dict[str, Any] | None = None,
                    **inputs: Any) -> dict[str, Any]:
    """The workflow's derived values for the given inputs (and probe_source outputs, when given)."""
    wf = _doc().workflow
    assert wf is not None
    decls = list(wf.inputs or []) + [n for n in wf.body if isinstance(n, WDL.Decl)]
    want = want or {"gpu", "chosen_preset", "cpu", "memory_gb"}
    env: WDL.Env.Bindings = WDL.Env.Bindings()
    for key, value in (probe or {}).items():
        wrapped = WDL.Value.Float(value) if isinstance(value, float) else WDL.Value.Int(value)
        env = env.bind(f"probe_source.{key}", wrapped)
    env = _eval_decls(decls, inputs, want, env)
    return {b.name: b.value.value for b in env if b.name in want}


def encode_runtime(encoder: str, **inputs: Any) -> dict[str, Any]:
    """The encode task's runtime section, evaluated as a call from the workflow would be."""
    doc = _doc()
    task = next(t for t in doc.imports[0].doc.tasks if t.name == "encode")
    given = {"source": "/x.mp4", "output_name": "x", "encoder": encoder, "profile": "main10",
             "preset": "p5", "rate_control": "crf", "quality": 22, "bitrate_kbps": 80000,
             "width": 7680, "height": 4320, "frame_rate": "24/1", "cpu": 8, "memory_gb": 16,
             "disk_gb": 120, "gpu_queue_arn": GPU_QUEUE, "cpu_queue_arn": CPU_QUEUE, **inputs}
    env = _eval_decls(list(task.inputs or []), given, {d.name for d in task.inputs or []})
    return {key: expr.eval(env, stdlib=STDLIB).value for key, expr in task.runtime.items()}


def test_gpu_encode_requests_one_gpu_and_the_pinned_image() -> None:
    rt = encode_runtime("hevc_nvenc")
    assert rt["gpuCount"] == 1 and rt["queueArn"] == GPU_QUEUE
    assert rt["docker"] == containers.get("ffmpeg").pinned
    assert (rt["cpu"], rt["memory"], rt["disks"]) == (8, "16 GiB", "local-disk 120 SSD")
    assert rt["maxRetries"] == 0 and rt["awsBatchRetryAttempts"] >= 1



def test_cpu_encode_requests_no_gpu() -> None:
    rt = encode_runtime("libx265")
    assert rt["gpuCount"] == 0 and rt["queueArn"] == CPU_QUEUE
    assert rt["docker"] == containers.get("ffmpeg").pinned


def test_workflow_sizes_the_gpu_job_for_a_gpu_instance() -> None:
    gpu = workflow_values(encoder="hevc_nvenc")
    assert gpu == {"gpu": True, "chosen_preset": "p5", "cpu": 8, "memory_gb": 16}
    cpu = workflow_values(encoder="libx265")
    assert cpu == {"gpu": False, "chosen_preset": "medium", "cpu": 16, "memory_gb": 24}
    assert workflow_values(encoder="hevc_nvenc", preset="p7", encode_cpu=4)["chosen_preset"] == "p7"
    assert workflow_values(encoder="hevc_nvenc", encode_cpu=4)["cpu"] == 4


def test_disks_are_sized_from_the_probe(tmp_path: Path) -> None:
    """One minute of 8K at 30 fps from a 20 GiB source: the raw YUV option adds the whole raw video."""
    source = tmp_path / "master.mov"
    with open(source, "wb") as fh:
        fh.truncate(20 * 2**30)  # sparse: only its size matters
    probe = {"width": 7680, "height": 4320, "frames": 1800, "duration_s": 60.0}
    want = {"raw_gib", "output_gib", "encode_disk"}
    raw_8bit_gb = 7680 * 4320 * 1.5 * 1800 / 1e9
    assert 89 < raw_8bit_gb < 90  # the "about 90 GB per minute" of 8-bit 8K at 30 fps
    for profile, per_sample in (("main", 1), ("main10", 2)):
        piped = workflow_values(want, probe, source=str(source), profile=profile)
        yuv = workflow_values(want, probe, source=str(source), profile=profile, intermediate="yuv_file")
        assert piped["raw_gib"] == pytest.approx(raw_8bit_gb * 1e9 / 2**30 * per_sample)
        assert piped["encode_disk"] >= 20 + 2 * piped["output_gib"] + 10
        assert piped["encode_disk"] < 100, "no raw video on disk by default"
        assert yuv["encode_disk"] - piped["encode_disk"] >= piped["raw_gib"]
    vbr = workflow_values(want, probe, source=str(source), rate_control="vbr", bitrate_kbps=80000)
    assert vbr["output_gib"] == pytest.approx(80e6 / 8 * 1.5 * 60 / 2**30)


def test_every_call_uses_the_workflow_image() -> None:
    wf = _doc().workflow
    assert wf is not None

    def calls(nodes: list[WDL.WorkflowNode]) -> list[WDL.Call]:
        found: list[WDL.Call] = []
        for node in nodes:
            if isinstance(node, WDL.Call):
                found.append(node)
            elif isinstance(node, WDL.WorkflowSection):
                found.extend(calls(node.body))
        return found

    every = calls(wf.body)
    assert {c.name for c in every} == {"probe_source", "encode_whole", "split_source", "encode_chunk",
                                       "encode_seek", "concat_chunks", "verify"}
    for call in every:
        assert str(call.inputs["docker_image"]) == "ffmpeg_image", call.name
        if call.callee.name == "encode":
            for queue in ("gpu_queue_arn", "cpu_queue_arn"):
                assert str(call.inputs[queue]) == queue, (call.name, queue)
    default = next(d for d in wf.inputs or [] if d.name == "ffmpeg_image")
    assert default.expr is not None and default.expr.literal.value == containers.get("ffmpeg").pinned


def test_image_exposes_video_capability_to_the_nvidia_runtime(podman_ready: None) -> None:
    """The built image (not just the Dockerfile text) carries NVIDIA_DRIVER_CAPABILITIES with video."""
    import subprocess

    ref = containers.build(containers.get("ffmpeg"))
    out = subprocess.run(["podman", "image", "inspect", ref, "--format", "{{json .Config.Env}}"],
                         capture_output=True, text=True, check=True).stdout
    env = dict(e.split("=", 1) for e in json.loads(out))
    assert {"compute", "utility", "video"} <= set(env["NVIDIA_DRIVER_CAPABILITIES"].split(","))


def _validate(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    data = json.loads((settings.INPUTS_DIR / "hevc.local.json").read_text())
    data.update({f"hevc.{k}": v for k, v in changes.items()})
    return workflows.validate(workflows.get("hevc"), data, source="hevc.inputs.json",
                              base_dir=settings.INPUTS_DIR)


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("encoder", "h264_nvenc", "libx265, hevc_nvenc"),
    ("encoder", "x265", "libx265, hevc_nvenc"),
    ("profile", "main12", "main, main10"),
    ("rate_control", "abr", "crf, vbr, cbr"),
    ("intermediate", "pipe", "none, yuv_file"),
])
def test_choices_are_enforced_before_running(tmp_path: Path, expect_user_error, key: str, value: str,
                                             allowed: str) -> None:
    msg = expect_user_error(_validate, tmp_path, **{key: value})
    assert f"hevc.{key} is '{value}'" in msg and allowed in msg


def test_local_inputs_point_at_the_bundled_8k_source() -> None:
    resolved = _validate(Path("."))
    source = Path(resolved["hevc.source"])
    assert source.is_file() and source.stat().st_size < 500_000
    provenance = json.loads((settings.INPUTS_DIR / "hevc" / "provenance.json").read_text())
    import hashlib

    assert hashlib.sha256(source.read_bytes()).hexdigest() == provenance["files"][source.name]["sha256"]


# -- injection: what the commands may contain, the name pattern, the choices ---------------------------

NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SAFE_WRITERS = {"write_lines", "write_json", "write_tsv", "write_map"}


def _hevc_tasks_module() -> Any:
    """hevc_tasks.py loaded as the image runs it: beside task_common.py (containers/shared/)."""
    return load_script(containers.get("ffmpeg").context / "hevc_tasks.py")


def _tasks() -> list[WDL.Tree.Task]:
    return list(WDL.load(str(TASKS_PATH)).tasks)


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: t.name)
def test_command_placeholders_are_numbers_or_engine_written_files(task: WDL.Tree.Task) -> None:
    """No String or File value is pasted into a command: it reaches the shell through a file the engine wrote."""
    for part in task.command.parts:
        if not isinstance(part, WDL.Expr.Placeholder):
            continue
        expr = part.expr
        if isinstance(expr.type, WDL.Type.Int | WDL.Type.Float | WDL.Type.Boolean):
            continue
        assert isinstance(expr, WDL.Expr.Apply) and expr.function_name in SAFE_WRITERS, \
            f"{task.name}: ~{{{expr}}} ({expr.type}) pastes a value into the command"
        assert not part.options, f"{task.name}: ~{{{expr}}} has options {part.options}"


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: t.name)
def test_commands_hold_no_program_text(task: WDL.Tree.Task) -> None:
    """Programs live in the image (hevc-tasks), not in heredocs or -c strings of the WDL."""
    text = "".join(p for p in task.command.parts if isinstance(p, str))
    for banned in ("python3", "<<", "awk ", "perl ", "eval "):
        assert banned not in text, f"{task.name}: command holds {banned!r}"


def test_output_name_pattern_is_declared_and_enforced_by_the_image_script() -> None:
    doc = _doc()
    assert doc.workflow is not None
    metas = {"workflow": doc.workflow.parameter_meta["output_name"]}
    metas.update({t.name: t.parameter_meta["output_name"] for t in _tasks() if "output_name" in t.parameter_meta})
    assert set(metas) == {"workflow", "probe_source", "encode", "concat_chunks"}
    for where, meta in metas.items():
        assert isinstance(meta, dict) and meta["pattern"] == NAME_PATTERN and meta["description"], where
    assert f"^{_hevc_tasks_module().NAME_PATTERN}$" == NAME_PATTERN


def test_choices_in_parameter_meta_are_the_ones_the_tasks_check() -> None:
    doc = _doc()
    assert doc.workflow is not None
    declared = {k: tuple(v["choices"]) for k, v in doc.workflow.parameter_meta.items()
                if isinstance(v, dict) and "choices" in v}
    assert declared == _hevc_tasks_module().CHOICES


def test_output_name_of_every_call_is_checked_by_the_probe() -> None:
    """The workflow derives no name itself: encode and concat get the probe's checked (or made-safe) name."""
    wf = _doc().workflow
    assert wf is not None
    text = WDL_PATH.read_text()
    assert "probe_source.name" in text and "basename(source)" not in text
    probe = next(n for n in wf.body if isinstance(n, WDL.Call) and n.name == "probe_source")
    assert str(probe.inputs["output_name"]) == "output_name"


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("output_name", "x';touch pwned;: '", workflows.NAME_RULE),
    ("output_name", "my clip $(id)", workflows.NAME_RULE),
    ("output_name", ".hidden", workflows.NAME_RULE),
    ("output_name", "a" * 65, workflows.NAME_RULE),
    ("preset", "fast';reboot;'", "this is not a preset name: choose one of ultrafast, superfast, veryfast, faster, "
                                 "fast, medium, slow, slower, veryslow, placebo (libx265) or p1 to p7 (hevc_nvenc)"),
    ("preset", "p8", "this is not a preset name"),
    ("expected_resolution", "7680x4320 $(id)", "give WIDTHxHEIGHT (e.g. 7680x4320) or 'any'"),
    ("expected_resolution", "8K", "give WIDTHxHEIGHT (e.g. 7680x4320) or 'any'"),
])
def test_hostile_strings_are_refused_before_running(expect_user_error, key: str, value: str, rule: str) -> None:
    msg = expect_user_error(_validate, Path("."), **{key: value})
    assert msg.startswith(f"hevc.inputs.json: hevc.{key} is {value!r}: {rule}"), msg


def test_cli_patterns_agree_with_the_tasks_checks() -> None:
    """What the CLI lets through, hevc-tasks accepts (probe_source still checks, for runs without the CLI)."""
    import re

    wf = _doc().workflow
    assert wf is not None
    ht = _hevc_tasks_module()
    preset = re.compile(wf.parameter_meta["preset"]["pattern"])
    assert {p for presets in ht.PRESETS.values() for p in presets} == \
        {p for p in ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                     "veryslow", "placebo"] + [f"p{i}" for i in range(10)] if preset.fullmatch(p)}
    resolution = re.compile(wf.parameter_meta["expected_resolution"]["pattern"])
    for value in ("7680x4320", "any", "640x360", "8K", "0x0", "7680x4320\n", "1x1", "1234567x2"):
        cli_ok = resolution.fullmatch(value) is not None
        try:
            ht.check_settings({"expected_resolution": value})
            task_ok = True
        except ht.TaskError:
            task_ok = False
        assert cli_ok == task_ok, value


def _settings_keys(task: WDL.Tree.Task) -> set[str]:
    """The keys of the settings map a task's command passes to hevc-tasks with write_json."""
    keys: set[str] = set()
    for part in task.command.parts:
        if isinstance(part, WDL.Expr.Placeholder) and isinstance(part.expr, WDL.Expr.Apply) \
                and part.expr.function_name == "write_json" and isinstance(part.expr.arguments[0], WDL.Expr.Map):
            keys |= {str(k.literal.value) for k, _ in part.expr.arguments[0].items if k.literal is not None}
    return keys


def test_every_choice_is_checked_by_the_probe_which_runs_first() -> None:
    """probe_source gets (and hevc-tasks probe checks) every choice of the run; the workflow calls it first."""
    ht = _hevc_tasks_module()
    probe = next(t for t in _tasks() if t.name == "probe_source")
    streams = {"video_stream", "audio_stream"}   # the --streams file: stream indices, not choices
    assert _settings_keys(probe) - streams == set(ht.PROBE_CHECKS) >= set(ht.CHOICES)
    assert streams <= _settings_keys(probe)
    wf = _doc().workflow
    assert wf is not None
    first_call = next(n for n in wf.body if isinstance(n, WDL.Call))
    assert first_call.name == "probe_source"
    for name in ht.PROBE_CHECKS:
        if name in {d.name for d in wf.inputs or []}:
            assert str(first_call.inputs[name]) in (name, "chosen_preset"), name


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: t.name)
def test_command_blocks_are_short(task: WDL.Tree.Task) -> None:
    """The programs are in hevc-tasks: a command block only calls it (at most 40 lines, here far fewer)."""
    lines = TASKS_PATH.read_text().splitlines()
    start = task.command.pos.line
    end = next(i for i in range(start, len(lines) + 1) if lines[i - 1].strip() == ">>>")
    assert end - start + 1 <= 12, f"{task.name}: command block of {end - start + 1} lines"


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: t.name)
def test_deterministic_failures_are_not_retried(task: WDL.Tree.Task) -> None:
    """A bad source or setting fails the same way every time: no engine retry (maxRetries 0). A Spot reclaim is
    AWS Batch's to retry (awsBatchRetryAttempts)."""
    defaults = {d.name: d.expr for d in task.inputs or []}
    assert str(defaults["max_retries"]) == "0" and str(task.runtime["maxRetries"]) == "max_retries"
    assert int(str(defaults["batch_retries"])) >= 1 and str(task.runtime["awsBatchRetryAttempts"]) == "batch_retries"
