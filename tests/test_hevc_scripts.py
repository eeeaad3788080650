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
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from batchpipes import settings
from scriptload import load_script

SCRIPT = settings.REPO_ROOT / "containers" / "ffmpeg" / "hevc_tasks.py"
DATA = Path(__file__).parent / "data" / "hevc_tasks"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"


ht = load_script(SCRIPT)
hp = load_script(SCRIPT.with_name("hevc_probe.py"))
hd = load_script(SCRIPT.with_name("hevc_decode.py"))
hv = load_script(SCRIPT.with_name("hevc_vmaf.py"))


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
        "rate_control": "crf", "intermediate": "none", "audio": "copy", "container": "mp4", "verify_mode": "auto",
        "expected_resolution": "7680x4320", "frame_rate": "30000/1001"}
PROBE_SETTINGS = {k: GOOD[k] for k in ht.PROBE_CHECKS}
STREAMS = {"video_stream": [], "audio_stream": []}


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
    assert ht.CHOICES["audio"] == ht.AUDIO_MODES == ("auto", "copy", "aac", "none")
    assert ht.CHOICES["container"] == tuple(hp.COPYABLE) == ("mp4", "mov")


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
    ({"audio": "$(reboot)"}, "unknown audio mode '$(reboot)': choose auto, copy, aac or none"),
    ({"container": "mkv"}, "unknown container 'mkv': choose mp4 or mov"),
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
                                "--streams", str(path), "--source", str(write_lines(tmp_path, "src.txt", ["a.mp4"])))
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


def request(**changes: Any) -> Any:
    values = {"encoder": "libx265", "audio": "auto", "container": "mp4", "expected_resolution": "any", **changes}
    return hp.Request(**values)


def probed(name: str, **changes: Any) -> dict[str, Any]:
    """The probe's summary of a recorded source (record.sh): its three ffprobe answers, as the probe reads them."""
    scan = hp.scan_packets((DATA / f"{name}.packets.csv").read_text(), (DATA / f"{name}.packets.err").read_text())
    summary = hp.summarise(f"'{name}'", recorded(f"{name}.streams.json"), scan,
                           (recorded(f"{name}.first_frame.json").get("frames") or [{}])[0], request(**changes))
    assert isinstance(summary, dict)
    return summary


def test_probe_of_an_hdr10_source_reads_colour_and_mastering_metadata_from_the_first_frame() -> None:
    video = probed("hdr10")["video"]
    assert {k: video[k] for k in ("codec", "profile", "pix_fmt", "bit_depth", "chroma", "width", "height",
                                  "frame_rate", "vfr", "packets", "keyframes")} == {
        "codec": "hevc", "profile": "Main 10", "pix_fmt": "yuv420p10le", "bit_depth": 10, "chroma": "420",
        "width": 64, "height": 48, "frame_rate": "24/1", "vfr": False, "packets": 6, "keyframes": 1}
    assert video["colour"] == {"primaries": "bt2020", "transfer": "smpte2084", "matrix": "bt2020nc", "range": "tv"}
    assert video["hdr"] == {
        "mastering_display": {"red_x": 34000, "red_y": 16000, "green_x": 13250, "green_y": 34500, "blue_x": 7500,
                              "blue_y": 3000, "white_point_x": 15635, "white_point_y": 16450, "min_luminance": 50,
                              "max_luminance": 10000000},
        "content_light": {"max_content": 1000, "max_average": 400}}


def test_hdr10_values_from_matroskas_reduced_floats_equal_the_seis() -> None:
    """Matroska stores the mastering display as floats: ffprobe prints them as reduced rationals (17/25, not
    34000/50000); in the SEI's units both are the same numbers."""
    mkv = {"side_data_type": "Mastering display metadata", "red_x": "17/25", "red_y": "8/25", "green_x": "53/200",
           "green_y": "69/100", "blue_x": "3/20", "blue_y": "3/50", "white_point_x": "3127/10000",
           "white_point_y": "329/1000", "min_luminance": "1/200", "max_luminance": "1000/1"}
    light = {"side_data_type": "Content light level metadata", "max_content": 1000, "max_average": 400}
    assert hp.hdr_metadata([light, mkv]) == probed("hdr10")["video"]["hdr"]


def test_x265_gets_the_sources_hdr10_metadata_back_in_its_own_units() -> None:
    assert ht.x265_hdr_params(probed("hdr10")["video"]["hdr"]) == [
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)", "max-cll=1000,400"]
    assert ht.x265_hdr_params(probed("hlg")["video"]["hdr"]) == []


def test_probe_of_an_hlg_source() -> None:
    video = probed("hlg")["video"]
    assert video["colour"] == {"primaries": "bt2020", "transfer": "arib-std-b67", "matrix": "bt2020nc",
                               "range": "tv"}
    assert video["hdr"] == {"mastering_display": None, "content_light": None}
    assert video["frame_rate"] == "50/1"


def test_probe_of_a_variable_frame_rate_source() -> None:
    summary = probed("vfr")
    video = summary["video"]
    assert video["vfr"] is True and video["packets"] == 12 and video["time_base"] == "1/1000"
    assert video["interval_ticks"]["min"] < 20 < 40 < video["interval_ticks"]["max"]
    assert not probed("hdr10")["video"]["vfr"]


def test_probe_chooses_the_master_not_the_proxy_listed_first() -> None:
    summary = probed("proxy_first")
    assert (summary["video"]["index"], summary["video"]["width"], summary["video"]["height"]) == (1, 320, 180)
    assert summary["other_video"] == ["#0 (h264 160x90)"]
    proxy = probed("proxy_first", video_stream=0)
    assert (proxy["video"]["index"], proxy["video"]["width"]) == (0, 160)


def test_audio_auto_copies_what_the_container_carries_and_transcodes_the_rest() -> None:
    plan = probed("proxy_first")["audio"]
    assert [(a["index"], a["codec"], a["channels"], a["action"], a.get("kbps")) for a in plan] == [
        (2, "aac", 2, "copy", None), (3, "pcm_s24le", 6, "aac", 576)]
    assert [a["action"] for a in probed("proxy_first", container="mov")["audio"]] == ["copy", "copy"]
    assert [a["action"] for a in probed("proxy_first", audio="aac")["audio"]] == ["aac", "aac"]
    assert probed("proxy_first", audio="none")["audio"] == []
    assert [a["index"] for a in probed("proxy_first", audio_stream=3)["audio"]] == [3]
    assert [a["action"] for a in probed("hevc10_opus", audio="copy")["audio"]] == ["copy"]


@pytest.mark.parametrize(("name", "changes", "message"), [
    ("proxy_first", {"audio": "copy"},
     "source audio stream #3 (pcm_s24le, 6 channels) is pcm_s24le, which MP4 cannot carry unchanged: set audio to "
     "auto or aac, or container to mov"),
    ("prores10_pcm", {"audio": "copy"},
     "source audio stream #1 (pcm_s24le, 1 channels) is pcm_s24le, which MP4 cannot carry unchanged: set audio to "
     "auto or aac, or container to mov"),
    ("hevc10_opus", {"audio": "copy", "container": "mov"},
     "source audio stream #1 (opus, 1 channels) is opus, which MOV cannot carry unchanged: set audio to auto or aac"),
    ("proxy_first", {"video_stream": 2},
     "video_stream 2 of 'proxy_first' is audio, not video: choose one of its video streams #0 (h264 160x90), "
     "#1 (h264 320x180)"),
    ("proxy_first", {"video_stream": 7},
     "video_stream 7 of 'proxy_first' does not exist: choose one of its video streams #0 (h264 160x90), "
     "#1 (h264 320x180)"),
    ("proxy_first", {"audio_stream": 1},
     "audio_stream 1 of 'proxy_first' is video, not audio: choose one of its audio streams (#2 (aac, 2 channels), "
     "#3 (pcm_s24le, 6 channels)), or leave audio_stream unset"),
    ("odd_641x361", {},
     "source 'odd_641x361' is 641x361: 4:2:0 HEVC (Main/Main 10) needs even width and height; crop or scale the "
     "source first"),
    ("hdr10", {"expected_resolution": "7680x4320"},
     "source 'hdr10' is 64x48, not the expected 7680x4320: give an 7680x4320 source or set expected_resolution to "
     "its size (or 'any')"),
])
def test_bad_source_is_one_line(name: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ht.TaskError) as info:
        probed(name, **changes)
    assert str(info.value) == message


def test_a_damaged_transport_stream_is_refused_by_the_demux_pass_unless_accepted() -> None:
    with pytest.raises(ht.TaskError) as info:
        probed("damaged")
    corrupt = (DATA / "damaged.packets.err").read_text().count("Packet corrupt")
    assert corrupt > 0
    assert str(info.value) == (f"source 'damaged' has {corrupt} corrupt video packets (the demuxer's 'Packet "
                               "corrupt'): repair or re-export the source, or set max_damaged_frames to at least "
                               f"{corrupt} to encode it anyway")
    assert probed("damaged", max_corrupt_packets=corrupt)["video"]["corrupt_packets"] == corrupt


def test_ffprobes_own_cause_reaches_the_error_line() -> None:
    stderr = (DATA / "moovless.streams.err").read_text()
    assert hp.cause(stderr, "moovless.mp4") == "moov atom not found"
    assert hp.cause("x.mp4: Invalid data found when processing input\n", "x.mp4") == \
        "Invalid data found when processing input"
    assert hp.cause("", "x") == "no message"


def test_probe_of_a_10bit_prores_master_with_pcm_audio() -> None:
    summary = probed("prores10_pcm", expected_resolution="128x72")
    video = summary["video"]
    assert (video["codec"], video["chroma"], video["bit_depth"], video["packets"], video["keyframes"],
            video["frame_rate"]) == ("prores", "422", 10, 6, 6, "30000/1001")
    assert summary["fps"] == pytest.approx(29.97, abs=0.001)
    assert [(a["codec"], a["action"]) for a in summary["audio"]] == [("pcm_s24le", "aac")]


@pytest.mark.parametrize(("requested", "width", "height", "packets", "mode"), [
    ("auto", 7680, 4320, 120, "full"), ("auto", 7680, 4320, 121, "sampled"), ("auto", 1920, 1080, 1920, "full"),
    ("auto", 1920, 1080, 1921, "sampled"), ("full", 7680, 4320, 10000, "full"), ("off", 64, 48, 3, "off"),
    ("sampled", 64, 48, 3, "sampled"),
])
def test_verify_auto_samples_long_high_resolution_sources(requested: str, width: int, height: int, packets: int,
                                                          mode: str) -> None:
    assert ht.verify_mode(requested, {"width": width, "height": height, "packets": packets}) == mode


def test_the_probe_decodes_nothing_but_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's ffprobe runs, given the recorded answers of a real source: streams, one demux pass, the first
    frame; no -count_frames (a whole decode). The source's timestamps are kept for verify."""
    calls: list[list[str]] = []
    answers = {"-show_streams": ((DATA / "hdr10.streams.json").read_text(), ""),
               "packet=pts,dts,duration,flags": ((DATA / "hdr10.packets.csv").read_text(),
                                                 (DATA / "hdr10.packets.err").read_text()),
               "%+#1": ((DATA / "hdr10.first_frame.json").read_text(), "")}

    def fake(args: list[str], source: str, failure: str) -> tuple[str, str]:
        calls.append(args)
        return next(v for k, v in answers.items() if k in args)

    monkeypatch.setattr(hp, "run_ffprobe", fake)
    summary, scan = hp.probe_source("/in/hdr10.mp4", "'hdr10.mp4'", request())
    assert len(calls) == 3 and not any("-count_frames" in c or "-count_packets" in c for c in calls)
    assert calls[2][calls[2].index("-read_intervals") + 1] == "%+#1"
    assert summary["video"]["hdr"]["content_light"] == {"max_content": 1000, "max_average": 400}
    assert summary["timestamps"] == {"time_base": summary["video"]["time_base"], "pts": scan.pts}
    assert len(scan.pts) == summary["video"]["packets"] == 6


@pytest.mark.parametrize(("settings_changes", "name", "message"), [
    ({"preset": "p5"}, [], "preset 'p5' is not a libx265 preset"),
    ({}, ["x';touch pwned;: '"], f"output_name 'x';touch pwned;: '' {NAME_RULE}"),
    ({"audio": "loud"}, [], "unknown audio mode 'loud': choose auto, copy, aac or none"),
    ({"intermediate": "pipe"}, [], "unknown intermediate 'pipe': choose none or yuv_file"),
    ({"container": "avi"}, [], "unknown container 'avi': choose mp4 or mov"),
    ({"verify_mode": "some"}, [], "unknown verify mode 'some': choose auto, full, sampled or off"),
])
def test_probe_checks_settings_before_running_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       settings_changes: dict[str, str], name: list[str],
                                                       message: str) -> None:
    """ffprobe is not installed on the test host: had the probe run it, this would fail differently."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # had the probe run ffprobe, this would fail differently
    s = write_json(tmp_path, "s.json", {**PROBE_SETTINGS, **settings_changes})
    n = write_json(tmp_path, "n.json", name)
    src = write_lines(tmp_path, "src.txt", [str(tmp_path / "my clip'$(touch x) 1.mp4")])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, out, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), "--chunks", "1",
                                "--streams", str(write_json(tmp_path, "st.json", STREAMS)), "--source", str(src))
    assert (status, out) == (1, "")
    assert err.startswith(f"ERROR: {message}") and err.count("\n") == 1, err
    assert list(work.iterdir()) == [] and not (tmp_path / "x").exists()


@pytest.mark.parametrize(("args", "streams", "message"), [
    (["--chunks", "0"], STREAMS,
     "chunks is 0: give 1 (single encode) or more"),
    (["--chunks", "1", "--max-damaged-frames", "-1"], STREAMS,
     "max_damaged_frames is -1: give 0 (no damage accepted) or more"),
    (["--chunks", "1"], {"video_stream": [-1], "audio_stream": []},
     "video_stream must be a stream index (0, 1, ...) as ffprobe numbers the streams, or unset"),
    (["--chunks", "1"], {"video_stream": [], "audio_stream": ["1"]},
     "audio_stream must be a stream index (0, 1, ...) as ffprobe numbers the streams, or unset"),
])
def test_probe_refuses_bad_numbers_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  args: list[str], streams: dict[str, Any], message: str) -> None:
    s = write_json(tmp_path, "s.json", PROBE_SETTINGS)
    n = write_json(tmp_path, "n.json", [])
    src = write_lines(tmp_path, "src.txt", ["src.mp4"])
    status, _, err = run_main(capsys, "probe", "--settings", str(s), "--name", str(n), *args,
                              "--streams", str(write_json(tmp_path, "st.json", streams)), "--source", str(src))
    assert (status, err) == (1, f"ERROR: {message}\n")


# -- the encode command lines of both paths, from real probes --------------------------------------


def job_for(source: str, keyint: list[int] | None = None, quality: int = 22, bitrate_kbps: int = 8000, cpu: int = 16,
            probe: dict[str, Any] | None = None, **changes: str) -> Any:
    """The encode job the workflow would hand the encode task for a probed source."""
    values = {**GOOD, "output_name": "out", "audio": "auto", "container": "mp4", **changes}
    summary = probed(source, **(probe or {}), audio=values["audio"], container=values["container"])
    plan = hd.decode_plan(summary["video"], values["encoder"])
    summary["decode"] = {"method": plan.method, "reason": plan.reason}
    values["frame_rate"] = summary["frame_rate"]
    return ht.encode_job(values, info=summary, quality=quality, bitrate_kbps=bitrate_kbps, keyint=keyint or [],
                         width=summary["video"]["width"], height=summary["video"]["height"], cpu=cpu)


MUX = ["-tag:v", "hvc1", "-movflags", "+faststart", "partial.out.mp4"]
TIMING = ["-fps_mode", "passthrough", "-enc_time_base:v", "-1"]


def test_cpu_main10_crf_from_a_prores_master() -> None:
    job = job_for("prores10_pcm", profile="main10", rate_control="crf", preset="slow", quality=20)
    assert ht.encode_steps(job, "/in/master.mov", "partial.out.mp4") == [("encoding with libx265", [
        "-noautorotate", "-i", "/in/master.mov", "-map", "0:0",
        "-c:v", "libx265", "-preset", "slow", "-profile:v", "main10", "-pix_fmt", "yuv420p10le", "-crf", "20",
        "-x265-params", "pools=16:log-level=warning", "-color_range", "tv", *TIMING,
        "-map", "0:1", "-c:a:0", "aac", "-b:a:0", "96k", *MUX])]


def test_cpu_hdr10_keeps_colour_tags_and_mastering_metadata() -> None:
    job = job_for("hdr10")
    ((_, args),) = ht.encode_steps(job, "/in/hdr.mp4", "partial.out.mp4")
    assert args[args.index("-x265-params") + 1] == (
        "pools=16:log-level=warning:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
        "L(10000000,50):max-cll=1000,400")
    assert args[args.index("-color_primaries"):args.index("-color_primaries") + 8] == [
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-color_range", "tv"]
    assert ht.hdr_not_carried(job) is None


def test_gpu_hdr10_says_the_mastering_metadata_is_not_carried() -> None:
    job = job_for("hdr10", encoder="hevc_nvenc", preset="p5")
    assert "-x265-params" not in ht.video_args(job)
    assert ht.colour_args(job.video["colour"]) == ["-color_primaries", "bt2020", "-color_trc", "smpte2084",
                                                   "-colorspace", "bt2020nc", "-color_range", "tv"]
    assert "hevc_nvenc in this ffmpeg (5.1) cannot write them" in str(ht.hdr_not_carried(job))
    assert ht.hdr_not_carried(job_for("hlg", encoder="hevc_nvenc", preset="p5")) is None


def test_gpu_path_decodes_hevc_on_nvdec_with_gpu_side_conversion() -> None:
    small = job_for("hdr10", encoder="hevc_nvenc", preset="p5")
    assert small.decode.method == "cpu" and "64x48" in small.decode.reason, "below NVDEC's smallest picture"
    job = job_for("hdr10", encoder="hevc_nvenc", preset="p5", probe={"expected_resolution": "any"})
    video = {**job.info["video"], "width": 7680, "height": 4320}
    plan = hd.decode_plan(video, "hevc_nvenc")
    job = ht.encode_job({**GOOD, "output_name": "out", "encoder": "hevc_nvenc", "preset": "p5", "audio": "auto",
                         "frame_rate": "24/1"},
                        info={**job.info, "video": video, "decode": {"method": plan.method, "reason": plan.reason}},
                        quality=22, bitrate_kbps=1, keyint=[], width=7680, height=4320, cpu=8)
    assert job.decode.method == "nvdec"
    ((_, args),) = ht.encode_steps(job, "/in/hdr.mp4", "partial.out.mp4")
    assert args[:11] == ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-noautorotate", "-i", "/in/hdr.mp4",
                         "-map", "0:0", "-vf", "scale_cuda=format=p010le"]
    assert "-pix_fmt" not in args, "frames stay on the GPU: no CPU-side format conversion"
    cpu = job_for("prores10_pcm", encoder="hevc_nvenc", preset="p5")
    assert cpu.decode.method == "cpu" and "prores" in cpu.decode.reason
    ((_, args),) = ht.encode_steps(cpu, "/in/m.mov", "partial.out.mp4")
    assert "-hwaccel" not in args and args[args.index("-pix_fmt") + 1] == "p010le"


def test_the_chosen_streams_are_mapped_by_index() -> None:
    job = job_for("proxy_first", profile="main")
    ((_, args),) = ht.encode_steps(job, "/in/a.mkv", "partial.out.mp4")
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:1", "0:2", "0:3"]
    assert args[args.index("-c:a:0") + 1] == "copy" and args[args.index("-c:a:1") + 1:args.index("-c:a:1") + 4] == \
        ["aac", "-b:a:1", "576k"]
    mov = job_for("proxy_first", profile="main", container="mov")
    ((_, args),) = ht.encode_steps(mov, "/in/a.mkv", "partial.out.mov")
    assert args[-1] == "partial.out.mov" and "aac" not in args and mov.output == "out.mov"


def test_cpu_main_cbr_with_keyint_and_copied_audio() -> None:
    job = job_for("h264_aac_ac3", profile="main", rate_control="cbr", audio="copy", keyint=[48], bitrate_kbps=3000,
                  cpu=2)
    ((what, args),) = ht.encode_steps(job, "/in/a.mp4", "partial.out.mp4")
    assert what == "encoding with libx265"
    assert args == ["-noautorotate", "-i", "/in/a.mp4", "-map", "0:0",
                    "-c:v", "libx265", "-preset", "medium", "-profile:v", "main", "-pix_fmt", "yuv420p",
                    "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "3000k",
                    "-x265-params", "pools=2:log-level=warning:strict-cbr=1", "-g", "48", *TIMING,
                    "-map", "0:1", "-c:a:0", "copy", "-map", "0:2", "-c:a:1", "copy", *MUX]


def test_cpu_vbr_peaks_at_one_and_a_half_times_the_bitrate() -> None:
    job = job_for("hevc10_opus", rate_control="vbr", bitrate_kbps=80001, audio="none")
    args = ht.video_args(job)
    assert args[args.index("-b:v"):args.index("-x265-params")] == \
        ["-b:v", "80001k", "-maxrate", "120001k", "-bufsize", "160002k"]
    assert ht.encode_steps(job, "/in/a.mkv", "p.mp4")[0][1].count("-map") == 1, "audio none maps no audio"


@pytest.mark.parametrize(("profile", "rate_control", "expected"), [
    ("main10", "crf", ["-pix_fmt", "p010le", "-rc", "vbr", "-cq", "22", "-b:v", "0"]),
    ("main", "crf", ["-pix_fmt", "yuv420p", "-rc", "vbr", "-cq", "22", "-b:v", "0"]),
    ("main10", "vbr", ["-pix_fmt", "p010le", "-rc", "vbr", "-b:v", "8000k", "-maxrate", "12000k",
                       "-bufsize", "16000k"]),
    ("main10", "cbr", ["-pix_fmt", "p010le", "-rc", "cbr", "-b:v", "8000k", "-maxrate", "8000k",
                       "-bufsize", "8000k"]),
])
def test_gpu_command_lines_with_cpu_decoding(profile: str, rate_control: str, expected: list[str]) -> None:
    job = job_for("prores10_pcm", encoder="hevc_nvenc", preset="p5", profile=profile, rate_control=rate_control,
                  keyint=[60])
    assert ht.video_args(job) == ["-c:v", "hevc_nvenc", "-preset", "p5", "-tune", "hq", "-profile:v", profile,
                                  *expected, "-color_range", "tv", "-g", "60"]
    assert "-x265-params" not in ht.video_args(job)


def test_yuv_file_intermediate_of_an_odd_rate_10bit_source() -> None:
    """The raw file carries the profile's format, size and the probed rational rate; audio comes from input 1."""
    job = job_for("prores10_pcm", intermediate="yuv_file", encoder="hevc_nvenc", preset="p7")
    decode, encode = ht.encode_steps(job, "/in/master.mov", "partial.out.mp4")
    assert decode == ("decoding to raw YUV", ["-noautorotate", "-i", "/in/master.mov", "-map", "0:0", "-pix_fmt",
                                              "yuv420p10le", "-f", "rawvideo", "source.yuv"])
    assert encode[0] == "encoding with hevc_nvenc"
    assert encode[1][:14] == ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-video_size", "128x72",
                              "-framerate", "30000/1001", "-i", "source.yuv", "-i", "/in/master.mov",
                              "-map", "0:v:0"]
    assert encode[1][-11:] == ["-map", "1:1", "-c:a:0", "aac", "-b:a:0", "96k", *MUX]


def test_a_source_path_is_one_argument_whatever_it_holds() -> None:
    job = job_for("h264_aac_ac3")
    hostile = "/in/-y my clip'$(touch x) 1.mp4"
    ((_, args),) = ht.encode_steps(job, hostile, "partial.out.mp4")
    assert args[:3] == ["-noautorotate", "-i", hostile]


def test_encode_job_checks_its_file_name_not_the_probes_choices() -> None:
    """The output name becomes a file name here, so it is checked; the choices were checked by the probe."""
    with pytest.raises(ht.TaskError, match=f"^output_name '../../pwned' {re.escape(NAME_RULE)}$"):
        job_for("h264_aac_ac3", output_name="../../pwned")
    with pytest.raises(ht.TaskError, match="keyint file does not hold a list of at most one number"):
        job_for("h264_aac_ac3", keyint=[1, 2])
    assert job_for("h264_aac_ac3", preset="p5").preset == "p5", "the preset is the probe's check, not repeated"


def test_encode_refuses_a_hostile_name_before_running_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # had the encode run ffmpeg, this would fail differently
    settings = write_json(tmp_path, "s.json", {**GOOD, "output_name": "a$(touch pwned)"})
    src = write_lines(tmp_path, "src.txt", ["/in/a.mp4"])
    info = write_json(tmp_path, "info.json", probed("hdr10"))
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, "encode", "--settings", str(settings), "--source", str(src), "--keyint",
                                str(write_json(tmp_path, "k.json", [])), "--quality", "22", "--bitrate-kbps", "1",
                                "--width", "64", "--height", "48", "--cpu", "1",
                                "--info", str(write_lines(tmp_path, "info.txt", [str(info)])))
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


DAMAGED_LOG = (DATA / "damaged_encode.log")


def test_source_damage_is_counted_from_ffmpegs_own_statistics() -> None:
    found = ht.damage(DAMAGED_LOG.read_text(), 0)
    assert found["packets"] > 0 and found["damaged_frames"] > 0
    assert found["damaged_frames"] == found["corrupt_frames"] + found["lost_frames"]
    with pytest.raises(ht.TaskError) as info:
        ht.check_damage(found, 0, "'damaged.ts'")
    assert str(info.value).startswith(f"source 'damaged.ts' has {found['damaged_frames']} damaged frames (")
    assert str(info.value).endswith(f"set max_damaged_frames to {found['damaged_frames']} to accept them")
    ht.check_damage(found, found["damaged_frames"], "'damaged.ts'")
    clean = ht.damage("[verbose]   Input stream #0:0 (video): 48 packets read (63021 bytes); 48 frames decoded; \n", 0)
    assert clean == {"packets": 48, "frames_decoded": 48, "corrupt_frames": 0, "decode_errors": 0, "lost_frames": 0,
                     "damaged_frames": 0}


def test_ffmpegs_reason_is_its_last_error_line() -> None:
    log = ("[info] frame=   10 fps=0.0\n[h264 @ 0x55] [error] Invalid NAL unit size (1 > 2).\n"
           "[verbose] No more output streams\n[fatal] Conversion failed!\n")
    assert ht.failure_line(log) == "Conversion failed!"
    assert ht.failure_line("[verbose] a\n[info] b\n") == "b"


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
    assert hp.even_points(frames, chunks) == points


def test_split_args() -> None:
    assert ht.split_args("/in/a b.mov", [12, 24], 3) == [
        "-i", "/in/a b.mov", "-map", "0:3", "-c", "copy", "-f", "segment", "-segment_format", "nut",
        "-segment_frames", "12,24", "-reset_timestamps", "1", "segments/seg_%05d.nut"]
    assert ht.split_args("/in/a.mov", [])[10:12] == ["-segment_time", "1000000000"]


def test_split_refuses_zero_chunks_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    src = write_lines(tmp_path, "src.txt", ["/in/a.mp4"])
    info = write_lines(tmp_path, "info.txt", [str(write_json(tmp_path, "info.json", probed("hdr10")))])
    assert run_main(capsys, "split", "--source", str(src), "--frames", "8", "--chunks", "0", "--info", str(info),
                    "--keep-audio", "false") == (1, "", "ERROR: cannot split 8 frames into 0 chunks: give 1 or more "
                                                        "of each\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.json", "info.txt", "src.txt"]


def test_concat_list_orders_by_name_and_quotes_paths() -> None:
    listing = ["/in/2/seg_00002.mp4", "/in/0/seg_00000.mp4", "/in/it's 1/seg_00001.mp4", ""]
    assert ht.concat_list(listing) == ("file '/in/0/seg_00000.mp4'\n"
                                       "file '/in/it'\\''s 1/seg_00001.mp4'\n"
                                       "file '/in/2/seg_00002.mp4'\n")


PLAN = [{"index": 2, "action": "copy"}, {"index": 5, "action": "aac", "kbps": 576}]


@pytest.mark.parametrize(("audio_file", "plan", "extra"), [
    ("/in/audio.mka", PLAN, ["-i", "/in/audio.mka", "-map", "1:0", "-c:a:0", "copy", "-map", "1:1", "-c:a:1", "aac",
                             "-b:a:1", "576k"]),
    ("/in/audio.mka", [], []),
    (None, PLAN, []),
])
def test_concat_args(audio_file: str | None, plan: list[dict[str, Any]], extra: list[str]) -> None:
    assert ht.concat_args("concat.txt", audio_file, plan, "partial.x.mp4") == [
        "-f", "concat", "-safe", "0", "-i", "concat.txt", *extra, "-map", "0:v", "-c:v", "copy", "-tag:v", "hvc1",
        "-movflags", "+faststart", "partial.x.mp4"]


def test_concat_refuses_two_audio_lines_and_a_hostile_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    chunks = write_lines(tmp_path, "chunks.txt", ["/in/seg_00000.mp4"])
    two = write_lines(tmp_path, "audio.txt", ["/in/a\nb.mka"])
    info = write_lines(tmp_path, "info.txt", [str(write_json(tmp_path, "info.json", probed("hdr10")))])
    args = ["concat", "--chunks", str(chunks), "--audio-track", str(two), "--expected-frames", "3", "--info", str(info),
            "--settings"]
    status, _, err = run_main(capsys, *args, str(write_json(tmp_path, "s.json", {"output_name": "x", "audio": "aac",
                                                                                  "container": "mp4"})))
    assert (status, err) == (1, "ERROR: audio_track holds 2 lines, not at most one file: give one audio file (a path "
                                "with a line break counts twice)\n")
    status, _, err = run_main(capsys, *args, str(write_json(tmp_path, "t.json", {"output_name": "../x",
                                                                                  "audio": "aac", "container": "mp4"})))
    assert (status, err) == (1, f"ERROR: output_name '../x' {NAME_RULE}\n")
    assert not (tmp_path / "concat.txt").exists()


# -- verification report ---------------------------------------------------------------------------


@pytest.fixture()
def verify_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("video.json", "frames.txt", "metrics.log", "psnr.log", "ssim.log"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "decode_errors.log").write_text("")
    (tmp_path / "video_first_frame.json").write_text('{"frames": [{}]}')
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
    assert report["vmaf"] is None and report["vmaf_note"] == "not computed: this image has no VMAF ffmpeg"
    assert float((verify_dir / "psnr.txt").read_text()) == pytest.approx(35.099912)
    assert float((verify_dir / "ssim.txt").read_text()) == pytest.approx(0.975455)
    text = (verify_dir / "verify_report.txt").read_text()
    assert text.startswith("verification: PASSED (full)\n") and "PSNR: average 35.100 dB over 3 frames" in text
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
    graph, maps = ht.metrics_graph(profile)
    prep = f"format={pix},settb=1/1000,setpts=N"
    assert graph == (f"[0:v:0]{prep},split=2[d1][d2];[1:0]{prep},split=2[r1][r2];"
                     "[d1][r1]psnr=stats_file=psnr.log[p];[d2][r2]ssim=stats_file=ssim.log[s]")
    assert maps == ["-map", "[p]", "-f", "null", "-", "-map", "[s]", "-f", "null", "-"]
    graph, _ = ht.metrics_graph(profile, 3, 4, "_001", "trim=start_pts=5,setpts=PTS-STARTPTS,")
    assert graph.startswith(f"[0:v:0]trim=end_frame=4,{prep},split=2[d1][d2];"
                            f"[1:3]trim=start_pts=5,setpts=PTS-STARTPTS,trim=end_frame=4,{prep},")
    assert graph.endswith("psnr=stats_file=psnr_001.log[p];[d2][r2]ssim=stats_file=ssim_001.log[s]")


def test_vmaf_of_the_compared_frames_pools_into_the_report(verify_dir: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    log = json.loads((Path(__file__).parent / "data" / "hevc_vmaf" / "x265_crf20.json").read_text())
    (verify_dir / "vmaf_000.json").write_text(json.dumps(log))
    status, _ = verify_report(capsys, has_vmaf=True)
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert status == 0 and report["vmaf"] == {**hv.pooled(log), "model": "vmaf_v0.6.1"}
    assert "VMAF (vmaf_v0.6.1): " in (verify_dir / "verify_report.txt").read_text()


def test_verify_refuses_a_path_with_a_line_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    files = write_lines(tmp_path, "files.txt", ["/out/a\nb.mp4", "/in/src.mp4"])
    status, _, err = run_main(capsys, "verify", "--settings", str(write_json(tmp_path, "s.json", {"profile": "main"})),
                              "--info", str(files), "--files", str(files), "--expected-frames", "3", "--width", "64",
                              "--height", "48", "--vmaf", "false")
    assert (status, err) == (1, "ERROR: the video's or the source's path holds a line break: rename the file\n")


# -- chunk plans: cuts at closed keyframes only, exact join durations -------------------------------


def gop_csv(gops: int, open_gop: bool, step: int = 512) -> str:
    """Packets in decode order as ffprobe lists them for 12-frame GOPs with 3 B-frames, in the orders x264 and x265
    write (recorded in the research for this change): an open-GOP keyframe is followed in decode order by three
    leading B-pictures that are shown before it and reference the previous GOP."""
    order: list[tuple[int, bool]] = []
    if open_gop:
        order += [(0, True), (4, False), (2, False), (1, False), (3, False), (8, False), (6, False), (5, False),
                  (7, False)]
        for g in range(1, gops):
            k = 12 * g
            order += [(k, True), (k - 2, False), (k - 3, False), (k - 1, False), (k + 4, False), (k + 2, False),
                      (k + 1, False), (k + 3, False), (k + 8, False), (k + 6, False), (k + 5, False), (k + 7, False)]
        last = 12 * gops
        order += [(last - 1, False), (last - 2, False), (last - 3, False)]
    else:
        for g in range(gops):
            k = 12 * g
            order += [(k, True), (k + 4, False), (k + 2, False), (k + 1, False), (k + 3, False), (k + 8, False),
                      (k + 6, False), (k + 5, False), (k + 7, False), (k + 11, False), (k + 10, False),
                      (k + 9, False)]
    assert sorted(f for f, _ in order) == list(range(12 * gops))
    return "".join(f"{f * step},N/A,{step},{'K_' if key else '__'}\n" for f, key in order)


def test_open_gop_keyframes_are_not_cut_points_closed_ones_are() -> None:
    closed = hp.scan_packets(gop_csv(4, open_gop=False))
    opened = hp.scan_packets(gop_csv(4, open_gop=True))
    assert closed.packets == opened.packets == 48 and len(opened.keyframes) == 4
    assert hp.closed_keyframes(closed) == [0, 12, 24, 36]
    assert hp.closed_keyframes(opened) == [0], "leading pictures follow every later keyframe"


def test_chunk_plan_snaps_to_closed_keyframes_with_exact_start_times() -> None:
    scan = hp.scan_packets(gop_csv(4, open_gop=False, step=1001))   # 59.94 fps in a 1/60000 time base
    plan = hp.chunk_plan(scan, 2, "1/60000", "'a.mp4'")
    assert plan == [{"mode": "segments", "first_frame": 0, "frames": 24, "start_us": 0},
                    {"mode": "segments", "first_frame": 24, "frames": 24, "start_us": 400400}]
    assert [c["first_frame"] for c in hp.chunk_plan(scan, 3, "1/60000", "'a.mp4'")] == [0, 12, 36]
    listing = ht.concat_list(["/c/seg_00001.mp4", "/c/seg_00000.mp4"], [c["start_us"] for c in plan])
    assert listing == "file '/c/seg_00000.mp4'\nduration 400400us\nfile '/c/seg_00001.mp4'\n"


def test_open_gop_chunks_start_at_their_exact_frame_decoding_from_the_keyframe_before() -> None:
    """No closed keyframe after the first: each chunk job seeks to the keyframe at or before its first frame
    (1 ms early: ffmpeg's seek lands at or before the time) and trims to its frames by source timestamp. A chunk
    boundary moves to a keyframe within a quarter chunk of the even split (encoders put keyframes at scene cuts)."""
    scan = hp.scan_packets(gop_csv(4, open_gop=True))
    plan = hp.chunk_plan(scan, 3, "1/12288", "'open.mp4'", start_time=0.0)
    assert [(c["mode"], c["first_frame"], c["frames"]) for c in plan] == [("seek", 0, 12), ("seek", 12, 24),
                                                                          ("seek", 36, 12)]
    assert [(c["seek_s"], c["pts_start"], c["pts_end"]) for c in plan] == [
        ("0.000000", 0, 6144), ("0.499000", 6144, 18432), ("1.499000", 18432, None)]
    assert [c["start_us"] for c in plan] == [0, 500000, 1500000]
    five = hp.chunk_plan(scan, 5, "1/12288", "'open.mp4'")
    assert [c["first_frame"] for c in five] == [0, 12, 19, 29, 36], "keyframes 12 and 36 near 10 and 38; 19, 29 exact"
    assert [(c["seek_s"], c["pts_start"]) for c in five[2:4]] == [("0.499000", 19 * 512), ("0.999000", 29 * 512)]
    shifted = hp.chunk_plan(hp.scan_packets(gop_csv(4, open_gop=True)), 3, "1/12288", "'open.mp4'",
                            start_time=0.5)
    assert shifted[1]["seek_s"] == "0.000000", "-ss counts from the file's start time"


def test_a_seek_chunks_command_reads_from_the_keyframe_and_keeps_its_frames() -> None:
    info = probed("hdr10")
    info["chunks"] = hp.chunk_plan(hp.scan_packets(gop_csv(4, open_gop=True)), 3, "1/12288", "'open.mp4'")
    values = {**GOOD, "output_name": "seek_100001", "audio": "none", "frame_rate": "24/1"}
    plan = hd.decode_plan(info["video"], "libx265")
    info["decode"] = {"method": plan.method, "reason": plan.reason}
    job = ht.encode_job(values, info=info, quality=22, bitrate_kbps=1, keyint=[], width=64, height=48, cpu=2,
                        chunk=[1])
    ((_, args),) = ht.encode_steps(job, "/in/open.mp4", "partial.seek_100001.mp4")
    assert args[:8] == ["-copyts", "-ss", "0.499000", "-noautorotate", "-i", "/in/open.mp4", "-map", "0:0"]
    assert args[args.index("-vf") + 1] == "trim=start_pts=6144:end_pts=18432,setpts=PTS-STARTPTS"
    assert args.count("-map") == 1, "the audio is joined from the source by concat_chunks"
    with pytest.raises(ht.TaskError, match="^chunk 5 is not a seek chunk of the probe's plan"):
        ht.encode_job(values, info=info, quality=22, bitrate_kbps=1, keyint=[], width=64, height=48, cpu=2,
                      chunk=[5])
    with pytest.raises(ht.TaskError, match="needs intermediate none"):
        ht.encode_job({**values, "intermediate": "yuv_file"}, info=info, quality=22, bitrate_kbps=1, keyint=[],
                      width=64, height=48, cpu=2, chunk=[1])


def test_chunks_that_cannot_be_honoured_are_refused() -> None:
    with pytest.raises(ht.TaskError) as info:
        hp.chunk_plan(hp.scan_packets(gop_csv(4, open_gop=True)), 4, "1/90000", "'open.ts'", seekable=False)
    assert str(info.value) == (
        "chunks = 4 cannot be honoured: source 'open.ts' can be cut without losing frames at 0 keyframes, 3 of its "
        "3 later keyframes open-GOP, and as MPEG-TS it cannot be read from an exact frame: remux it first (ffmpeg -i "
        "IN.ts -map 0 -c copy OUT.mkv) or set chunks to 1")
    six = hp.scan_packets("\n".join(f"{i * 512},N/A,512,K_" for i in range(6)))
    with pytest.raises(ht.TaskError, match="^chunks = 9 cannot be honoured: source 'c.mp4' has only 6 frames: set "
                                           "chunks to 6 or fewer$"):
        hp.chunk_plan(six, 9, "1/12288", "'c.mp4'")


def test_concat_refuses_a_chunk_count_other_than_planned() -> None:
    with pytest.raises(ht.TaskError, match="^1 chunks for the 2 the probe planned: pass every chunk$"):
        ht.concat_list(["/c/seg_00000.mp4"], [0, 400400])


@pytest.mark.parametrize(("source", "output", "ok"), [
    ({"primaries": "bt2020", "transfer": "smpte2084", "matrix": "bt2020nc", "range": "tv"},
     {"primaries": "bt2020", "transfer": "smpte2084", "matrix": "bt2020nc", "range": "tv"}, True),
    ({"primaries": "bt2020", "transfer": "smpte2084", "matrix": "bt2020nc", "range": "tv"},
     {"primaries": "bt2020", "transfer": None, "matrix": "bt2020nc", "range": "tv"}, False),   # PQ lost
    ({"primaries": None, "transfer": None, "matrix": None, "range": None},
     {"primaries": None, "transfer": None, "matrix": None, "range": "tv"}, True),    # limited range signalled
    ({"primaries": None, "transfer": None, "matrix": None, "range": None},
     {"primaries": None, "transfer": None, "matrix": None, "range": "pc"}, False),
    ({"primaries": None, "transfer": None, "matrix": None, "range": "pc"},
     {"primaries": None, "transfer": None, "matrix": None, "range": "tv"}, False),   # full range squeezed
    ({"primaries": None, "transfer": "arib-std-b67", "matrix": None, "range": None},
     {"primaries": "bt709", "transfer": "arib-std-b67", "matrix": None, "range": "tv"}, False),  # invented tag
])
def test_colour_tags_are_kept_not_invented(source: dict[str, Any], output: dict[str, Any], ok: bool) -> None:
    assert ht.colour_matches(source, output) is ok


@pytest.mark.parametrize(("frames", "starts"), [
    (1800, [0, 257, 513, 770, 1026, 1283, 1539, 1796]),   # a minute at 30 fps: 8 segments, first and last frames
    (129, [0, 18, 36, 54, 71, 89, 107, 125]),
    (32, [0, 4, 8, 12, 16, 20, 24, 28]),                  # short: every frame, in segments
    (6, [0, 4]),
])
def test_sampled_verification_spreads_its_segments(frames: int, starts: list[int]) -> None:
    assert ht.sample_starts(frames) == starts
    assert starts[-1] + ht.SAMPLE_FRAMES >= frames, "the last frames are compared"


def test_only_decoder_damage_counts_as_a_decode_error() -> None:
    log = ("[null @ 0x5] [warning] Application provided invalid, non monotonically increasing dts to muxer in stream "
           "0: 2 >= 2\n[hevc @ 0x7] [error] Could not find ref with POC 3\n"
           "[warning] out.mp4: corrupt decoded frame in stream 0\n[info] frame=   24 fps=0.0\n")
    assert ht.decoder_errors(log) == ["[hevc @ 0x7] [error] Could not find ref with POC 3",
                                      "[warning] out.mp4: corrupt decoded frame in stream 0"]


def test_a_chunked_runs_quality_comes_from_its_chunk_jobs(verify_dir: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """Each chunk job measured its own frames (quality.json); verify aggregates them in chunk order and decodes
    nothing itself."""
    files = []
    for k, values in enumerate(([40.0, 42.0], [38.0])):
        path = verify_dir / f"q{k}.json"
        path.write_text(json.dumps({"mode": "full", "chunk": f"seg_0000{k}", "frames": len(values), "psnr": values,
                                    "ssim": [0.98] * len(values), "decode_errors": []}))
        files.append(str(path))
    for name in ("psnr.log", "ssim.log"):
        (verify_dir / name).unlink()
    ht.use_chunk_quality(list(reversed(files)), verify_dir)
    status, _ = verify_report(capsys, expected_frames=3)
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert status == 0 and report["checks"]["all_frames_compared"] and report["frames_compared"] == 3
    assert report["psnr_db"]["average"] == pytest.approx(40.0) and report["psnr_frame_min_db"] == 38.0
    assert report["ssim"]["all"] == pytest.approx(0.98)
    status, err = verify_report(capsys, expected_frames=4)
    assert status == 1 and "all_frames_compared" in err.splitlines()[-1]
    bad = verify_dir / "q9.json"
    bad.write_text(json.dumps({"mode": "full", "chunk": "seg_00009", "psnr": [40.0], "ssim": [0.9],
                               "decode_errors": ["[hevc @ 0x1] [error] Could not find ref with POC 3"]}))
    ht.use_chunk_quality([*files, str(bad)], verify_dir)
    status, err = verify_report(capsys, expected_frames=4)
    assert status == 1 and "(decodes, " in err.splitlines()[-1]


def test_a_seek_chunk_on_the_gpu_path_trims_before_the_gpu_side_conversion() -> None:
    info = probed("hdr10")
    info["video"] = {**info["video"], "width": 7680, "height": 4320}
    info["chunks"] = hp.chunk_plan(hp.scan_packets(gop_csv(4, open_gop=True)), 3, "1/12288", "'open.mp4'")
    plan = hd.decode_plan(info["video"], "hevc_nvenc")
    assert plan.method == "nvdec"
    info["decode"] = {"method": plan.method, "reason": plan.reason}
    values = {**GOOD, "output_name": "seek_100002", "encoder": "hevc_nvenc", "preset": "p5", "audio": "none",
              "frame_rate": "24/1"}
    job = ht.encode_job(values, info=info, quality=22, bitrate_kbps=1, keyint=[], width=7680, height=4320, cpu=8,
                        chunk=[2])
    ((_, args),) = ht.encode_steps(job, "/in/open.mp4", "partial.seek_100002.mp4")
    assert args[:10] == ["-copyts", "-ss", "1.499000", "-hwaccel", "cuda", "-hwaccel_output_format", "cuda",
                         "-noautorotate", "-i", "/in/open.mp4"]
    assert args[args.index("-vf") + 1] == "trim=start_pts=18432,setpts=PTS-STARTPTS,scale_cuda=format=p010le"
    assert "-pix_fmt" not in args


def test_what_the_run_accepted_is_a_warning_the_cli_repeats(verify_dir: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    from batchpipes import results

    info = probed("hdr10")
    info["video"]["corrupt_packets"] = 3
    info["video"]["colour"] = {"primaries": None, "transfer": None, "matrix": None, "range": None}
    info["video"]["hdr"] = {"mastering_display": None, "content_light": None}
    status, _ = verify_report(capsys, info=info, hdr_exempt="HDR10 metadata not carried (test)")
    report = json.loads((verify_dir / "verify_report.json").read_text())
    assert status == 0 and report["warnings"] == [
        "HDR10 metadata not carried (test)",
        "the source had 3 corrupt video packets, accepted by max_damaged_frames: the output carries what could be "
        "decoded"]
    outputs = {"hevc.report_json": str(verify_dir / "verify_report.json"), "hevc.psnr": 35.1}
    assert results.run_warnings(outputs) == report["warnings"]


def _pcm(index: int, channels: int, layout: str) -> dict[str, Any]:
    return {"index": index, "codec_type": "audio", "codec_name": "pcm_s24le", "channels": channels,
            "channel_layout": layout, "sample_rate": "48000"}


def test_aac_keeps_the_channel_layout_or_says_why_it_cannot() -> None:
    """ffmpeg 5.1's AAC reads back 5.1, 7.1, quad... as written, but 5.1(side) or 6.1 as "unknown": 5.1(side) goes
    as 5.1 (the side pair as the surround pair), 6.1 is refused in MP4 and kept as PCM in MOV."""
    plan = hp.audio_plan([_pcm(1, 6, "5.1(side)"), _pcm(2, 8, "7.1"), _pcm(3, 2, "stereo")], "auto", "mp4")
    assert [(a["action"], a.get("aac_layout"), a["kbps"]) for a in plan] == [("aac", "5.1", 576), ("aac", None, 768),
                                                                            ("aac", None, 192)]
    assert ht.aac_args(plan[0], 0) == ["-c:a:0", "aac", "-b:a:0", "576k", "-filter:a:0", "aformat=channel_layouts=5.1"]
    assert ht.aac_args(plan[1], 1) == ["-c:a:1", "aac", "-b:a:1", "768k"]
    with pytest.raises(ht.TaskError) as info:
        hp.audio_plan([_pcm(4, 7, "6.1")], "auto", "mp4")
    assert str(info.value) == ("source audio stream #4 (pcm_s24le, 7 channels) has the channel layout 6.1, which AAC "
                               "cannot carry: set container to mov with audio auto or copy (PCM is kept there), choose "
                               "another audio_stream, or set audio to none")
    assert [a["action"] for a in hp.audio_plan([_pcm(4, 7, "6.1")], "auto", "mov")] == ["copy"]


@pytest.mark.parametrize(("frames", "keyframes", "starts"), [
    (1800, list(range(0, 1800, 250)), [0, 250, 500, 750, 1000, 1250, 1500, 1796]),   # x265's default keyint
    (1800, list(range(0, 1800, 48)), [0, 240, 528, 768, 1008, 1296, 1536, 1796]),
    (128, [0], [0, 124]),                         # one keyframe: the start, and the tail decoded from it
    (32, [0], [0, 4, 8, 12, 16, 20, 24, 28]),     # short: every frame
])
def test_sampled_segments_start_at_the_videos_keyframes(frames: int, keyframes: list[int], starts: list[int]) -> None:
    """Seeking to a keyframe of the encoded video decodes nothing before the segment: the sampled verification
    costs the same for a minute as for ten seconds."""
    assert ht.sample_starts(frames, keyframes) == starts


def test_a_segment_at_a_keyframe_seeks_without_discarding() -> None:
    times = [Fraction(i, 24) for i in range(100)]
    assert ht.video_seek(times, 48, [0, 48], "1.979167") == ["-noaccurate_seek", "-ss", "2.020833"]
    assert ht.video_seek(times, 50, [0, 48], "2.062500") == ["-ss", "2.062500"]
    assert ht.video_seek(times, 0, [0], None) == []
