"""VMAF in the ffmpeg image (containers/ffmpeg/hevc_vmaf.py, the wheel of containers/ffmpeg/vmaf-requirements.txt).

Fast lane: the command hevc_vmaf builds, the model rule, and the pooling, checked on libvmaf JSON logs and
``-filters`` listings recorded with the real binaries (tests/data/hevc_vmaf/README.md says how). Container lane:
in the built image, VMAF of real libx265 encodes of a lossless source, which must come out ordered by quality.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scriptload import load_script

ROOT = Path(__file__).resolve().parents[1]
FFMPEG_DIR = ROOT / "containers" / "ffmpeg"
hv = load_script(FFMPEG_DIR / "hevc_vmaf.py")
DATA = Path(__file__).resolve().parent / "data" / "hevc_vmaf"


def log(name: str) -> dict[str, Any]:
    data = json.loads((DATA / name).read_text())
    assert isinstance(data, dict)
    return data


def args(**kw: Any) -> list[str]:
    base: dict[str, Any] = {"ref_stream": 0, "pix_fmt": "yuv420p10le", "threads": 2, "log_path": "vmaf.json",
                            "model": hv.MODEL_DEFAULT}
    result = hv.vmaf_args("out.mp4", "src.mov", **{**base, **kw})
    assert isinstance(result, list)
    return result


def graph_of(argv: list[str]) -> str:
    return argv[argv.index("-filter_complex") + 1]


# -- which model ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("width", "height", "model"), [
    (320, 180, "vmaf_v0.6.1"), (1920, 1080, "vmaf_v0.6.1"), (1080, 1920, "vmaf_v0.6.1"),
    (2560, 1440, "vmaf_v0.6.1"), (3839, 2160, "vmaf_v0.6.1"),
    (3840, 2160, "vmaf_4k_v0.6.1"), (4096, 2160, "vmaf_4k_v0.6.1"), (2160, 3840, "vmaf_4k_v0.6.1"),
    (3840, 1600, "vmaf_4k_v0.6.1"), (7680, 4320, "vmaf_4k_v0.6.1"), (4320, 7680, "vmaf_4k_v0.6.1"),
])
def test_model_follows_the_longer_side(width: int, height: int, model: str) -> None:
    assert hv.model_for(width, height) == model


def test_model_needs_a_size() -> None:
    with pytest.raises(ValueError, match="not positive"):
        hv.model_for(0, 1080)


# -- the command ---------------------------------------------------------------------------------------------

def test_whole_comparison_command() -> None:
    assert args(ref_stream=2, threads=3, log_path="/work/vmaf_000.json", model=hv.MODEL_4K) == [
        "/usr/local/bin/ffmpeg-vmaf", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
        "-threads", "3", "-i", "out.mp4", "-threads", "3", "-i", "src.mov",
        "-filter_complex",
        "[0:v:0]format=yuv420p10le,settb=1/1000,setpts=N[dist];"
        "[1:2]format=yuv420p10le,settb=1/1000,setpts=N[ref];"
        "[dist][ref]libvmaf=model=version=vmaf_4k_v0.6.1:n_threads=3:log_fmt=json:log_path=/work/vmaf_000.json"
        ":shortest=1:repeatlast=0[vmaf]",
        "-map", "[vmaf]", "-enc_time_base:v", "filter", "-f", "null", "-"]


def test_distorted_is_libvmafs_first_input() -> None:
    """libvmaf's first pad is the distorted picture, its second the reference: [dist] must come from input 0,
    which must be the encode, and [ref] from the source's chosen stream."""
    argv = args(ref_stream=1)
    inputs = [argv[i + 1] for i, a in enumerate(argv) if a == "-i"]
    assert inputs == ["out.mp4", "src.mov"]
    chains = dict(re.findall(r"\[([^\]]+)\][a-z][^\[;]*\[(dist|ref)\]", graph_of(argv)))
    assert chains == {"0:v:0": "dist", "1:1": "ref"}
    assert re.search(r"\[dist\]\[ref\]libvmaf=", graph_of(argv))


def test_segment_seeks_both_inputs_and_keeps_n_frames() -> None:
    argv = args(frames=8, seek="12.479167")
    positions = [i for i, a in enumerate(argv) if a == "-ss"]
    assert [argv[i + 1] for i in positions] == ["12.479167", "12.479167"]
    first_input, second_input = (i for i, a in enumerate(argv) if a == "-i")
    assert positions[0] < first_input < positions[1] < second_input   # an input option of each file
    assert graph_of(argv).count("trim=end_frame=8,format=yuv420p10le,settb=1/1000,setpts=N") == 2


def test_whole_video_has_no_seek_or_trim() -> None:
    argv = args()
    assert "-ss" not in argv and "trim" not in graph_of(argv)


@pytest.mark.parametrize(("kw", "message"), [
    ({"pix_fmt": "p010le"}, "does not take pixel format 'p010le'"),
    ({"pix_fmt": "yuv444p12le"}, "does not take pixel format"),
    ({"model": "vmaf_v0.6.1neg"}, "unknown VMAF model"),
    ({"log_path": "vmaf:log_path=/etc/x.json"}, "characters the filter graph would read"),
    ({"log_path": "a,b.json"}, "characters the filter graph would read"),
    ({"log_path": "v m.json"}, "characters the filter graph would read"),
    ({"log_path": "[x]"}, "characters the filter graph would read"),
    ({"seek": "1;2"}, "not a position in seconds"),
    ({"seek": "-1"}, "not a position in seconds"),
    ({"threads": 0}, "out of range"),
    ({"frames": 0}, "out of range"),
    ({"ref_stream": -1}, "out of range"),
])
def test_refuses_what_would_break_the_graph(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        args(**kw)


# -- the filter listing ----------------------------------------------------------------------------------------

def test_libvmaf_is_told_from_vmafmotion() -> None:
    """The wheel's ffmpeg lists libvmaf; Debian's 5.1 lists only vmafmotion (recorded listings)."""
    assert hv.has_libvmaf((DATA / "filters_vmaf_ffmpeg.txt").read_text())
    debian = (DATA / "filters_debian_ffmpeg.txt").read_text()
    assert "vmafmotion" in debian and not hv.has_libvmaf(debian)


def test_not_available_without_the_binary(tmp_path: Path) -> None:
    assert not hv.available(str(tmp_path / "ffmpeg-vmaf"))
    plain = tmp_path / "not-executable"
    plain.write_text("")
    assert not hv.available(str(plain))


# -- pooling ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x265_crf20.json", "x265_crf45.json"])
def test_pooled_equals_libvmafs_own_pooling(name: str) -> None:
    data = log(name)
    mine = hv.pooled(data)
    theirs = data["pooled_metrics"]["vmaf"]
    assert mine["frames"] == len(data["frames"]) == 8
    for key in ("mean", "min", "max", "harmonic_mean"):
        assert mine[key] == pytest.approx(theirs[key], abs=1e-5), key


def test_recorded_scores_order_by_quality() -> None:
    good, bad = hv.pooled(log("x265_crf20.json")), hv.pooled(log("x265_crf45.json"))
    assert 90 < good["mean"] <= 100 and 0 <= bad["mean"] < 60
    assert good["min"] > bad["max"]


def test_segments_pool_frame_by_frame() -> None:
    """Sampled verify gets one log per segment: pooling their frames together weights every frame once."""
    a, b = hv.frame_scores(log("x265_crf20.json")), hv.frame_scores(log("x265_crf45.json"))
    both = hv.pool(a + b)
    assert both["frames"] == 16
    assert both["mean"] == pytest.approx((sum(a) + sum(b)) / 16)
    assert both["min"] == min(b) and both["max"] == max(a)
    # the harmonic mean leans to the low frames: below the mean of the two segments' harmonic means
    assert both["harmonic_mean"] < (hv.pool(a)["harmonic_mean"] + hv.pool(b)["harmonic_mean"]) / 2


def test_frame_order_is_frame_number_order() -> None:
    data = log("x265_crf45.json")
    scores = hv.frame_scores(data)
    data["frames"].reverse()
    assert hv.frame_scores(data) == scores


@pytest.mark.parametrize(("data", "message"), [
    ({}, "no 'frames' list"),
    ({"frames": []}, "no VMAF frames"),
    ({"frames": [{"frameNum": 0, "metrics": {"psnr_y": 40.0}}]}, "has no vmaf score"),
    ({"frames": [{"frameNum": 0, "metrics": {"vmaf": float("nan")}}]}, "has no vmaf score"),
])
def test_pooled_refuses_what_is_not_a_vmaf_log(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        hv.pooled(data)


# -- the Dockerfile installs exactly the pinned wheel ----------------------------------------------------------

def test_image_installs_the_pinned_wheel_beside_debians_ffmpeg() -> None:
    reqs = [ln for ln in (FFMPEG_DIR / "vmaf-requirements.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert reqs[0] == "imageio-ffmpeg==0.8.1 \\"
    assert re.fullmatch(r" +--hash=sha256:[0-9a-f]{64}", reqs[1]) and len(reqs) == 2
    text = (FFMPEG_DIR / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    vmaf_stage = next(s for s in stages if s.startswith("${BASE_IMAGE} AS vmaf\n"))
    pip = re.search(r"pip3 install ([^&]+)", vmaf_stage)
    assert pip is not None
    for flag in ("--no-deps", "--require-hashes", "--only-binary :all:", "--no-cache-dir",
                 "--target /opt/vmaf-ffmpeg", "-r /tmp/vmaf-requirements.txt"):
        assert flag in pip.group(1), flag
    final = stages[-1]
    assert final.startswith("packages\n") and not re.search(r"\bpip3?\b", final)
    assert "COPY --from=vmaf /opt/vmaf-ffmpeg /opt/vmaf-ffmpeg" in final
    assert f"ln -s /opt/vmaf-ffmpeg/ffmpeg {hv.VMAF_FFMPEG}" in final
    assert "ENV PATH" not in text   # Debian's /usr/bin/ffmpeg stays the ffmpeg on PATH


# -- in the image ------------------------------------------------------------------------------------------------

def _in_image(image: str, work: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the image as its task user, with ``work`` as /w (the working directory) and this
    folder's hevc_vmaf.py as /t/hevc_vmaf.py."""
    return subprocess.run(["podman", "run", "--rm", "--network", "none", "-v", f"{work}:/w", "-w", "/w",
                           "-v", f"{FFMPEG_DIR / 'hevc_vmaf.py'}:/t/hevc_vmaf.py:ro", image, *argv],
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.containers
def test_vmaf_in_the_image_orders_encodes_by_quality(podman_ready: None, tmp_path: Path) -> None:
    """A lossless 320x180 source, libx265 at CRF 20 and CRF 45 (Debian's ffmpeg in the image), then VMAF with
    the image's ffmpeg-vmaf: the identical pair near 100, CRF 20 well above CRF 45, every frame in 0..100.
    Also a ProRes 4:2:2 10-bit source against its HEVC Main 10 encode (both decoded by ffmpeg-vmaf itself)."""
    from batchpipes import containers

    image = containers.build(containers.get("ffmpeg"))
    tmp_path.chmod(0o777)   # the image's task user (10001) writes here
    ff = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-threads", "1"]
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:pools=1"]
    for argv in (
        [*ff, "-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1", "-c:v", "ffv1", "-pix_fmt", "yuv420p", "ref.mkv"],
        [*ff, "-i", "ref.mkv", *x265, "-crf", "20", "crf20.mp4"],
        [*ff, "-i", "ref.mkv", *x265, "-crf", "45", "crf45.mp4"],
        [*ff, "-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1", "-f", "lavfi", "-i", "sine=d=1", "-c:v",
         "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s24le", "prores.mov"],
        [*ff, "-i", "prores.mov", "-map", "0:v", *x265, "-pix_fmt", "yuv420p10le", "-crf", "20", "main10.mp4"],
    ):
        proc = _in_image(image, tmp_path, *argv)
        assert proc.returncode == 0, proc.stderr

    check = _in_image(image, tmp_path, "python3", "-c",
                      "import sys; sys.path.insert(0, '/t'); import hevc_vmaf; print(hevc_vmaf.available())")
    assert check.stdout == "True\n", check.stderr

    def vmaf(distorted: str, reference: str, pix_fmt: str = "yuv420p", **kw: Any) -> tuple[dict[str, Any],
                                                                                             list[float]]:
        name = f"{Path(distorted).stem}_vs_{Path(reference).stem}_{kw.get('frames') or 'all'}.json"
        argv = hv.vmaf_args(distorted, reference, ref_stream=0, pix_fmt=pix_fmt, threads=2, log_path=name,
                            model=hv.model_for(320, 180), **kw)
        proc = _in_image(image, tmp_path, *argv)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr   # no warnings either (e.g. the null muxer's dts complaints)
        data = json.loads((tmp_path / name).read_text())
        assert data["pooled_metrics"]["vmaf"]["mean"] == pytest.approx(hv.pooled(data)["mean"], abs=1e-5)
        return hv.pooled(data), hv.frame_scores(data)

    same, same_frames = vmaf("ref.mkv", "ref.mkv")
    good, good_frames = vmaf("crf20.mp4", "ref.mkv")
    bad, bad_frames = vmaf("crf45.mp4", "ref.mkv")
    for pooled, frames in ((same, same_frames), (good, good_frames), (bad, bad_frames)):
        assert pooled["frames"] == 24
        assert all(0 <= s <= 100 for s in frames), frames
    assert same["mean"] > 99 and same["max"] == 100
    assert 90 < good["mean"] < same["mean"]
    assert bad["mean"] < 70 and good["mean"] - bad["mean"] > 20
    assert good["harmonic_mean"] > bad["harmonic_mean"]

    # a sampled segment: 6 frames from frame 12 on (seek half a frame before it) equal the whole run's frames
    # 13..17 (the segment's first frame has no motion term, as a video's first frame)
    segment, segment_frames = vmaf("crf20.mp4", "ref.mkv", frames=6, seek="0.479167")
    assert segment["frames"] == 6
    assert segment_frames[1:] == pytest.approx(good_frames[13:18], abs=1e-6)

    prores, _ = vmaf("main10.mp4", "prores.mov", pix_fmt="yuv420p10le")
    assert prores["frames"] == 24 and 85 < prores["mean"] <= 100
