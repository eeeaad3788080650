"""Test videos for wdl/hevc.wdl, made with ffmpeg's synthetic sources inside the ``ffmpeg`` image.

* ``source_8k.mp4`` (bundled in ``inputs/hevc/``): 7680x4320, 24 fps, 8 frames, SMPTE HD colour bars with
  a moving 960x540 ``testsrc2`` patch (every frame differs, so frame order matters), H.264 lossless
  (qp 0), a keyframe every 4 frames. A few hundred KB because the pattern compresses well.
* ``clip_360p.mp4``: 640x360, 24 fps, 48 frames of ``testsrc2`` with a 440 Hz AAC tone, H.264 lossless,
  a keyframe every 12 frames: the chunked path's input (four keyframe-aligned segments).
* Bad inputs for the error tests: a text file named ``.mp4``, a YUV4MPEG2 file whose video stream has no
  frames, and a 641x361 video (odd size, impossible in 4:2:0).

Generation is deterministic for a given ffmpeg/x264 build (single-threaded x264).

Real kinds of source (issue 11), ``KINDS`` (name -> shell command) and ``generate_kinds()``: a ProRes 422 HQ
master with 24-bit PCM and timecode, ProRes 4444 with 5.1 PCM, HDR10 (HEVC Main 10, PQ, mastering display and
MaxCLL/MaxFALL in SEI) in MP4 and Matroska, HLG, variable frame rate, open-GOP H.264 and HEVC, 59.94 fps, portrait
(upright, and rotated by a display matrix), an MPEG-TS intact / truncated / damaged, a proxy video stream listed
before the main one with two audio streams, an MP4 without its moov atom, interlaced, H.264 4:4:4, HEVC 4:2:2
10-bit, a cover picture larger than the video, anamorphic. ``EXPECTED`` is what each file is (ffprobe's
spelling); ``probe_kinds()`` / ``observe()`` measure a file the same way, ``mismatches()`` compares. All are small
(at most 640x360 and 48 frames, under 500 KB) and take well under 2 s each to make on one core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def in_container(workdir: Path, script: str, what: str = "generating HEVC test video") -> str:
    """Run the bash ``script`` in the ffmpeg image with ``workdir`` as its working folder; return its stdout."""
    image = containers.build(containers.get("ffmpeg"))
    # As root: the image's unprivileged user may not write to the caller's folder; generation is no task.
    proc = run(["podman", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{workdir}:/data", "-w",
                "/data", image, "bash", "-euo", "pipefail", "-c", script], what=what, capture=True)
    return proc.stdout.decode(errors="replace")


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


# ---------------------------------------------------------------------------------------------------------------
# Real kinds of source (issue 11): small files with the properties of the masters a media engineer brings. Each
# command is ffmpeg (plus coreutils for the damaged files), single-threaded and bit-exact, so a file is the same
# on every run with the same ffmpeg/x264/x265 build (Debian 12's 5.1 in the image; the host's identical build for
# development). EXPECTED holds what ffprobe says about each file: the truth the tests compare with.

_FF = "ffmpeg -hide_banner -nostdin -loglevel error -y"
# Bit-exact muxing and encoding (no version strings), no metadata copied from the lavfi inputs.
_EXACT = "-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1"
_X264 = "-c:v libx264 -preset veryfast -crf 23 -threads 1"
_X265 = "-c:v libx265 -preset ultrafast -crf 28"
# x265 runs single-threaded only without its thread pool and with one frame thread.
_X265_BASE = "log-level=error:pools=none:frame-threads=1"
_AAC = "-c:a aac -b:a 96k"

MASTERING_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
MAX_CLL = (1000, 400)


def _testsrc(size: str, rate: str) -> str:
    return f"-f lavfi -i testsrc2=size={size}:rate={rate}"


def _tones(seconds: str, layout: str = "stereo") -> str:
    """Audio at 48 kHz, one tone per channel so a channel mix-up shows: stereo L 440 Hz, R 660 Hz; 5.1 FL FR FC
    LFE BL BR 220 330 440 55 550 660 Hz."""
    freqs = {"stereo": (440, 660), "5.1": (220, 330, 440, 55, 550, 660)}[layout]
    tones = "|".join(f"0.3*sin(2*PI*{f}*t)" for f in freqs)
    return f"-f lavfi -i 'aevalsrc=exprs={tones}:channel_layout={layout}:sample_rate=48000:duration={seconds}'"


def _bars(width: int, height: int, rate: str) -> str:
    """Colour bars with a moving testsrc2 patch (every frame differs; compresses well in intra-only codecs)."""
    pw, ph = width // 4, height // 4
    return (f"smptehdbars=size={width}x{height}:rate={rate}[bars];testsrc2=size={pw}x{ph}:rate={rate}[patch];"
            f"[bars][patch]overlay=x=mod(n*{width // 16}\\,{width - pw}):y={height * 5 // 12}:eof_action=endall")


def _x265(params: str) -> str:
    return f"{_X265} -x265-params '{_X265_BASE}:{params}'"


_HDR10_PARAMS = (f"keyint=12:min-keyint=12:scenecut=0:open-gop=0:hdr10=1:hdr10-opt=1:repeat-headers=1:"
                 f"colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:"
                 f"master-display={MASTERING_DISPLAY}:max-cll={MAX_CLL[0]},{MAX_CLL[1]}")
# The encoder takes the colour description from the frames (setparams) and the output options together.
_BT709_FRAMES = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
_BT709_TAGS = "-color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv"
_BT2020_PQ_TAGS = "-color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -color_range tv"


def _hdr10(name: str) -> str:
    tag = "-tag:v hvc1 -movflags +faststart " if name.endswith(".mp4") else ""
    return (f"{_FF} {_testsrc('640x360', '24000/1001')} -vf format=yuv420p10le -frames:v 24 "
            f"{_x265(_HDR10_PARAMS)} {_BT2020_PQ_TAGS} {tag}{_EXACT} {name}")


def _broadcast_ts(name: str) -> str:
    """H.264 + AC-3 in MPEG-TS as a DVB channel carries it: 25 fps, 48 frames, a keyframe every 12."""
    return (f"{_FF} {_testsrc('640x360', '25')} {_tones('1.92')} -frames:v 48 {_X264} -g 12 -keyint_min 12 "
            f"-sc_threshold 0 -c:a ac3 -b:a 192k {_EXACT} {name}")


# Where corrupt_damaged.ts is overwritten: 6000 bytes of 0x55 (no TS sync byte) from byte 150000 on, in the middle
# of the 225412-byte stream: the demuxer drops one video packet (frame 34) and the decoder misses its reference.
DAMAGE_OFFSET, DAMAGE_BYTES = 150000, 6000

KINDS: dict[str, str] = {
    # ProRes 422 HQ master: 10-bit 4:2:2, 23.976, 24-bit PCM stereo, a timecode track (a data stream) at 01:00:00:00.
    # 320x180 and -bits_per_mb 128 keep it small (ProRes has a high floor per macroblock).
    "prores_422_10bit_pcm.mov": (
        f"{_FF} -filter_complex '{_bars(320, 180, '24000/1001')},{_BT709_FRAMES},format=yuv422p10le[v]' "
        f"{_tones('1.001')} "
        "-map '[v]' -map 0:a -frames:v 24 -c:v prores_ks -profile:v 3 -vendor apl0 -bits_per_mb 128 -threads 1 "
        f"{_BT709_TAGS} "
        f"-c:a pcm_s24le -timecode 01:00:00:00 {_EXACT} prores_422_10bit_pcm.mov"),
    # ProRes 4444 (4:4:4, decoded as 12-bit) with 5.1 24-bit PCM: half a second.
    "prores_4444_pcm51.mov": (
        f"{_FF} -filter_complex '{_bars(320, 180, '24000/1001')},{_BT709_FRAMES},format=yuv444p10le[v]' "
        f"{_tones('0.5005', '5.1')} "
        "-map '[v]' -map 0:a -frames:v 12 -c:v prores_ks -profile:v 4 -vendor apl0 -bits_per_mb 128 -threads 1 "
        f"{_BT709_TAGS} "
        f"-c:a pcm_s24le {_EXACT} prores_4444_pcm51.mov"),
    # HDR10: HEVC Main 10, PQ, BT.2020, mastering display + MaxCLL/MaxFALL in SEI (x265), closed GOP of 12.
    "hdr10.mp4": _hdr10("hdr10.mp4"),
    "hdr10.mkv": _hdr10("hdr10.mkv"),
    # HLG broadcast: HEVC Main 10, ARIB STD-B67, BT.2020, 50 fps, no HDR side data.
    "hlg.mp4": (
        f"{_FF} {_testsrc('640x360', '50')} -vf format=yuv420p10le -frames:v 24 "
        f"{_x265('keyint=12:min-keyint=12:scenecut=0:open-gop=0:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:range=limited')} "  # noqa: E501
        f"-color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc -color_range tv -tag:v hvc1 "
        f"{_EXACT} hlg.mp4"),
    # Variable frame rate (a phone): in 1/120 s ticks, frames 0-11 are 5 apart (24 fps), 12-35 are 2 apart
    # (60 fps), 36-47 are 5 apart again. r_frame_rate says 120/1: a "-r" taken from it would invent frames.
    "vfr.mp4": (
        f"{_FF} {_testsrc('640x360', '120')} {_tones('1.4')} "
        "-vf \"setpts='if(lt(N\\,12)\\,N*5\\,if(lt(N\\,36)\\,60+(N-12)*2\\,108+(N-36)*5))'\" -frames:v 48 "
        f"-fps_mode passthrough {_X264} -g 12 -keyint_min 12 -sc_threshold 0 {_AAC} {_EXACT} vfr.mp4"),
    # Open GOP H.264: IDR only at frame 0; later keyframes are I frames (recovery point SEI) whose leading B frames
    # reference the previous GOP.
    "open_gop_h264.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} {_tones('2')} -frames:v 48 {_X264} "
        f"-x264-params keyint=12:min-keyint=12:scenecut=0:open-gop=1 {_AAC} {_EXACT} open_gop_h264.mp4"),
    # Open GOP HEVC: IDR at frame 0, CRA keyframes every 12 with RASL leading pictures.
    "open_gop_hevc.mkv": (
        f"{_FF} {_testsrc('640x360', '24')} -frames:v 48 "
        f"{_x265('keyint=12:min-keyint=12:scenecut=0:open-gop=1')} {_EXACT} open_gop_hevc.mkv"),
    # 59.94 fps with AAC: 48 frames (0.8008 s), a keyframe every 12.
    "ntsc_5994.mp4": (
        f"{_FF} {_testsrc('640x360', '60000/1001')} {_tones('0.8008')} -frames:v 48 {_X264} -g 12 -keyint_min 12 "
        f"-sc_threshold 0 {_AAC} {_EXACT} ntsc_5994.mp4"),
    # Portrait, stored upright (360 wide, 640 high).
    "portrait.mp4": (
        f"{_FF} {_testsrc('360x640', '24')} {_tones('1')} -frames:v 24 {_X264} -g 12 -keyint_min 12 "
        f"-sc_threshold 0 {_AAC} {_EXACT} portrait.mp4"),
    # Portrait as phones write it: a 640x360 picture plus a display matrix (rotation 90). ffmpeg 5.1 writes the
    # matrix only when stream-copying with the "rotate" tag (-display_rotation came in 6.0; an encode drops the tag).
    "portrait_rotated.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} -frames:v 24 {_X264} -g 12 -keyint_min 12 -sc_threshold 0 "
        f"{_EXACT} portrait_rotated.tmp.mp4 && {_FF} -i portrait_rotated.tmp.mp4 -c copy -metadata:s:v:0 rotate=90 "
        f"{_EXACT} portrait_rotated.mp4 && rm portrait_rotated.tmp.mp4"),
    # The intact transport stream the two corrupt ones are made from.
    "broadcast.ts": _broadcast_ts("broadcast.ts"),
    # Cut off mid-file (not on a 188-byte packet boundary): the last frames are gone, the last one is broken.
    "corrupt_truncated.ts": (
        f"{_broadcast_ts('corrupt_truncated.tmp.ts')} && head -c 120000 corrupt_truncated.tmp.ts "
        "> corrupt_truncated.ts && rm corrupt_truncated.tmp.ts"),
    # Bytes overwritten in the middle (a bad sector, a dropped satellite burst).
    "corrupt_damaged.ts": (
        f"{_broadcast_ts('corrupt_damaged.ts')} && head -c {DAMAGE_BYTES} /dev/zero | tr '\\000' '\\125' "
        f"| dd of=corrupt_damaged.ts bs=1 seek={DAMAGE_OFFSET} conv=notrunc status=none"),
    # An edit proxy listed FIRST (320x180), the 640x360 picture second; stereo AAC and 5.1 AAC.
    "multistream_proxy_first.mkv": (
        f"{_FF} {_testsrc('640x360', '24')} {_tones('1')} {_tones('1', '5.1')} "
        "-filter_complex '[0:v]split[m][p];[p]scale=320:180[proxy]' -map '[proxy]' -map '[m]' -map 1:a -map 2:a "
        f"-frames:v 24 {_X264} -g 12 -keyint_min 12 -sc_threshold 0 -c:a:0 aac -b:a:0 96k -c:a:1 aac -b:a:1 192k "
        f"{_EXACT} multistream_proxy_first.mkv"),
    # A recording that stopped before the moov atom was written: mdat only, cut in the middle.
    "moov_missing.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} -frames:v 24 {_X264} {_EXACT} moov_missing.tmp.mp4 && "
        "head -c $(( $(stat -c %s moov_missing.tmp.mp4) / 2 )) moov_missing.tmp.mp4 > moov_missing.mp4 && "
        "rm moov_missing.tmp.mp4"),
    # Interlaced 25i (top field first), coded as interlaced H.264 (field DCT, field motion).
    "interlaced_tff.mp4": (
        f"{_FF} {_testsrc('640x360', '50')} -vf 'tinterlace=mode=interleave_top,setfield=tff' -frames:v 24 "
        f"{_X264} -g 12 -keyint_min 12 -sc_threshold 0 -flags +ildct+ilme -x264-params tff=1 {_EXACT} "
        "interlaced_tff.mp4"),
    # H.264 High 4:4:4 Predictive (8-bit 4:4:4): NVDEC cannot decode H.264 4:4:4.
    "h264_444.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} -vf format=yuv444p -frames:v 24 {_X264} -g 12 -keyint_min 12 "
        f"-sc_threshold 0 {_EXACT} h264_444.mp4"),
    # HEVC Main 4:2:2 10: NVDEC before Blackwell cannot decode 4:2:2.
    "hevc_422_10bit.mkv": (
        f"{_FF} {_testsrc('640x360', '24')} -vf format=yuv422p10le -frames:v 24 "
        f"{_x265('keyint=12:min-keyint=12:scenecut=0:open-gop=0')} {_EXACT} hevc_422_10bit.mkv"),
    # Cover art: a 1024x1024 JPEG attached picture (a video stream with the attached_pic disposition) that has
    # more pixels than the real 640x360 video: "the highest-resolution video stream" must skip it.
    "cover_art.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} -f lavfi -i smptebars=size=1024x1024:rate=1:duration=1 "
        f"{_tones('1')} -map 0:v -map 1:v -map 2:a -frames:v:0 24 {_X264} -g 12 -keyint_min 12 -sc_threshold 0 "
        f"-c:v:1 mjpeg -disposition:v:1 attached_pic {_AAC} {_EXACT} cover_art.mp4"),
    # Anamorphic (as HDV 1440x1080 is): 480x360 stored, sample aspect ratio 4:3, displayed 640x360 (16:9).
    "anamorphic.mp4": (
        f"{_FF} {_testsrc('640x360', '24')} -vf scale=480:360,setsar=4/3 -frames:v 24 {_X264} -g 12 "
        f"-keyint_min 12 -sc_threshold 0 {_EXACT} anamorphic.mp4"),
}


#: Runs a bash script in a folder and returns its stdout: :func:`in_container` (the default) or, for recording
#: fixtures with the host's identical ffmpeg, a plain local bash (tests/data/hevc_sources/record.py).
Runner = Callable[[Path, str], str]


def _names(names: tuple[str, ...] | None) -> tuple[str, ...]:
    chosen = tuple(KINDS) if names is None else names
    unknown = set(chosen) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown source kind(s): {', '.join(sorted(unknown))}")
    return chosen


def generate_kinds(out_dir: Path, names: tuple[str, ...] | None = None,
                   runner: Runner | None = None) -> dict[str, Path]:
    """Write the named real-kind sources (default: all of KINDS) to ``out_dir``, in the ffmpeg image by default."""
    chosen = _names(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = " && ".join(KINDS[n] for n in chosen)
    if runner is None:
        in_container(out_dir.resolve(), script, what="generating HEVC source kinds")
    else:
        runner(out_dir.resolve(), script)
    for n in chosen:
        log.info("wrote %s (%d bytes)", out_dir / n, (out_dir / n).stat().st_size)
    return {n: out_dir / n for n in chosen}


# ---------------------------------------------------------------------------------------------------------------
# What the files are: probe_script() runs ffprobe/ffmpeg on one file and leaves raw outputs in "<name>.probe/";
# observe() turns them into the facts EXPECTED states. The tests run probe_script in the image on fresh files
# (containers lane) and observe() on outputs recorded from the host's identical ffmpeg (tests/data/hevc_sources/).

def _video_index(name: str) -> int | None:
    """The main video stream: None for a file ffprobe cannot open."""
    video = EXPECTED[name].get("video")
    return None if video is None else int(video["index"])


def probe_script(name: str) -> str:
    """Shell commands writing ffprobe's view of ``name`` to ``<name>.probe/``: format and streams (and ffprobe's
    error text), the main video stream's packets, its first frame's side data, a full decode's frame and packet
    counts with the decoder's error lines (decoding single-threaded: frame threads report damage differently),
    and, split by stream copy at every keyframe (as naive chunking does), the packets and decoded frames of each
    piece."""
    d = f"{name}.probe"
    lines = [f"rm -rf {d} && mkdir {d}",
             f"(ffprobe -v error -show_format -show_streams -of json {name} > {d}/streams.json "
             f"2> {d}/streams.err || true)"]
    index = _video_index(name)
    if index is not None:
        ext = name.rsplit(".", 1)[1]
        lines += [
            f"ffprobe -v error -select_streams {index} -show_entries packet=pts,dts,flags -of csv=p=0 {name} "
            f"> {d}/packets.csv",
            f"ffprobe -v error -select_streams {index} -show_frames -read_intervals '%+#1' -of json {name} "
            f"> {d}/frame0.json 2> /dev/null",
            f"ffprobe -v error -threads 1 -count_frames -count_packets -select_streams {index} "
            f"-show_entries stream=nb_read_frames,nb_read_packets -of csv=p=0 {name} > {d}/count.csv "
            f"2> {d}/decode_errors.txt",
            f"ffmpeg -hide_banner -nostdin -v warning -threads 1 -i {name} -map 0:{index} -fps_mode passthrough "
            f"-f null - 2> {d}/decode_warnings.txt",
            f"ffmpeg -hide_banner -nostdin -v error -i {name} -map 0:{index} -c copy -f segment -segment_time 0.001 "
            f"{d}/piece%02d.{ext} 2> /dev/null",
            # (the last row: for MPEG-TS ffprobe prints the program's stream first)
            f"for p in {d}/piece*.{ext}; do ffprobe -v error -threads 1 -count_frames -count_packets "
            f"-select_streams 0 -show_entries stream=nb_read_packets,nb_read_frames -of csv=p=0 $p 2> /dev/null "
            f"| grep . | tail -n 1; done > {d}/pieces.csv",
            f"rm {d}/piece*.{ext}",
        ]
    return " && ".join(lines)


def probe_kinds(folder: Path, names: tuple[str, ...] | None = None,
                runner: Runner | None = None) -> dict[str, dict[str, Any]]:
    """Run :func:`probe_script` on the named kinds in ``folder`` (in the ffmpeg image by default); their facts."""
    chosen = _names(names)
    script = " && ".join(probe_script(n) for n in chosen)
    if runner is None:
        in_container(folder.resolve(), script, what="probing HEVC source kinds")
    else:
        runner(folder.resolve(), script)
    return {n: observe(folder, n) for n in chosen}


def _bit_depth(pix_fmt: str) -> int:
    for depth in (16, 14, 12, 10, 9):
        if pix_fmt.endswith((f"p{depth}le", f"p{depth}be")):
            return depth
    return 8


def _chroma(pix_fmt: str) -> str:
    for chroma in ("420", "422", "444"):
        if pix_fmt.startswith((f"yuv{chroma}p", f"yuvj{chroma}p", f"yuva{chroma}p")):
            return chroma
    return "other"


def _csv_rows(path: Path) -> list[list[str]]:
    return [line.rstrip(",").split(",") for line in path.read_text().splitlines() if line.strip()]


def _packets(path: Path) -> list[tuple[int, bool]]:
    """(pts, key) of each packet in decode order (ffprobe csv rows "pts,dts,flags"; pts falls back to dts)."""
    rows = _csv_rows(path)
    return [(int(r[0] if r[0] != "N/A" else r[1]), "K" in r[2]) for r in rows]


def _timing(packets: list[tuple[int, bool]]) -> dict[str, Any]:
    """Keyframes (display-order indices), leading pictures per keyframe after the first, VFR, sorted pts."""
    pts = sorted(p for p, _ in packets)
    leading = []
    for n, (key_pts, key) in enumerate(packets):
        if key and n > 0:
            gop = []  # the packets after this keyframe in decode order, up to the next keyframe
            for later_pts, later_key in packets[n + 1:]:
                if later_key:
                    break
                gop.append(later_pts)
            leading.append(sum(1 for q in gop if q < key_pts))
    deltas = sorted({b - a for a, b in zip(pts, pts[1:], strict=False)})
    return {"keyframes": [pts.index(p) for p, key in packets if key], "leading": leading, "open_gop": any(leading),
            # Millisecond time bases (Matroska) round 1001/24000 s to 41 or 42: one tick of jitter is no VFR.
            "vfr": bool(deltas) and deltas[-1] - deltas[0] > 1, "pts": pts}


def _side_data(entries: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = next((e for e in entries if e.get("side_data_type") == kind), None)
    return None if found is None else {k: v for k, v in found.items() if k != "side_data_type"}


def _no_address(text: str) -> str:
    """ffmpeg's message without the context address ("[h264 @ 0x55d0e70fd900]" -> "[h264]"): it changes per run."""
    return re.sub(r" @ 0x[0-9a-f]+\]", "]", text)


def observe(folder: Path, name: str) -> dict[str, Any]:
    """The facts about ``name`` that EXPECTED states, from the outputs of :func:`probe_script` in ``folder``."""
    d = folder / f"{name}.probe"
    doc = json.loads((d / "streams.json").read_text() or "{}")
    facts: dict[str, Any] = {"probe_error": _no_address((d / "streams.err").read_text().strip())}
    if "format" not in doc:
        return facts
    streams = doc["streams"]
    facts["format"] = doc["format"]["format_name"]
    facts["streams"] = [f"{s['codec_type']}:{s.get('codec_name', s.get('codec_tag_string'))}"
                        + ("+attached_pic" if s.get("disposition", {}).get("attached_pic") else "") for s in streams]
    facts["audio"] = [{"index": s["index"], "codec": s["codec_name"], "sample_fmt": s["sample_fmt"],
                       "bits": s.get("bits_per_raw_sample") and int(s["bits_per_raw_sample"]) or None,
                       "sample_rate": int(s["sample_rate"]), "channels": s["channels"],
                       "channel_layout": s.get("channel_layout")}
                      for s in streams if s["codec_type"] == "audio"]
    facts["video_sizes"] = [f"{s['width']}x{s['height']}" for s in streams if s["codec_type"] == "video"]
    facts["timecode"] = next((s["tags"]["timecode"] for s in streams if s.get("tags", {}).get("timecode")), None)
    index = _video_index(name)
    if index is None:
        return facts
    s = streams[index]
    frame0_text = (d / "frame0.json").read_text().strip()
    frame0 = json.loads(frame0_text)["frames"][0] if frame0_text else {}
    hdr = {"mastering_display": _side_data(frame0.get("side_data_list", []), "Mastering display metadata"),
           "content_light": _side_data(frame0.get("side_data_list", []), "Content light level metadata")}
    rotation = next((x["rotation"] for x in s.get("side_data_list", []) if "rotation" in x), None)
    frames, packets = (int(x) for x in _csv_rows(d / "count.csv")[0][:2])
    # Without the null muxer's complaints about timestamps (Matroska's 1 ms time base with B frames).
    warnings = [_no_address(line) for line in (d / "decode_warnings.txt").read_text().splitlines()
                if not line.startswith("[null @")]
    facts["video"] = {
        "index": index, "codec": s["codec_name"], "profile": s.get("profile"), "pix_fmt": s["pix_fmt"],
        "bit_depth": _bit_depth(s["pix_fmt"]), "chroma": _chroma(s["pix_fmt"]),
        "width": s["width"], "height": s["height"], "sar": s.get("sample_aspect_ratio"),
        "time_base": s["time_base"], "frame_rate": s["r_frame_rate"], "avg_frame_rate": s["avg_frame_rate"],
        "field_order": s.get("field_order"), "rotation": rotation,
        "colour": {"primaries": s.get("color_primaries"), "transfer": s.get("color_transfer"),
                   "matrix": s.get("color_space"), "range": s.get("color_range")},
        "hdr": hdr, "packets": packets, "frames": frames, **_timing(_packets(d / "packets.csv")),
        "decode_errors": len((d / "decode_errors.txt").read_text().splitlines()),
        "decode_warnings": len(warnings), "decode_messages": warnings,
        "pieces": [[int(r[1]), int(r[0])] for r in _csv_rows(d / "pieces.csv")],
    }
    return facts



# ---------------------------------------------------------------------------------------------------------------
# EXPECTED: what each kind is, in ffprobe's spelling (ffmpeg 5.1.9-0+deb12u1, recorded on the host's identical
# build; tests/data/hevc_sources/). "video" is the main video stream, with the keys of the probe's source_info.json
# "video" object plus: frames (decoded, ffprobe -count_frames), sar, avg_frame_rate, field_order, rotation (display
# matrix), keyframes (display-order indices of the packets flagged key), leading (per keyframe after the first: the
# packets after it in decode order that are shown before it, i.e. that need the previous GOP), open_gop, pts (the
# sorted packet pts in time_base units; given for the VFR file), decode_errors / decode_warnings (lines ffprobe prints
# at -v error while counting frames / ffmpeg prints at -v warning while decoding the stream), pieces ([packets,
# decoded frames] of each piece when the stream is split by stream copy at every keyframe, as naive chunking does).

_UNTAGGED = {"primaries": None, "transfer": None, "matrix": None, "range": None}
_BT709 = {"primaries": "bt709", "transfer": "bt709", "matrix": "bt709", "range": "tv"}
_BT2020_PQ = {"primaries": "bt2020", "transfer": "smpte2084", "matrix": "bt2020nc", "range": "tv"}
_NO_HDR: dict[str, Any] = {"mastering_display": None, "content_light": None}
# MASTERING_DISPLAY and MAX_CLL as ffprobe shows the frame side data x265 wrote (SEI): chromaticities in
# 1/50000, luminance in 1/10000 cd/m2.
HDR10_SIDE_DATA = {
    "mastering_display": {"red_x": "34000/50000", "red_y": "16000/50000", "green_x": "13250/50000",
                          "green_y": "34500/50000", "blue_x": "7500/50000", "blue_y": "3000/50000",
                          "white_point_x": "15635/50000", "white_point_y": "16450/50000",
                          "min_luminance": "50/10000", "max_luminance": "10000000/10000"},
    "content_light": {"max_content": 1000, "max_average": 400},
}


def _video(**changes: Any) -> dict[str, Any]:
    """The facts of a 640x360 24 fps H.264 High stream in MP4 (24 frames, keyframes at 0 and 12), changed."""
    base: dict[str, Any] = {
        "index": 0, "codec": "h264", "profile": "High", "pix_fmt": "yuv420p", "bit_depth": 8, "chroma": "420",
        "width": 640, "height": 360, "sar": "1:1", "time_base": "1/12288", "frame_rate": "24/1",
        "avg_frame_rate": "24/1", "field_order": "progressive", "rotation": None, "colour": _UNTAGGED,
        "hdr": _NO_HDR, "packets": 24, "frames": 24, "keyframes": [0, 12], "leading": [0], "open_gop": False,
        "vfr": False, "decode_errors": 0, "decode_warnings": 0, "pieces": [[12, 12], [12, 12]],
    }
    unknown = set(changes) - set(base) - {"pts", "decode_messages"}
    if unknown:
        raise ValueError(f"unknown video fact(s): {sorted(unknown)}")
    return {**base, **changes}


def _audio(index: int, codec: str, layout: str = "stereo", sample_fmt: str = "fltp",
           bits: int | None = None) -> dict[str, Any]:
    return {"index": index, "codec": codec, "sample_fmt": sample_fmt, "bits": bits, "sample_rate": 48000,
            "channels": {"stereo": 2, "5.1": 6}[layout], "channel_layout": layout}


_MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
_MKV = "matroska,webm"
_GOP12_48 = {"packets": 48, "frames": 48, "keyframes": [0, 12, 24, 36], "leading": [0, 0, 0],
             "pieces": [[12, 12]] * 4}
_TS = {"time_base": "1/90000", "frame_rate": "25/1", "avg_frame_rate": "25/1"}
_TS_STREAMS = ["video:h264", "audio:ac3"]
# VFR: 1/120 s ticks 0,5,...,55 | 60,62,...,106 | 108,113,...,163; in the MP4's 1/15360 time base (x128).
VFR_TICKS = [5 * n for n in range(12)] + [60 + 2 * n for n in range(24)] + [108 + 5 * n for n in range(12)]

EXPECTED: dict[str, dict[str, Any]] = {
    "prores_422_10bit_pcm.mov": {
        "format": _MP4, "streams": ["video:prores", "audio:pcm_s24le", "data:tmcd"], "timecode": "01:00:00:00",
        "audio": [_audio(1, "pcm_s24le", sample_fmt="s32", bits=24)],
        "video": _video(codec="prores", profile="HQ", pix_fmt="yuv422p10le", bit_depth=10, chroma="422",
                        width=320, height=180, time_base="1/24000", frame_rate="24000/1001",
                        avg_frame_rate="24000/1001", colour=_BT709, keyframes=list(range(24)), leading=[0] * 23,
                        pieces=[[1, 1]] * 24),
    },
    "prores_4444_pcm51.mov": {
        "format": _MP4, "streams": ["video:prores", "audio:pcm_s24le"], "timecode": None,
        "audio": [_audio(1, "pcm_s24le", "5.1", sample_fmt="s32", bits=24)],
        # ffmpeg's ProRes decoder gives 4444 as 12-bit.
        "video": _video(codec="prores", profile="4444", pix_fmt="yuv444p12le", bit_depth=12, chroma="444",
                        width=320, height=180, time_base="1/24000", frame_rate="24000/1001",
                        avg_frame_rate="24000/1001", colour=_BT709, packets=12, frames=12,
                        keyframes=list(range(12)), leading=[0] * 11, pieces=[[1, 1]] * 12),
    },
    "hdr10.mp4": {
        "format": _MP4, "streams": ["video:hevc"], "audio": [],
        "video": _video(codec="hevc", profile="Main 10", pix_fmt="yuv420p10le", bit_depth=10,
                        time_base="1/24000", frame_rate="24000/1001", avg_frame_rate="24000/1001",
                        colour=_BT2020_PQ, hdr=HDR10_SIDE_DATA),
    },
    "hdr10.mkv": {
        "format": _MKV, "streams": ["video:hevc"], "audio": [],
        "video": _video(codec="hevc", profile="Main 10", pix_fmt="yuv420p10le", bit_depth=10,
                        time_base="1/1000", frame_rate="24000/1001", avg_frame_rate="24000/1001",
                        colour=_BT2020_PQ, hdr=HDR10_SIDE_DATA),
    },
    "hlg.mp4": {
        "format": _MP4, "streams": ["video:hevc"], "audio": [],
        "video": _video(codec="hevc", profile="Main 10", pix_fmt="yuv420p10le", bit_depth=10,
                        time_base="1/12800", frame_rate="50/1", avg_frame_rate="50/1",
                        colour={**_BT2020_PQ, "transfer": "arib-std-b67"}),
    },
    "vfr.mp4": {
        "format": _MP4, "streams": ["video:h264", "audio:aac"], "audio": [_audio(1, "aac")],
        # r_frame_rate is the finest step (1/120 s); the average is 48 frames over 164/120 s.
        "video": _video(time_base="1/15360", frame_rate="120/1", avg_frame_rate="1440/41", vfr=True,
                        pts=[t * 128 for t in VFR_TICKS], **_GOP12_48),
    },
    "open_gop_h264.mp4": {
        "format": _MP4, "streams": ["video:h264", "audio:aac"], "audio": [_audio(1, "aac")],
        # Split at every keyframe, 6 of 48 frames are lost: the leading B frames cannot be decoded.
        "video": _video(**{**_GOP12_48, "leading": [1, 3, 2], "open_gop": True,
                           "pieces": [[11, 11], [10, 9], [13, 10], [14, 12]]}),
    },
    "open_gop_hevc.mkv": {
        "format": _MKV, "streams": ["video:hevc"], "audio": [],
        # CRA keyframes with 3 RASL pictures each: naive pieces decode 39 of 48 frames.
        "video": _video(**{**_GOP12_48, "codec": "hevc", "profile": "Main", "time_base": "1/1000",
                           "colour": {**_UNTAGGED, "range": "tv"}, "leading": [3, 3, 3], "open_gop": True,
                           "pieces": [[9, 9], [12, 9], [12, 9], [15, 12]]}),
    },
    "ntsc_5994.mp4": {
        "format": _MP4, "streams": ["video:h264", "audio:aac"], "audio": [_audio(1, "aac")],
        "video": _video(time_base="1/60000", frame_rate="60000/1001", avg_frame_rate="60000/1001", **_GOP12_48),
    },
    "portrait.mp4": {
        "format": _MP4, "streams": ["video:h264", "audio:aac"], "audio": [_audio(1, "aac")],
        "video": _video(width=360, height=640),
    },
    "portrait_rotated.mp4": {
        "format": _MP4, "streams": ["video:h264"], "audio": [],
        "video": _video(rotation=90),
    },
    "broadcast.ts": {
        "format": "mpegts", "streams": _TS_STREAMS, "audio": [_audio(1, "ac3")],
        "video": _video(**_TS, **_GOP12_48),
    },
    "corrupt_truncated.ts": {
        "format": "mpegts", "streams": _TS_STREAMS, "audio": [_audio(1, "ac3")],
        # 25 of 48 frames left; the last one is broken, yet counted as decoded.
        "video": _video(**_TS, packets=25, frames=25, keyframes=[0, 12, 24], leading=[0, 0], decode_errors=2,
                        decode_warnings=3, decode_messages=[
                            "[h264] cabac decode of qscale diff failed at 26 15",
                            "[h264] error while decoding MB 26 15, bytestream -10",
                            "corrupt_truncated.ts: corrupt decoded frame in stream 0"],
                        pieces=[[12, 12], [12, 12], [1, 1]]),
    },
    "corrupt_damaged.ts": {
        "format": "mpegts", "streams": _TS_STREAMS, "audio": [_audio(1, "ac3")],
        # Frame 34 (pts 255600) is gone; the gap makes the timestamps look variable. The decoder's messages (with
        # -threads 1; frame threads print fewer "corrupt decoded frame" lines) are these:
        "video": _video(**{**_TS, **_GOP12_48, "packets": 47, "frames": 47, "keyframes": [0, 12, 24, 35],
                           "vfr": True, "decode_errors": 2, "decode_warnings": 7, "decode_messages": [
                               "[mpegts] Packet corrupt (stream = 0, dts = 234000).",
                               "[mpegts] Packet corrupt (stream = 0, dts = 234000).",
                               "[mpegts] Packet corrupt (stream = 0, dts = 234000).",
                               "corrupt_damaged.ts: corrupt input packet in stream 0",
                               "corrupt_damaged.ts: corrupt decoded frame in stream 0",
                               "[h264] reference picture missing during reorder",
                               "[h264] Missing reference picture, default is 65552"],
                           "pieces": [[12, 12], [12, 12], [11, 11], [12, 12]]}),
    },
    "multistream_proxy_first.mkv": {
        "format": _MKV, "streams": ["video:h264", "video:h264", "audio:aac", "audio:aac"],
        "video_sizes": ["320x180", "640x360"],
        "audio": [_audio(2, "aac"), _audio(3, "aac", "5.1")],
        "video": _video(index=1, time_base="1/1000"),
    },
    "moov_missing.mp4": {
        "probe_error": f"[{_MP4}] moov atom not found\nmoov_missing.mp4: Invalid data found when processing input",
    },
    "interlaced_tff.mp4": {
        "format": _MP4, "streams": ["video:h264"], "audio": [],
        "video": _video(time_base="1/12800", frame_rate="25/1", avg_frame_rate="25/1", field_order="tt"),
    },
    "h264_444.mp4": {
        "format": _MP4, "streams": ["video:h264"], "audio": [],
        "video": _video(profile="High 4:4:4 Predictive", pix_fmt="yuv444p", chroma="444"),
    },
    "hevc_422_10bit.mkv": {
        "format": _MKV, "streams": ["video:hevc"], "audio": [],
        # ffprobe 5.1 names every range-extensions profile (Main 4:2:2 10 here) "Rext".
        "video": _video(codec="hevc", profile="Rext", pix_fmt="yuv422p10le", bit_depth=10, chroma="422",
                        time_base="1/1000", colour={**_UNTAGGED, "range": "tv"}),
    },
    "cover_art.mp4": {
        "format": _MP4, "streams": ["video:h264", "audio:aac", "video:mjpeg+attached_pic"],
        "video_sizes": ["640x360", "1024x1024"],
        "audio": [_audio(1, "aac")],
        "video": _video(decode_warnings=1, decode_messages=["[mov,mp4,m4a,3gp,3g2,mj2] stream 0, timescale not set"]),
    },
    "anamorphic.mp4": {
        "format": _MP4, "streams": ["video:h264"], "audio": [],
        "video": _video(width=480, sar="4:3"),
    },
}


def mismatches(expected: Any, observed: Any, where: str = "") -> list[str]:
    """Where ``observed`` differs from ``expected``; dicts are compared on the expected keys only."""
    if isinstance(expected, dict):
        if not isinstance(observed, dict):
            return [f"{where or '.'}: expected a mapping, got {observed!r}"]
        return [m for k, v in expected.items()
                for m in (mismatches(v, observed[k], f"{where}.{k}") if k in observed else [f"{where}.{k}: missing"])]
    return [] if expected == observed else [f"{where or '.'}: expected {expected!r}, got {observed!r}"]
