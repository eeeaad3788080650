"""containers/ffmpeg/hevc_tasks.py (``hevc-tasks`` in the ffmpeg image) run directly, without containers.

The recorded tool output in tests/data/hevc_tasks/ comes from the ffmpeg image (ffmpeg 5.1): a 3-frame
64x48 testsrc2 clip (H.264 lossless, ``streams.json``/``frames.json`` as the probe asks for them), its
libx265 encode (``video.json``, ``frames.txt``) and the verify task's PSNR/SSIM run (``metrics.log``,
``psnr.log``, ``ssim.log``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from batchpipes import settings

SCRIPT = settings.REPO_ROOT / "containers" / "ffmpeg" / "hevc_tasks.py"
DATA = Path(__file__).parent / "data" / "hevc_tasks"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hevc_tasks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hevc_tasks"] = module
    spec.loader.exec_module(module)
    return module


ht = _load()


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = ht.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def write_json(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return path


# -- output names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.hevc", "A", "seg_00000", "x-1.2_b", "a" * 64, "0"])
def test_name_pattern_accepts(name: str) -> None:
    assert ht.check_name(name) == name


@pytest.mark.parametrize(("name", "shown"), [
    ("x';touch pwned;: '", "'x';touch pwned;: ''"),
    ("my clip", "'my clip'"),
    ("a$(id)", "'a$(id)'"),
    ("clip\n", "'clip\\n'"),            # "$" in a regex would let this one through
    ("a\nb", "'a\\nb'"),
    (".hidden", "'.hidden'"),
    ("-rf", "'-rf'"),
    ("a" * 65, "'" + "a" * 65 + "'"),
    ("", "''"),
    ("dir/clip", "'dir/clip'"),
    ("Café", "'Café'"),
    ("tab\there", "'tab\\there'"),
])
def test_name_pattern_refuses_with_one_line(name: str, shown: str) -> None:
    with pytest.raises(ht.TaskError) as info:
        ht.check_name(name)
    assert str(info.value) == f"output_name {shown} {NAME_RULE}"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("basename", "expected"), [
    ("clip_360p.mp4", "clip_360p.hevc"),
    ("source_8k.mp4", "source_8k.hevc"),
    ("my clip'$(touch x) 1.mp4", "my_clip_touch_x_1.hevc"),
    ("x';touch pwned;: '.mov", "x_touch_pwned.hevc"),
    ("Café del Mar (2019) [8K].mkv", "Cafe_del_Mar_2019_8K.hevc"),
    (".hidden.mp4", "hidden.hevc"),
    ("-rf.mp4", "rf.hevc"),
    ("master.v2.final.mov", "master.v2.final.hevc"),
    ("no_extension", "no_extension.hevc"),
    ("東京.mp4", "video.hevc"),
    ("'''.mp4", "video.hevc"),
    ("a" * 200 + ".mp4", "a" * 59 + ".hevc"),
    ("a" * 58 + "  b.mp4", "a" * 58 + ".hevc"),   # cut at 59, trailing '_' dropped
])
def test_default_name_is_always_a_valid_output_name(basename: str, expected: str) -> None:
    name = ht.default_name(basename)
    assert name == expected
    assert ht.name_ok(name) and len(name) <= 64


# -- settings --------------------------------------------------------------------------------------


GOOD = {"output_name": "clip.hevc", "encoder": "libx265", "preset": "medium", "profile": "main10",
        "rate_control": "crf", "intermediate": "none", "audio": "copy", "expected_resolution": "7680x4320",
        "frame_rate": "30000/1001"}


def test_settings_prints_the_checked_values_in_the_order_asked(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_json(tmp_path, "s.json", GOOD)
    status, out, err = run_main(capsys, "settings", str(path), "frame_rate", "output_name", "preset", "audio")
    assert (status, err) == (0, "")
    assert out.splitlines() == ["30000/1001", "clip.hevc", "medium", "copy"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"output_name": "x';touch pwned;: '"}, f"output_name 'x';touch pwned;: '' {NAME_RULE}"),
    ({"encoder": "h264_nvenc"}, "unknown encoder 'h264_nvenc': choose libx265 (CPU) or hevc_nvenc (NVIDIA GPU)"),
    ({"encoder": "libx265\n"}, "unknown encoder 'libx265\\n': choose libx265 (CPU) or hevc_nvenc (NVIDIA GPU)"),
    ({"preset": "p5"}, "preset 'p5' is not a libx265 preset: choose one of ultrafast, superfast, veryfast, faster, "
                       "fast, medium, slow, slower, veryslow, placebo"),
    ({"encoder": "hevc_nvenc"}, "preset 'medium' is not a hevc_nvenc preset: choose one of p1, p2, p3, p4, p5, "
                                "p6, p7"),
    ({"profile": "main12"}, "unknown profile 'main12': choose main (8-bit) or main10 (10-bit)"),
    ({"rate_control": "abr"}, "unknown rate_control 'abr': choose crf, vbr or cbr"),
    ({"intermediate": "pipe"}, "unknown intermediate 'pipe': choose none or yuv_file"),
    ({"audio": "$(reboot)"}, "unknown audio mode '$(reboot)': choose copy, aac or none"),
    ({"expected_resolution": "8K"}, "expected_resolution '8K' is neither WIDTHxHEIGHT (e.g. 7680x4320) nor 'any': "
                                    "correct it"),
    ({"frame_rate": "24/0"}, "frame_rate '24/0' is not a rational like 24/1 or 30000/1001: give the source's rate "
                             "as probed"),
])
def test_bad_setting_is_one_error_line_and_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         changes: dict[str, str], message: str) -> None:
    path = write_json(tmp_path, "s.json", {**GOOD, **changes})
    status, out, err = run_main(capsys, "settings", str(path), *GOOD)
    assert (status, out) == (1, "")
    assert err == f"ERROR: {message}\n"


def test_settings_file_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_json(tmp_path, "s.json", ["clip"])
    status, out, err = run_main(capsys, "settings", str(path), "output_name")
    assert (status, out) == (1, "")
    assert err == f"ERROR: the task's settings file {path} does not hold a JSON object\n"


# -- probe -----------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    data = json.loads((DATA / name).read_text())
    assert isinstance(data, dict)
    return data


def test_summary_of_a_real_probe() -> None:
    summary = ht.summarise_source("clip.mp4", recorded("streams.json"), recorded("frames.json"),
                                  audio="copy", expected="64x48")
    assert summary == {"file": "clip.mp4", "container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264",
                       "pix_fmt": "yuv420p", "width": 64, "height": 48, "frames": 3, "keyframes": 1,
                       "frame_rate": "24/1", "fps": 24.0, "duration_s": 0.125, "audio_streams": 0,
                       "bytes": 2633}


def _streams_with(**video: Any) -> dict[str, Any]:
    data = recorded("streams.json")
    data["streams"][0].update(video)
    return data


@pytest.mark.parametrize(("streams", "counted", "kwargs", "message"), [
    ({"streams": [], "format": {}}, {}, {},
     "source 'a b.mp4' has no video stream: give a video file"),
    (_streams_with(disposition={"attached_pic": 1}), {}, {},
     "source 'a b.mp4' has no video stream: give a video file"),
    (recorded("streams.json"), {"streams": [{"nb_read_frames": "0"}]}, {},
     "source 'a b.mp4' has a video stream but no decodable frames"),
    (_streams_with(width=641, height=361), recorded("frames.json"), {"expected": "any"},
     "source 'a b.mp4' is 641x361: 4:2:0 HEVC (Main/Main 10) needs even width and height; crop or scale the "
     "source first"),
    (recorded("streams.json"), recorded("frames.json"), {"expected": "7680x4320"},
     "source 'a b.mp4' is 64x48, not the expected 7680x4320: give an 7680x4320 source or set expected_resolution "
     "to its size (or 'any')"),
    (_streams_with(avg_frame_rate="0/0", r_frame_rate="0/0"), recorded("frames.json"), {},
     "source 'a b.mp4' has no frame rate: remux it with an explicit rate (ffmpeg -r)"),
    ({**recorded("streams.json"),
      "streams": [*recorded("streams.json")["streams"], {"codec_type": "audio", "codec_name": "pcm_s24le"}]},
     recorded("frames.json"), {},
     "source audio is pcm_s24le, which MP4 cannot carry unchanged: set audio to aac or none"),
])
def test_bad_source_is_one_line(streams: dict[str, Any], counted: dict[str, Any], kwargs: dict[str, str],
                                message: str) -> None:
    args = {"audio": "copy", "expected": "any", **kwargs}
    with pytest.raises(ht.TaskError) as info:
        ht.summarise_source("a b.mp4", streams, counted, **args)
    assert str(info.value) == message


def test_pcm_audio_is_fine_when_reencoded() -> None:
    streams = recorded("streams.json")
    streams["streams"].append({"codec_type": "audio", "codec_name": "pcm_s24le"})
    summary = ht.summarise_source("a.mov", streams, recorded("frames.json"), audio="aac", expected="any")
    assert summary["audio_streams"] == 1


@pytest.mark.parametrize(("settings_changes", "name", "message"), [
    ({"preset": "p5"}, [], "preset 'p5' is not a libx265 preset"),
    ({}, ["x';touch pwned;: '"], f"output_name 'x';touch pwned;: '' {NAME_RULE}"),
    ({"audio": "loud"}, [], "unknown audio mode 'loud': choose copy, aac or none"),
])
def test_probe_checks_settings_before_running_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       settings_changes: dict[str, str], name: list[str],
                                                       message: str) -> None:
    """ffprobe is not installed on the test host: had the probe run it, this would fail differently."""
    assert shutil.which("ffprobe") is None, "this test relies on ffprobe being absent on the host"
    keys = ("encoder", "preset", "profile", "rate_control", "audio", "expected_resolution")
    s = write_json(tmp_path, "s.json", {**{k: GOOD[k] for k in keys}, **settings_changes})
    n = write_json(tmp_path, "n.json", name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, out, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), "--chunks", "1",
                                "--", str(tmp_path / "my clip'$(touch x) 1.mp4"))
    assert (status, out) == (1, "")
    assert err.startswith(f"ERROR: {message}") and err.count("\n") == 1, err
    assert list(work.iterdir()) == [] and not (tmp_path / "x").exists()


def test_probe_refuses_zero_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = ("encoder", "preset", "profile", "rate_control", "audio", "expected_resolution")
    s = write_json(tmp_path, "s.json", {k: GOOD[k] for k in keys})
    n = write_json(tmp_path, "n.json", [])
    status, _, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), "--chunks", "0", "src.mp4")
    assert (status, err) == (1, "ERROR: chunks is 0: give 1 (single encode) or more\n")


# -- split points, concat list, stats --------------------------------------------------------------


@pytest.mark.parametrize(("frames", "chunks", "points"), [
    (8, 4, [2, 4, 6]),
    (48, 4, [12, 24, 36]),
    (100, 3, [33, 67]),
    (5, 1, []),
    (3, 8, [1, 2]),          # more chunks than frames: no repeated or out-of-range cut
    (1, 4, []),
])
def test_split_points(frames: int, chunks: int, points: list[int]) -> None:
    assert ht.split_points(frames, chunks) == points


def test_split_points_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys, "split-points", "8", "4") == (0, "2,4,6\n", "")
    assert run_main(capsys, "split-points", "8", "0") == (
        1, "", "ERROR: cannot split 8 frames into 0 chunks: give 1 or more of each\n")


def test_concat_list_orders_by_name_and_quotes_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "chunks.txt"
    listing.write_text("/in/2/seg_00002.mp4\n/in/0/seg_00000.mp4\n/in/it's 1/seg_00001.mp4\n\n")
    status, out, _ = run_main(capsys, "concat-list", str(listing))
    assert status == 0
    assert out == ("file '/in/0/seg_00000.mp4'\n"
                   "file '/in/it'\\''s 1/seg_00001.mp4'\n"
                   "file '/in/2/seg_00002.mp4'\n")


def test_encode_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    s = write_json(tmp_path, "settings.json", GOOD)
    status, out, _ = run_main(capsys, "encode-stats", "--settings", str(s), "--start", "100.0", "--end", "104.0",
                              "--frames", "8", "--cpu", "16")
    stats = json.loads((tmp_path / "encode_stats.json").read_text())
    assert status == 0 and json.loads(out) == stats
    assert stats == {"frames": 8, "seconds": 4.0, "fps": 2.0, "encoder": "libx265", "preset": "medium",
                     "profile": "main10", "rate_control": "crf", "intermediate": "none", "cpu": 16}


# -- verification report ---------------------------------------------------------------------------


@pytest.fixture()
def verify_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("video.json", "frames.txt", "metrics.log", "psnr.log", "ssim.log"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "decode_errors.log").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def verify_args(**changes: str) -> list[str]:
    args = {"--expected-frames": "3", "--width": "64", "--height": "48", "--profile": "main",
            "--has-vmaf": "false", "--vmaf-requested": "true", **changes}
    return ["verify-report", *[x for kv in args.items() for x in kv]]


def test_verify_report_of_a_real_encode(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, *verify_args())
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert status == 0 and report["passed"], report["checks"]
    assert report["psnr_db"]["average"] == pytest.approx(35.099912)
    assert report["psnr_frame_min_db"] == pytest.approx(35.10)
    assert report["ssim"]["all"] == pytest.approx(0.975455)
    assert report["video"]["profile"] == "Main" and report["video"]["frames"] == 3
    assert report["vmaf"] is None and report["vmaf_note"] == "not computed: this ffmpeg build has no libvmaf filter"
    assert float((verify_dir / "psnr.txt").read_text()) == pytest.approx(35.099912)
    assert float((verify_dir / "ssim.txt").read_text()) == pytest.approx(0.975455)
    text = (verify_dir / "verify_report.txt").read_text()
    assert text.startswith("verification: PASSED\n") and "PSNR: average 35.100 dB" in text
    assert err == text


@pytest.mark.parametrize(("changes", "failed", "detail"), [
    ({"--min-psnr": "40"}, "min_psnr", "frames 3 vs 3, 64x48, profile Main"),
    ({"--expected-frames": "4"}, "frame_count, all_frames_compared", "frames 3 vs 4, 64x48, profile Main"),
    ({"--profile": "main10"}, "profile", "frames 3 vs 3, 64x48, profile Main"),
    ({"--width": "7680", "--height": "4320"}, "resolution", "frames 3 vs 3, 64x48, profile Main"),
])
def test_verify_fails_after_writing_the_report(verify_dir: Path, capsys: pytest.CaptureFixture[str],
                                              changes: dict[str, str], failed: str, detail: str) -> None:
    status, _, err = run_main(capsys, *verify_args(**changes))
    assert status == 1
    assert err.splitlines()[-1] == (f"ERROR: the encoded video failed verification ({failed}): see verify_report.txt "
                                    f"({detail})")
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert not report["passed"]
    assert "verification: FAILED" in (verify_dir / "verify_report.txt").read_text()


def test_verify_counts_decode_errors(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (verify_dir / "decode_errors.log").write_text("[hevc @ 0x1] Could not find ref with POC 3\n")
    status, _, err = run_main(capsys, *verify_args())
    assert status == 1 and "(decodes)" in err.splitlines()[-1]


def test_min_psnr_absent_is_not_checked(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(capsys, *verify_args(**{"--min-psnr": "nan"}))
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert "min_psnr" not in report["checks"] and math.isclose(report["psnr_db"]["min"], 35.099912)
