"""Where the HEVC workflow's GPU path decodes (containers/ffmpeg/hevc_decode.py) and scripts/gpu-check.sh.

The plan is checked on a table of real-looking stream descriptions (as the probe writes them), with the exact
ffmpeg arguments of each case. No GPU here: that ffmpeg takes those arguments is checked against what the host
ffmpeg (the image's build, 5.1.9-0+deb12u1) answered when the fixtures in tests/data/hevc_decode/ were recorded
(see the README there): its hwaccels, scale_cuda's options and conversion kernels, hevc_nvenc's input formats,
the NVDEC hwaccels compiled into libavcodec, and its option parser's verdict on each argument.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scriptload import load_script

ROOT = Path(__file__).resolve().parents[1]
hd = load_script(ROOT / "containers" / "ffmpeg" / "hevc_decode.py")
DATA = Path(__file__).resolve().parent / "data" / "hevc_decode"
GPU_CHECK = ROOT / "scripts" / "gpu-check.sh"

NVDEC_IN = ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
P010 = [*NVDEC_IN, "-vf", "scale_cuda=format=p010le"]   # main10 (encoder pix_fmt p010le)
NV12 = [*NVDEC_IN, "-vf", "scale_cuda=format=nv12"]     # main (encoder pix_fmt yuv420p)


def stream(codec: str | None, profile: str | None, pix_fmt: str | None, bit_depth: int | None, chroma: str | None,
           width: int | None, height: int | None, **extra: Any) -> dict[str, Any]:
    """A ``video`` object of source_info.json as the probe writes it (the keys the plan reads, plus extras)."""
    return {"index": 0, "codec": codec, "profile": profile, "pix_fmt": pix_fmt, "bit_depth": bit_depth,
            "chroma": chroma, "width": width, "height": height, "frame_rate": "24000/1001", **extra}


#: (id, video, encoder, method, a phrase of the reason, arguments for main10, arguments for main)
CASES: list[tuple[str, dict[str, Any], str, str, str, list[str], list[str]]] = [
    ("8K HEVC Main10 4:2:0", stream("hevc", "Main 10", "yuv420p10le", 10, "420", 7680, 4320), "hevc_nvenc",
     "nvdec", "hevc 4:2:0 10-bit at 7680x4320 is within NVDEC's HEVC limits", P010, NV12),
    ("8K HEVC Main10, libx265", stream("hevc", "Main 10", "yuv420p10le", 10, "420", 7680, 4320), "libx265",
     "cpu", "libx265 encodes on the CPU: decoding there too", [], []),
    ("8K HEVC Main 8-bit", stream("hevc", "Main", "yuv420p", 8, "420", 7680, 4320), "hevc_nvenc",
     "nvdec", "hevc 4:2:0 8-bit at 7680x4320", P010, NV12),
    ("8K HEVC Main 12 4:2:0", stream("hevc", "Rext", "yuv420p12le", 12, "420", 7680, 4320), "hevc_nvenc",
     "nvdec", "hevc 4:2:0 12-bit at 7680x4320", P010, NV12),
    ("portrait 4320x7680 HEVC", stream("hevc", "Main 10", "yuv420p10le", 10, "420", 4320, 7680), "hevc_nvenc",
     "nvdec", "at 4320x7680 is within NVDEC's HEVC limits", P010, NV12),
    ("HEVC 8192x8192 (the limit)", stream("hevc", "Main 10", "yuv420p10le", 10, "420", 8192, 8192), "hevc_nvenc",
     "nvdec", "at 8192x8192 is within", P010, NV12),
    ("HEVC 8704x4352 (over 8192)", stream("hevc", "Main 10", "yuv420p10le", 10, "420", 8704, 4352), "hevc_nvenc",
     "cpu", "hevc at 8704x4352 exceeds NVDEC's HEVC limit of 8192x8192: decoding on the CPU", [], []),
    ("HEVC 128x72 (under 144x144)", stream("hevc", "Main", "yuv420p", 8, "420", 128, 72), "hevc_nvenc",
     "cpu", "hevc at 128x72 is below NVDEC's HEVC minimum of 144x144", [], []),
    ("HEVC 4:2:2 10-bit", stream("hevc", "Rext", "yuv422p10le", 10, "422", 3840, 2160), "hevc_nvenc",
     "cpu", "hevc 4:2:2 chroma is not decodable by NVDEC on these GPUs: decoding on the CPU", [], []),
    ("HEVC 4:4:4 8-bit", stream("hevc", "Rext", "yuv444p", 8, "444", 3840, 2160), "hevc_nvenc",
     "cpu", "hevc 4:4:4 is decodable by NVDEC only on the T4 (Turing), A10G (Ampere) and L4 (Ada), not on the "
     "V100 (Volta)", [], []),
    ("HEVC 4:4:4 12-bit 8K", stream("hevc", "Rext", "yuv444p12le", 12, "444", 7680, 4320), "hevc_nvenc",
     "cpu", "not on the V100 (Volta)", [], []),
    ("HEVC monochrome", stream("hevc", "Rext", "gray", 8, "other", 1920, 1080), "hevc_nvenc",
     "cpu", "hevc with other chroma (pix_fmt gray) is not decodable by NVDEC", [], []),
    ("HEVC, bit depth unknown", stream("hevc", "Main", "yuv420p", None, "420", 1920, 1080), "hevc_nvenc",
     "cpu", "the bit depth of the hevc source is unknown", [], []),
    ("HEVC, size unknown", stream("hevc", "Main", "yuv420p", 8, "420", None, None), "hevc_nvenc",
     "cpu", "the size of the hevc source is unknown", [], []),
    ("8K H.264 (too big)", stream("h264", "High", "yuv420p", 8, "420", 7680, 4320), "hevc_nvenc",
     "cpu", "h264 at 7680x4320 exceeds NVDEC's H.264 limit of 4096x4096: decoding on the CPU", [], []),
    ("4K H.264 8-bit", stream("h264", "High", "yuv420p", 8, "420", 3840, 2160), "hevc_nvenc",
     "nvdec", "h264 4:2:0 8-bit at 3840x2160 is within NVDEC's H.264 limits", P010, NV12),
    ("H.264 4096x4096 (the limit)", stream("h264", "High", "yuv420p", 8, "420", 4096, 4096), "hevc_nvenc",
     "nvdec", "at 4096x4096", P010, NV12),
    ("H.264 4112x2176 (one macroblock wider)", stream("h264", "High", "yuv420p", 8, "420", 4112, 2176),
     "hevc_nvenc", "cpu", "exceeds NVDEC's H.264 limit of 4096x4096", [], []),
    ("H.264 full range (yuvj420p)", stream("h264", "High", "yuvj420p", 8, "420", 1920, 1080), "hevc_nvenc",
     "nvdec", "h264 4:2:0 8-bit at 1920x1080", P010, NV12),
    ("H.264 High 10", stream("h264", "High 10", "yuv420p10le", 10, "420", 3840, 2160), "hevc_nvenc",
     "cpu", "h264 at 10-bit exceeds NVDEC's H.264 limit of 8-bit", [], []),
    ("H.264 High 4:2:2 10-bit", stream("h264", "High 4:2:2", "yuv422p10le", 10, "422", 1920, 1080), "hevc_nvenc",
     "cpu", "h264 4:2:2 chroma is not decodable by NVDEC on these GPUs", [], []),
    ("H.264 interlaced 1080i", stream("h264", "High", "yuv420p", 8, "420", 1920, 1080, field_order="tt"),
     "hevc_nvenc", "nvdec", "(interlaced tt: fields stay woven, as on the CPU)", P010, NV12),
    ("ProRes 4:2:2 10-bit", stream("prores", "HQ", "yuv422p10le", 10, "422", 3840, 2160), "hevc_nvenc",
     "cpu", "prores is not an NVDEC codec: decoding on the CPU", [], []),
    ("ProRes 4444 12-bit", stream("prores", "4444", "yuva444p12le", 12, "444", 4096, 2160), "hevc_nvenc",
     "cpu", "prores is not an NVDEC codec", [], []),
    ("DNxHR HQX", stream("dnxhd", "DNXHR HQX", "yuv422p10le", 10, "422", 3840, 2160), "hevc_nvenc",
     "cpu", "dnxhd is not an NVDEC codec", [], []),
    ("FFV1", stream("ffv1", None, "yuv420p10le", 10, "420", 1920, 1080), "hevc_nvenc",
     "cpu", "ffv1 is not an NVDEC codec", [], []),
    ("rawvideo", stream("rawvideo", None, "yuv420p", 8, "420", 7680, 4320), "hevc_nvenc",
     "cpu", "rawvideo is not an NVDEC codec", [], []),
    ("CineForm (unknown to NVDEC)", stream("cfhd", None, "yuv422p10le", 10, "422", 3840, 2160), "hevc_nvenc",
     "cpu", "cfhd is not an NVDEC codec", [], []),
    ("codec unknown", stream(None, None, None, None, None, 1920, 1080), "hevc_nvenc",
     "cpu", "the source's video codec is unknown: decoding on the CPU", [], []),
    ("AV1 8K 10-bit", stream("av1", "Main", "yuv420p10le", 10, "420", 7680, 4320), "hevc_nvenc",
     "cpu", "av1 4:2:0 is decodable by NVDEC only on the A10G (Ampere) and L4 (Ada), not on the T4 (Turing) or "
     "V100 (Volta)", [], []),
    ("VP9 profile 0 8K", stream("vp9", "Profile 0", "yuv420p", 8, "420", 7680, 4320), "hevc_nvenc",
     "nvdec", "vp9 4:2:0 8-bit at 7680x4320 is within NVDEC's VP9 limits", P010, NV12),
    ("VP9 profile 2 10-bit 4K", stream("vp9", "Profile 2", "yuv420p10le", 10, "420", 3840, 2160), "hevc_nvenc",
     "nvdec", "vp9 4:2:0 10-bit", P010, NV12),
    ("VP9 profile 1 4:4:4", stream("vp9", "Profile 1", "yuv444p", 8, "444", 3840, 2160), "hevc_nvenc",
     "cpu", "vp9 4:4:4 chroma is not decodable by NVDEC on these GPUs", [], []),
    ("VP8", stream("vp8", None, "yuv420p", 8, "420", 1920, 1080), "hevc_nvenc",
     "nvdec", "within NVDEC's VP8 limits", P010, NV12),
    ("MPEG-2 1080i", stream("mpeg2video", "Main", "yuv420p", 8, "420", 1920, 1080, field_order="tt"), "hevc_nvenc",
     "nvdec", "mpeg2video 4:2:0 8-bit at 1920x1080 (interlaced tt", P010, NV12),
    ("MPEG-2 4:2:2 profile", stream("mpeg2video", "4:2:2", "yuv422p", 8, "422", 1920, 1080), "hevc_nvenc",
     "cpu", "mpeg2video 4:2:2 chroma is not decodable by NVDEC", [], []),
    ("MPEG-2 4096x2160 (over 4080)", stream("mpeg2video", "High", "yuv420p", 8, "420", 4096, 2160), "hevc_nvenc",
     "cpu", "mpeg2video at 4096x2160 exceeds NVDEC's MPEG-2 limit of 4080x4080", [], []),
    ("MPEG-1", stream("mpeg1video", None, "yuv420p", 8, "420", 352, 240), "hevc_nvenc",
     "nvdec", "within NVDEC's MPEG-1 limits", P010, NV12),
    ("MPEG-4 Part 2 1080p", stream("mpeg4", "Advanced Simple Profile", "yuv420p", 8, "420", 1920, 1080),
     "hevc_nvenc", "nvdec", "within NVDEC's MPEG-4 Part 2 limits", P010, NV12),
    ("MPEG-4 Part 2 2032x1152 (macroblocks)", stream("mpeg4", "Simple Profile", "yuv420p", 8, "420", 2032, 1152),
     "hevc_nvenc", "cpu", "mpeg4 at 2032x1152 has 9144 macroblocks, over NVDEC's MPEG-4 Part 2 limit of 8192",
     [], []),
    ("VC-1 Advanced 1080i", stream("vc1", "Advanced", "yuv420p", 8, "420", 1920, 1080, field_order="tb"),
     "hevc_nvenc", "nvdec", "vc1 4:2:0 8-bit at 1920x1080 (interlaced tb", P010, NV12),
    ("WMV9 (VC-1 Main)", stream("wmv3", "Main", "yuv420p", 8, "420", 1280, 720), "hevc_nvenc",
     "nvdec", "within NVDEC's VC-1 limits", P010, NV12),
    ("MJPEG baseline 4:2:0", stream("mjpeg", "Baseline", "yuvj420p", 8, "420", 3840, 2160), "hevc_nvenc",
     "nvdec", "within NVDEC's JPEG limits", P010, NV12),
    ("MJPEG baseline 4:2:2", stream("mjpeg", "Baseline", "yuvj422p", 8, "422", 1920, 1080), "hevc_nvenc",
     "cpu", "mjpeg 4:2:2: ffmpeg 5.1 takes NVDEC's JPEG output as 4:2:0 (NV12) only", [], []),
    ("MJPEG progressive", stream("mjpeg", "Progressive", "yuvj420p", 8, "420", 1920, 1080), "hevc_nvenc",
     "cpu", "mjpeg with the Progressive profile is not decodable by NVDEC (it takes JPEG Baseline only)", [], []),
]


@pytest.mark.parametrize(("video", "encoder", "method", "phrase", "args10", "args8"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_and_arguments(video: dict[str, Any], encoder: str, method: str, phrase: str, args10: list[str],
                            args8: list[str]) -> None:
    plan = hd.decode_plan(video, encoder)
    assert plan.method == method
    assert phrase in plan.reason
    assert plan.reason.endswith("decoding on the GPU" if method == "nvdec" else
                                "decoding there too" if encoder == "libx265" else "decoding on the CPU")
    assert "\n" not in plan.reason and plan.reason.count(". ") == 0   # one sentence
    for nvenc_pix_fmt, want in (("p010le", args10), ("yuv420p", args8)):
        vf = hd.video_filter(plan, nvenc_pix_fmt)
        assert hd.input_args(plan) + (["-vf", vf] if vf is not None else []) == want


def test_cases_cover_the_brief() -> None:
    """Every codec, bit depth and chroma the module promises to handle has a case (so the table stays complete)."""
    plans = [(c[1], hd.decode_plan(c[1], c[2])) for c in CASES]
    codecs = {v["codec"] for v, _ in plans}
    assert {"h264", "hevc", "vp9", "av1", "mpeg2video", "mpeg4", "vc1", "mjpeg", "prores", "dnxhd", "ffv1",
            "rawvideo", None} <= codecs
    assert set(hd.NVDEC) <= codecs
    assert {8, 10, 12} <= {v["bit_depth"] for v, _ in plans}
    assert {"420", "422", "444", "other"} <= {v["chroma"] for v, _ in plans}
    assert {p.method for _, p in plans} == {"nvdec", "cpu"}


def test_bad_encoder_and_pixel_format() -> None:
    video = CASES[0][1]
    with pytest.raises(hd.TaskError, match="encoder 'h264_nvenc' has no decode plan: choose libx265"):
        hd.decode_plan(video, "h264_nvenc")
    with pytest.raises(ValueError, match="no scale_cuda format for the encoder pixel format 'yuv444p'"):
        hd.video_filter(hd.decode_plan(video, "hevc_nvenc"), "yuv444p")


def test_common_set_follows_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping the V100 from the set (OLDEST turing) moves HEVC 4:4:4 to NVDEC; AV1 needs Ampere."""
    hevc444 = stream("hevc", "Rext", "yuv444p10le", 10, "444", 3840, 2160)
    av1 = stream("av1", "Main", "yuv420p10le", 10, "420", 7680, 4320)
    monkeypatch.setattr(hd, "OLDEST", "turing")
    assert hd.decode_plan(hevc444, "hevc_nvenc").method == "nvdec"
    assert "not on the T4 (Turing)" in hd.decode_plan(av1, "hevc_nvenc").reason
    monkeypatch.setattr(hd, "OLDEST", "ampere")
    assert hd.decode_plan(av1, "hevc_nvenc").reason.endswith("on the A10G (Ampere) and L4 (Ada): decoding on the GPU")


# --- the arguments against the recorded host ffmpeg -------------------------------------------------------------

def _lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def _nvdec_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(c[0], c[1]) for c in CASES if hd.decode_plan(c[1], c[2]).method == "nvdec"]


def test_fixtures_are_the_image_ffmpeg() -> None:
    version = _lines("ffmpeg-version.txt")[0]
    assert version.startswith("ffmpeg version 5.1.9-0+deb12u1 ")
    assert json.loads((DATA / "parse-checks.json").read_text())["ffmpeg"] == version


def test_ffmpeg_has_what_the_plan_uses() -> None:
    hwaccels = _lines("hwaccels.txt")
    assert hwaccels[0] == "Hardware acceleration methods:" and "cuda" in hwaccels[1:]
    scale_cuda = (DATA / "scale_cuda-help.txt").read_text()
    assert "Filter scale_cuda" in scale_cuda
    assert any(line.split()[:2] == ["format", "<pix_fmt>"] for line in scale_cuda.splitlines())
    nvenc_formats = next(line for line in _lines("hevc_nvenc-help.txt") if "Supported pixel formats:" in line)
    assert {"cuda", "nv12", "p010le"} <= set(nvenc_formats.split(":", 1)[1].split())


def test_every_nvdec_codec_has_an_ffmpeg_hwaccel() -> None:
    """Each codec the plan sends to NVDEC has an NVDEC hwaccel in the image's libavcodec (ffprobe's codec name
    -> the hwaccel's: mpeg1video -> mpeg1_nvdec, ...)."""
    compiled = set(_lines("nvdec-hwaccels.txt"))
    for codec in hd.NVDEC:
        assert codec.removesuffix("video") + "_nvdec" in compiled, codec


@pytest.mark.parametrize(("name", "video"), _nvdec_cases(), ids=[c[0] for c in _nvdec_cases()])
def test_scale_cuda_converts_what_nvdec_hands_over(name: str, video: dict[str, Any]) -> None:
    """scale_cuda of the image has a kernel from NVDEC's output format to each encoder format."""
    conversions = set(_lines("scale_cuda-conversions.txt"))
    plan = hd.decode_plan(video, "hevc_nvenc")
    for nvenc_pix_fmt in ("p010le", "yuv420p"):
        target = hd.video_filter(plan, nvenc_pix_fmt).removeprefix("scale_cuda=format=")
        assert f"{hd.nvdec_output_format(video)} {target}" in conversions


def test_nvdec_output_formats() -> None:
    assert hd.nvdec_output_format(CASES[0][1]) == "p010le"
    assert hd.nvdec_output_format(stream("h264", "High", "yuv420p", 8, "420", 1920, 1080)) == "nv12"
    assert hd.nvdec_output_format(stream("hevc", "Rext", "yuv420p12le", 12, "420", 7680, 4320)) == "p016le"
    assert hd.nvdec_output_format(stream("hevc", "Rext", "yuv444p10le", 10, "444", 3840, 2160)) == "yuv444p16le"


#: What ffmpeg 5.1 prints when its option parser refuses an argument of ours.
REJECTED = ("Unrecognized hwaccel", "Unrecognised hwaccel output format", "Option '", "Unable to parse option value",
            "Error initializing filter", "Unrecognized option", "Invalid argument")


def _parse_checks() -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = json.loads((DATA / "parse-checks.json").read_text())["checks"]
    return checks


def _contains(argv: list[str], part: list[str]) -> bool:
    return any(argv[i:i + len(part)] == part for i in range(len(argv) - len(part) + 1))


def test_ffmpeg_parser_takes_every_argument_of_the_plans() -> None:
    """Every distinct argument the table's plans produce was given to the host ffmpeg (no GPU) and refused by
    nothing: -hwaccel cuda -hwaccel_output_format cuda get as far as loading CUDA; scale_cuda with its format
    is created and initialised (the run then fails only because the test frames are not CUDA frames)."""
    accepted = [c for c in _parse_checks() if c["expect"] == "accepted"]
    pieces = set()
    for _name, video, encoder, *_ in CASES:
        plan = hd.decode_plan(video, encoder)
        if plan.method == "nvdec":
            pieces.add(tuple(hd.input_args(plan)))
            for fmt in ("p010le", "yuv420p"):
                pieces.add(("-i", f"nullsrc=s=64x64:d=0.04,{hd.video_filter(plan, fmt)}"))
    assert len(pieces) == 3
    for piece in pieces:
        checks = [c for c in accepted if _contains(c["argv"], list(piece))]
        assert checks, f"no recorded ffmpeg run with {piece}: re-run tests/data/hevc_decode/record.py"
        for check in checks:
            assert not any(marker in check["stderr"] for marker in REJECTED), check
    for check in accepted:
        if "-hwaccel" in check["argv"]:
            assert "Cannot load libcuda.so.1" in check["stderr"]
            assert "No device available for decoder: device type cuda needed" in check["stderr"]
        else:
            assert "Impossible to convert between the formats supported by the filter 'Parsed_scale_cuda_1'" \
                in check["stderr"]


def test_ffmpeg_parser_refuses_wrong_arguments() -> None:
    """The recorded wrong arguments are named by ffmpeg: the check above can tell refusal from acceptance."""
    rejected = [c for c in _parse_checks() if c["expect"] == "rejected"]
    assert len(rejected) == 4
    for check in rejected:
        assert any(marker in check["stderr"] for marker in REJECTED), check


# --- scripts/gpu-check.sh ----------------------------------------------------------------------------------------

def _tool_dir(tmp_path: Path, *extra: tuple[str, str]) -> Path:
    """A PATH directory with the tools gpu-check.sh uses (symlinks to the host's) and no nvidia-smi unless given
    in ``extra`` as (name, script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mktemp", "rm", "grep", "sed", "awk", "head", "tail", "cat", "id", "cut"):
        found = shutil.which(name)
        assert found, f"{name} is not installed"
        (bin_dir / name).symlink_to(found)
    for name, script in extra:
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _gpu_check(tmp_path: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    bash = shutil.which("bash")
    assert bash
    environ = {"PATH": str(bin_dir), "TMPDIR": str(scratch), "HOME": str(tmp_path), "LANG": "C.UTF-8", **env}
    return subprocess.run([bash, str(GPU_CHECK), *args], capture_output=True, text=True, env=environ, timeout=120,
                          check=False)


def test_gpu_check_without_nvidia_smi(tmp_path: Path) -> None:
    proc = _gpu_check(tmp_path, _tool_dir(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == \
        (0, "gpu-check: no NVIDIA GPU/NVENC here (nvidia-smi not found): nothing to check\n", "")
    assert not any((tmp_path / "tmp").iterdir())   # its work folder is gone


def test_gpu_check_where_hevc_nvenc_cannot_open(podman_ready: None, tmp_path: Path) -> None:
    """nvidia-smi lists a GPU, but the image's hevc_nvenc cannot open an encoder (no GPU handed to the container):
    run inside the ffmpeg image with a stub nvidia-smi first on PATH, the one line carries hevc_nvenc's own reason."""
    from batchpipes import containers

    image = containers.build(containers.get("ffmpeg"))
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "nvidia-smi").write_text('#!/bin/sh\necho "Tesla T4, 535.183.01"\n')
    (stub / "nvidia-smi").chmod(0o755)
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "-v", f"{GPU_CHECK}:/gpu-check.sh:ro",
                           "-v", f"{stub}:/stub:ro", "-e", "PATH=/stub:/usr/local/bin:/usr/bin:/bin", image,
                           "bash", "/gpu-check.sh"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("gpu-check: no NVIDIA GPU/NVENC here (hevc_nvenc: ")
    assert lines[0].endswith("): nothing to check")


def test_gpu_check_usage(tmp_path: Path) -> None:
    bin_dir = _tool_dir(tmp_path)
    proc = _gpu_check(tmp_path, bin_dir, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: scripts/gpu-check.sh [--help] [IMAGE]\n")
    assert "GPU_CHECK_FRAMES" in proc.stdout
    bad = _gpu_check(tmp_path, bin_dir, "--frames")
    assert bad.returncode == 2 and bad.stderr.startswith("usage: ") and bad.stdout == ""
    frames = _gpu_check(tmp_path, bin_dir, GPU_CHECK_FRAMES="0")
    assert frames.returncode == 2 and "GPU_CHECK_FRAMES must be a whole number" in frames.stderr


def test_gpu_check_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed"
    proc = subprocess.run([shellcheck, "-S", "warning", str(GPU_CHECK)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    assert os.access(GPU_CHECK, os.X_OK)
    assert "set -euo pipefail" in GPU_CHECK.read_text()
