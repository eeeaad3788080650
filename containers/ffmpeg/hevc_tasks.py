#!/usr/bin/env python3
"""The programs of the HEVC workflow's tasks (wdl/tasks/hevc.wdl), installed in the ffmpeg image as ``hevc-tasks``.

Every value reaches this program as an argument or inside a file that the WDL engine wrote
(``write_json``/``write_lines``); nothing is pasted into source code, and ffmpeg/ffprobe run without a shell.
One subcommand per task:

* ``probe``: check every setting of the run (the one place they are checked), then the source with ffprobe
  (frame count by decoding); write the task's outputs;
* ``encode``: build the libx265 or hevc_nvenc command line (``encode_steps``), run it, write the statistics;
* ``split``: cut the source at keyframes into segments (stream copy), check their frame count, copy the audio aside;
* ``concat``: join the encoded chunks in name order (stream copy), add the audio back, check the frame count;
* ``verify``: probe and decode the video, compare it with the source (PSNR/SSIM, VMAF), write the report.

A problem in the input prints one line ``ERROR: <problem>: <fix>`` on stderr and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

# task_common.py (containers/shared/, beside this script in the image): the name rule declared as ``pattern`` in
# the workflow's and the tasks' parameter_meta, TaskError and the one-ERROR-line main.
from task_common import NAME_PATTERN, NAME_RULE, Command, TaskError, run_main


@dataclass(frozen=True)
class Profile:
    pix_fmt: str          # libx265, the raw YUV file and the verification's comparison
    nvenc_pix_fmt: str    # what hevc_nvenc takes for it
    bytes_per_sample: int
    name: str             # as ffprobe reports the encoded stream's profile


#: The tables that implement the choices; CHOICES (declared as ``choices`` in wdl/hevc.wdl) are their keys.
PROFILES = {"main": Profile("yuv420p", "yuv420p", 1, "Main"),
            "main10": Profile("yuv420p10le", "p010le", 2, "Main 10")}
AUDIO_CODECS: dict[str, tuple[str, ...]] = {"copy": ("-c:a", "copy"), "aac": ("-c:a", "aac", "-b:a", "256k"),
                                            "none": ()}
PRESETS: dict[str, tuple[str, ...]] = {
    "libx265": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo"),
    "hevc_nvenc": ("p1", "p2", "p3", "p4", "p5", "p6", "p7"),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "encoder": tuple(PRESETS),
    "profile": tuple(PROFILES),
    "rate_control": ("crf", "vbr", "cbr"),
    "audio": tuple(AUDIO_CODECS),
    "intermediate": ("none", "yuv_file"),
}
CHOICE_HINTS = {
    "encoder": "choose libx265 (CPU) or hevc_nvenc (NVIDIA GPU)",
    "profile": "choose main (8-bit) or main10 (10-bit)",
    "rate_control": "choose crf, vbr or cbr",
    "audio": "choose copy, aac or none",
    "intermediate": "choose none or yuv_file",
}
CHOICE_LABELS = {"audio": "audio mode"}
#: Audio codecs an MP4 can carry unchanged (audio = copy).
MP4_COPYABLE = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"})
#: The settings ``check_settings`` knows, in the order they are checked (preset needs the encoder).
KNOWN = ("output_name", "encoder", "preset", "profile", "rate_control", "audio", "intermediate",
         "expected_resolution", "frame_rate")
NAME_SUFFIX = ".hevc"


def shown(value: str) -> str:
    """``value`` quoted for a one-line message: control characters (a newline, ...) as escapes."""
    out = []
    for ch in value:
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def name_ok(value: str) -> bool:
    return re.fullmatch(NAME_PATTERN, value) is not None


def check_name(value: str, what: str = "output_name") -> str:
    if not name_ok(value):
        raise TaskError(f"{what} {shown(value)} {NAME_RULE}")
    return value


def default_name(source_basename: str) -> str:
    """The output name for a source file when none is given: its name without extension, made safe, + .hevc.

    Accents are dropped (Café -> Cafe), every run of other characters becomes one '_', leading and trailing
    '.', '_', '-' go, the result is cut to fit 64 characters with the suffix; nothing usable left: ``video``.
    """
    stem = re.sub(r"\.[^.]*\Z", "", source_basename)
    ascii_only = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_only).strip("._-")
    safe = safe[:64 - len(NAME_SUFFIX)].rstrip("._-")
    return (safe or "video") + NAME_SUFFIX


def pick(values: dict[str, Any], key: str) -> str:
    """The value of the choice ``key``. Its one check: probe_source makes it for every choice of the run before
    anything is encoded; a later task meets an unknown value only when run on its own, and then says the same."""
    value = values.get(key)
    if value not in CHOICES[key]:
        raise TaskError(f"unknown {CHOICE_LABELS.get(key, key)} {shown(str(value))}: {CHOICE_HINTS[key]}")
    return str(value)


def check_settings(values: dict[str, Any], keys: Sequence[str] | None = None) -> dict[str, str]:
    """Check the settings named by ``keys`` (default: all given) and return them; TaskError on the first bad one."""
    keys = list(keys if keys is not None else values)
    unknown = [k for k in keys if k not in KNOWN]
    if unknown:
        raise TaskError(f"unknown setting {unknown[0]}: the task passes only {', '.join(KNOWN)}")
    missing = [k for k in keys if k not in values]
    if missing:
        raise TaskError(f"setting {missing[0]} is missing from the task's settings file")
    if "preset" in keys and "encoder" not in values:
        raise TaskError("setting preset needs the encoder in the task's settings file")
    out: dict[str, str] = {}
    for key in sorted(keys, key=KNOWN.index):
        value = values[key]
        if not isinstance(value, str):
            raise TaskError(f"setting {key} is {value!r}, not a string")
        if key == "output_name":
            check_name(value)
        elif key in CHOICES:
            pick(values, key)
        elif key == "preset":
            encoder = pick(values, "encoder")
            if value not in PRESETS[encoder]:
                raise TaskError(f"preset {shown(value)} is not a {encoder} preset: "
                                f"choose one of {', '.join(PRESETS[encoder])}")
        elif key == "expected_resolution":
            if value != "any" and re.fullmatch(r"[1-9][0-9]{0,5}x[1-9][0-9]{0,5}", value) is None:
                raise TaskError(f"expected_resolution {shown(value)} is neither WIDTHxHEIGHT (e.g. 7680x4320) "
                                "nor 'any': correct it")
        elif key == "frame_rate":
            if re.fullmatch(r"[1-9][0-9]{0,9}/[1-9][0-9]{0,9}", value) is None:
                raise TaskError(f"frame_rate {shown(value)} is not a rational like 24/1 or 30000/1001: "
                                "give the source's rate as probed")
        out[key] = value
    return {k: out[k] for k in keys}


def read_lines(path: Path) -> list[str]:
    """The lines of a ``write_lines`` file (each value ends with a newline), as bash's ``mapfile`` reads them: split
    at newlines only, bytes that are no UTF-8 kept for the file system (a path goes back to ffmpeg unchanged)."""
    text = os.fsdecode(path.read_bytes())
    return text.removesuffix("\n").split("\n") if text else []


def read_paths(path: Path, count: int, what: str) -> list[str]:
    """The ``count`` file paths of a ``write_lines`` file; a path holding a line break would shift them."""
    paths = read_lines(path)
    if len(paths) != count:
        raise TaskError(f"{what} holds a line break: rename the file")
    return paths


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read the task's {what} file {path}: {exc}") from exc


def read_settings(path: Path) -> dict[str, Any]:
    data = read_json(path, "settings")
    if not isinstance(data, dict):
        raise TaskError(f"the task's settings file {path} does not hold a JSON object")
    return data


# -- probe -----------------------------------------------------------------------------------------


def last_line(text: str, strip_prefix: str = "") -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else "no message"
    return line.removeprefix(strip_prefix) if strip_prefix else line


def summarise_source(name: str, streams: dict[str, Any], counted: dict[str, Any], *, audio: str,
                     expected: str) -> dict[str, Any]:
    """The probe's findings from ffprobe's -show_streams/-show_format JSON and its frame count JSON."""
    streams_list = streams.get("streams", [])
    video = [s for s in streams_list if s.get("codec_type") == "video"
             and not s.get("disposition", {}).get("attached_pic")]
    if not video:
        raise TaskError(f"source {shown(name)} has no video stream: give a video file")
    v = video[0]
    frames = int((counted.get("streams") or [{}])[0].get("nb_read_frames", 0) or 0)
    if frames == 0:
        raise TaskError(f"source {shown(name)} has a video stream but no decodable frames")
    width, height = int(v.get("width", 0)), int(v.get("height", 0))
    if width % 2 or height % 2:
        raise TaskError(f"source {shown(name)} is {width}x{height}: 4:2:0 HEVC (Main/Main 10) needs even width "
                        "and height; crop or scale the source first")
    if expected != "any" and f"{width}x{height}" != expected:
        raise TaskError(f"source {shown(name)} is {width}x{height}, not the expected {expected}: give an {expected} "
                        "source or set expected_resolution to its size (or 'any')")
    rate = v.get("avg_frame_rate", "0/0")
    if rate in ("0/0", "0/1"):
        rate = v.get("r_frame_rate", "0/0")
    if rate in ("0/0", "0/1") or re.fullmatch(r"[1-9][0-9]*/[1-9][0-9]*", str(rate)) is None:
        raise TaskError(f"source {shown(name)} has no frame rate: remux it with an explicit rate (ffmpeg -r)")
    fps = Fraction(rate)
    fmt = streams.get("format", {})
    duration = float(v.get("duration") or fmt.get("duration") or frames / fps)
    keyframes = sum(1 for p in counted.get("packets", []) if "K" in p.get("flags", ""))
    audio_streams = [s for s in streams_list if s.get("codec_type") == "audio"]
    if audio == "copy":
        bad = [s.get("codec_name", "?") for s in audio_streams if s.get("codec_name") not in MP4_COPYABLE]
        if bad:
            raise TaskError(f"source audio is {bad[0]}, which MP4 cannot carry unchanged: set audio to aac or none")
    return {
        "file": name, "container": fmt.get("format_name"),
        "codec": v.get("codec_name"), "pix_fmt": v.get("pix_fmt"), "width": width, "height": height,
        "frames": frames, "keyframes": keyframes, "frame_rate": rate, "fps": float(fps),
        "duration_s": round(duration, 6), "audio_streams": len(audio_streams),
        "bytes": int(fmt.get("size", 0) or 0),
    }


def ffprobe_json(args: list[str], source: str, failure: str) -> dict[str, Any]:
    proc = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", source],
                          capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        raise TaskError(failure.format(why=last_line(proc.stderr, f"{source}: ")))
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError as exc:
        raise TaskError(failure.format(why=f"unreadable ffprobe output: {exc}")) from exc
    return data if isinstance(data, dict) else {}


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


#: What probe_source checks: every choice of the run, before anything expensive (the later tasks do not repeat it).
PROBE_CHECKS = ("encoder", "preset", "profile", "rate_control", "audio", "intermediate", "expected_resolution")


def probe(settings_file: Path, name_file: Path, source: str, chunks: int, cpu: int, out_dir: Path) -> dict[str, Any]:
    """The probe task: settings first (cheap), then the source; writes the task's output files."""
    values = read_settings(settings_file)
    s = check_settings(values, PROBE_CHECKS)
    if chunks < 1:
        raise TaskError(f"chunks is {chunks}: give 1 (single encode) or more")
    given = read_json(name_file, "output_name")
    if not isinstance(given, list) or len(given) > 1 or not all(isinstance(g, str) for g in given):
        raise TaskError(f"the task's output_name file {name_file} does not hold a list of at most one string")
    name = os.path.basename(source)
    output_name = check_name(given[0]) if given else default_name(name)

    streams = ffprobe_json(["-show_streams", "-show_format"], source,
                           f"source {shown(name)} is not a readable video file (ffprobe: {{why}}): give a video file")
    counted: dict[str, Any] = {}
    if any(st.get("codec_type") == "video" for st in streams.get("streams", [])):
        counted = ffprobe_json(["-threads", str(cpu), "-select_streams", "V:0", "-count_frames",
                                "-show_entries", "stream=nb_read_frames:packet=flags"], source,
                               f"source {shown(name)} cannot be decoded (ffprobe: {{why}})")
    summary = summarise_source(name, streams, counted, audio=s["audio"], expected=s["expected_resolution"])
    values_out = {"width": summary["width"], "height": summary["height"], "frames": summary["frames"],
                  "frame_rate": summary["frame_rate"], "duration_s": summary["duration_s"],
                  "has_audio": str(summary["audio_streams"] > 0).lower(), "name": output_name}
    for key, value in values_out.items():
        write_atomic(out_dir / f"{key}.txt", f"{value}\n")
    write_atomic(out_dir / "source_info.json", json.dumps(summary, indent=2) + "\n")
    return summary


# -- running ffmpeg and ffprobe --------------------------------------------------------------------

#: ffmpeg for the long runs: warnings and a progress line every 30 s on stderr.
FFMPEG_LOUD = ("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-stats_period", "30", "-stats")
#: ffmpeg for the short runs (split, copy, join): errors only.
FFMPEG_QUIET = ("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error")


def run_logged(what: str, argv: Sequence[str], log: Path) -> None:
    """Run ``argv`` with its stderr appended to ``log`` (and shown, progress lines split at carriage returns);
    TaskError naming ``what`` and ffmpeg's last message when it fails."""
    with log.open("ab") as fh:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        while chunk := os.read(fd, 65536).replace(b"\r", b"\n"):
            fh.write(chunk)
            sys.stderr.write(chunk.decode(errors="replace"))
        status = proc.wait()
    if status != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if not ln.startswith("frame=")]
        raise TaskError(f"{what} failed: {last_line(chr(10).join(lines))}")


def run_quiet(what: str, args: Sequence[str], log: Path) -> None:
    with log.open("wb") as fh:
        status = subprocess.run([*FFMPEG_QUIET, *args], stdin=subprocess.DEVNULL, stderr=fh, check=False).returncode
    if status != 0:
        raise TaskError(f"{what} failed: {last_line(log.read_text(errors='replace'))}")


def ffprobe_counting(path: str, entry: str, cpu: int | None = None) -> subprocess.CompletedProcess[str]:
    """ffprobe counting the first video stream: ``nb_read_packets`` (no decoding) or ``nb_read_frames``."""
    count = "-count_packets" if entry == "nb_read_packets" else "-count_frames"
    threads = ["-threads", str(cpu)] if cpu else []
    return subprocess.run(["ffprobe", "-v", "error", *threads, "-select_streams", "v:0", count, "-show_entries",
                           f"stream={entry}", "-of", "csv=p=0", path],
                          capture_output=True, text=True, errors="replace", check=False)


def ffprobe_count(path: str, entry: str, cpu: int | None = None) -> int:
    proc = ffprobe_counting(path, entry, cpu)
    text = proc.stdout.strip()
    if proc.returncode != 0 or not text.isdigit():
        raise TaskError(f"cannot count the frames of {shown(path)} (ffprobe: {last_line(proc.stderr)})")
    return int(text)


# -- encode ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodeJob:
    """One encode task: the checked settings (probe_source) and the numbers, as the task passes them."""

    output_name: str
    encoder: str
    preset: str
    profile: str
    rate_control: str
    intermediate: str
    audio: str
    quality: int
    bitrate_kbps: int
    keyint: int | None
    width: int
    height: int
    frame_rate: str
    cpu: int

    @property
    def output(self) -> str:
        return f"{self.output_name}.mp4"


def encode_job(values: dict[str, Any], *, quality: int, bitrate_kbps: int, keyint: list[int], width: int,
               height: int, cpu: int) -> EncodeJob:
    """The job from the task's settings file. The output name (a file name here) and the frame rate (from the probe)
    are checked; the choices were checked by probe_source."""
    if not isinstance(keyint, list) or len(keyint) > 1 or not all(isinstance(k, int) for k in keyint):
        raise TaskError("the task's keyint file does not hold a list of at most one number")
    checked = check_settings(values, ["output_name", "frame_rate"])
    return EncodeJob(output_name=checked["output_name"], encoder=pick(values, "encoder"),
                     preset=str(values.get("preset", "")),
                     profile=pick(values, "profile"), rate_control=pick(values, "rate_control"),
                     intermediate=pick(values, "intermediate"), audio=pick(values, "audio"), quality=quality,
                     bitrate_kbps=bitrate_kbps, keyint=keyint[0] if keyint else None, width=width, height=height,
                     frame_rate=checked["frame_rate"], cpu=cpu)


def rate_args(job: EncodeJob) -> list[str]:
    """Rate control: crf = x265 CRF / NVENC constant quality; vbr peaks at 1.5x the bitrate; cbr holds it."""
    kbps = job.bitrate_kbps
    if job.rate_control == "crf":
        return ["-crf", str(job.quality)] if job.encoder == "libx265" else \
            ["-rc", "vbr", "-cq", str(job.quality), "-b:v", "0"]
    nvenc_rc = ["-rc", job.rate_control] if job.encoder == "hevc_nvenc" else []
    if job.rate_control == "vbr":
        return [*nvenc_rc, "-b:v", f"{kbps}k", "-maxrate", f"{kbps * 3 // 2}k", "-bufsize", f"{kbps * 2}k"]
    return [*nvenc_rc, "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k"]


def video_args(job: EncodeJob) -> list[str]:
    """The encoder's options: codec, preset, profile, pixel format, rate control, keyframe interval."""
    profile = PROFILES[job.profile]
    if job.encoder == "libx265":
        params = f"pools={job.cpu}:log-level=warning" + (":strict-cbr=1" if job.rate_control == "cbr" else "")
        args = ["-c:v", "libx265", "-preset", job.preset, "-profile:v", job.profile, "-pix_fmt", profile.pix_fmt,
                *rate_args(job), "-x265-params", params]
    else:
        args = ["-c:v", "hevc_nvenc", "-preset", job.preset, "-tune", "hq", "-profile:v", job.profile,
                "-pix_fmt", profile.nvenc_pix_fmt, *rate_args(job)]
    return args + (["-g", str(job.keyint)] if job.keyint is not None else [])


def audio_args(audio: str, input_index: int) -> list[str]:
    """How the audio streams of input ``input_index`` reach the output (none: they do not)."""
    codec = AUDIO_CODECS[audio]
    return ["-map", f"{input_index}:a?", *codec] if codec else []


RAW_YUV = "source.yuv"


def encode_steps(job: EncodeJob, source: str, partial: str) -> list[tuple[str, list[str]]]:
    """The ffmpeg runs of an encode, as (what, arguments after FFMPEG_LOUD). intermediate none: decoder straight
    into the encoder; yuv_file: decode to a raw YUV file, then encode it (the audio from the original, input 1)."""
    muxing = ["-tag:v", "hvc1", "-movflags", "+faststart", partial]
    encoding = f"encoding with {job.encoder}"
    if job.intermediate == "none":
        return [(encoding, ["-i", source, "-map", "0:v:0", *video_args(job), *audio_args(job.audio, 0), *muxing])]
    pix = PROFILES[job.profile].pix_fmt
    return [
        ("decoding to raw YUV", ["-i", source, "-map", "0:v:0", "-pix_fmt", pix, "-f", "rawvideo", RAW_YUV]),
        (encoding, ["-f", "rawvideo", "-pix_fmt", pix, "-video_size", f"{job.width}x{job.height}",
                    "-framerate", job.frame_rate, "-i", RAW_YUV, "-i", source, "-map", "0:v:0", *video_args(job),
                    *audio_args(job.audio, 1), *muxing]),
    ]


NVENC_PROBE = ("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=black:s=1920x1080",
               "-frames:v", "1", "-c:v", "hevc_nvenc", "-f", "null", "-")


def nvenc_problem(log: str) -> str:
    """The reason in a failed NVENC probe's log: the hevc_nvenc line without its ``[hevc_nvenc @ 0x..]`` prefix."""
    for line in log.splitlines():
        if "hevc_nvenc @" in line:
            return re.sub(r"^\[[^]]*\] ", "", line)
    return last_line(log)


def check_nvenc(work: Path) -> None:
    """Fail fast with a clear message where no NVIDIA encoder is visible to the container."""
    proc = subprocess.run(NVENC_PROBE, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                          check=False)
    write_atomic(work / "nvenc_check.log", proc.stderr)
    if proc.returncode != 0:
        raise TaskError(f"hevc_nvenc cannot open an NVIDIA encoder here ({nvenc_problem(proc.stderr)}): run on a "
                        "GPU instance (runtime gpuCount 1, NVIDIA_DRIVER_CAPABILITIES with video) or set encoder to "
                        "libx265")


def encode(job: EncodeJob, source: str, work: Path) -> dict[str, Any]:
    """The encode task: ffmpeg writes a temporary name; the output gets its real name only once it holds frames."""
    out, partial = work / job.output, work / f"partial.{job.output}"
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    if job.encoder == "hevc_nvenc":
        check_nvenc(work)
    if job.intermediate == "yuv_file":
        frame_bytes = job.width * job.height * 3 * PROFILES[job.profile].bytes_per_sample // 2
        print(f"decoding to a raw YUV file ({frame_bytes} bytes per frame)", file=sys.stderr)
    start = time.time()
    try:
        for what, args in encode_steps(job, source, partial.name):
            run_logged(what, [*FFMPEG_LOUD, *args], work / "ffmpeg.log")
    finally:
        (work / RAW_YUV).unlink(missing_ok=True)
    end = time.time()
    frames = ffprobe_count(str(partial), "nb_read_packets")
    if frames == 0:
        raise TaskError(f"the encoder wrote no frames to {job.output}")
    os.replace(partial, out)
    stats = encode_stats(job, start, end, frames)
    write_atomic(work / "encode_stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


def encode_stats(job: EncodeJob, start: float, end: float, frames: int) -> dict[str, Any]:
    seconds = max(end - start, 1e-6)
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 4),
            "encoder": job.encoder, "preset": job.preset, "profile": job.profile,
            "rate_control": job.rate_control, "intermediate": job.intermediate, "cpu": job.cpu}


# -- split and concat ------------------------------------------------------------------------------


def split_points(frames: int, chunks: int) -> list[int]:
    """Frame numbers where segments 2..chunks should start (strictly increasing, inside the video)."""
    points = {round(i * frames / chunks) for i in range(1, chunks)}
    return sorted(p for p in points if 0 < p < frames)


SEGMENTS = "segments"


def split_args(source: str, cuts: Sequence[int]) -> list[str]:
    """Stream-copy the first video stream into NUT segments starting at the first keyframe at or after each cut."""
    where = ["-segment_frames", ",".join(str(c) for c in cuts)] if cuts else ["-segment_time", "1000000000"]
    return ["-i", source, "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_format", "nut", *where,
            "-reset_timestamps", "1", f"{SEGMENTS}/seg_%05d.nut"]


def has_audio(source: str) -> bool:
    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
                           "-of", "csv=p=0", source], capture_output=True, text=True, errors="replace", check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def split(source: str, frames: int, chunks: int, cpu: int, keep_audio: bool, work: Path) -> list[int]:
    """The split_source task: segments whose decoded frames add up to the source's, and audio.mka when kept."""
    if frames < 1 or chunks < 1:
        raise TaskError(f"cannot split {frames} frames into {chunks} chunks: give 1 or more of each")
    (work / SEGMENTS).mkdir(exist_ok=True)
    run_quiet("splitting the source at keyframes", split_args(source, split_points(frames, chunks)),
              work / "split.log")
    counts = []
    for seg in sorted((work / SEGMENTS).glob("seg_*.nut")):
        counts.append(ffprobe_count(str(seg), "nb_read_frames", cpu))
        print(f"{seg.name}: {counts[-1]} frames", file=sys.stderr)
    if sum(counts) != frames:
        raise TaskError(f"the keyframe segments decode to {sum(counts)} frames, not the source's {frames} "
                        "(open-GOP source?): encode with chunks = 1")
    if keep_audio and has_audio(source):
        run_quiet("copying the audio aside", ["-i", source, "-map", "0:a", "-c", "copy", "partial.audio.mka"],
                  work / "audio.log")
        os.replace(work / "partial.audio.mka", work / "audio.mka")
    return counts


def concat_list(paths: Iterable[str]) -> str:
    """The concat demuxer's list: one ``file '<path>'`` line per chunk, ordered by file name."""
    ordered = sorted((p for p in paths if p.strip()), key=os.path.basename)
    lines = []
    for p in ordered:
        if "\n" in p or "\r" in p:
            raise TaskError(f"chunk path {shown(p)} holds a line break: rename the chunk")
        lines.append("file '" + p.replace("'", "'\\''") + "'\n")
    return "".join(lines)


def concat_args(listing: str, audio_file: str | None, audio: str, partial: str) -> list[str]:
    """Join the chunks listed in ``listing`` (stream copy) and add the audio file's streams as ``audio`` says."""
    codec = AUDIO_CODECS[audio] if audio_file is not None else ()
    extra = ["-i", audio_file, "-map", "1:a", *codec] if codec and audio_file is not None else []
    return ["-f", "concat", "-safe", "0", "-i", listing, *extra, "-map", "0:v", "-c:v", "copy", "-tag:v", "hvc1",
            "-movflags", "+faststart", partial]


def concat(chunks: Sequence[str], audio_track: Sequence[str], *, output_name: str, audio: str, expected_frames: int,
           work: Path) -> int:
    """The concat_chunks task: chunks in segment order (not arrival order), audio back, frame count checked."""
    out, partial = work / f"{output_name}.mp4", work / f"partial.{output_name}.mp4"
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    if len(audio_track) > 1:
        raise TaskError(f"audio_track holds {len(audio_track)} lines, not at most one file: give one audio file "
                        "(a path with a line break counts twice)")
    write_atomic(work / "concat.txt", concat_list(chunks))
    run_quiet("joining the encoded chunks", concat_args("concat.txt", audio_track[0] if audio_track else None, audio,
                                                        partial.name), work / "concat.log")
    frames = ffprobe_count(str(partial), "nb_read_packets")
    if frames != expected_frames:
        raise TaskError(f"the joined video has {frames} frames, not the source's {expected_frames}")
    os.replace(partial, out)
    return frames


# -- verification ----------------------------------------------------------------------------------


def per_frame(path: Path, key: str) -> list[float]:
    values = []
    for line in path.read_text().splitlines():
        m = re.search(rf"\b{key}:(\S+)", line)
        if m:
            values.append(float(m.group(1)) if m.group(1) != "inf" else math.inf)
    return values


def build_report(work: Path, *, expected_frames: int, width: int, height: int, profile: str, has_vmaf: bool,
                 vmaf_requested: bool, min_psnr: float) -> dict[str, Any]:
    """The verification report from the files the verify task's ffprobe/ffmpeg runs wrote into ``work``."""
    expected = {"frames": expected_frames, "width": width, "height": height,
                "profile": PROFILES[profile].name}
    info = json.loads((work / "video.json").read_text() or "{}")
    stream = (info.get("streams") or [{}])[0]
    frames_text = (work / "frames.txt").read_text().strip()
    frames = int(frames_text) if frames_text.isdigit() else 0
    decode_errors = [ln.strip() for ln in (work / "decode_errors.log").read_text().splitlines() if ln.strip()]
    log = (work / "metrics.log").read_text(errors="replace")
    psnr_frames = per_frame(work / "psnr.log", "psnr_avg")
    ssim_frames = per_frame(work / "ssim.log", "All")
    m = re.search(r"PSNR y:(\S+) u:(\S+) v:(\S+) average:(\S+) min:(\S+) max:(\S+)", log)
    psnr = {k: float(x) for k, x in zip(("y", "u", "v", "average", "min", "max"), m.groups(), strict=True)} \
        if m else {}
    m = re.search(r"SSIM Y:(\S+) \(\S+\) U:(\S+) \(\S+\) V:(\S+) \(\S+\) All:(\S+)", log)
    ssim = {k: float(x) for k, x in zip(("y", "u", "v", "all"), m.groups(), strict=True)} if m else {}
    vmaf = None
    if has_vmaf:
        pooled = json.loads((work / "vmaf.json").read_text()).get("pooled_metrics", {}).get("vmaf", {})
        vmaf = {"mean": pooled.get("mean"), "min": pooled.get("min")}
    checks = {
        "decodes": not decode_errors and frames > 0,
        "codec_hevc": stream.get("codec_name") == "hevc",
        "profile": stream.get("profile") == expected["profile"],
        "resolution": (stream.get("width"), stream.get("height")) == (width, height),
        "frame_count": frames == expected_frames,
        "all_frames_compared": len(psnr_frames) == expected_frames == len(ssim_frames),
    }
    if not math.isnan(min_psnr):
        checks["min_psnr"] = bool(psnr) and psnr["average"] >= min_psnr
    fmt = info.get("format", {})
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "video": {"codec": stream.get("codec_name"), "profile": stream.get("profile"),
                  "pix_fmt": stream.get("pix_fmt"), "width": stream.get("width"),
                  "height": stream.get("height"), "frames": frames,
                  "bytes": int(fmt.get("size", 0) or 0), "bit_rate": int(fmt.get("bit_rate", 0) or 0),
                  "decode_errors": decode_errors[:5]},
        "expected": expected,
        "psnr_db": psnr,
        "psnr_frame_min_db": min(psnr_frames) if psnr_frames else None,
        "ssim": ssim,
        "ssim_frame_min": min(ssim_frames) if ssim_frames else None,
        "vmaf": vmaf,
        "vmaf_note": None if has_vmaf else "not computed: this ffmpeg build has no libvmaf filter"
        if vmaf_requested else "not requested",
        "compared_in": profile,
    }


def report_text(report: dict[str, Any]) -> str:
    checks, v, expected = report["checks"], report["video"], report["expected"]
    psnr, ssim, vmaf = report["psnr_db"], report["ssim"], report["vmaf"]
    lines = [f"verification: {'PASSED' if report['passed'] else 'FAILED'}"]
    lines += [f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()]
    lines.append(f"video: {v['codec']} {v['profile']} {v['pix_fmt']} {v['width']}x{v['height']}, "
                 f"{v['frames']} frames (source {expected['frames']}), {v['bytes']} bytes")
    if psnr:
        lines.append(f"PSNR: average {psnr['average']:.3f} dB (Y {psnr['y']:.3f}, U {psnr['u']:.3f}, "
                     f"V {psnr['v']:.3f}); lowest frame {report['psnr_frame_min_db']:.3f} dB")
    if ssim:
        lines.append(f"SSIM: All {ssim['all']:.5f} (Y {ssim['y']:.5f}); lowest frame {report['ssim_frame_min']:.5f}")
    lines.append(f"VMAF: {vmaf['mean']:.3f} mean, {vmaf['min']:.3f} min" if vmaf else f"VMAF: {report['vmaf_note']}")
    return "\n".join(lines) + "\n"


def verify(work: Path, **kwargs: Any) -> dict[str, Any]:
    """The verify task's report: writes verify_report.json/.txt, psnr.txt, ssim.txt; TaskError when a check fails."""
    report = build_report(work, **kwargs)
    write_atomic(work / "verify_report.json", json.dumps(report, indent=2) + "\n")
    text = report_text(report)
    write_atomic(work / "verify_report.txt", text)
    print(text, end="", file=sys.stderr)
    write_atomic(work / "psnr.txt", f"{report['psnr_db'].get('average', 0.0)}\n")
    write_atomic(work / "ssim.txt", f"{report['ssim'].get('all', 0.0)}\n")
    if not report["passed"]:
        v, expected = report["video"], report["expected"]
        failed = ", ".join(name for name, ok in report["checks"].items() if not ok)
        raise TaskError(f"the encoded video failed verification ({failed}): see verify_report.txt "
                        f"(frames {v['frames']} vs {expected['frames']}, {v['width']}x{v['height']}, "
                        f"profile {v['profile']})")
    return report


def metrics_graph(profile: str, vmaf: bool, cpu: int) -> tuple[str, list[str]]:
    """ffmpeg's filter graph comparing input 0 (video) with input 1 (source) in the profile's pixel format, and the
    outputs to map. Frames pair by index, not timestamp: both streams get pts = frame number in one time base."""
    prep = f"format={PROFILES[profile].pix_fmt},settb=1/1000,setpts=N"
    graph = (f"[0:v]{prep},split=3[d1][d2][d3];[1:v]{prep},split=3[r1][r2][r3];"
             "[d1][r1]psnr=stats_file=psnr.log[p];[d2][r2]ssim=stats_file=ssim.log[s]")
    maps = ["-map", "[p]", "-f", "null", "-", "-map", "[s]", "-f", "null", "-"]
    if vmaf:
        graph += f";[d3][r3]libvmaf=log_fmt=json:log_path=vmaf.json:n_threads={cpu}[m]"
        maps += ["-map", "[m]", "-f", "null", "-"]
    else:
        graph += ";[d3]nullsink;[r3]nullsink"
    return graph, maps


def has_vmaf() -> bool:
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True, errors="replace",
                          check=False)
    return re.search(r"\blibvmaf\b", proc.stdout) is not None


def measure(video: str, source: str, *, profile: str, vmaf: bool, cpu: int, work: Path) -> bool:
    """The verify task's tool runs: ffprobe facts and frame count of the video, a full decode (its errors), the
    comparison with the source. Writes the files build_report reads; returns whether VMAF was computed."""
    info = ffprobe_json(["-select_streams", "v:0", "-show_streams", "-show_format"], video,
                        "cannot read the encoded video (ffprobe: {why})")
    write_atomic(work / "video.json", json.dumps(info, indent=2) + "\n")
    # An undecodable video is counted as it comes (nothing, or 0): build_report fails its checks.
    write_atomic(work / "frames.txt", ffprobe_counting(video, "nb_read_frames", cpu).stdout)
    with (work / "decode_errors.log").open("wb") as fh:
        subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-threads", str(cpu), "-i", video,
                        "-map", "0:v:0", "-f", "null", "-"], stdin=subprocess.DEVNULL, stderr=fh, check=False)
    with_vmaf = vmaf and has_vmaf()
    graph, maps = metrics_graph(profile, with_vmaf, cpu)
    with (work / "metrics.log").open("wb") as fh:
        status = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-threads", str(cpu), "-i", video, "-i", source,
                                 "-filter_complex", graph, *maps], stdin=subprocess.DEVNULL, stderr=fh,
                                check=False).returncode
    if status != 0:
        raise TaskError("comparing the video with the source failed: "
                        f"{last_line((work / 'metrics.log').read_text(errors='replace'))}")
    return with_vmaf


# -- command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hevc-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("probe", help="check every setting, then the source; write the probe task's outputs")
    s.add_argument("--settings", type=Path, required=True, help="JSON object of the string settings")
    s.add_argument("--name", type=Path, required=True, help="JSON list: [] or [output_name]")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--chunks", type=int, required=True)
    s.add_argument("--cpu", type=int, default=4)
    s = sub.add_parser("encode", help="encode the source to HEVC; write <output_name>.mp4 and encode_stats.json")
    s.add_argument("--settings", type=Path, required=True,
                   help="JSON object: output_name, encoder, preset, profile, rate_control, intermediate, audio, "
                        "frame_rate")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--keyint", type=Path, required=True, help="JSON list: [] (encoder default) or [frames]")
    for number in ("--quality", "--bitrate-kbps", "--width", "--height", "--cpu"):
        s.add_argument(number, type=int, required=True)
    s = sub.add_parser("split", help="cut the source at keyframes into segments/seg_*.nut; audio.mka aside")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--frames", type=int, required=True)
    s.add_argument("--chunks", type=int, required=True)
    s.add_argument("--cpu", type=int, default=4)
    s.add_argument("--keep-audio", choices=("true", "false"), required=True)
    s = sub.add_parser("concat", help="join the encoded chunks into <output_name>.mp4")
    s.add_argument("--settings", type=Path, required=True, help="JSON object: output_name, audio")
    s.add_argument("--chunks", type=Path, required=True, help="write_lines file: the chunks' paths")
    s.add_argument("--audio-track", type=Path, required=True, help="write_lines file: no path or one")
    s.add_argument("--expected-frames", type=int, required=True)
    s = sub.add_parser("verify", help="compare the video with the source; write the verification report")
    s.add_argument("--settings", type=Path, required=True, help="JSON object: profile")
    s.add_argument("--files", type=Path, required=True, help="write_lines file: the video's and the source's paths")
    s.add_argument("--expected-frames", type=int, required=True)
    s.add_argument("--width", type=int, required=True)
    s.add_argument("--height", type=int, required=True)
    s.add_argument("--vmaf", choices=("true", "false"), required=True)
    s.add_argument("--min-psnr", type=float, default=math.nan)
    s.add_argument("--cpu", type=int, default=4)
    return p


def _probe(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    print(json.dumps(probe(args.settings, args.name, source, args.chunks, args.cpu, Path.cwd())))


def _encode(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    job = encode_job(read_settings(args.settings), quality=args.quality, bitrate_kbps=args.bitrate_kbps,
                     keyint=read_json(args.keyint, "keyint"), width=args.width, height=args.height, cpu=args.cpu)
    print(json.dumps(encode(job, source, Path.cwd())))


def _split(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    split(source, args.frames, args.chunks, args.cpu, args.keep_audio == "true", Path.cwd())


def _concat(args: argparse.Namespace) -> None:
    values = read_settings(args.settings)
    concat(read_lines(args.chunks), read_lines(args.audio_track), output_name=check_name(values.get("output_name", "")),
           audio=pick(values, "audio"), expected_frames=args.expected_frames, work=Path.cwd())


def _verify(args: argparse.Namespace) -> None:
    video, source = read_paths(args.files, 2, "the video's or the source's path")
    profile = pick(read_settings(args.settings), "profile")
    work = Path.cwd()
    with_vmaf = measure(video, source, profile=profile, vmaf=args.vmaf == "true", cpu=args.cpu, work=work)
    verify(work, expected_frames=args.expected_frames, width=args.width, height=args.height, profile=profile,
           has_vmaf=with_vmaf, vmaf_requested=args.vmaf == "true", min_psnr=args.min_psnr)


COMMANDS: dict[str, Command] = {"probe": _probe, "encode": _encode, "split": _split, "concat": _concat,
                                "verify": _verify}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
