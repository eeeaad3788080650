"""The probe of the HEVC workflow's source (``hevc-tasks probe``): everything the run needs to plan, from metadata and
one demux pass, at a cost that does not grow with decoding work.

ffprobe runs three times, none of them decoding the video:

1. ``-show_streams -show_format``: containers, codecs, sizes, colour tags, stream side data;
2. one demux pass over the chosen video stream's packets (``-show_entries packet=pts,dts,duration,flags``): the
   packet count (the frame count for planning and disk sizing), the keyframes and the timestamps (constant or
   variable frame rate), and the demuxer's corrupt-packet warnings (a damaged transport stream shows here);
3. the first frame of the chosen stream only (``-read_intervals %+#1``): its colour tags and HDR side data (mastering
   display, content light level), which HEVC and H.264 carry in SEI messages rather than in the container.

The exact decoded frame count is established where frames are decoded anyway: the encode task counts them.
Every problem is one ``TaskError`` line naming it and the fix; ffprobe's own cause (``moov atom not found``) is kept.
"""

from __future__ import annotations

import bisect
import json
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from task_common import TaskError

#: Audio codecs each output container carries unchanged (audio = copy, or auto's copy).
COPYABLE = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "mp2", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                      "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_u8"}),
}
#: AAC bitrate for a transcoded audio stream: this many kbit/s per channel (stereo 192 kbit/s, 5.1 576 kbit/s).
AAC_KBPS_PER_CHANNEL = 96
#: Channel layouts ffmpeg 5.1's AAC encoder writes so that they read back the same (measured: an AAC file of
#: 5.1(side), 6.1, 7.0 or 7.1(wide) reads back as "unknown").
AAC_LAYOUTS = frozenset({"mono", "stereo", "2.1", "3.0", "3.0(back)", "4.0", "quad", "quad(side)", "5.0", "5.1",
                         "6.0(front)", "7.1"})
#: Layouts AAC cannot signal that have an equivalent it can: the side pair carried as the surround (back) pair,
#: channel for channel, as broadcast tools do for 5.1 from a WAV/MOV master.
AAC_EQUIVALENT = {"5.1(side)": "5.1", "5.0(side)": "5.0"}
#: The largest picture each encoder accepts (NVENC HEVC: 8192x8192; x265 has no lower hard limit than that).
ENCODER_MAX = {"libx265": (16384, 8704), "hevc_nvenc": (8192, 8192)}
#: ffprobe's names of the colour properties kept in the output, by the name used in the report.
COLOUR_KEYS = {"primaries": "color_primaries", "transfer": "color_transfer", "matrix": "color_space",
               "range": "color_range"}
MASTERING_KEYS = ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_point_x", "white_point_y",
                  "min_luminance", "max_luminance")


def cause(stderr: str, source: str) -> str:
    """ffprobe's own reason, the most specific line: a demuxer's line (``[mov,mp4,... @ 0x..] moov atom not found``)
    wins over the generic last line (``<file>: Invalid data found when processing input``)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    specific = [re.sub(r"^\[[^]]*@ 0x[0-9a-f]+\]\s*", "", ln) for ln in lines if re.match(r"^\[[^]]*@ 0x", ln)]
    if specific:
        return specific[0]
    if not lines:
        return "no message"
    return lines[-1].removeprefix(f"{source}: ")


def run_ffprobe(args: list[str], source: str, failure: str) -> tuple[str, str]:
    """Run ffprobe; TaskError ``failure`` (with ``{why}``: ffprobe's cause) when it fails. (stdout, stderr)."""
    proc = subprocess.run(["ffprobe", "-hide_banner", *args, source], capture_output=True, text=True,
                          errors="replace", check=False)
    if proc.returncode != 0:
        raise TaskError(failure.format(why=cause(proc.stderr, source)))
    return proc.stdout, proc.stderr


def ffprobe_json(args: list[str], source: str, failure: str) -> dict[str, Any]:
    """ffprobe's JSON answer (``-v error``) to ``args`` about ``source``; TaskError ``failure`` (``{why}``: its
    cause) when it fails."""
    out, _ = run_ffprobe(["-v", "error", *args, "-of", "json"], source, failure)
    return load_json(out, source)


def load_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise TaskError(f"unreadable ffprobe output for {what}: {exc}") from exc
    return data if isinstance(data, dict) else {}


# -- streams ---------------------------------------------------------------------------------------


def describe(stream: dict[str, Any]) -> str:
    """``#1 (h264 640x360)`` / ``#2 (aac, 2 channels)``: how a message names a stream."""
    if stream.get("codec_type") == "video":
        return f"#{stream.get('index')} ({stream.get('codec_name')} {stream.get('width')}x{stream.get('height')})"
    return f"#{stream.get('index')} ({stream.get('codec_name')}, {stream.get('channels')} channels)"


def video_streams(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The real video streams: cover art and other attached pictures are not video."""
    return [s for s in streams if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")]


def choose_video(streams: list[dict[str, Any]], wanted: int | None, name: str) -> dict[str, Any]:
    """The video stream to encode: ``wanted`` (an ffprobe stream index) or, by default, the one with the most pixels
    (a proxy or thumbnail stream listed first is not the master); the first of equals."""
    video = video_streams(streams)
    if not video:
        raise TaskError(f"source {name} has no video stream: give a video file")
    if wanted is None:
        return max(video, key=lambda s: (int(s.get("width") or 0) * int(s.get("height") or 0),
                                         -int(s.get("index") or 0)))
    chosen = [s for s in video if s.get("index") == wanted]
    if not chosen:
        kind = next((str(s.get("codec_type")) for s in streams if s.get("index") == wanted), None)
        what = f"is {kind}, not video" if kind else "does not exist"
        raise TaskError(f"video_stream {wanted} of {name} {what}: choose one of its video streams "
                        f"{', '.join(describe(s) for s in video)}")
    return chosen[0]


def choose_audio(streams: list[dict[str, Any]], wanted: int | None, name: str) -> list[dict[str, Any]]:
    """The audio streams to keep: ``wanted`` (an ffprobe stream index) alone, or by default every audio stream."""
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if wanted is None:
        return audio
    chosen = [s for s in audio if s.get("index") == wanted]
    if not chosen:
        kind = next((str(s.get("codec_type")) for s in streams if s.get("index") == wanted), None)
        what = f"is {kind}, not audio" if kind else "does not exist"
        listing = ", ".join(describe(s) for s in audio) or "none"
        raise TaskError(f"audio_stream {wanted} of {name} {what}: choose one of its audio streams ({listing}), "
                        "or leave audio_stream unset")
    return chosen


def audio_plan(audio: list[dict[str, Any]], mode: str, container: str) -> list[dict[str, Any]]:
    """What happens to each kept audio stream: ``copy`` or ``aac`` (at AAC_KBPS_PER_CHANNEL, channel layout kept).
    auto copies what ``container`` carries and transcodes the rest; copy refuses what it cannot carry."""
    if mode == "none":
        return []
    plan = []
    for s in audio:
        codec = str(s.get("codec_name"))
        channels = int(s.get("channels") or 2)
        carried = codec in COPYABLE[container]
        if mode == "copy" and not carried:
            hint = "set audio to auto or aac, or container to mov" if container == "mp4" and codec in COPYABLE["mov"] \
                else "set audio to auto or aac"
            raise TaskError(f"source audio stream {describe(s)} is {codec}, which {container.upper()} cannot carry "
                            f"unchanged: {hint}")
        action = "copy" if mode != "aac" and carried else "aac"
        layout = str(s.get("channel_layout") or "")
        entry: dict[str, Any] = {"index": s.get("index"), "codec": codec, "channels": channels,
                                 "channel_layout": layout or None,
                                 "sample_rate": int(s.get("sample_rate") or 0), "action": action}
        if action == "aac":
            entry["kbps"] = AAC_KBPS_PER_CHANNEL * channels
            if layout in AAC_EQUIVALENT:
                entry["aac_layout"] = AAC_EQUIVALENT[layout]
            elif layout and layout not in AAC_LAYOUTS:
                raise TaskError(f"source audio stream {describe(s)} has the channel layout {layout}, which AAC cannot "
                                "carry: set container to mov with audio auto or copy (PCM is kept there), choose "
                                "another audio_stream, or set audio to none")
        plan.append(entry)
    return plan


def bit_depth(stream: dict[str, Any]) -> int:
    raw = stream.get("bits_per_raw_sample")
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return int(raw)
    m = re.search(r"p(\d+)(le|be)?$", str(stream.get("pix_fmt", "")))
    return int(m.group(1)) if m else 8


def chroma(pix_fmt: str) -> str:
    """4:2:0, 4:2:2 or 4:4:4 from ffmpeg's pixel format name (``other`` for RGB, grey and the rest)."""
    if re.match(r"^(yuv|yuvj)420|^nv12|^nv21|^p010|^p016", pix_fmt):
        return "420"
    if re.match(r"^(yuv|yuvj)422|^nv16|^y210|^uyvy|^yuyv", pix_fmt):
        return "422"
    if re.match(r"^(yuv|yuvj)444|^nv24", pix_fmt):
        return "444"
    return "other"


def colour(stream: dict[str, Any]) -> dict[str, str | None]:
    """Primaries, transfer, matrix and range as ffprobe names them; ``unknown``/absent -> None."""
    out: dict[str, str | None] = {}
    for key, probe_key in COLOUR_KEYS.items():
        value = stream.get(probe_key)
        out[key] = str(value) if value not in (None, "", "unknown", "reserved") else None
    return out


def _units(value: Any, unit: int) -> int:
    """A rational as ffprobe prints it (``13250/50000`` from an SEI, ``53/200`` from Matroska) in 1/``unit``."""
    try:
        return round(Fraction(str(value)) * unit)
    except (ValueError, ZeroDivisionError) as exc:
        raise TaskError(f"unreadable HDR metadata value {value!r} in ffprobe's report") from exc


def hdr_metadata(side_data: list[dict[str, Any]]) -> dict[str, Any]:
    """Mastering display and content light level from a side data list (the first of each kind wins: give the
    frame's before the container's). Chromaticities are in 0.00002 and luminances in 0.0001 cd/m², the units of
    the HEVC SEI and of x265's ``master-display`` (so values from an SEI and from Matroska's floats compare);
    ``max_content``/``max_average`` in cd/m². Absent ones are None."""
    mastering = next((d for d in side_data if d.get("side_data_type") == "Mastering display metadata"), None)
    light = next((d for d in side_data if d.get("side_data_type") == "Content light level metadata"), None)
    return {
        "mastering_display": {k: _units(mastering[k], 10000 if k.endswith("luminance") else 50000)
                              for k in MASTERING_KEYS}
        if mastering and all(k in mastering for k in MASTERING_KEYS) else None,
        "content_light": {"max_content": int(light.get("max_content", 0)),
                          "max_average": int(light.get("max_average", 0))} if light else None,
    }


def rotation(stream: dict[str, Any]) -> int:
    """Display rotation in degrees (display matrix side data, or the legacy ``rotate`` tag); 0 when none."""
    for d in stream.get("side_data_list") or []:
        if "rotation" in d:
            return int(float(d["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) if isinstance(tag, str) and re.fullmatch(r"-?\d+", tag) else 0


# -- the demux pass --------------------------------------------------------------------------------


@dataclass
class PacketScan:
    """What one demux pass over the video stream's packets shows (no decoding)."""

    packets: int = 0
    pts: list[int] = field(default_factory=list)          # presentation timestamps, sorted, in the stream's time base
    keyframes: list[int] = field(default_factory=list)    # presentation timestamps of the keyframe packets, sorted
    discarded: int = 0                                    # packets flagged D (not for output)
    corrupt: int = 0                                      # the demuxer's "Packet corrupt" warnings for this stream
    durations: list[int] = field(default_factory=list)    # packet durations as the container gives them
    order: list[tuple[int, bool]] = field(default_factory=list)  # (pts, keyframe) in decode order

    def frame_intervals(self) -> list[int]:
        return [b - a for a, b in zip(self.pts, self.pts[1:], strict=False)]


def scan_packets(csv_text: str, stderr: str = "") -> PacketScan:
    """Parse ``-show_entries packet=pts,dts,duration,flags -of csv=p=0`` lines (``pts,dts,duration,flags``; a missing
    value is ``N/A``) and the demuxer's warnings."""
    scan = PacketScan()
    for line in csv_text.splitlines():
        parts = line.strip().split(",")
        if len(parts) < 4:
            continue
        pts_s, dts_s, dur_s, flags = parts[0], parts[1], parts[2], parts[3]
        scan.packets += 1
        if "D" in flags:
            scan.discarded += 1
            continue
        ts = pts_s if re.fullmatch(r"-?\d+", pts_s) else dts_s
        if re.fullmatch(r"-?\d+", ts):
            scan.pts.append(int(ts))
            scan.order.append((int(ts), "K" in flags))
            if "K" in flags:
                scan.keyframes.append(int(ts))
        if re.fullmatch(r"\d+", dur_s):
            scan.durations.append(int(dur_s))
    scan.pts.sort()
    scan.keyframes.sort()
    scan.corrupt = len(re.findall(r"Packet corrupt", stderr))
    return scan


def closed_keyframes(scan: PacketScan) -> list[int]:
    """Decode-order indices of the keyframes where the stream can be cut without losing a frame: no packet after
    the keyframe (before the next one) is shown before it. An open-GOP keyframe (H.264 recovery point, HEVC CRA) has
    such leading pictures, which reference the previous GOP: cut there, they cannot be decoded. Demux facts only.
    At a closed keyframe, the decode-order index is also its display-order index."""
    order = scan.order
    closed = []
    for j, (pts, key) in enumerate(order):
        if not key:
            continue
        k = j + 1
        leading = False
        while k < len(order) and not order[k][1]:
            if order[k][0] < pts:
                leading = True
                break
            k += 1
        if not leading and bisect.bisect_left(scan.pts, pts) == j:
            closed.append(j)
    return closed


def even_points(frames: int, chunks: int) -> list[int]:
    """Frame numbers where chunks 2..``chunks`` of ``frames`` frames would start if cut evenly."""
    points = {round(i * frames / chunks) for i in range(1, chunks)}
    return sorted(p for p in points if 0 < p < frames)


def seek_starts(scan: PacketScan, wanted: list[int], length: int) -> list[int]:
    """First frames of seek chunks: each even split point moves to a keyframe within a quarter of a chunk's length
    if there is one (encoders put keyframes at scene cuts, so a chunk boundary there joins two encodes at a cut;
    finding cuts otherwise needs a decode), else stays where it is."""
    display = [bisect.bisect_left(scan.pts, k) for k in scan.keyframes]
    reach = length // 4
    starts: list[int] = []
    for want in wanted:
        near = [k for k in display if 0 < k and abs(k - want) <= reach and k not in starts]
        starts.append(min(near, key=lambda k: (abs(k - want), k)) if near else want)
    return sorted(set(starts))


def chunk_plan(scan: PacketScan, chunks: int, time_base: str, name: str, *, start_time: float = 0.0,
               seekable: bool = True) -> list[dict[str, Any]]:
    """The chunks of a chunked encode, in one of two modes:

    * ``segments``: every chunk starts at a closed keyframe (closed_keyframes), as near as there is to an even
      split, so the source is cut into stream-copied segments that each decode completely;
    * ``seek`` (the keyframes cannot give that many segments, e.g. an open-GOP source): every chunk starts at an
      exact frame (seek_starts: an even split point, or a keyframe near it); its encode reads the source from the
      last keyframe at or before that frame (``seek_s``: input seconds, as ffmpeg's -ss counts them) and keeps the
      frames with presentation timestamps in [``pts_start``, ``pts_end``) (``trim``, source timestamps kept with
      -copyts): leading pictures and all.

    Per chunk: its mode, first frame, frame count and start time in microseconds from the first frame (exact source
    timestamps, rounded once: the join's per-chunk durations are differences of these). A source that cannot be
    seeked reliably (MPEG-TS: no index) and has too few closed keyframes is refused, not run with fewer chunks."""
    frames = len(scan.pts)
    tb = Fraction(time_base)
    cuts = [c for c in closed_keyframes(scan) if c > 0]
    wanted = even_points(frames, chunks)
    chosen: set[int] = set()
    for want in wanted:
        free = [c for c in cuts if c not in chosen]
        if free:
            chosen.add(min(free, key=lambda c: (abs(c - want), c)))
    mode = "segments" if len(chosen) >= chunks - 1 else "seek"
    if mode == "seek":
        if len(wanted) < chunks - 1:
            raise TaskError(f"chunks = {chunks} cannot be honoured: source {name} has only {frames} frames: set chunks "
                            f"to {frames} or fewer")
        if not seekable:
            keys = len(scan.keyframes) - 1
            open_note = f", {keys - len(cuts)} of its {keys} later keyframes open-GOP" if keys > len(cuts) else ""
            raise TaskError(f"chunks = {chunks} cannot be honoured: source {name} can be cut without losing frames at "
                            f"{len(cuts)} keyframes{open_note}, and as MPEG-TS it cannot be read from an exact frame: "
                            "remux it first (ffmpeg -i IN.ts -map 0 -c copy OUT.mkv) or set chunks to "
                            f"{len(cuts) + 1 if cuts else 1}")
        chosen = set(seek_starts(scan, wanted, frames // chunks))
    starts = [0, *sorted(chosen)]
    bounds = [*starts, frames]
    plan: list[dict[str, Any]] = []
    keyframes = scan.keyframes
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk: dict[str, Any] = {"mode": mode, "first_frame": a, "frames": b - a,
                                 "start_us": round((scan.pts[a] - scan.pts[0]) * tb * 1_000_000)}
        if mode == "seek":
            key = keyframes[max(bisect.bisect_right(keyframes, scan.pts[a]) - 1, 0)]
            chunk.update({"seek_s": f"{max(float(key * tb) - start_time - 0.001, 0.0):.6f}",
                          "pts_start": scan.pts[a], "pts_end": scan.pts[b] if b < frames else None})
        plan.append(chunk)
    return plan


def timing(scan: PacketScan, time_base: str, avg_rate: str, r_rate: str) -> dict[str, Any]:
    """Constant or variable frame rate from the presentation timestamps: variable when the intervals between frames
    differ by more than one tick of the time base (rounding)."""
    intervals = scan.frame_intervals()
    vfr = bool(intervals) and max(intervals) - min(intervals) > 1
    tb = Fraction(time_base) if re.fullmatch(r"\d+/[1-9]\d*", time_base) else Fraction(1, 1000)
    rate = avg_rate if re.fullmatch(r"[1-9]\d*/[1-9]\d*", avg_rate) else r_rate
    if not re.fullmatch(r"[1-9]\d*/[1-9]\d*", rate) and intervals:
        mean = Fraction(sum(intervals), len(intervals)) * tb
        rate = str(Fraction(1) / mean) if mean else "0/0"
        rate = rate if "/" in rate else f"{rate}/1"
    return {"vfr": vfr, "frame_rate": rate, "time_base": f"{tb.numerator}/{tb.denominator}",
            "interval_ticks": {"min": min(intervals), "max": max(intervals)} if intervals else None}


# -- the probe -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the run asks of the source (settings already checked by hevc_tasks.check_settings)."""

    encoder: str
    audio: str
    container: str
    expected_resolution: str
    video_stream: int | None = None
    audio_stream: int | None = None
    max_corrupt_packets: int = 0
    chunks: int = 1


def summarise(name: str, info: dict[str, Any], scan: PacketScan, first_frame: dict[str, Any],
              request: Request) -> dict[str, Any]:
    """The probe's findings (source_info.json) and its checks, from the three ffprobe outputs."""
    streams = info.get("streams") or []
    v = choose_video(streams, request.video_stream, name)
    width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    if width <= 0 or height <= 0:
        raise TaskError(f"source {name} video stream {describe(v)} has no picture size: give a video file")
    if width % 2 or height % 2:
        raise TaskError(f"source {name} is {width}x{height}: 4:2:0 HEVC (Main/Main 10) needs even width "
                        "and height; crop or scale the source first")
    exp = request.expected_resolution
    if exp != "any" and f"{width}x{height}" != exp:
        raise TaskError(f"source {name} is {width}x{height}, not the expected {exp}: give an {exp} "
                        "source or set expected_resolution to its size (or 'any')")
    max_w, max_h = ENCODER_MAX[request.encoder]
    if width > max_w or height > max_h:
        raise TaskError(f"source {name} is {width}x{height}, larger than {request.encoder} encodes "
                        f"({max_w}x{max_h}): scale the source down or use another encoder")
    if scan.packets - scan.discarded <= 0 or not scan.pts:
        raise TaskError(f"source {name} has a video stream {describe(v)} but no frames in it: give a complete file")
    if scan.corrupt > request.max_corrupt_packets:
        raise TaskError(f"source {name} has {scan.corrupt} corrupt video packets (the demuxer's 'Packet corrupt'): "
                        "repair or re-export the source, or set max_damaged_frames to at least "
                        f"{scan.corrupt} to encode it anyway")
    t = timing(scan, str(v.get("time_base") or ""), str(v.get("avg_frame_rate") or ""),
               str(v.get("r_frame_rate") or ""))
    if not re.fullmatch(r"[1-9]\d*/[1-9]\d*", t["frame_rate"]):
        raise TaskError(f"source {name} has no frame rate: remux it with an explicit rate (ffmpeg -r)")
    audio = audio_plan(choose_audio(streams, request.audio_stream, name), request.audio, request.container)
    fmt = info.get("format") or {}
    start = float(fmt.get("start_time") or 0.0)
    chunks = chunk_plan(scan, request.chunks, t["time_base"], name, start_time=start,
                        seekable="mpegts" not in str(fmt.get("format_name"))) if request.chunks > 1 else \
        [{"mode": "single", "first_frame": 0, "frames": len(scan.pts), "start_us": 0}]
    frame_colour = colour(first_frame)
    stream_colour = colour(v)
    merged_colour = {k: stream_colour[k] or frame_colour[k] for k in COLOUR_KEYS}
    hdr = hdr_metadata([*(first_frame.get("side_data_list") or []), *(v.get("side_data_list") or [])])
    tb = Fraction(t["time_base"])
    span = (scan.pts[-1] - scan.pts[0] + (scan.durations[-1] if scan.durations else 0)) * tb
    duration = float(v.get("duration") or fmt.get("duration") or span)
    frames = len(scan.pts)
    pix_fmt = str(v.get("pix_fmt") or "")
    return {
        "file": name, "container": fmt.get("format_name"), "bytes": int(fmt.get("size", 0) or 0),
        "duration_s": round(duration, 6),
        "video": {
            "index": v.get("index"), "codec": v.get("codec_name"), "profile": v.get("profile"),
            "pix_fmt": pix_fmt, "bit_depth": bit_depth(v), "chroma": chroma(pix_fmt),
            "width": width, "height": height, "rotation": rotation(v),
            "field_order": v.get("field_order"), "time_base": t["time_base"], "frame_rate": t["frame_rate"],
            "vfr": t["vfr"], "interval_ticks": t["interval_ticks"], "packets": frames,
            "keyframes": len(scan.keyframes), "closed_keyframes": len(closed_keyframes(scan)),
            "first_pts": scan.pts[0], "corrupt_packets": scan.corrupt,
            "colour": merged_colour, "hdr": hdr,
        },
        "other_video": [describe(s) for s in video_streams(streams) if s is not v],
        "audio": audio,
        "chunks": chunks,
        # Compatibility with earlier reports: the frame count for planning (packets) and the keyframe count.
        "frames": frames, "width": width, "height": height, "frame_rate": t["frame_rate"],
        "fps": float(Fraction(t["frame_rate"])),
    }


def probe_source(source: str, name: str, request: Request) -> tuple[dict[str, Any], PacketScan]:
    """Run the three ffprobe passes (no decoding of the video) and summarise them."""
    readable = f"source {name} is not a readable video file (ffprobe: {{why}}): give a video file"
    out, _ = run_ffprobe(["-v", "error", "-show_streams", "-show_format", "-of", "json"], source, readable)
    info = load_json(out, name)
    v = choose_video(info.get("streams") or [], request.video_stream, name)
    index = str(v.get("index"))
    scan = packet_scan(source, index,
                       f"source {name} cannot be read to its end (ffprobe: {{why}}): give a complete file")
    first = first_frame(source, index, f"source {name}: its first frame cannot be decoded (ffprobe: {{why}})") \
        if scan.packets else {}
    summary = summarise(name, info, scan, first, request)
    # The source's timestamps, for verify: it compares the output's with them without reading the source again.
    summary["timestamps"] = {"time_base": summary["video"]["time_base"], "pts": scan.pts}
    return summary, scan


def packet_scan(path: str, stream: str, failure: str) -> PacketScan:
    """The demux pass over one stream's packets (nothing decoded), with the demuxer's warnings."""
    out, err = run_ffprobe(["-v", "warning", "-select_streams", stream, "-show_entries",
                            "packet=pts,dts,duration,flags", "-of", "csv=p=0"], path, failure)
    return scan_packets(out, err)


def first_frame(path: str, stream: str, failure: str) -> dict[str, Any]:
    """The first decoded frame of one stream: its colour tags and side data (HDR10 metadata lives there)."""
    frames = ffprobe_json(["-threads", "1", "-select_streams", stream, "-read_intervals", "%+#1", "-show_frames",
                           "-show_entries",
                           "frame=color_range,color_space,color_primaries,color_transfer:frame_side_data"], path,
                          failure).get("frames") or [{}]
    return frames[0] if isinstance(frames[0], dict) else {}
