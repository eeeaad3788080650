"""VMAF of an encode against its source, with the image's second ffmpeg (imported by hevc_tasks.py).

Debian 12's ffmpeg (the image's ``ffmpeg``) is built without libvmaf and Debian has no libvmaf package. The
Dockerfile therefore installs the wheel ``vmaf-requirements.txt`` pins by SHA-256, imageio-ffmpeg 0.8.1, whose
ffmpeg 9.0.2 is built with libvmaf and carries libvmaf's built-in models (no model file is read). It is
``VMAF_FFMPEG`` (``/usr/local/bin/ffmpeg-vmaf``); ``ffmpeg`` on PATH stays Debian's 5.1, which encodes.

That ffmpeg decodes both files itself (HEVC Main and Main 10 in MP4 or MOV, H.264, ProRes 4:2:2 and 4:4:4,
MPEG-TS: the source kinds of the workflow; tests/data/hevc_vmaf/README.md lists what was checked), so the
comparison needs no pipe between the two ffmpeg versions. It has no ffprobe: the stream facts come from the
probe's ``source_info.json``, as everywhere else.

How frames are compared: as the PSNR/SSIM graph of hevc_tasks.py does, by index, not timestamp. Both streams are
put in one pixel format and given pts = frame number in a 1/1000 time base; libvmaf's first input is the
distorted (encoded) video, its second the reference (source). ``frames`` keeps the first so many after ``seek``
(a sampled segment); both inputs seek to the same position (``-ss`` before each ``-i``, exact: ffmpeg decodes
from the keyframe before and drops what precedes the position). A segment's first frame has no frame before it,
so libvmaf's motion feature is 0 there, as on a video's first frame: its score differs from the same frame's in
a whole-video run, the segment's other scores are equal (seek one frame earlier, keep one frame more and drop
the first score to avoid that). The comparison ends with the shorter stream
(``shortest=1``: a missing frame is not filled by repeating the last one). The null output keeps the graph's
1/1000 time base (``-enc_time_base:v filter``): in ffmpeg 9 the frame rate's would squash pts 0, 1, 2 ms into
one tick and log a non-monotonic dts error per frame.

Which model (``model_for``): libvmaf's default ``vmaf_v0.6.1`` is trained for a 1080p display seen from three
picture heights; ``vmaf_4k_v0.6.1`` for a 4K display seen from 1.5 picture heights, the setting 4K and 8K
masters are watched in. The rule: the 4K model when the longer side of the picture is 3840 pixels or more
(UHD, DCI 4K, 8K, portrait 2160x3840 alike), the default model below (1080p, 1440p, anything smaller). Neither
model is meant for HDR (PQ/HLG) pictures: their VMAF is a figure for comparing encodes, not a perceptual score.

Python 3.10+ standard library only (it runs in the ffmpeg image beside hevc-tasks).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from typing import Any

#: The libvmaf-enabled ffmpeg the Dockerfile installs (a link into /opt/vmaf-ffmpeg, the wheel's tree).
VMAF_FFMPEG = "/usr/local/bin/ffmpeg-vmaf"
#: libvmaf's built-in models this module chooses between (``model=version=NAME``).
MODEL_DEFAULT = "vmaf_v0.6.1"
MODEL_4K = "vmaf_4k_v0.6.1"
MODELS = (MODEL_DEFAULT, MODEL_4K)
#: From this length of the longer side on, the 4K model (see the module's docstring).
LONG_SIDE_4K = 3840
#: The pixel formats ffmpeg's libvmaf filter takes (ffmpeg 9.0.2): 4:2:0, 4:2:2 and 4:4:4 at 8 or 10 bits.
PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")
#: What a log path may hold: it is written into the filter graph, whose syntax gives ':' ',' ';' '[' and quotes
#: meanings, so only plain path characters pass.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
_SEEK = re.compile(r"[0-9]+(\.[0-9]+)?")


def available(exe: str = VMAF_FFMPEG) -> bool:
    """Whether ``exe`` exists and its ``-filters`` lists libvmaf."""
    if not os.access(exe, os.X_OK):
        return False
    try:
        proc = subprocess.run([exe, "-hide_banner", "-filters"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and has_libvmaf(proc.stdout)


def has_libvmaf(filters: str) -> bool:
    """Whether ffmpeg's ``-filters`` listing names the libvmaf filter (not merely vmafmotion)."""
    return re.search(r"^ *\S+ +libvmaf +VV->V", filters, re.M) is not None


def model_for(width: int, height: int) -> str:
    """The built-in model for pictures of this size: ``MODEL_4K`` from a longer side of 3840 on, else the
    default model."""
    if width <= 0 or height <= 0:
        raise ValueError(f"picture size {width}x{height} is not positive")
    return MODEL_4K if max(width, height) >= LONG_SIDE_4K else MODEL_DEFAULT


def vmaf_args(distorted: str, reference: str, *, ref_stream: int, pix_fmt: str, threads: int, log_path: str,
              model: str, frames: int | None = None, seek: str | None = None,
              exe: str = VMAF_FFMPEG) -> list[str]:
    """The argv (``exe`` first) that computes VMAF of ``distorted`` (the encode; its first video stream) against
    stream ``ref_stream`` (the absolute index, as ``source_info.json``'s ``video.index``) of ``reference`` (the
    source), both converted to ``pix_fmt``, and writes libvmaf's JSON log to ``log_path``. ``threads``: decoder
    threads per input and libvmaf's own. ``frames``: only the first so many frames (from ``seek`` on); ``seek``:
    a position in seconds, as hevc_tasks.seek_time writes it, applied to both inputs."""
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"libvmaf does not take pixel format '{pix_fmt}': use one of {', '.join(PIX_FMTS)}")
    if model not in MODELS:
        raise ValueError(f"unknown VMAF model '{model}': use one of {', '.join(MODELS)}")
    if not _SAFE_PATH.fullmatch(log_path):
        raise ValueError(f"VMAF log path '{log_path}' holds characters the filter graph would read: "
                         "use letters, digits and . _ / + - only")
    if ref_stream < 0 or threads < 1 or (frames is not None and frames < 1):
        raise ValueError(f"ref_stream {ref_stream}, threads {threads}, frames {frames}: out of range")
    if seek is not None and not _SEEK.fullmatch(seek):
        raise ValueError(f"seek '{seek}' is not a position in seconds")
    trim = f"trim=end_frame={frames}," if frames else ""
    prep = f"{trim}format={pix_fmt},settb=1/1000,setpts=N"
    graph = (f"[0:v:0]{prep}[dist];[1:{ref_stream}]{prep}[ref];"
             f"[dist][ref]libvmaf=model=version={model}:n_threads={threads}:log_fmt=json:log_path={log_path}"
             ":shortest=1:repeatlast=0[vmaf]")
    at = ["-ss", seek] if seek is not None else []
    return [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
            "-threads", str(threads), *at, "-i", distorted,
            "-threads", str(threads), *at, "-i", reference,
            "-filter_complex", graph, "-map", "[vmaf]", "-enc_time_base:v", "filter", "-f", "null", "-"]


def frame_scores(log_json: dict[str, Any]) -> list[float]:
    """The VMAF of every frame of a libvmaf JSON log, in frame order."""
    frames = log_json.get("frames")
    if not isinstance(frames, list):
        raise ValueError("not a libvmaf JSON log: no 'frames' list")
    scores = []
    for frame in sorted(frames, key=lambda f: int(f.get("frameNum", 0))):
        value = (frame.get("metrics") or {}).get("vmaf")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"frame {frame.get('frameNum')} of the VMAF log has no vmaf score")
        scores.append(float(value))
    return scores


def pool(scores: list[float]) -> dict[str, float | int]:
    """mean, min, max and harmonic mean (libvmaf's: n / sum(1 / (1 + s)) - 1) of per-frame scores, and their count:
    what several segments' logs give together (``pool(frame_scores(a) + frame_scores(b))``)."""
    if not scores:
        raise ValueError("no VMAF frames to pool")
    n = len(scores)
    return {"mean": sum(scores) / n, "min": min(scores), "max": max(scores),
            "harmonic_mean": n / sum(1.0 / (1.0 + s) for s in scores) - 1.0, "frames": n}


def pooled(log_json: dict[str, Any]) -> dict[str, float | int]:
    """mean, min, max, harmonic_mean and frames of one libvmaf JSON log, from its per-frame scores (the same
    figures as its ``pooled_metrics.vmaf``)."""
    return pool(frame_scores(log_json))
