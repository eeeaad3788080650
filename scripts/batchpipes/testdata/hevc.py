"""Test videos for wdl/hevc.wdl, made with ffmpeg's synthetic sources inside the ``ffmpeg`` image.

* ``source_8k.mp4`` (bundled in ``inputs/hevc/``): 7680x4320, 24 fps, 8 frames, SMPTE HD colour bars with
  a moving 960x540 ``testsrc2`` patch (every frame differs, so frame order matters), H.264 lossless
  (qp 0), a keyframe every 4 frames. A few hundred KB because the pattern compresses well.
* ``clip_360p.mp4``: 640x360, 24 fps, 48 frames of ``testsrc2`` with a 440 Hz AAC tone, H.264 lossless,
  a keyframe every 12 frames: the chunked path's input (four keyframe-aligned segments).
* Bad inputs for the error tests: a text file named ``.mp4``, a YUV4MPEG2 file whose video stream has no
  frames, and a 641x361 video (odd size, impossible in 4:2:0).

Generation is deterministic for a given ffmpeg/x264 build (single-threaded x264).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from .. import containers
from ..proc import run

log = logging.getLogger(__name__)

FPS = 24
SOURCE_8K = "source_8k.mp4"
SOURCE_8K_FRAMES = 8
CLIP = "clip_360p.mp4"
CLIP_FRAMES = 48
CLIP_GOP = 12

_X264_LOSSLESS = "-c:v libx264 -qp 0 -preset veryfast -threads 1 -pix_fmt yuv420p -bitexact -map_metadata -1"


def pattern_script(name: str, width: int, height: int, frames: int, gop: int) -> str:
    """Shell command writing ``name``: colour bars with a moving ``testsrc2`` patch, H.264 lossless."""
    pw, ph, step = width // 8, height // 8, width // 12
    return (
        "ffmpeg -hide_banner -nostdin -loglevel error -y -filter_complex "
        f"'smptehdbars=size={width}x{height}:rate={FPS}[bars];testsrc2=size={pw}x{ph}:rate={FPS}[patch];"
        f"[bars][patch]overlay=x=mod(n*{step}\\,{width - pw}):y={height * 5 // 12}:eof_action=endall,"
        f"format=yuv420p' -frames:v {frames} {_X264_LOSSLESS} -g {gop} -keyint_min {gop} -movflags +faststart {name}"
    )


_SCRIPTS = {
    SOURCE_8K: pattern_script(SOURCE_8K, 7680, 4320, SOURCE_8K_FRAMES, 4),
    CLIP: (
        "ffmpeg -hide_banner -nostdin -loglevel error -y "
        f"-f lavfi -i testsrc2=size=640x360:rate={FPS} -f lavfi -i sine=frequency=440:sample_rate=48000 "
        f"-frames:v {CLIP_FRAMES} -t {CLIP_FRAMES / FPS} {_X264_LOSSLESS} -g {CLIP_GOP} -keyint_min {CLIP_GOP} "
        f"-sc_threshold 0 -c:a aac -b:a 64k -shortest {CLIP}"
    ),
}

BAD = {
    "not_video.mp4": "printf 'this is a text file, not a video\\n' > not_video.mp4",
    # A YUV4MPEG2 header and no frames: ffprobe sees a 640x360 video stream that holds nothing.
    "zero_frames.y4m": "printf 'YUV4MPEG2 W640 H360 F24:1 Ip A1:1 C420jpeg\\n' > zero_frames.y4m",
    "odd_641x361.mkv": (
        "ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc=size=640x360:rate=24 "
        "-vf scale=641:361,format=yuv444p -frames:v 4 -c:v ffv1 odd_641x361.mkv"
    ),
}


def in_container(workdir: Path, script: str) -> None:
    image = containers.build(containers.get("ffmpeg"))
    # As root: the image's unprivileged user may not write to the caller's folder; generation is no task.
    run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{workdir}:/data", "-w", "/data",
         image, "bash", "-euo", "pipefail", "-c", script], what="generating HEVC test video", capture=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(out_dir: Path, names: tuple[str, ...] = (SOURCE_8K, CLIP)) -> dict[str, str]:
    """Write the named test videos to ``out_dir``; return {name: sha256}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(names) - set(_SCRIPTS)
    if unknown:
        raise ValueError(f"unknown test video(s): {', '.join(sorted(unknown))}")
    in_container(out_dir.resolve(), " && ".join(_SCRIPTS[n] for n in names))
    result = {n: sha256(out_dir / n) for n in names}
    for n in names:
        log.info("wrote %s (%d bytes)", out_dir / n, (out_dir / n).stat().st_size)
    return result


def generate_bad(out_dir: Path) -> dict[str, Path]:
    """Write the bad inputs (not a video, zero frames, odd size) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    in_container(out_dir.resolve(), " && ".join(BAD.values()))
    return {n: out_dir / n for n in BAD}


def write_bundled(out_dir: Path) -> dict[str, str]:
    """Regenerate ``inputs/hevc/``: the 8K source and its provenance record."""
    digests = generate(out_dir, (SOURCE_8K,))
    provenance = {
        "generator": "batchpipes.testdata.hevc (scripts/batchpipes/testdata/hevc.py)",
        "image": containers.get("ffmpeg").pinned,
        "files": {SOURCE_8K: {"sha256": digests[SOURCE_8K], "width": 7680, "height": 4320,
                              "frames": SOURCE_8K_FRAMES, "fps": FPS, "command": _SCRIPTS[SOURCE_8K]}},
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return digests
