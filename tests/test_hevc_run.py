"""The HEVC workflow under miniwdl in real containers (CPU path, libx265).

What the tests override for speed (the workflow's own defaults are for real 8K work: preset medium,
16 vCPUs, 24 GiB): inputs/hevc.local.json sets preset ultrafast, 2 vCPUs and small memory; the clips
are 8 frames at 8K and 48 frames at 640x360. Quality stays at the default (CRF 22).

Outputs are checked independently of the workflow's own verify task: stream facts with ffprobe, the
bitstream's first NAL units, and PSNR recomputed here from decoded frames.

Injection: the chunked and the raw-YUV runs read the clip under a hostile but legal file name (a quote, spaces,
``$(...)``), which every task receives; a task run directly with miniwdl (as a Cromwell user would, without
the CLI's input checks) refuses a hostile output_name before running anything.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, local, settings
from batchpipes.testdata import hevc as testdata

LOCAL_JSON = settings.INPUTS_DIR / "hevc.local.json"
TASKS_WDL = settings.WDL_DIR / "tasks" / "hevc.wdl"
#: A legal file name that breaks naive quoting and would run `touch x` if spliced into shell.
HOSTILE_SOURCE = "my clip'$(touch x) 1.mp4"
HOSTILE_NAME = "x';touch pwned;: '"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


# -- helpers: ffmpeg/ffprobe in the same image the workflow uses ---------------------------------


def in_ffmpeg(argv: list[str], *files: Path) -> bytes:
    """Run ``argv`` (no shell) in the ffmpeg image with the folders of ``files`` mounted read-only at their paths."""
    image = containers.build(containers.get("ffmpeg"))
    mounts: list[str] = []
    for folder in sorted({f.resolve().parent for f in files}):
        mounts += ["-v", f"{folder}:{folder}:ro"]
    # As root: the image's unprivileged user cannot enter pytest's 0700 temporary folders.
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", *mounts, image, *argv],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout


def probe(video: Path) -> dict[str, Any]:
    v = video.resolve()
    out = in_ffmpeg(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(v)],
                    v)
    return json.loads(out)


def video_stream(info: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def raw_frames(video: Path, pix_fmt: str = "yuv420p") -> bytes:
    v = video.resolve()
    return in_ffmpeg(["ffmpeg", "-v", "error", "-i", str(v), "-map", "0:v:0", "-f", "rawvideo",
                      "-pix_fmt", pix_fmt, "-"], v)


def psnr_8bit(a: bytes, b: bytes) -> float:
    """PSNR over all samples of all frames (what ffmpeg's psnr filter averages to for equal-size frames)."""
    assert len(a) == len(b) and a, (len(a), len(b))
    se = sum((x - y) * (x - y) for x, y in zip(a, b, strict=True))
    return math.inf if se == 0 else 10 * math.log10(255 * 255 / (se / len(a)))


def frame_psnrs(a: bytes, b: bytes, frame_bytes: int) -> list[float]:
    return [psnr_8bit(a[i:i + frame_bytes], b[i:i + frame_bytes]) for i in range(0, len(a), frame_bytes)]


def out(run: Any, name: str) -> Any:
    return run.outputs[f"hevc.{name}"]


def report(run: Any) -> dict[str, Any]:
    return json.loads(Path(out(run, "report_json")).read_text())


# -- fixtures: each workflow runs once per module ------------------------------------------------


@pytest.fixture(scope="module")
def clips(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hevc-clips")
    testdata.generate(folder, (testdata.CLIP,))
    bad = testdata.generate_bad(folder / "bad")
    hostile = folder / "hostile" / HOSTILE_SOURCE
    hostile.parent.mkdir()
    shutil.copyfile(folder / testdata.CLIP, hostile)
    return {"clip": folder / testdata.CLIP, "hostile": hostile, **bad}


def clip_inputs(clip: Path, **changes: Any) -> dict[str, Any]:
    data = json.loads(LOCAL_JSON.read_text())  # its only path, the source, is replaced
    data.update({"hevc.source": str(clip), "hevc.expected_resolution": "640x360", "hevc.profile": "main",
                 "hevc.keyint": testdata.CLIP_GOP})
    data.update({f"hevc.{k}": v for k, v in changes.items()})
    return data


@pytest.fixture(scope="module")
def run_8k(run_workflow):
    return run_workflow("hevc")


@pytest.fixture(scope="module")
def clip_single(run_workflow, clips):
    return run_workflow("hevc", clip_inputs(clips["clip"]))


@pytest.fixture(scope="module")
def clip_chunked(run_workflow, clips):
    return run_workflow("hevc", clip_inputs(clips["hostile"], chunks=4))


@pytest.fixture(scope="module")
def clip_yuv_file(run_workflow, clips):
    return run_workflow("hevc", clip_inputs(clips["hostile"], intermediate="yuv_file"))


# -- the 8K CPU encode ---------------------------------------------------------------------------


def test_8k_output_is_hevc_main10_at_7680x4320_with_every_frame(run_8k):
    video = Path(out(run_8k, "video"))
    info = probe(video)
    v = video_stream(info)
    assert (v["codec_name"], v["codec_tag_string"], v["profile"]) == ("hevc", "hvc1", "Main 10")
    assert (v["width"], v["height"], v["pix_fmt"]) == (7680, 4320, "yuv420p10le")
    assert int(v["nb_read_frames"]) == testdata.SOURCE_8K_FRAMES


def test_8k_bitstream_starts_with_hevc_parameter_sets(run_8k):
    video = Path(out(run_8k, "video")).resolve()
    head = in_ffmpeg(["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:v:0", "-c", "copy",
                      "-bsf:v", "hevc_mp4toannexb", "-f", "hevc", "-"], video)[:64]
    assert head[:4] == b"\x00\x00\x00\x01"
    nal_type = (head[4] >> 1) & 0x3F
    assert nal_type == 32, f"first NAL unit is type {nal_type}, not a VPS (32)"


def test_8k_quality_at_default_crf(run_8k):
    rep = report(run_8k)
    assert rep["passed"] and all(rep["checks"].values()), rep["checks"]
    assert rep["psnr_db"]["average"] >= 38.0, rep["psnr_db"]
    assert rep["psnr_frame_min_db"] >= 38.0
    assert 0.95 <= rep["ssim"]["all"] <= 1.0
    assert out(run_8k, "psnr") == pytest.approx(rep["psnr_db"]["average"])
    # VMAF from the image's second ffmpeg (the PyPI wheel with libvmaf), the 4K model for 8K, every frame.
    assert rep["vmaf"]["model"] == "vmaf_4k_v0.6.1" and rep["vmaf"]["frames"] == testdata.SOURCE_8K_FRAMES
    assert 90.0 <= rep["vmaf"]["min"] <= rep["vmaf"]["mean"] <= 100.0, rep["vmaf"]
    text = Path(out(run_8k, "report_txt")).read_text()
    assert "verification: PASSED" in text and f"{rep['psnr_db']['average']:.3f} dB" in text


def test_8k_source_probe_and_encode_stats(run_8k):
    info = json.loads(Path(out(run_8k, "source_info")).read_text())
    video = info["video"]
    assert (video["width"], video["height"], video["packets"], video["keyframes"]) == (7680, 4320, 8, 2)
    assert info["decode"]["method"] == "cpu" and info["verify"] == "full"
    (stats_path,) = out(run_8k, "encode_stats")
    stats = json.loads(Path(stats_path).read_text())
    assert stats["frames"] == 8 and stats["encoder"] == "libx265" and stats["preset"] == "ultrafast"
    assert stats["fps"] == pytest.approx(8 / stats["seconds"], rel=1e-3)


# -- chunked vs single, raw YUV intermediate (640x360 clip, Main 8-bit) --------------------------


FRAME_BYTES = 640 * 360 * 3 // 2


def test_report_psnr_matches_an_independent_computation(clip_single, clips):
    recomputed = psnr_8bit(raw_frames(Path(out(clip_single, "video"))), raw_frames(clips["clip"]))
    assert report(clip_single)["psnr_db"]["average"] == pytest.approx(recomputed, abs=0.01)


def test_chunked_encode_keeps_every_frame_in_order(clip_chunked, clips):
    video = Path(out(clip_chunked, "video"))
    v = video_stream(probe(video))
    assert (v["codec_name"], v["profile"], v["width"], v["height"]) == ("hevc", "Main", 640, 360)
    assert int(v["nb_read_frames"]) == testdata.CLIP_FRAMES
    assert len(out(clip_chunked, "encode_stats")) == 4, "expected four keyframe-aligned chunks"
    # Every frame matches the source frame with the same index: a dropped, doubled or swapped frame
    # would compare two different testsrc2 frames and fall far below this.
    per_frame = frame_psnrs(raw_frames(video), raw_frames(clips["clip"]), FRAME_BYTES)
    assert len(per_frame) == testdata.CLIP_FRAMES and min(per_frame) >= 35.0, per_frame


def test_chunked_quality_matches_single_encode(clip_chunked, clip_single):
    single, chunked = report(clip_single), report(clip_chunked)
    assert single["passed"] and chunked["passed"]
    assert (single["measured_by"], chunked["measured_by"]) == ("verify", "chunk jobs")
    assert chunked["frames_compared"] == single["frames_compared"] == testdata.CLIP_FRAMES
    assert single["psnr_db"]["average"] >= 38.0
    assert abs(chunked["psnr_db"]["average"] - single["psnr_db"]["average"]) <= 0.5, \
        (chunked["psnr_db"], single["psnr_db"])


def test_chunked_output_keeps_the_audio(clip_chunked, clips):
    src = probe(clips["clip"])
    res = probe(Path(out(clip_chunked, "video")))
    (a_src,) = [s for s in src["streams"] if s["codec_type"] == "audio"]
    (a_out,) = [s for s in res["streams"] if s["codec_type"] == "audio"]
    assert a_out["codec_name"] == a_src["codec_name"] == "aac"
    assert float(a_out["duration"]) == pytest.approx(float(a_src["duration"]), abs=0.05)


def test_yuv_file_intermediate_gives_the_same_encode(clip_yuv_file, clip_single):
    yuv, single = report(clip_yuv_file), report(clip_single)
    assert yuv["passed"] and yuv["video"]["frames"] == testdata.CLIP_FRAMES
    assert yuv["psnr_db"]["average"] == pytest.approx(single["psnr_db"]["average"], abs=0.05)
    (stats_path,) = out(clip_yuv_file, "encode_stats")
    assert json.loads(Path(stats_path).read_text())["intermediate"] == "yuv_file"
    work = Path(out(clip_yuv_file, "video")).resolve().parent
    assert not (work / "source.yuv").exists(), "the raw YUV file should be removed after encoding"


@pytest.fixture(scope="module")
def clip_cbr(run_workflow, clips):
    return run_workflow("hevc", clip_inputs(clips["clip"], rate_control="cbr", bitrate_kbps=3000, audio="aac"))


def test_cbr_holds_the_bitrate(clip_cbr):
    v = video_stream(probe(Path(out(clip_cbr, "video"))))
    assert int(v["bit_rate"]) == pytest.approx(3_000_000, rel=0.25), v["bit_rate"]
    assert int(v["nb_read_frames"]) == testdata.CLIP_FRAMES and report(clip_cbr)["passed"]


# -- bad inputs: one clear line from the task that found the problem, that task run alone --------------


PROBE_INPUTS = {"encoder": "libx265", "profile": "main", "preset": "ultrafast", "rate_control": "crf",
                "audio": "copy", "chunks": 1, "expected_resolution": "640x360"}


@pytest.mark.parametrize(("bad", "changes", "expected"), [
    ("not_video.mp4", {}, "is not a readable video file"),
    ("zero_frames.y4m", {}, "but no frames in it: give a complete file"),
    ("odd_641x361.mkv", {"expected_resolution": "any"}, "641x361: 4:2:0 HEVC (Main/Main 10) needs even width"),
    ("clip", {"expected_resolution": "7680x4320"}, "is 640x360, not the expected 7680x4320"),
    ("clip", {"preset": "p5"}, "preset 'p5' is not a libx265 preset"),
    ("clip", {"intermediate": "pipe"}, "unknown intermediate 'pipe': choose none or yuv_file"),
])
def test_probe_refuses_a_bad_input_with_one_clear_line(run_task, clips, expect_user_error, bad, changes, expected):
    msg = expect_user_error(run_task, TASKS_WDL, "probe_source",
                            {"source": str(clips[bad]), **PROBE_INPUTS, **changes})
    assert expected in msg, msg
    assert "Traceback" not in msg and "_miniwdl_inputs" not in msg, msg


def minimal_info(folder: Path) -> Path:
    """A source_info.json as the probe writes it, reduced to what the encode reads before running anything."""
    path = folder / "source_info.json"
    path.write_text(json.dumps({"video": {"index": 0, "colour": {}, "hdr": {}}, "audio": [],
                                "decode": {"method": "cpu", "reason": "test"}}))
    return path


def test_gpu_encode_without_a_gpu_says_so(run_task, clips, expect_user_error, tmp_path):
    inputs = {"source": str(clips["clip"]), "info": str(minimal_info(tmp_path)), "output_name": "x",
              "encoder": "hevc_nvenc", "profile": "main",
              "preset": "p4", "rate_control": "crf", "quality": 22, "bitrate_kbps": 3000, "width": 640, "height": 360,
              "frame_rate": "24/1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}
    msg = expect_user_error(run_task, TASKS_WDL, "encode", inputs)
    assert msg.startswith("encode failed in encode: hevc_nvenc cannot open an NVIDIA encoder here ("), msg
    assert "or set encoder to libx265" in msg and "Traceback" not in msg, msg


def test_verify_fails_below_min_psnr(run_task, clip_single, clips, expect_user_error):
    inputs = {"video": str(out(clip_single, "video")), "source": str(clips["clip"]),
              "info": str(out(clip_single, "source_info")), "encoder": "libx265", "verify_mode": "full",
              "expected_frames": testdata.CLIP_FRAMES, "width": 640, "height": 360, "profile": "main",
              "min_psnr": 99.0, "cpu": 2, "memory_gb": 2, "disk_gb": 1}
    msg = expect_user_error(run_task, TASKS_WDL, "verify", inputs)
    assert "the encoded video failed verification (min_psnr)" in msg, msg


# -- injection: hostile file names work, hostile output names are refused by the task itself -------------


def test_hostile_source_name_works_and_gives_a_safe_output_name(clip_chunked, clip_yuv_file, clip_single,
                                                                clips):
    """Every task of the chunked and the raw-YUV run got the clip as "my clip'$(touch x) 1.mp4"."""
    for run in (clip_chunked, clip_yuv_file):
        assert Path(out(run, "video")).name == "my_clip_touch_x_1.hevc.mp4"
        assert json.loads(Path(out(run, "source_info")).read_text())["file"] == HOSTILE_SOURCE
        assert report(run)["passed"]
        spliced = [p for p in run.run_dir.rglob("x") if p.is_file()]
        assert not spliced, f"the file name's $(touch x) ran: {spliced}"
    assert sorted(p.name for p in clips["hostile"].parent.iterdir()) == [HOSTILE_SOURCE]
    assert Path(out(clip_single, "video")).name == "clip_360p.hevc.mp4"


def run_task(task: str, inputs: dict[str, Any], run_dir: Path) -> tuple[int, dict[str, Any]]:
    """One task of wdl/tasks/hevc.wdl straight under miniwdl, as a Cromwell user runs it: no CLI checks."""
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs_file = run_dir / "inputs.json"
    inputs_file.write_text(json.dumps(inputs))
    proc = subprocess.run([sys.executable, "-m", "WDL", "run", str(TASKS_WDL), "--task", task, "-i", str(inputs_file),
                           "--dir", str(run_dir), "--cfg", str(local.miniwdl_config(call_cache=False)),
                           "--no-cache", "--error-json"], capture_output=True, text=True, check=False)
    return proc.returncode, json.loads(proc.stdout or "{}")


def task_inputs(task: str, clips: dict[str, Path], image: str, output_name: str, info: Path) -> dict[str, Any]:
    settings_ = {"encoder": "libx265", "profile": "main", "preset": "ultrafast", "rate_control": "crf",
                 "audio": "none"}
    common = {"output_name": output_name, "docker_image": image, "max_retries": 0}
    by_task: dict[str, dict[str, Any]] = {
        "probe_source": {"source": str(clips["clip"]), **settings_, "chunks": 1, "expected_resolution": "any"},
        "encode": {"source": str(clips["clip"]), "info": str(info), **settings_, "quality": 22, "bitrate_kbps": 3000,
                   "width": 640, "height": 360, "frame_rate": "24/1", "cpu": 1, "memory_gb": 1, "disk_gb": 1},
        "concat_chunks": {"chunks": [str(clips["clip"])], "info": str(info), "audio": "none",
                          "expected_frames": testdata.CLIP_FRAMES, "disk_gb": 1},
    }
    return {**by_task[task], **common}


@pytest.mark.parametrize(("task", "name", "shown"), [
    ("probe_source", HOSTILE_NAME, HOSTILE_NAME),
    ("encode", HOSTILE_NAME, HOSTILE_NAME),
    ("concat_chunks", HOSTILE_NAME, HOSTILE_NAME),
    ("encode", "a$(touch pwned)", "a$(touch pwned)"),
    ("encode", "a\ntouch pwned", "a\\ntouch pwned"),
    ("encode", "../../pwned", "../../pwned"),
])
def test_task_run_directly_refuses_a_hostile_output_name(clips, tmp_path, task, name, shown):
    image = containers.publish_local(containers.get("ffmpeg"))
    (tmp_path / "info").mkdir()
    info = minimal_info(tmp_path / "info")
    status, error = run_task(task, task_inputs(task, clips, image, name, info), tmp_path / "run")
    assert status != 0 and error, error
    cause = error.get("cause") or error
    stderr_file = Path(cause["stderr_file"])
    lines = [ln for ln in stderr_file.read_text().splitlines() if ln.strip()]
    assert lines == [f"ERROR: output_name '{shown}' {NAME_RULE}"]
    assert not [p for p in tmp_path.rglob("pwned*")], "the hostile output_name ran a command"
    # Nothing ran before the check: no ffprobe/ffmpeg output, no video, no outputs of the task.
    work = stderr_file.parent / "work"
    produced = {p.name for p in work.iterdir() if not p.name.startswith("_miniwdl")}
    assert not produced, produced


def test_bundled_8k_source_regenerates_bit_for_bit(podman_ready, tmp_path):
    provenance = json.loads((settings.INPUTS_DIR / "hevc" / "provenance.json").read_text())
    digests = testdata.generate(tmp_path, (testdata.SOURCE_8K,))
    assert digests[testdata.SOURCE_8K] == provenance["files"][testdata.SOURCE_8K]["sha256"]
