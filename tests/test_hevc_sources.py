"""The real-kind test sources of issue 11 (batchpipes.testdata.hevc.KINDS): each file is what EXPECTED says.

Fast lane: EXPECTED is consistent with itself and with the commands, and matches ffprobe's view of files generated
with the host's ffmpeg (the image's build), recorded in tests/data/hevc_sources/ (record.py there). Containers
lane: the same kinds generated and probed in the ffmpeg image match EXPECTED, byte for byte the recorded files.
"""

from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from batchpipes.testdata import hevc

DATA = Path(__file__).parent / "data" / "hevc_sources"
RECORDED = json.loads((DATA / "files.json").read_text())
KINDS = list(hevc.KINDS)
VIDEO_KINDS = [n for n in KINDS if "video" in hevc.EXPECTED[n]]
# Damaged on purpose: frames are missing or broken.
CORRUPT = ["corrupt_truncated.ts", "corrupt_damaged.ts"]


def video(name: str) -> dict[str, Any]:
    return hevc.EXPECTED[name]["video"]


# ----------------------------------------------------------------------------------------------- fast lane


def test_every_kind_has_an_expectation_and_a_recording():
    assert set(hevc.EXPECTED) == set(KINDS)
    assert set(RECORDED["files"]) == set(KINDS)
    assert {p.name for p in (DATA / "probe").iterdir()} == {f"{n}.probe" for n in KINDS}
    assert RECORDED["ffmpeg"] == "5.1.9-0+deb12u1"


@pytest.mark.parametrize("name", KINDS)
def test_recorded_probe_is_what_expected_says(name):
    facts = hevc.observe(DATA / "probe", name)
    assert hevc.mismatches(hevc.EXPECTED[name], facts) == []
    if name != "moov_missing.mp4":
        assert facts["probe_error"] == ""


@pytest.mark.parametrize("name", KINDS)
def test_kinds_are_small(name):
    assert RECORDED["files"][name]["bytes"] <= 500_000
    if name in VIDEO_KINDS:
        v = video(name)
        assert v["width"] * v["height"] <= 640 * 360 and v["frames"] <= 48


@pytest.mark.parametrize("name", VIDEO_KINDS)
def test_expected_video_facts_agree_with_each_other(name):
    v = video(name)
    digits = re.search(r"p(\d+)[lb]e$", v["pix_fmt"])
    assert v["bit_depth"] == (int(digits.group(1)) if digits else 8)
    assert v["chroma"] == re.match(r"yuvj?a?(\d{3})p", v["pix_fmt"]).group(1)
    assert v["keyframes"][0] == 0 and v["keyframes"] == sorted(set(v["keyframes"]))
    assert max(v["keyframes"]) < v["packets"]
    assert len(v["leading"]) == len(v["keyframes"]) - 1 and v["open_gop"] == any(v["leading"])
    # Split at every keyframe: the pieces hold every packet; only open GOPs lose frames (their leading pictures).
    assert len(v["pieces"]) == len(v["keyframes"])
    assert sum(p for p, _ in v["pieces"]) == v["packets"]
    lost = v["frames"] - sum(f for _, f in v["pieces"])
    assert lost == (sum(v["leading"]) if v["open_gop"] else 0)
    if name not in CORRUPT:
        assert v["frames"] == v["packets"] and v["decode_errors"] == 0
    assert v["vfr"] == (name in ("vfr.mp4", "corrupt_damaged.ts"))


def test_hdr10_side_data_is_the_x265_parameters():
    values = {k: (int(a), int(b)) for k, a, b in re.findall(r"([A-Z]+)\((\d+),(\d+)\)", hevc.MASTERING_DISPLAY)}
    assert set(values) == {"G", "B", "R", "WP", "L"}
    shown = hevc.HDR10_SIDE_DATA["mastering_display"]
    for key, name in (("R", "red"), ("G", "green"), ("B", "blue"), ("WP", "white_point")):
        assert Fraction(shown[f"{name}_x"]) == Fraction(values[key][0], 50000)
        assert Fraction(shown[f"{name}_y"]) == Fraction(values[key][1], 50000)
    assert Fraction(shown["max_luminance"]) == Fraction(values["L"][0], 10000) == 1000
    assert Fraction(shown["min_luminance"]) == Fraction(values["L"][1], 10000)
    light = hevc.HDR10_SIDE_DATA["content_light"]
    assert (light["max_content"], light["max_average"]) == hevc.MAX_CLL == (1000, 400)
    for name in ("hdr10.mp4", "hdr10.mkv"):
        assert video(name)["hdr"] == hevc.HDR10_SIDE_DATA
        assert video(name)["colour"]["transfer"] == "smpte2084"
    assert video("hlg.mp4")["colour"]["transfer"] == "arib-std-b67"
    assert video("hlg.mp4")["hdr"] == {"mastering_display": None, "content_light": None}


def test_vfr_pts_are_the_setpts_pattern():
    v = video("vfr.mp4")
    ticks = [Fraction(p) * Fraction(v["time_base"]) * 120 for p in v["pts"]]
    assert ticks == hevc.VFR_TICKS and len(ticks) == v["frames"] == 48
    steps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert steps == [5] * 11 + [5] + [2] * 23 + [2] + [5] * 11
    # The declared rate is no frame rate of the file: r_frame_rate 120 would mean 164 frames over its duration.
    assert Fraction(v["frame_rate"]) == 120 and Fraction(v["avg_frame_rate"]) == Fraction(48 * 120, 164)


def test_open_gop_kinds_have_leading_pictures_and_the_others_none():
    assert [n for n in VIDEO_KINDS if video(n)["open_gop"]] == ["open_gop_h264.mp4", "open_gop_hevc.mkv"]
    for name in ("open_gop_h264.mp4", "open_gop_hevc.mkv"):
        v = video(name)
        assert v["keyframes"] == [0, 12, 24, 36] and all(v["leading"])
        # The second piece (cut at the second keyframe by stream copy) decodes fewer frames than it has packets.
        packets, frames = v["pieces"][1]
        assert frames < packets and frames < 12


def test_corrupt_kinds_show_damage_the_intact_one_does_not():
    intact = video("broadcast.ts")
    assert intact["decode_errors"] == 0 and intact["frames"] == intact["packets"] == 48
    for name in CORRUPT:
        v = video(name)
        assert v["decode_errors"] > 0 and v["frames"] < intact["frames"]
        assert f"{name}: corrupt decoded frame in stream 0" in v["decode_messages"]
    assert video("corrupt_damaged.ts")["packets"] == 47
    assert RECORDED["files"]["corrupt_truncated.ts"]["bytes"] % 188 != 0


def test_moov_missing_shows_ffprobes_cause():
    assert "moov atom not found" in hevc.EXPECTED["moov_missing.mp4"]["probe_error"]
    assert "video" not in hevc.EXPECTED["moov_missing.mp4"]
    assert "count_frames" not in hevc.probe_script("moov_missing.mp4")


def test_stream_order_and_audio_kinds():
    multi = hevc.EXPECTED["multistream_proxy_first.mkv"]
    assert multi["streams"][:2] == ["video:h264", "video:h264"] and multi["video"]["index"] == 1
    assert multi["video_sizes"] == ["320x180", "640x360"]
    assert [a["channel_layout"] for a in multi["audio"]] == ["stereo", "5.1"]
    cover = hevc.EXPECTED["cover_art.mp4"]
    assert cover["streams"][-1] == "video:mjpeg+attached_pic" and cover["video_sizes"] == ["640x360", "1024x1024"]
    for name, layout in (("prores_422_10bit_pcm.mov", "stereo"), ("prores_4444_pcm51.mov", "5.1")):
        (audio,) = hevc.EXPECTED[name]["audio"]
        assert (audio["codec"], audio["bits"], audio["sample_rate"], audio["channel_layout"]) == (
            "pcm_s24le", 24, 48000, layout)


def test_commands_are_deterministic_and_self_contained():
    for name, command in hevc.KINDS.items():
        for call in command.split(" && "):
            if not call.startswith("ffmpeg"):
                assert call.startswith(("head ", "rm ")), call
                continue
            assert "+bitexact" in call and "-nostdin" in call, (name, call)
            if "libx265" in call:
                assert "pools=none:frame-threads=1" in call, name
            elif "-c copy" not in call:
                assert "-threads 1" in call, name
        # Written in the working folder under its own name (temporary files removed), nothing read from elsewhere.
        assert f" {name}" in command and "/tmp" not in command and "/data" not in command, name
        for temporary in set(re.findall(r"\S+\.tmp\.\w+", command)):
            assert command.endswith(f"rm {temporary}"), name


def test_mismatches_names_each_difference():
    expected = {"video": {"width": 640, "hdr": {"content_light": None}}, "audio": []}
    observed = {"video": {"width": 641, "hdr": {"content_light": {"max_content": 1}}, "height": 360}}
    assert hevc.mismatches(expected, observed) == [
        ".video.width: expected 640, got 641",
        ".video.hdr.content_light: expected None, got {'max_content': 1}",
        ".audio: missing",
    ]


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown source kind"):
        hevc.generate_kinds(tmp_path, ("nope.mp4",))


# ------------------------------------------------------------------------------------------ containers lane


@pytest.fixture(scope="module")
def generated(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Every kind generated once in the ffmpeg image, and its facts as ffprobe in the image sees them."""
    folder = tmp_path_factory.mktemp("hevc-sources")
    hevc.generate_kinds(folder)
    return folder, hevc.probe_kinds(folder)


@pytest.mark.parametrize("name", KINDS)
def test_generated_kind_is_what_expected_says(generated, name):
    folder, facts = generated
    assert hevc.mismatches(hevc.EXPECTED[name], facts[name]) == []
    data = (folder / name).read_bytes()
    assert len(data) == RECORDED["files"][name]["bytes"]
    assert hashlib.sha256(data).hexdigest() == RECORDED["files"][name]["sha256"]


def test_generated_special_properties(generated):
    _, facts = generated
    assert facts["hdr10.mp4"]["video"]["hdr"]["mastering_display"]["max_luminance"] == "10000000/10000"
    assert facts["hdr10.mkv"]["video"]["hdr"]["content_light"] == {"max_content": 1000, "max_average": 400}
    assert facts["vfr.mp4"]["video"]["vfr"] and len(set(facts["vfr.mp4"]["video"]["pts"])) == 48
    for name in ("open_gop_h264.mp4", "open_gop_hevc.mkv"):
        packets, frames = facts[name]["video"]["pieces"][1]
        assert frames < packets
    assert facts["prores_422_10bit_pcm.mov"]["audio"][0]["bits"] == 24
    assert facts["multistream_proxy_first.mkv"]["video_sizes"] == ["320x180", "640x360"]
    assert facts["cover_art.mp4"]["video_sizes"] == ["640x360", "1024x1024"]
    for name in CORRUPT:
        v = facts[name]["video"]
        assert v["decode_errors"] > 0 and v["frames"] < 48
    assert "moov atom not found" in facts["moov_missing.mp4"]["probe_error"]
