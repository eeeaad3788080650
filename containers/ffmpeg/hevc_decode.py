"""Where the hevc_nvenc path decodes its source: on the GPU's NVDEC or on the CPU (imported by hevc_tasks.py).

The probe passes the chosen video stream (``source_info.json``'s ``video`` object: codec, profile, pix_fmt,
bit_depth, chroma, width, height, optionally field_order, values as ffprobe spells them) and the encoder to
``decode_plan``; ``input_args`` and ``video_filter`` turn the plan into the ffmpeg arguments of the encode.
Python 3.10+ standard library only (it runs in the ffmpeg image beside hevc-tasks).

Which GPUs the plan must hold on
--------------------------------
The plan is made by the probe, before the encode job has a GPU, so it cannot ask the driver
(``cuvidGetDecoderCaps``); it holds on every GPU AWS offers for this work: T4 (Turing, g4dn), A10G (Ampere
GA10x, g5), L4 (Ada, g6) and V100 (Volta, p3, the GPU of the original pipeline). That common set is decided by
the oldest, Volta (``OLDEST``): HEVC 4:4:4 (Turing and later) and AV1 (Ampere GA10x and later) therefore decode on
the CPU. ``OLDEST = "turing"`` (no p3) would move HEVC 4:4:4 to NVDEC; AV1 needs ``"ampere"`` (no g4dn either).

The support matrix (sources)
----------------------------
Which features each GPU generation has: NVIDIA Video Codec SDK 13.0, NVDEC Application Note, section "NVDEC
Capabilities", table "NVDEC Hardware Capabilities"
(https://docs.nvidia.com/video-technologies/video-codec-sdk/13.0/nvdec-application-note/index.html). In short:
VC-1, MPEG-4 Part 2, MPEG-1/2 and H.264 (Baseline, Main, High: 8-bit 4:2:0) on every generation here; HEVC
Main/Main 10 and VP9 profile 0, each up to 8192x8192, from before Volta; HEVC 4:4:4 from Turing; AV1 Main
from GA10x/Ada; H.264 High 10 / High 4:2:2, H.264 8192x8192 and HEVC 4:2:2 only from Blackwell (none of the
GPUs above). Per-codec sizes and bit depths: the NVDEC Video Decoder API Programming Guide (same SDK), chapter
"Video Decoder Capabilities", checked against what the driver reports through ``cuvidGetDecoderCaps``:
nvdecinfo's table on an Ampere GA10x GPU (philipl/nv-video-info pull request 7: MPEG-1/2/4, VC-1, H.264, JPEG),
GStreamer nvcodec logs (HEVC 144..8192 at 8/10/12-bit, 4:2:0 and 4:4:4; VP8), nvidia-vaapi-driver logs
(elFarto/nvidia-vaapi-driver issues 148 and 365: VP9 profile 2 and AV1 128..8192) and a Tesla T4's decoder
formats (rigaya/NVEnc GPUFeatures/teslaT4_linux.txt: HEVC 4:2:0 and 4:4:4 to 12-bit, VP9 to 12-bit, no AV1).
The Volta figures are the guide's (no V100 capability dump was at hand):

=============  ==========  ===========  ==============  ===========  ================  ===============
codec          bit depth   chroma       min size        max size     max macroblocks   oldest GPU here
=============  ==========  ===========  ==============  ===========  ================  ===============
MPEG-1/2       8           4:2:0        48x16           4080x4080    65280             all
MPEG-4 Pt 2    8           4:2:0        48x16           2032x2032    8192              all
VC-1 / WMV3    8           4:2:0        48x16           2032x2032    8192              all
H.264          8           4:2:0        48x16           4096x4096    65536             all
HEVC           8, 10, 12   4:2:0        144x144         8192x8192    262144            all
HEVC           8, 10, 12   4:4:4        144x144         8192x8192    262144            Turing
VP8            8           4:2:0        48x16           4096x4096    -                 all
VP9            8, 10, 12   4:2:0        128x128         8192x8192    262144            all
AV1            8, 10       4:2:0        128x128         8192x8192    262144            Ampere GA10x
JPEG (mjpeg)   8           4:2:0 (*)    64x64           32768x16384  -                 all
=============  ==========  ===========  ==============  ===========  ================  ===============

(*) NVDEC also decodes 4:0:0, 4:2:2 and 4:4:4 JPEG, but ffmpeg 5.1's NVDEC JPEG path hands every one over as
4:2:0 (NV12), so those go to the CPU; so does JPEG other than Baseline (progressive, lossless, JPEG-LS), to be
safe. Macroblocks are 16x16 luma blocks
of the coded picture (for MPEG-4 and VC-1 the binding limit: 1920x1080 fits, 2032x1152 does not).

Everything else decodes on the CPU: ProRes, DNxHD/DNxHR, FFV1, rawvideo and any other codec NVDEC does not
know, 4:2:2 of any codec (H.264 High 4:2:2, HEVC Main 4:2:2 10, MPEG-2 4:2:2 profile), H.264 High 10, 9-bit,
14-bit and 16-bit samples, monochrome and unknown chroma, and a stream whose codec, size, bit depth or chroma
the probe could not read. ffmpeg 5.1 (the image's) has NVDEC hwaccels for all the NVDEC codecs above (av1,
h264, hevc, mjpeg, mpeg1, mpeg2, mpeg4, vc1, vp8, vp9, wmv3; tests/data/hevc_decode/ records them).

Interlaced sources (``field_order`` tt, bb, tb or bt) follow the same rules: ffmpeg's NVDEC hwaccel, like the
CPU decoder, hands over frames with both fields woven together and neither path deinterlaces, so the encoder
gets the same pictures either way (HEVC field pictures arrive one field per frame on both paths).

The GPU path's frames stay in GPU memory: ``-hwaccel cuda -hwaccel_output_format cuda`` before ``-i``, then
``scale_cuda=format=nv12`` (Main) or ``scale_cuda=format=p010le`` (Main 10) converts on the GPU (NVDEC hands
over NV12 for 8-bit, P010 for 10-bit, P016 for 12-bit and YUV444P/YUV444P16 for 4:4:4; the scale_cuda of
ffmpeg 5.1 converts between all of these). scale_cuda changes neither the colour matrix nor the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from task_common import TaskError


@dataclass(frozen=True)
class DecodePlan:
    method: str          # "nvdec" or "cpu"
    reason: str          # one sentence, e.g. "h264 at 7680x4320 exceeds NVDEC's H.264 limit of 4096x4096: ..."


@dataclass(frozen=True)
class Limits:
    """What NVDEC decodes of one codec (see the module docstring for the sources)."""
    name: str                          # as NVIDIA names the codec, for the reasons
    depths: tuple[int, ...]            # bit depths
    chroma: dict[str, str]             # chroma ("420", "444") -> the oldest GPU generation that decodes it
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    max_macroblocks: int | None = None
    profiles: tuple[str, ...] = ()     # when not empty: the only profiles (as ffprobe names them) NVDEC takes


#: GPU generations, oldest first, with the AWS GPUs of each.
GENERATIONS: dict[str, str] = {"volta": "V100", "turing": "T4", "ampere": "A10G", "ada": "L4"}
#: The oldest generation the plan must hold on (every generation from it on is in the common set).
OLDEST = "volta"
_ORDER = list(GENERATIONS)

_ALL = "volta"
_420 = {"420": _ALL}
_SMALL = (48, 16)

#: NVDEC's limits per codec, keyed by ffprobe's codec_name.
NVDEC: dict[str, Limits] = {
    "mpeg1video": Limits("MPEG-1", (8,), _420, _SMALL, (4080, 4080), 65280),
    "mpeg2video": Limits("MPEG-2", (8,), _420, _SMALL, (4080, 4080), 65280),
    "mpeg4": Limits("MPEG-4 Part 2", (8,), _420, _SMALL, (2032, 2032), 8192),
    "vc1": Limits("VC-1", (8,), _420, _SMALL, (2032, 2032), 8192),
    "wmv3": Limits("VC-1", (8,), _420, _SMALL, (2032, 2032), 8192),
    "h264": Limits("H.264", (8,), _420, _SMALL, (4096, 4096), 65536),
    "hevc": Limits("HEVC", (8, 10, 12), {"420": _ALL, "444": "turing"}, (144, 144), (8192, 8192), 262144),
    "vp8": Limits("VP8", (8,), _420, _SMALL, (4096, 4096)),
    "vp9": Limits("VP9", (8, 10, 12), _420, (128, 128), (8192, 8192), 262144),
    "av1": Limits("AV1", (8, 10), {"420": "ampere"}, (128, 128), (8192, 8192), 262144),
    "mjpeg": Limits("JPEG", (8,), _420, (64, 64), (32768, 16384), profiles=("Baseline",)),
}

#: The encoder's pixel format (hevc_tasks.PROFILES' nvenc_pix_fmt) -> scale_cuda's output format.
SCALE_CUDA_FORMATS = {"yuv420p": "nv12", "nv12": "nv12", "p010le": "p010le"}

CHROMA_NAMES = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4"}
INTERLACED = frozenset({"tt", "bb", "tb", "bt"})
ON_CPU = "decoding on the CPU"


def _cpu(reason: str) -> DecodePlan:
    return DecodePlan("cpu", f"{reason}: {ON_CPU}")


def _gpus_from(generation: str) -> str:
    """'the A10G (Ampere) and L4 (Ada)': the GPUs of ``generation`` and later."""
    names = [f"{GENERATIONS[g]} ({g.capitalize()})" for g in _ORDER[_ORDER.index(generation):]]
    return "the " + (" and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1])


def _gpus_before(generation: str) -> str:
    """'the T4 (Turing) or V100 (Volta)': the GPUs of the common set older than ``generation``."""
    older = _ORDER[_ORDER.index(OLDEST):_ORDER.index(generation)]
    return "the " + " or ".join(f"{GENERATIONS[g]} ({g.capitalize()})" for g in reversed(older))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def decode_plan(video: dict[str, Any], encoder: str) -> DecodePlan:
    """NVDEC for hevc_nvenc when the stream's codec, chroma, bit depth and size fit every GPU of the common set
    (``OLDEST`` on); the CPU otherwise, and always for libx265. The reason is one sentence naming the limit."""
    if encoder == "libx265":
        return DecodePlan("cpu", "libx265 encodes on the CPU: decoding there too")
    if encoder != "hevc_nvenc":
        raise TaskError(f"encoder {encoder!r} has no decode plan: choose libx265 (CPU) or hevc_nvenc (NVIDIA GPU)")
    codec = _text(video.get("codec"))
    if not codec:
        return _cpu("the source's video codec is unknown")
    limits = NVDEC.get(codec)
    if limits is None:
        return _cpu(f"{codec} is not an NVDEC codec")
    depth, width, height = _int(video.get("bit_depth")), _int(video.get("width")), _int(video.get("height"))
    chroma, pix_fmt, profile = _text(video.get("chroma")), _text(video.get("pix_fmt")), _text(video.get("profile"))
    if limits.profiles and profile not in limits.profiles:
        shown = f"the {profile} profile" if profile else "an unknown profile"
        return _cpu(f"{codec} with {shown} is not decodable by NVDEC (it takes {limits.name} "
                    f"{' or '.join(limits.profiles)} only)")
    if chroma not in CHROMA_NAMES:
        what = f"{chroma or 'unknown'} chroma" + (f" (pix_fmt {pix_fmt})" if pix_fmt else "")
        return _cpu(f"{codec} with {what} is not decodable by NVDEC on these GPUs")
    since = limits.chroma.get(chroma)
    if since is None and codec == "mjpeg":
        return _cpu(f"mjpeg {CHROMA_NAMES[chroma]}: ffmpeg 5.1 takes NVDEC's JPEG output as 4:2:0 (NV12) only")
    if since is None:
        return _cpu(f"{codec} {CHROMA_NAMES[chroma]} chroma is not decodable by NVDEC on these GPUs")
    if _ORDER.index(since) > _ORDER.index(OLDEST):
        return _cpu(f"{codec} {CHROMA_NAMES[chroma]} is decodable by NVDEC only on {_gpus_from(since)}, "
                    f"not on {_gpus_before(since)}")
    if depth is None:
        return _cpu(f"the bit depth of the {codec} source is unknown")
    if depth not in limits.depths:
        allowed = "/".join(str(d) for d in limits.depths)
        return _cpu(f"{codec} at {depth}-bit exceeds NVDEC's {limits.name} limit of {allowed}-bit")
    if width is None or height is None:
        return _cpu(f"the size of the {codec} source is unknown")
    (min_w, min_h), (max_w, max_h) = limits.min_size, limits.max_size
    if width > max_w or height > max_h:
        return _cpu(f"{codec} at {width}x{height} exceeds NVDEC's {limits.name} limit of {max_w}x{max_h}")
    if width < min_w or height < min_h:
        return _cpu(f"{codec} at {width}x{height} is below NVDEC's {limits.name} minimum of {min_w}x{min_h}")
    macroblocks = -(-width // 16) * -(-height // 16)
    if limits.max_macroblocks is not None and macroblocks > limits.max_macroblocks:
        return _cpu(f"{codec} at {width}x{height} has {macroblocks} macroblocks, over NVDEC's {limits.name} limit "
                    f"of {limits.max_macroblocks}")
    fields = _text(video.get("field_order"))
    woven = f" (interlaced {fields}: fields stay woven, as on the CPU)" if fields in INTERLACED else ""
    return DecodePlan("nvdec", f"{codec} {CHROMA_NAMES[chroma]} {depth}-bit at {width}x{height}{woven} is within "
                               f"NVDEC's {limits.name} limits on {_gpus_from(OLDEST)}: decoding on the GPU")


def nvdec_output_format(video: dict[str, Any]) -> str:
    """The pixel format of the CUDA frames ffmpeg 5.1's NVDEC hwaccel hands over (what scale_cuda converts
    from): NV12 for 8-bit, P010 for 10-bit, P016 for 12-bit; YUV444P / YUV444P16 for HEVC 4:4:4."""
    depth = _int(video.get("bit_depth")) or 8
    if video.get("chroma") == "444" and video.get("codec") == "hevc":
        return "yuv444p" if depth == 8 else "yuv444p16le"
    return {8: "nv12", 10: "p010le"}.get(depth, "p016le")


def input_args(plan: DecodePlan) -> list[str]:
    """The ffmpeg arguments that go before ``-i``: NVDEC decoding into GPU memory, or nothing (CPU)."""
    if plan.method == "nvdec":
        return ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    return []


def video_filter(plan: DecodePlan, nvenc_pix_fmt: str) -> str | None:
    """The ``-vf`` chain that puts decoded frames into the encoder's format: for NVDEC a GPU-side scale_cuda
    conversion to NV12 (8-bit) or P010 (10-bit); for the CPU None (the encoder's ``-pix_fmt`` converts).

    With NVDEC the encode must not also pass ``-pix_fmt``: ffmpeg would append a CPU ``format`` filter that
    cannot take the CUDA frames scale_cuda hands on (hevc_nvenc reads the frames' format from them)."""
    target = SCALE_CUDA_FORMATS.get(nvenc_pix_fmt)
    if target is None:
        raise ValueError(f"no scale_cuda format for the encoder pixel format {nvenc_pix_fmt!r}: "
                         f"expected one of {', '.join(SCALE_CUDA_FORMATS)}")
    return f"scale_cuda=format={target}" if plan.method == "nvdec" else None
