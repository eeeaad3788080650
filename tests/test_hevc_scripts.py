"""containers/ffmpeg/hevc_tasks.py (``hevc-tasks`` in the ffmpeg image) run directly, without containers.

The recorded tool output in tests/data/hevc_tasks/ comes from the ffmpeg image (ffmpeg 5.1): a 3-frame
64x48 testsrc2 clip (H.264 lossless, ``streams.json``/``frames.json`` as the probe asks for them), its
libx265 encode (``video.json``, ``frames.txt``) and the verify task's PSNR/SSIM run (``metrics.log``,
``psnr.log``, ``ssim.log``); realistic sources (``record.sh`` there: 10-bit ProRes with PCM audio, 10-bit HEVC
with Opus, H.264 with AAC + AC-3, an odd size) probed as the probe task probes them; the NVENC check's log on a
machine without a GPU. The encode command lines of both paths (libx265, hevc_nvenc) are checked from those
probes, argument by argument; tests/test_hevc_run.py runs the CPU path's for real.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from batchpipes import settings
from scriptload import load_script

SCRIPT = settings.REPO_ROOT / "containers" / "ffmpeg" / "hevc_tasks.py"
DATA = Path(__file__).parent / "data" / "hevc_tasks"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


ht = load_script(SCRIPT)


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


# -- settings: checked once, by the probe -----------------------------------------------------------


GOOD = {"output_name": "clip.hevc", "encoder": "libx265", "preset": "medium", "profile": "main10",
        "rate_control": "crf", "intermediate": "none", "audio": "copy", "expected_resolution": "7680x4320",
        "frame_rate": "30000/1001"}
PROBE_SETTINGS = {k: GOOD[k] for k in ht.PROBE_CHECKS}


def test_check_settings_returns_the_checked_values_in_the_order_asked() -> None:
    values = ht.check_settings(GOOD, ["frame_rate", "output_name", "preset", "audio"])
    assert list(values.items()) == [("frame_rate", "30000/1001"), ("output_name", "clip.hevc"),
                                    ("preset", "medium"), ("audio", "copy")]


def test_the_probe_checks_every_choice() -> None:
    assert set(ht.CHOICES) <= set(ht.PROBE_CHECKS)
    assert {"preset", "expected_resolution"} <= set(ht.PROBE_CHECKS)


def test_choices_are_the_keys_of_the_tables_that_implement_them() -> None:
    assert ht.CHOICES["encoder"] == tuple(ht.PRESETS) == ("libx265", "hevc_nvenc")
    assert ht.CHOICES["profile"] == tuple(ht.PROFILES) == ("main", "main10")
    assert ht.CHOICES["audio"] == tuple(ht.AUDIO_CODECS) == ("copy", "aac", "none")


BAD_SETTINGS = [
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
    ({"profile": 10}, "setting profile is 10, not a string"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SETTINGS)
def test_bad_setting_is_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ht.TaskError) as info:
        ht.check_settings({**GOOD, **changes})
    assert str(info.value) == message


def test_settings_file_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_json(tmp_path, "s.json", ["clip"])
    status, out, err = run_main(capsys, "probe", "--settings", str(path), "--name", str(path), "--chunks", "1",
                                "--source", str(write_lines(tmp_path, "src.txt", ["a.mp4"])))
    assert (status, out) == (1, "")
    assert err == f"ERROR: the task's settings file {path} does not hold a JSON object\n"


# -- paths from write_lines files ------------------------------------------------------------------


def write_lines(tmp_path: Path, name: str, lines: list[str]) -> Path:
    """A file as WDL's write_lines writes it: every value followed by a newline."""
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_paths_are_read_as_mapfile_reads_them(tmp_path: Path) -> None:
    assert ht.read_lines(write_lines(tmp_path, "a", [])) == []
    assert ht.read_lines(write_lines(tmp_path, "b", ["/in/my clip'$(x) 1.mp4"])) == ["/in/my clip'$(x) 1.mp4"]
    assert ht.read_lines(write_lines(tmp_path, "c", ["/a\rb", ""])) == ["/a\rb", ""]


def test_a_path_with_a_line_break_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ht.TaskError) as info:
        ht.read_paths(write_lines(tmp_path, "a", ["/in/a\nb.mp4"]), 1, "the source file's path")
    assert str(info.value) == "the source file's path holds a line break: rename the file"


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
    ({"intermediate": "pipe"}, [], "unknown intermediate 'pipe': choose none or yuv_file"),
])
def test_probe_checks_settings_before_running_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       settings_changes: dict[str, str], name: list[str],
                                                       message: str) -> None:
    """ffprobe is not installed on the test host: had the probe run it, this would fail differently."""
    assert shutil.which("ffprobe") is None, "this test relies on ffprobe being absent on the host"
    s = write_json(tmp_path, "s.json", {**PROBE_SETTINGS, **settings_changes})
    n = write_json(tmp_path, "n.json", name)
    src = write_lines(tmp_path, "src.txt", [str(tmp_path / "my clip'$(touch x) 1.mp4")])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, out, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), "--chunks", "1",
                                "--source", str(src))
    assert (status, out) == (1, "")
    assert err.startswith(f"ERROR: {message}") and err.count("\n") == 1, err
    assert list(work.iterdir()) == [] and not (tmp_path / "x").exists()


def test_probe_refuses_zero_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = write_json(tmp_path, "s.json", PROBE_SETTINGS)
    n = write_json(tmp_path, "n.json", [])
    src = write_lines(tmp_path, "src.txt", ["src.mp4"])
    status, _, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), "--chunks", "0",
                              "--source", str(src))
    assert (status, err) == (1, "ERROR: chunks is 0: give 1 (single encode) or more\n")


# -- realistic sources: probe, then the encode command lines of both paths ------------------------


def probed(name: str, audio: str = "aac", expected: str = "any") -> dict[str, Any]:
    return ht.summarise_source(name, recorded(f"{name}.streams.json"), recorded(f"{name}.frames.json"),
                               audio=audio, expected=expected)


def test_probe_of_a_10bit_prores_master_with_pcm_audio() -> None:
    summary = probed("prores10_pcm", audio="aac", expected="128x72")
    assert {k: summary[k] for k in ("codec", "pix_fmt", "width", "height", "frames", "keyframes", "frame_rate",
                                    "audio_streams")} == \
        {"codec": "prores", "pix_fmt": "yuv422p10le", "width": 128, "height": 72, "frames": 6, "keyframes": 6,
         "frame_rate": "30000/1001", "audio_streams": 1}
    assert summary["fps"] == pytest.approx(29.97, abs=0.001)
    with pytest.raises(ht.TaskError, match="^source audio is pcm_s24le, which MP4 cannot carry unchanged: set audio "
                                           "to aac or none$"):
        probed("prores10_pcm", audio="copy")


def test_probe_of_10bit_hevc_with_opus_and_of_two_audio_streams() -> None:
    hevc = probed("hevc10_opus", audio="copy")
    assert (hevc["codec"], hevc["pix_fmt"], hevc["width"], hevc["height"], hevc["frame_rate"],
            hevc["audio_streams"], hevc["container"]) == ("hevc", "yuv420p10le", 96, 54, "25/1", 1, "matroska,webm")
    two = probed("h264_aac_ac3", audio="copy")
    assert (two["width"], two["height"], two["frame_rate"], two["audio_streams"]) == (64, 48, "24/1", 2)


def test_probe_refuses_a_real_odd_sized_source() -> None:
    with pytest.raises(ht.TaskError) as info:
        probed("odd_641x361")
    assert str(info.value) == ("source 'odd_641x361' is 641x361: 4:2:0 HEVC (Main/Main 10) needs even width and "
                               "height; crop or scale the source first")


def job_for(source: str, keyint: list[int] | None = None, quality: int = 22, bitrate_kbps: int = 8000, cpu: int = 16,
            **changes: str) -> Any:
    """The encode job the workflow would hand the encode task for a probed source."""
    summary = probed(source)
    values = {**GOOD, "output_name": "out", "audio": "aac", "frame_rate": summary["frame_rate"], **changes}
    return ht.encode_job(values, quality=quality, bitrate_kbps=bitrate_kbps, keyint=keyint or [],
                         width=summary["width"], height=summary["height"], cpu=cpu)


MUX = ["-tag:v", "hvc1", "-movflags", "+faststart", "partial.out.mp4"]


def test_cpu_main10_crf_from_a_prores_master() -> None:
    job = job_for("prores10_pcm", profile="main10", rate_control="crf", preset="slow", quality=20)
    assert ht.encode_steps(job, "/in/master.mov", "partial.out.mp4") == [("encoding with libx265", [
        "-i", "/in/master.mov", "-map", "0:v:0",
        "-c:v", "libx265", "-preset", "slow", "-profile:v", "main10", "-pix_fmt", "yuv420p10le", "-crf", "20",
        "-x265-params", "pools=16:log-level=warning",
        "-map", "0:a?", "-c:a", "aac", "-b:a", "256k", *MUX])]


def test_cpu_main_cbr_with_keyint_and_copied_audio() -> None:
    job = job_for("h264_aac_ac3", profile="main", rate_control="cbr", audio="copy", keyint=[48], bitrate_kbps=3000,
                  cpu=2)
    ((what, args),) = ht.encode_steps(job, "/in/a.mp4", "partial.out.mp4")
    assert what == "encoding with libx265"
    assert args == ["-i", "/in/a.mp4", "-map", "0:v:0",
                    "-c:v", "libx265", "-preset", "medium", "-profile:v", "main", "-pix_fmt", "yuv420p",
                    "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "3000k",
                    "-x265-params", "pools=2:log-level=warning:strict-cbr=1", "-g", "48",
                    "-map", "0:a?", "-c:a", "copy", *MUX]


def test_cpu_vbr_peaks_at_one_and_a_half_times_the_bitrate() -> None:
    job = job_for("hevc10_opus", rate_control="vbr", bitrate_kbps=80001, audio="none")
    args = ht.video_args(job)
    assert args[args.index("-b:v"):args.index("-x265-params")] == \
        ["-b:v", "80001k", "-maxrate", "120001k", "-bufsize", "160002k"]
    assert "-map" not in ht.encode_steps(job, "/in/a.mkv", "p.mp4")[0][1][4:], "audio none maps no audio"


@pytest.mark.parametrize(("profile", "rate_control", "expected"), [
    ("main10", "crf", ["-pix_fmt", "p010le", "-rc", "vbr", "-cq", "22", "-b:v", "0"]),
    ("main", "crf", ["-pix_fmt", "yuv420p", "-rc", "vbr", "-cq", "22", "-b:v", "0"]),
    ("main10", "vbr", ["-pix_fmt", "p010le", "-rc", "vbr", "-b:v", "8000k", "-maxrate", "12000k",
                       "-bufsize", "16000k"]),
    ("main10", "cbr", ["-pix_fmt", "p010le", "-rc", "cbr", "-b:v", "8000k", "-maxrate", "8000k",
                       "-bufsize", "8000k"]),
])
def test_gpu_command_lines(profile: str, rate_control: str, expected: list[str]) -> None:
    job = job_for("prores10_pcm", encoder="hevc_nvenc", preset="p5", profile=profile, rate_control=rate_control,
                  keyint=[60])
    assert ht.video_args(job) == ["-c:v", "hevc_nvenc", "-preset", "p5", "-tune", "hq", "-profile:v", profile,
                                  *expected, "-g", "60"]
    assert "-x265-params" not in ht.video_args(job)


def test_yuv_file_intermediate_of_an_odd_rate_10bit_source() -> None:
    """The raw file carries the profile's format, size and the probed rational rate; audio comes from input 1."""
    job = job_for("prores10_pcm", intermediate="yuv_file", encoder="hevc_nvenc", preset="p7")
    decode, encode = ht.encode_steps(job, "/in/master.mov", "partial.out.mp4")
    assert decode == ("decoding to raw YUV", ["-i", "/in/master.mov", "-map", "0:v:0", "-pix_fmt", "yuv420p10le",
                                              "-f", "rawvideo", "source.yuv"])
    assert encode[0] == "encoding with hevc_nvenc"
    assert encode[1][:14] == ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-video_size", "128x72",
                              "-framerate", "30000/1001", "-i", "source.yuv", "-i", "/in/master.mov",
                              "-map", "0:v:0"]
    assert encode[1][-11:] == ["-map", "1:a?", "-c:a", "aac", "-b:a", "256k", *MUX]


def test_a_source_path_is_one_argument_whatever_it_holds() -> None:
    job = job_for("h264_aac_ac3")
    hostile = "/in/-y my clip'$(touch x) 1.mp4"
    ((_, args),) = ht.encode_steps(job, hostile, "partial.out.mp4")
    assert args[:2] == ["-i", hostile]


def test_encode_job_checks_its_file_name_not_the_probes_choices() -> None:
    """The output name becomes a file name here, so it is checked; the choices were checked by the probe."""
    with pytest.raises(ht.TaskError, match=f"^output_name '../../pwned' {re.escape(NAME_RULE)}$"):
        job_for("h264_aac_ac3", output_name="../../pwned")
    with pytest.raises(ht.TaskError, match="keyint file does not hold a list of at most one number"):
        job_for("h264_aac_ac3", keyint=[1, 2])
    assert job_for("h264_aac_ac3", preset="p5").preset == "p5", "the preset is the probe's check, not repeated"


def test_encode_refuses_a_hostile_name_before_running_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert shutil.which("ffmpeg") is None, "this test relies on ffmpeg being absent on the host"
    settings = write_json(tmp_path, "s.json", {**GOOD, "output_name": "a$(touch pwned)"})
    src = write_lines(tmp_path, "src.txt", ["/in/a.mp4"])
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, "encode", "--settings", str(settings), "--source", str(src), "--keyint",
                                str(write_json(tmp_path, "k.json", [])), "--quality", "22", "--bitrate-kbps", "1",
                                "--width", "64", "--height", "48", "--cpu", "1")
    assert (status, out, err) == (1, "", f"ERROR: output_name 'a$(touch pwned)' {NAME_RULE}\n")


def test_nvenc_problem_from_a_real_check_without_a_gpu() -> None:
    log = (DATA / "nvenc_check.log").read_text()
    assert ht.nvenc_problem(log) == "Cannot load libcuda.so.1"
    assert ht.nvenc_problem("Unknown encoder 'hevc_nvenc'\n") == "Unknown encoder 'hevc_nvenc'"


def test_encode_stats() -> None:
    job = job_for("prores10_pcm", cpu=16)
    assert ht.encode_stats(job, 100.0, 104.0, 8) == {
        "frames": 8, "seconds": 4.0, "fps": 2.0, "encoder": "libx265", "preset": "medium", "profile": "main10",
        "rate_control": "crf", "intermediate": "none", "cpu": 16}


# -- split and concat ------------------------------------------------------------------------------


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


def test_split_args() -> None:
    assert ht.split_args("/in/a b.mov", [12, 24]) == [
        "-i", "/in/a b.mov", "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_format", "nut",
        "-segment_frames", "12,24", "-reset_timestamps", "1", "segments/seg_%05d.nut"]
    assert ht.split_args("/in/a.mov", [])[10:12] == ["-segment_time", "1000000000"]


def test_split_refuses_zero_chunks_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    src = write_lines(tmp_path, "src.txt", ["/in/a.mp4"])
    assert run_main(capsys, "split", "--source", str(src), "--frames", "8", "--chunks", "0",
                    "--keep-audio", "false") == (1, "", "ERROR: cannot split 8 frames into 0 chunks: give 1 or more "
                                                        "of each\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.txt"]


def test_concat_list_orders_by_name_and_quotes_paths() -> None:
    listing = ["/in/2/seg_00002.mp4", "/in/0/seg_00000.mp4", "/in/it's 1/seg_00001.mp4", ""]
    assert ht.concat_list(listing) == ("file '/in/0/seg_00000.mp4'\n"
                                       "file '/in/it'\\''s 1/seg_00001.mp4'\n"
                                       "file '/in/2/seg_00002.mp4'\n")


@pytest.mark.parametrize(("audio_file", "audio", "extra"), [
    ("/in/audio.mka", "copy", ["-i", "/in/audio.mka", "-map", "1:a", "-c:a", "copy"]),
    ("/in/audio.mka", "aac", ["-i", "/in/audio.mka", "-map", "1:a", "-c:a", "aac", "-b:a", "256k"]),
    ("/in/audio.mka", "none", []),
    (None, "copy", []),
])
def test_concat_args(audio_file: str | None, audio: str, extra: list[str]) -> None:
    assert ht.concat_args("concat.txt", audio_file, audio, "partial.x.mp4") == [
        "-f", "concat", "-safe", "0", "-i", "concat.txt", *extra, "-map", "0:v", "-c:v", "copy", "-tag:v", "hvc1",
        "-movflags", "+faststart", "partial.x.mp4"]


def test_concat_refuses_two_audio_lines_and_a_hostile_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    chunks = write_lines(tmp_path, "chunks.txt", ["/in/seg_00000.mp4"])
    two = write_lines(tmp_path, "audio.txt", ["/in/a\nb.mka"])
    args = ["concat", "--chunks", str(chunks), "--audio-track", str(two), "--expected-frames", "3", "--settings"]
    status, _, err = run_main(capsys, *args, str(write_json(tmp_path, "s.json", {"output_name": "x", "audio": "aac"})))
    assert (status, err) == (1, "ERROR: audio_track holds 2 lines, not at most one file: give one audio file (a path "
                                "with a line break counts twice)\n")
    status, _, err = run_main(capsys, *args, str(write_json(tmp_path, "t.json", {"output_name": "../x",
                                                                                  "audio": "aac"})))
    assert (status, err) == (1, f"ERROR: output_name '../x' {NAME_RULE}\n")
    assert not (tmp_path / "concat.txt").exists()


# -- verification report ---------------------------------------------------------------------------


@pytest.fixture()
def verify_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("video.json", "frames.txt", "metrics.log", "psnr.log", "ssim.log"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "decode_errors.log").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def verify_report(capsys: pytest.CaptureFixture[str], **changes: Any) -> tuple[int, str]:
    """The verify task's report step on the recorded logs in the working directory: (status, stderr)."""
    kwargs = {"expected_frames": 3, "width": 64, "height": 48, "profile": "main", "has_vmaf": False,
              "vmaf_requested": True, "min_psnr": math.nan, **changes}
    try:
        ht.verify(Path.cwd(), **kwargs)
        status = 0
    except ht.TaskError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        status = 1
    return status, capsys.readouterr().err


def test_verify_report_of_a_real_encode(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = verify_report(capsys)
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
    ({"min_psnr": 40.0}, "min_psnr", "frames 3 vs 3, 64x48, profile Main"),
    ({"expected_frames": 4}, "frame_count, all_frames_compared", "frames 3 vs 4, 64x48, profile Main"),
    ({"profile": "main10"}, "profile", "frames 3 vs 3, 64x48, profile Main"),
    ({"width": 7680, "height": 4320}, "resolution", "frames 3 vs 3, 64x48, profile Main"),
])
def test_verify_fails_after_writing_the_report(verify_dir: Path, capsys: pytest.CaptureFixture[str],
                                              changes: dict[str, Any], failed: str, detail: str) -> None:
    status, err = verify_report(capsys, **changes)
    assert status == 1
    assert err.splitlines()[-1] == (f"ERROR: the encoded video failed verification ({failed}): see verify_report.txt "
                                    f"({detail})")
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert not report["passed"]
    assert "verification: FAILED" in (verify_dir / "verify_report.txt").read_text()


def test_verify_counts_decode_errors(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (verify_dir / "decode_errors.log").write_text("[hevc @ 0x1] Could not find ref with POC 3\n")
    status, err = verify_report(capsys)
    assert status == 1 and "(decodes)" in err.splitlines()[-1]


def test_min_psnr_absent_is_not_checked(verify_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verify_report(capsys, min_psnr=math.nan)
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert "min_psnr" not in report["checks"] and math.isclose(report["psnr_db"]["min"], 35.099912)


@pytest.mark.parametrize(("profile", "pix"), [("main", "yuv420p"), ("main10", "yuv420p10le")])
def test_metrics_graph_compares_in_the_profiles_format(profile: str, pix: str) -> None:
    graph, maps = ht.metrics_graph(profile, vmaf=False, cpu=4)
    prep = f"format={pix},settb=1/1000,setpts=N"
    assert graph == (f"[0:v]{prep},split=3[d1][d2][d3];[1:v]{prep},split=3[r1][r2][r3];"
                     "[d1][r1]psnr=stats_file=psnr.log[p];[d2][r2]ssim=stats_file=ssim.log[s];"
                     "[d3]nullsink;[r3]nullsink")
    assert maps == ["-map", "[p]", "-f", "null", "-", "-map", "[s]", "-f", "null", "-"]
    graph, maps = ht.metrics_graph(profile, vmaf=True, cpu=4)
    assert graph.endswith(";[d3][r3]libvmaf=log_fmt=json:log_path=vmaf.json:n_threads=4[m]")
    assert maps[-5:] == ["-map", "[m]", "-f", "null", "-"]


def test_verify_refuses_a_path_with_a_line_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    files = write_lines(tmp_path, "files.txt", ["/out/a\nb.mp4", "/in/src.mp4"])
    status, _, err = run_main(capsys, "verify", "--settings", str(write_json(tmp_path, "s.json", {"profile": "main"})),
                              "--files", str(files), "--expected-frames", "3", "--width", "64", "--height", "48",
                              "--vmaf", "false")
    assert (status, err) == (1, "ERROR: the video's or the source's path holds a line break: rename the file\n")
