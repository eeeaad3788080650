"""The HEVC workflow on the kinds of source media engineers bring (batchpipes.testdata.hevc.KINDS, generated in the
ffmpeg image): HDR10 and HLG, variable frame rate, a ProRes 4:2:2 10-bit master with 24-bit PCM, 59.94 fps in
chunks, open GOP, a proxy stream listed first, portrait, a damaged transport stream, a file without its moov atom.

Every output is checked here independently of the workflow's own verify task, with ffprobe in the same image: the
HDR10 SEI of the output's first frame, every packet timestamp against the source's, stream codecs and channels.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from batchpipes import containers, settings
from batchpipes.testdata import hevc as testdata

LOCAL_JSON = settings.INPUTS_DIR / "hevc.local.json"
TASKS_WDL = settings.WDL_DIR / "tasks" / "hevc.wdl"
KINDS = ("hdr10.mkv", "hlg.mp4", "vfr.mp4", "prores_422_10bit_pcm.mov", "ntsc_5994.mp4", "open_gop_h264.mp4",
         "open_gop_hevc.mkv", "multistream_proxy_first.mkv", "portrait.mp4", "portrait_rotated.mp4",
         "corrupt_damaged.ts", "moov_missing.mp4", "cover_art.mp4")


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    """ffprobe's JSON about ``path``, run in the ffmpeg image."""
    image = containers.build(containers.get("ffmpeg"))
    folder = path.resolve().parent
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v",
                           f"{folder}:{folder}:ro", image, "ffprobe", "-v", "error", *args, "-of", "json",
                           str(path.resolve())], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def times(path: Path, stream: str = "v:0") -> list[Fraction]:
    """Every frame's presentation time from the first, exact (seconds), from a demux of ``path``."""
    info = ffprobe(path, "-select_streams", stream, "-show_entries", "packet=pts:stream=time_base")
    tb = Fraction(info["streams"][0]["time_base"])
    pts = sorted(int(p["pts"]) for p in info["packets"])
    return [(p - pts[0]) * tb for p in pts]


def first_frame(path: Path) -> dict[str, Any]:
    frames = ffprobe(path, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames", "-show_entries",
                     "frame=color_range,color_space,color_primaries,color_transfer:frame_side_data")["frames"]
    assert isinstance(frames[0], dict)
    return frames[0]


def hdr_values(frame: dict[str, Any]) -> dict[str, Any]:
    """The HDR10 side data of a frame, as exact numbers (the SEI's and Matroska's spellings differ)."""
    out: dict[str, Any] = {}
    for d in frame.get("side_data_list", []):
        if d.get("side_data_type") == "Mastering display metadata":
            out["mastering"] = {k: Fraction(v) for k, v in d.items() if k != "side_data_type"}
        if d.get("side_data_type") == "Content light level metadata":
            out["light"] = (d["max_content"], d["max_average"])
    return out


@pytest.fixture(scope="module")
def kinds(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return testdata.generate_kinds(tmp_path_factory.mktemp("hevc-kinds"), KINDS)


@pytest.fixture(scope="module")
def encode(run_workflow: Any, kinds: dict[str, Path]) -> Any:
    """Run the workflow on one kind (once per kind and settings) with the laptop settings of hevc.local.json."""
    done: dict[str, Any] = {}

    def _run(kind: str, **changes: Any) -> Any:
        key = json.dumps([kind, changes], sort_keys=True)
        if key not in done:
            data = json.loads(LOCAL_JSON.read_text())
            data.update({"hevc.source": str(kinds[kind]), "hevc.expected_resolution": "any"})
            data.update({f"hevc.{k}": v for k, v in changes.items()})
            done[key] = run_workflow("hevc", data)
        return done[key]

    return _run


def out(run: Any, name: str) -> Any:
    return run.outputs[f"hevc.{name}"]


def report(run: Any) -> dict[str, Any]:
    data = json.loads(Path(out(run, "report_json")).read_text())
    assert isinstance(data, dict)
    return data


def test_hdr10_mastering_display_and_light_level_reach_the_output(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("hdr10.mkv")
    video = Path(out(run, "video"))
    src, res = first_frame(kinds["hdr10.mkv"]), first_frame(video)
    assert hdr_values(src) and hdr_values(res) == hdr_values(src)
    for key in ("color_primaries", "color_transfer", "color_space"):
        assert res[key] == src[key], key
    assert (res["color_transfer"], res["color_primaries"]) == ("smpte2084", "bt2020")
    rep = report(run)
    assert rep["checks"]["hdr_metadata"] and rep["checks"]["colour_tags"] and rep["passed"]


def test_hlg_keeps_its_transfer(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("hlg.mp4")
    res = ffprobe(Path(out(run, "video")), "-select_streams", "v:0", "-show_streams")["streams"][0]
    assert (res["color_transfer"], res["color_primaries"], res["color_space"]) == \
        ("arib-std-b67", "bt2020", "bt2020nc")
    assert report(run)["passed"]


def test_variable_frame_rate_keeps_every_frame_at_its_time(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("vfr.mp4")
    source, output = times(kinds["vfr.mp4"]), times(Path(out(run, "video")))
    assert len(source) == 48 and len({b - a for a, b in zip(source, source[1:], strict=False)}) > 1, "not VFR"
    assert output == source
    info = json.loads(Path(out(run, "source_info")).read_text())
    assert info["video"]["vfr"] is True and report(run)["checks"]["timestamps"]


def test_vfr_source_with_a_raw_yuv_intermediate_is_refused(run_task: Any, kinds: dict[str, Path],
                                                          expect_user_error: Any) -> None:
    msg = expect_user_error(run_task, TASKS_WDL, "probe_source", {
        "source": str(kinds["vfr.mp4"]), "encoder": "libx265", "profile": "main", "preset": "ultrafast",
        "rate_control": "crf", "audio": "auto", "intermediate": "yuv_file", "chunks": 1,
        "expected_resolution": "any"})
    assert msg.endswith("has a variable frame rate: intermediate yuv_file (raw frames without timestamps, read back "
                        "at one rate) would change its timing; set intermediate to none"), msg


def test_prores_master_with_24bit_pcm_gives_aac_in_mp4_and_pcm_in_mov(encode: Any, kinds: dict[str, Path]) -> None:
    src = ffprobe(kinds["prores_422_10bit_pcm.mov"], "-show_streams")["streams"]
    (pcm,) = [s for s in src if s["codec_type"] == "audio"]
    assert (pcm["codec_name"], pcm["bits_per_sample"]) == ("pcm_s24le", 24)
    mp4 = ffprobe(Path(out(encode("prores_422_10bit_pcm.mov"), "video")), "-show_streams")["streams"]
    (aac,) = [s for s in mp4 if s["codec_type"] == "audio"]
    assert (aac["codec_name"], aac["channels"]) == ("aac", pcm["channels"])
    assert int(aac["bit_rate"]) == pytest.approx(96_000 * pcm["channels"], rel=0.3)
    mov_run = encode("prores_422_10bit_pcm.mov", container="mov")
    assert Path(out(mov_run, "video")).suffix == ".mov"
    mov = ffprobe(Path(out(mov_run, "video")), "-show_streams")["streams"]
    (kept,) = [s for s in mov if s["codec_type"] == "audio"]
    assert (kept["codec_name"], kept["channels"], kept["sample_rate"]) == \
        ("pcm_s24le", pcm["channels"], pcm["sample_rate"])
    (video,) = [s for s in mov if s["codec_type"] == "video"]
    assert (video["codec_name"], video["codec_tag_string"], video["profile"]) == ("hevc", "hvc1", "Main 10")


def test_5994_in_two_chunks_keeps_the_sources_timestamps(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("ntsc_5994.mp4", chunks=2, profile="main")
    video = Path(out(run, "video"))
    assert len(out(run, "encode_stats")) == 2
    assert times(video) == times(kinds["ntsc_5994.mp4"])
    stream = ffprobe(video, "-select_streams", "v:0", "-show_streams")["streams"][0]
    assert stream["r_frame_rate"] == "60000/1001" and stream["avg_frame_rate"] == "60000/1001"
    assert report(run)["checks"]["timestamps"] and report(run)["passed"]


def decoded(path: Path) -> list[str]:
    """The MD5 of every decoded picture, in display order (8-bit 4:2:0), run in the image."""
    image = containers.build(containers.get("ffmpeg"))
    folder = path.resolve().parent
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v",
                           f"{folder}:{folder}:ro", image, "ffmpeg", "-v", "error", "-i", str(path.resolve()),
                           "-map", "0:v:0", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "framemd5", "-"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("kind", ["open_gop_h264.mp4", "open_gop_hevc.mkv"])
def test_open_gop_chunks_start_at_their_exact_frame(encode: Any, kinds: dict[str, Path], kind: str) -> None:
    """A stream-copy split would lose the leading pictures at every open-GOP keyframe (6 and 9 of 48 frames here):
    the chunks decode the source from the keyframe before their first frame instead and keep exactly their frames,
    and the joined video has every frame at the source's time."""
    run = encode(kind, chunks=5, profile="main")
    info = json.loads(Path(out(run, "source_info")).read_text())
    chunks = [(c["mode"], c["first_frame"]) for c in info["chunks"]]
    assert chunks == [("seek", 0), ("seek", 12), ("seek", 19), ("seek", 29), ("seek", 36)], chunks
    assert len(out(run, "encode_stats")) == 5
    video = Path(out(run, "video"))
    assert times(video) == times(kinds[kind])
    rep = report(run)
    assert rep["passed"] and rep["psnr_frame_min_db"] >= 35.0, rep["psnr_db"]
    assert rep["measured_by"] == "chunk jobs" and rep["frames_compared"] == 48
    single = decoded(Path(out(encode(kind, profile="main"), "video")))
    assert len(decoded(video)) == len(single) == 48


def test_open_gop_source_in_one_job_keeps_every_frame(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("open_gop_h264.mp4", profile="main")
    assert times(Path(out(run, "video"))) == times(kinds["open_gop_h264.mp4"])
    assert report(run)["passed"]


def test_the_master_is_encoded_not_the_proxy_listed_first(encode: Any, kinds: dict[str, Path]) -> None:
    run = encode("multistream_proxy_first.mkv", profile="main")
    streams = ffprobe(Path(out(run, "video")), "-show_streams")["streams"]
    (video,) = [s for s in streams if s["codec_type"] == "video"]
    assert (video["width"], video["height"]) == (640, 360)
    assert sorted(s["channels"] for s in streams if s["codec_type"] == "audio") == [2, 6]
    chosen = encode("multistream_proxy_first.mkv", profile="main", video_stream=0, audio_stream=3)
    streams = ffprobe(Path(out(chosen, "video")), "-show_streams")["streams"]
    assert [(s["codec_type"], s.get("width"), s.get("channels")) for s in streams] == \
        [("video", 320, None), ("audio", None, 6)]


def test_cover_art_is_not_taken_for_the_video(encode: Any) -> None:
    run = encode("cover_art.mp4", profile="main")
    info = json.loads(Path(out(run, "source_info")).read_text())
    assert (info["video"]["width"], info["video"]["height"]) == (640, 360)


def test_portrait_stays_portrait(encode: Any) -> None:
    run = encode("portrait.mp4", profile="main")
    video = ffprobe(Path(out(run, "video")), "-select_streams", "v:0", "-show_streams")["streams"][0]
    assert (video["width"], video["height"]) == (360, 640) and report(run)["passed"]


def test_a_phone_video_keeps_its_pictures_and_its_rotation(encode: Any, kinds: dict[str, Path]) -> None:
    """A 640x360 picture with a display matrix (rotate 90): ffmpeg would turn the pictures by default (360x640,
    no matrix), and the output would no longer be the probed size; the pictures stay as coded, the matrix goes
    along."""
    run = encode("portrait_rotated.mp4", profile="main")
    video = ffprobe(Path(out(run, "video")), "-select_streams", "v:0", "-show_entries",
                    "stream=width,height:stream_side_data=rotation")["streams"][0]
    assert (video["width"], video["height"]) == (640, 360)
    assert [d.get("rotation") for d in video.get("side_data_list", [])] == [90]
    assert report(run)["passed"]


def test_a_damaged_transport_stream_fails_with_one_line_before_encoding(run_task: Any, kinds: dict[str, Path],
                                                                       expect_user_error: Any) -> None:
    msg = expect_user_error(run_task, TASKS_WDL, "probe_source", {
        "source": str(kinds["corrupt_damaged.ts"]), "encoder": "libx265", "profile": "main",
        "preset": "ultrafast", "rate_control": "crf", "audio": "auto", "chunks": 1, "expected_resolution": "any"})
    assert "corrupt video packets (the demuxer's 'Packet corrupt')" in msg and "set max_damaged_frames" in msg, msg


def test_damage_accepted_is_counted_and_reported(encode: Any) -> None:
    run = encode("corrupt_damaged.ts", profile="main", max_damaged_frames=100)
    (stats_path,) = out(run, "encode_stats")
    damage = json.loads(Path(stats_path).read_text())["source_damage"]
    info = json.loads(Path(out(run, "source_info")).read_text())
    assert info["video"]["corrupt_packets"] > 0
    assert damage["packets"] > 0 and damage["frames_decoded"] == report(run)["video"]["frames"]
    assert any("corrupt video packets, accepted by max_damaged_frames" in w for w in report(run)["warnings"])


def test_a_missing_moov_atom_is_named(run_task: Any, kinds: dict[str, Path], expect_user_error: Any) -> None:
    msg = expect_user_error(run_task, TASKS_WDL, "probe_source", {
        "source": str(kinds["moov_missing.mp4"]), "encoder": "libx265", "profile": "main", "preset": "ultrafast",
        "rate_control": "crf", "audio": "auto", "chunks": 1, "expected_resolution": "any"})
    assert "is not a readable video file (ffprobe: moov atom not found): give a video file" in msg, msg


def test_sampled_verification_compares_spread_segments(encode: Any) -> None:
    run = encode("vfr.mp4", verify_mode="sampled")
    rep = report(run)
    assert rep["mode"] == "sampled" and rep["passed"] and rep["checks"]["samples_compared"]
    # x265's default keyframe interval (250) leaves one keyframe in these 48 frames: a segment there and the
    # last 4 frames (decoded from it), 8 of the 48 frames compared.
    keys = ffprobe(Path(out(run, "video")), "-select_streams", "v:0", "-show_entries", "packet=flags")["packets"]
    assert sum("K" in p["flags"] for p in keys) == 1 and rep["frames_compared"] == 8
    assert rep["psnr_db"]["average"] > 30
