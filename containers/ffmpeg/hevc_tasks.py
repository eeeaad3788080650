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
import bisect
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

# The probe (metadata and one demux pass) and the choice of decoder (NVDEC or CPU), beside this script in the image.
import hevc_decode
import hevc_probe
import hevc_vmaf

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
#: audio: auto copies what the container carries and transcodes the rest to AAC; copy keeps every stream or refuses;
#: aac transcodes all; none drops the audio (hevc_probe.audio_plan).
AUDIO_MODES = ("auto", "copy", "aac", "none")
#: Output containers: MP4, or MOV for mezzanine use (it also carries PCM audio unchanged).
CONTAINERS = ("mp4", "mov")
#: Verification: every frame, evenly spread segments, none; auto: sampled for long high-resolution sources.
VERIFY_MODES = ("auto", "full", "sampled", "off")
PRESETS: dict[str, tuple[str, ...]] = {
    "libx265": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo"),
    "hevc_nvenc": ("p1", "p2", "p3", "p4", "p5", "p6", "p7"),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "encoder": tuple(PRESETS),
    "profile": tuple(PROFILES),
    "rate_control": ("crf", "vbr", "cbr"),
    "audio": AUDIO_MODES,
    "intermediate": ("none", "yuv_file"),
    "container": CONTAINERS,
    "verify_mode": VERIFY_MODES,
}
CHOICE_HINTS = {
    "encoder": "choose libx265 (CPU) or hevc_nvenc (NVIDIA GPU)",
    "profile": "choose main (8-bit) or main10 (10-bit)",
    "rate_control": "choose crf, vbr or cbr",
    "audio": "choose auto, copy, aac or none",
    "intermediate": "choose none or yuv_file",
    "container": "choose mp4 or mov",
    "verify_mode": "choose auto, full, sampled or off",
}
CHOICE_LABELS = {"audio": "audio mode", "verify_mode": "verify mode"}
#: The settings ``check_settings`` knows, in the order they are checked (preset needs the encoder).
KNOWN = ("output_name", "encoder", "preset", "profile", "rate_control", "audio", "intermediate",
         "container", "verify_mode", "expected_resolution", "frame_rate")
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
    # An empty list: an empty file from miniwdl, one empty line from Cromwell (Scala's mkString("", "\n", "\n")).
    return text.removesuffix("\n").split("\n") if text not in ("", "\n") else []


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


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


#: What probe_source checks: every choice of the run, before anything expensive (the later tasks do not repeat it).
PROBE_CHECKS = ("encoder", "preset", "profile", "rate_control", "audio", "intermediate", "container", "verify_mode",
                "expected_resolution")
#: verify = auto: sampled when the source holds more pixels than this (120 frames of 8K), full otherwise.
FULL_VERIFY_MAX_PIXELS = 7680 * 4320 * 120


def optional_index(values: dict[str, Any], key: str) -> int | None:
    """An optional stream index from the task's streams file (``write_json`` of ``select_all``: [] or [n])."""
    given = values.get(key, [])
    if not isinstance(given, list) or len(given) > 1 or not all(isinstance(g, int) and g >= 0 for g in given):
        raise TaskError(f"{key} must be a stream index (0, 1, ...) as ffprobe numbers the streams, or unset")
    return given[0] if given else None


def verify_mode(requested: str, video: dict[str, Any]) -> str:
    """The verification the run does: ``requested``, or for auto: sampled above FULL_VERIFY_MAX_PIXELS."""
    if requested != "auto":
        return requested
    pixels = int(video["width"]) * int(video["height"]) * int(video["packets"])
    return "sampled" if pixels > FULL_VERIFY_MAX_PIXELS else "full"


def probe(settings_file: Path, name_file: Path, streams_file: Path, source: str, chunks: int, max_damaged_frames: int,
          out_dir: Path) -> dict[str, Any]:
    """The probe task: settings first (cheap), then the source (metadata and one demux pass, no decoding: see
    hevc_probe); writes the task's outputs."""
    values = read_settings(settings_file)
    s = check_settings(values, PROBE_CHECKS)
    if chunks < 1:
        raise TaskError(f"chunks is {chunks}: give 1 (single encode) or more")
    if max_damaged_frames < 0:
        raise TaskError(f"max_damaged_frames is {max_damaged_frames}: give 0 (no damage accepted) or more")
    given = read_json(name_file, "output_name")
    if not isinstance(given, list) or len(given) > 1 or not all(isinstance(g, str) for g in given):
        raise TaskError(f"the task's output_name file {name_file} does not hold a list of at most one string")
    name = os.path.basename(source)
    output_name = check_name(given[0]) if given else default_name(name)
    wanted = read_json(streams_file, "streams")
    if not isinstance(wanted, dict):
        raise TaskError(f"the task's streams file {streams_file} does not hold a JSON object")
    request = hevc_probe.Request(encoder=s["encoder"], audio=s["audio"], container=s["container"],
                                 expected_resolution=s["expected_resolution"],
                                 video_stream=optional_index(wanted, "video_stream"),
                                 audio_stream=optional_index(wanted, "audio_stream"),
                                 max_corrupt_packets=max_damaged_frames, chunks=chunks)
    summary, _ = hevc_probe.probe_source(source, shown(name), request)
    video = summary["video"]
    if s["intermediate"] == "yuv_file" and video["vfr"]:
        raise TaskError(f"source {shown(name)} has a variable frame rate: intermediate yuv_file (raw frames without "
                        "timestamps, read back at one rate) would change its timing; set intermediate to none")
    plan = hevc_decode.decode_plan(video, s["encoder"])
    summary["decode"] = {"method": plan.method, "reason": plan.reason}
    summary["verify"] = verify_mode(s["verify_mode"], video)
    summary["file"] = name
    values_out = {"width": video["width"], "height": video["height"], "frames": video["packets"],
                  "frame_rate": video["frame_rate"], "duration_s": summary["duration_s"],
                  "has_audio": str(bool(summary["audio"])).lower(), "name": output_name,
                  "decode": plan.method, "verification": summary["verify"],
                  "chunk_mode": summary["chunks"][0]["mode"], "chunk_count": len(summary["chunks"])}
    for key, value in values_out.items():
        write_atomic(out_dir / f"{key}.txt", f"{value}\n")
    write_atomic(out_dir / "source_info.json", json.dumps(summary, indent=2) + "\n")
    print(f"decoding on {'the GPU (NVDEC)' if plan.method == 'nvdec' else 'the CPU'}: {plan.reason}", file=sys.stderr)
    return summary


# -- running ffmpeg and ffprobe --------------------------------------------------------------------

#: ffmpeg for the long runs: a progress line every 30 s; verbose for its final statistics (packets read, frames
#: decoded: the damage check), which run_logged keeps in the log but does not echo.
FFMPEG_LOUD = ("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "level+verbose", "-stats_period", "30",
               "-stats")
#: ffmpeg for the short runs (split, copy, join): errors only.
FFMPEG_QUIET = ("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error")


def ffmpeg_message(line: str) -> str:
    """A log line without ffmpeg's ``[context @ 0x..]`` and ``[level]`` prefixes."""
    return re.sub(r"^(\[[^]]*@ 0x[0-9a-f]+\]\s*)?(\[(quiet|panic|fatal|error|warning|info|verbose|debug)\]\s*)?", "",
                  line.strip())


def failure_line(log: str) -> str:
    """ffmpeg's reason for failing: its last error-level line (``level+`` logs), else its last line that is no
    progress or verbose line."""
    lines = [ln for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "[error]" in ln or "[fatal]" in ln]
    others = [ln for ln in lines if "[verbose]" not in ln and "frame=" not in ln]
    chosen = errors or others or lines
    return ffmpeg_message(chosen[-1]) if chosen else "no message"


def run_logged(what: str, argv: Sequence[str], log: Path) -> None:
    """Run ``argv`` with its stderr appended to ``log`` and shown, except verbose lines (progress lines split at
    carriage returns); TaskError naming ``what`` and ffmpeg's reason when it fails."""
    with log.open("ab") as fh:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        pending = b""
        while chunk := os.read(fd, 65536):
            fh.write(chunk)
            *lines, pending = (pending + chunk.replace(b"\r", b"\n")).split(b"\n")
            shown_lines = [ln.decode(errors="replace") for ln in lines if b"[verbose]" not in ln]
            if shown_lines:
                sys.stderr.write("\n".join(shown_lines) + "\n")
        if pending and b"[verbose]" not in pending:
            sys.stderr.write(pending.decode(errors="replace") + "\n")
        status = proc.wait()
    if status != 0:
        raise TaskError(f"{what} failed: {failure_line(log.read_text(errors='replace'))}")


def run_quiet(what: str, args: Sequence[str], log: Path) -> None:
    with log.open("wb") as fh:
        status = subprocess.run([*FFMPEG_QUIET, *args], stdin=subprocess.DEVNULL, stderr=fh, check=False).returncode
    if status != 0:
        raise TaskError(f"{what} failed: {last_line(log.read_text(errors='replace'))}")


def count_packets(path: str) -> int:
    """The packets of a file's first video stream (a demux, nothing decoded): its frame count here, where every
    packet is one frame (our MP4 outputs, the NUT segments)."""
    proc = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                           "stream=nb_read_packets", "-of", "csv=p=0", path],
                          capture_output=True, text=True, errors="replace", check=False)
    # The count is the first field: a stream's side data (a display matrix) follows it in csv output.
    text = (proc.stdout.strip().splitlines() or [""])[0].split(",")[0]
    if proc.returncode != 0 or not text.isdigit():
        raise TaskError(f"cannot count the frames of {shown(path)} (ffprobe: {last_line(proc.stderr)})")
    return int(text)


# -- encode ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodeJob:
    """One encode task: the checked settings (probe_source), the numbers as the task passes them, and the probe's
    findings (source_info.json: the video stream, its colour and HDR metadata, the audio plan, the decoder)."""

    output_name: str
    encoder: str
    preset: str
    profile: str
    rate_control: str
    intermediate: str
    audio: str
    container: str
    quality: int
    bitrate_kbps: int
    keyint: int | None
    width: int
    height: int
    frame_rate: str
    cpu: int
    info: dict[str, Any]
    max_damaged_frames: int = 0
    chunk: int | None = None      # a "seek" chunk of the probe's plan: this job encodes only its frames

    @property
    def seek_chunk(self) -> dict[str, Any] | None:
        """The plan entry of a seek-mode chunk (the whole source is the input), or None."""
        if self.chunk is None:
            return None
        plan = list(self.info.get("chunks") or [])
        if not 0 <= self.chunk < len(plan) or plan[self.chunk].get("mode") != "seek":
            raise TaskError(f"chunk {self.chunk} is not a seek chunk of the probe's plan ({len(plan)} chunks): pass "
                            "the probe's info and an index below chunk_count")
        return dict(plan[self.chunk])

    @property
    def output(self) -> str:
        return f"{self.output_name}.{self.container}"

    @property
    def video(self) -> dict[str, Any]:
        return dict(self.info.get("video") or {})

    @property
    def decode(self) -> hevc_decode.DecodePlan:
        plan = self.info.get("decode") or {}
        return hevc_decode.DecodePlan(str(plan.get("method", "cpu")), str(plan.get("reason", "")))


def encode_job(values: dict[str, Any], *, info: dict[str, Any], quality: int, bitrate_kbps: int, keyint: list[int],
               width: int, height: int, cpu: int, max_damaged_frames: int = 0, chunk: list[int] | None = None
               ) -> EncodeJob:
    """The job from the task's settings file. The output name (a file name here) and the frame rate (from the probe)
    are checked; the choices were checked by probe_source."""
    if not isinstance(keyint, list) or len(keyint) > 1 or not all(isinstance(k, int) for k in keyint):
        raise TaskError("the task's keyint file does not hold a list of at most one number")
    if not isinstance(info, dict) or not isinstance(info.get("video"), dict):
        raise TaskError("the task's source_info file is not the probe's JSON report: pass probe_source.info")
    checked = check_settings(values, ["output_name", "frame_rate"])
    chunk = chunk or []
    if not isinstance(chunk, list) or len(chunk) > 1 or not all(isinstance(k, int) and k >= 0 for k in chunk):
        raise TaskError("the task's chunk file does not hold [] or [a chunk index]")
    job = EncodeJob(output_name=checked["output_name"], encoder=pick(values, "encoder"),
                     preset=str(values.get("preset", "")),
                     profile=pick(values, "profile"), rate_control=pick(values, "rate_control"),
                     intermediate=pick(values, "intermediate"), audio=pick(values, "audio"),
                     container=pick(values, "container"), quality=quality,
                     bitrate_kbps=bitrate_kbps, keyint=keyint[0] if keyint else None, width=width, height=height,
                     frame_rate=checked["frame_rate"], cpu=cpu, info=info, max_damaged_frames=max_damaged_frames,
                     chunk=chunk[0] if chunk else None)
    if job.seek_chunk is not None and job.intermediate != "none":
        raise TaskError("a seek chunk decodes from its keyframe and keeps its frames by timestamp: it needs "
                        "intermediate none")
    return job


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


#: ffmpeg's encoder options for the colour properties hevc_probe reports (primaries, transfer, matrix, range).
COLOUR_OPTIONS = {"primaries": "-color_primaries", "transfer": "-color_trc", "matrix": "-colorspace",
                  "range": "-color_range"}


def colour_args(colour: dict[str, Any]) -> list[str]:
    """The source's colour tags, set explicitly on the encoder (both encoders write them into the HEVC VUI)."""
    args: list[str] = []
    for key, option in COLOUR_OPTIONS.items():
        value = colour.get(key)
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value):
            args += [option, value]
    return args


def x265_hdr_params(hdr: dict[str, Any]) -> list[str]:
    """x265's mastering display and content light level parameters for the source's HDR10 metadata (hevc_probe
    keeps it in x265's units: chromaticities in 0.00002, luminance in 0.0001 cd/m²; x265's order is G, B, R);
    x265 writes them as SEI messages."""
    params = []
    md = hdr.get("mastering_display")
    if md:
        def xy(prefix: str) -> str:
            return f"({int(md[prefix + '_x'])},{int(md[prefix + '_y'])})"
        params.append(f"master-display=G{xy('green')}B{xy('blue')}R{xy('red')}WP{xy('white_point')}"
                      f"L({int(md['max_luminance'])},{int(md['min_luminance'])})")
    cll = hdr.get("content_light")
    if cll:
        params.append(f"max-cll={int(cll['max_content'])},{int(cll['max_average'])}")
    return params


def hdr_not_carried(job: EncodeJob) -> str | None:
    """Why the source's HDR10 metadata is not in the output, or None when it is (or there is none)."""
    return hdr_not_carried_by(job.encoder, job.info)


def hdr_not_carried_by(encoder: str, info: dict[str, Any]) -> str | None:
    hdr = (info.get("video") or {}).get("hdr") or {}
    if encoder == "hevc_nvenc" and (hdr.get("mastering_display") or hdr.get("content_light")):
        return ("the source's mastering display and content light level metadata are not in the output: "
                "hevc_nvenc in this ffmpeg (5.1) cannot write them (libx265 does); colour tags are kept")
    return None


def video_args(job: EncodeJob) -> list[str]:
    """The encoder's options: codec, preset, profile, pixel format, rate control, colour and HDR metadata,
    keyframe interval. With NVDEC the frames arrive on the GPU already in the encoder's format (no -pix_fmt)."""
    profile = PROFILES[job.profile]
    video = job.video
    if job.encoder == "libx265":
        params = [f"pools={job.cpu}", "log-level=warning", *(["strict-cbr=1"] if job.rate_control == "cbr" else []),
                  *x265_hdr_params(video.get("hdr") or {})]
        args = ["-c:v", "libx265", "-preset", job.preset, "-profile:v", job.profile, "-pix_fmt", profile.pix_fmt,
                *rate_args(job), "-x265-params", ":".join(params)]
    else:
        pix = [] if job.decode.method == "nvdec" and job.intermediate == "none" else ["-pix_fmt", profile.nvenc_pix_fmt]
        args = ["-c:v", "hevc_nvenc", "-preset", job.preset, "-tune", "hq", "-profile:v", job.profile, *pix,
                *rate_args(job)]
    return args + colour_args(video.get("colour") or {}) + (["-g", str(job.keyint)] if job.keyint is not None else [])


#: Every decoded frame keeps its source timestamp, in the source's time base: no frame is duplicated or dropped
#: to make a constant rate (ffmpeg's default for MP4), so variable frame rate sources keep their timing.
TIMING = ["-fps_mode", "passthrough", "-enc_time_base:v", "-1"]


def audio_args(plan: list[dict[str, Any]], input_index: int) -> list[str]:
    """The kept audio streams of input ``input_index``, each copied or transcoded to AAC (its channel layout kept)
    as the probe's plan says (hevc_probe.audio_plan)."""
    args: list[str] = []
    for k, entry in enumerate(plan):
        args += ["-map", f"{input_index}:{int(entry['index'])}"]
        args += aac_args(entry, k)
    return args


def aac_args(entry: dict[str, Any], k: int) -> list[str]:
    """Output audio stream ``k``: copied, or AAC at the plan's bitrate in the source's layout (or the equivalent one
    AAC can signal: hevc_probe.AAC_EQUIVALENT)."""
    if entry["action"] == "copy":
        return [f"-c:a:{k}", "copy"]
    layout = entry.get("aac_layout")
    relabel = [f"-filter:a:{k}", f"aformat=channel_layouts={layout}"] if isinstance(layout, str) else []
    return [f"-c:a:{k}", "aac", f"-b:a:{k}", f"{int(entry['kbps'])}k", *relabel]


def muxing(partial: str) -> list[str]:
    """MP4/MOV (by the file name): the hvc1 tag (what Apple players want), the index at the front."""
    return ["-tag:v", "hvc1", "-movflags", "+faststart", partial]


RAW_YUV = "source.yuv"
#: Frames stay as coded and the source's display matrix (a phone's "rotate 90") goes to the output as metadata:
#: ffmpeg's default turns the pictures instead, and the output would no longer have the probed size.
KEEP_ORIENTATION = ["-noautorotate"]


def encode_steps(job: EncodeJob, source: str, partial: str) -> list[tuple[str, list[str]]]:
    """The ffmpeg runs of an encode, as (what, arguments after FFMPEG_LOUD). intermediate none: decoder straight
    into the encoder (NVDEC on the GPU where the probe chose it); yuv_file: decode to a raw YUV file, then encode it
    (the audio from the original, input 1)."""
    video = f"0:{int(job.video.get('index', 0))}"
    plan = list(job.info.get("audio") or []) if job.audio != "none" else []
    encoding = f"encoding with {job.encoder}"
    if job.intermediate == "none":
        decode = job.decode
        gpu = hevc_decode.video_filter(decode, PROFILES[job.profile].nvenc_pix_fmt) \
            if job.encoder == "hevc_nvenc" else None
        chunk = job.seek_chunk
        seek, trim = seek_input(chunk)
        # trim and setpts pass GPU frames through untouched, before the GPU-side conversion.
        filters = [f for f in (trim, gpu) if f]
        if chunk is not None:
            plan = []
        vf = ",".join(filters)
        return [(encoding, [*seek, *hevc_decode.input_args(decode), *KEEP_ORIENTATION, "-i", source, "-map", video,
                            *(["-vf", vf] if vf else []), *video_args(job), *TIMING, *audio_args(plan, 0),
                            *muxing(partial)])]
    pix = PROFILES[job.profile].pix_fmt
    return [
        ("decoding to raw YUV", [*KEEP_ORIENTATION, "-i", source, "-map", video, "-pix_fmt", pix, "-f", "rawvideo",
                                 RAW_YUV]),
        (encoding, ["-f", "rawvideo", "-pix_fmt", pix, "-video_size", f"{job.width}x{job.height}",
                    "-framerate", job.frame_rate, "-i", RAW_YUV, "-i", source, "-map", "0:v:0", *video_args(job),
                    *audio_args(plan, 1), *muxing(partial)]),
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


def damage(log: str, index: int) -> dict[str, int]:
    """What decoding the source's video stream ``index`` met, from the encode's ffmpeg log (level+verbose): packets
    read and frames decoded (ffmpeg's final statistics), frames the decoder flagged corrupt, decode errors, and the
    frames lost (packets that gave no frame)."""
    stats = re.findall(rf"Input stream #0:{index} \(video\): (\d+) packets read \(\d+ bytes\); (\d+) frames decoded",
                       log)
    packets, decoded = (int(stats[-1][0]), int(stats[-1][1])) if stats else (0, 0)
    corrupt = len(re.findall(rf"corrupt decoded frame in stream {index}\b", log))
    errors = len(re.findall(rf"Error while decoding stream #0:{index}\b", log))
    lost = max(packets - decoded, 0)
    return {"packets": packets, "frames_decoded": decoded, "corrupt_frames": corrupt, "decode_errors": errors,
            "lost_frames": lost, "damaged_frames": corrupt + lost}


def check_damage(found: dict[str, int], allowed: int, name: str) -> None:
    if found["damaged_frames"] > allowed:
        raise TaskError(f"source {name} has {found['damaged_frames']} damaged frames ({found['corrupt_frames']} "
                        f"decoded corrupt, {found['lost_frames']} lost of {found['packets']}; {found['decode_errors']} "
                        "decode errors, see ffmpeg.log): repair or re-export the source, or set max_damaged_frames to "
                        f"{found['damaged_frames']} to accept them")


#: A chunk job's own quality measurement: every frame of the chunk (full), its first frames (sampled: one
#: segment per chunk, evenly spread over the video as the chunks are), or none.
CHUNK_SAMPLE_FRAMES = 8


def seek_input(chunk: dict[str, Any] | None) -> tuple[list[str], str | None]:
    """A seek chunk's input options and filter: decode from the keyframe before the chunk, keep exactly its frames
    by source timestamp (-copyts) and start them at 0. ([], None) for anything else."""
    if chunk is None:
        return [], None
    end = f":end_pts={int(chunk['pts_end'])}" if chunk.get("pts_end") is not None else ""
    return (["-copyts", "-ss", str(chunk["seek_s"])],
            f"trim=start_pts={int(chunk['pts_start'])}{end},setpts=PTS-STARTPTS")


def chunk_quality(job: EncodeJob, source: str, video: Path, mode: str, work: Path) -> dict[str, Any]:
    """PSNR/SSIM of a chunk's encoded frames against the source frames it was made from (the segment, or for a
    seek chunk the source read from the same keyframe and trimmed the same way), measured by the chunk's job so
    that verification of a chunked encode runs in parallel; the decoder's damage lines of the encoded chunk too."""
    if mode not in ("full", "sampled"):
        return {"mode": "off", "frames": 0}
    seek, trim = seek_input(job.seek_chunk)
    source_filter = f"{trim}," if trim else ""
    index = int(job.video.get("index", 0)) if trim else 0
    frames = CHUNK_SAMPLE_FRAMES if mode == "sampled" else None
    graph, maps = metrics_graph(job.profile, index, frames, "_chunk", source_filter)
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "level+warning", "-threads",
                           str(job.cpu), "-i", str(video), *seek, "-i", source, "-filter_complex", graph, *maps],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", check=False,
                          cwd=work)
    if proc.returncode != 0:
        raise TaskError(f"measuring the chunk against its source failed: {failure_line(proc.stderr)}")
    psnr = per_frame(work / "psnr_chunk.log", "psnr_avg")
    ssim = per_frame(work / "ssim_chunk.log", "All")
    return {"mode": mode, "chunk": job.output_name, "frames": len(psnr), "psnr": psnr, "ssim": ssim,
            "decode_errors": decoder_errors(proc.stderr)[:5]}


def encode(job: EncodeJob, source: str, work: Path, quality_mode: str = "off") -> dict[str, Any]:
    """The encode task: ffmpeg writes a temporary name; the output gets its real name only once it holds every
    decoded frame and the source's damage (if any) is within what the run accepts."""
    out, partial = work / job.output, work / f"partial.{job.output}"
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    if job.encoder == "hevc_nvenc":
        check_nvenc(work)
    if job.intermediate == "yuv_file":
        frame_bytes = job.width * job.height * 3 * PROFILES[job.profile].bytes_per_sample // 2
        print(f"decoding to a raw YUV file ({frame_bytes} bytes per frame)", file=sys.stderr)
    decode = job.decode
    print(f"decoding on {'the GPU (NVDEC)' if decode.method == 'nvdec' else 'the CPU'}: {decode.reason}",
          file=sys.stderr)
    log = work / "ffmpeg.log"
    start = time.time()
    try:
        for what, args in encode_steps(job, source, partial.name):
            run_logged(what, [*FFMPEG_LOUD, *args], log)
    finally:
        (work / RAW_YUV).unlink(missing_ok=True)
    end = time.time()
    found = damage(log.read_text(errors="replace"), int(job.video.get("index", 0)))
    if job.seek_chunk is not None:
        # A seek chunk reads from its keyframe past its last frame, and the decoder skips the leading pictures of
        # that keyframe: packets read minus frames decoded is no loss here (the planned frame count is checked).
        found["lost_frames"] = 0
        found["damaged_frames"] = found["corrupt_frames"]
    frames = count_packets(str(partial))
    if frames == 0:
        raise TaskError(f"the encoder wrote no frames to {job.output}")
    try:
        check_damage(found, job.max_damaged_frames, shown(os.path.basename(source)))
        chunk = job.seek_chunk
        if chunk is not None and frames != int(chunk["frames"]):
            raise TaskError(f"chunk {job.chunk} holds {frames} frames, not its planned {chunk['frames']} (frames "
                            f"{chunk['first_frame']} on): the seek did not land before its first frame; encode with "
                            "chunks = 1 and report this with ffmpeg.log")
        if chunk is None and found["frames_decoded"] and frames != found["frames_decoded"]:
            raise TaskError(f"the encoder wrote {frames} frames for the {found['frames_decoded']} decoded: "
                            "report this with ffmpeg.log")
    except TaskError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    stats = encode_stats(job, start, end, frames)
    stats["source_damage"] = found
    stats["decode"] = {"method": decode.method, "reason": decode.reason}
    warning = hdr_not_carried(job)
    stats["warnings"] = [warning] if warning else []
    write_atomic(work / "frames.txt", f"{frames}\n")
    write_atomic(work / "encode_stats.json", json.dumps(stats, indent=2) + "\n")
    write_atomic(work / "quality.json", json.dumps(chunk_quality(job, source, out, quality_mode, work)) + "\n")
    return stats


def encode_stats(job: EncodeJob, start: float, end: float, frames: int) -> dict[str, Any]:
    seconds = max(end - start, 1e-6)
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 4),
            "encoder": job.encoder, "preset": job.preset, "profile": job.profile,
            "rate_control": job.rate_control, "intermediate": job.intermediate, "cpu": job.cpu}


# -- split and concat ------------------------------------------------------------------------------


SEGMENTS = "segments"


def split_args(source: str, cuts: Sequence[int], video_index: int = 0) -> list[str]:
    """Stream-copy the chosen video stream into NUT segments starting at the first keyframe at or after each cut."""
    where = ["-segment_frames", ",".join(str(c) for c in cuts)] if cuts else ["-segment_time", "1000000000"]
    return ["-i", source, "-map", f"0:{video_index}", "-c", "copy", "-f", "segment", "-segment_format", "nut", *where,
            "-reset_timestamps", "1", f"{SEGMENTS}/seg_%05d.nut"]


def audio_aside_args(source: str, plan: list[dict[str, Any]], partial: str) -> list[str]:
    """Stream-copy the kept audio streams, in the plan's order, into one Matroska file."""
    maps = [arg for entry in plan for arg in ("-map", f"0:{int(entry['index'])}")]
    return ["-i", source, *maps, "-c", "copy", partial]


def split(source: str, frames: int, chunks: int, cpu: int, keep_audio: bool, work: Path,
          info: dict[str, Any] | None = None) -> list[int]:
    """The split_source task: the probe's chunk plan (cuts at closed keyframes only: hevc_probe.chunk_plan) as
    stream-copied segments, each checked to hold its planned frames (a demux count: nothing is decoded), and
    audio.mka when kept."""
    if frames < 1 or chunks < 1:
        raise TaskError(f"cannot split {frames} frames into {chunks} chunks: give 1 or more of each")
    planned = list((info or {}).get("chunks") or [])
    if not planned:
        planned = [{"first_frame": 0, "frames": frames, "start_us": 0}]
    (work / SEGMENTS).mkdir(exist_ok=True)
    video_index = int(((info or {}).get("video") or {}).get("index", 0))
    cuts = [int(c["first_frame"]) for c in planned[1:]]
    run_quiet("splitting the source at closed keyframes", split_args(source, cuts, video_index), work / "split.log")
    counts = []
    for seg in sorted((work / SEGMENTS).glob("seg_*.nut")):
        counts.append(count_packets(str(seg)))
        print(f"{seg.name}: {counts[-1]} frames", file=sys.stderr)
    if counts != [int(c["frames"]) for c in planned]:
        raise TaskError(f"the segments hold {counts} frames, not the planned {[int(c['frames']) for c in planned]}: "
                        "report this with split.log")
    plan = list((info or {}).get("audio") or [])
    if keep_audio and plan:
        run_quiet("copying the audio aside", audio_aside_args(source, plan, "partial.audio.mka"), work / "audio.log")
        os.replace(work / "partial.audio.mka", work / "audio.mka")
    return counts


def concat_list(paths: Iterable[str], starts_us: Sequence[int] | None = None) -> str:
    """The concat demuxer's list: one ``file '<path>'`` line per chunk, ordered by file name, each but the last
    followed by its exact duration in microseconds (``duration 400400us``) from the source's timestamps: without it
    the demuxer takes an MP4 chunk's length from its millisecond movie header, and every later frame lands up to
    1 ms late (59.94 fps: 0.4004 s becomes 0.401 s)."""
    ordered = sorted((p for p in paths if p.strip()), key=os.path.basename)
    if starts_us is not None and len(starts_us) != len(ordered):
        raise TaskError(f"{len(ordered)} chunks for the {len(starts_us)} the probe planned: pass every chunk")
    lines = []
    for k, p in enumerate(ordered):
        if "\n" in p or "\r" in p:
            raise TaskError(f"chunk path {shown(p)} holds a line break: rename the chunk")
        lines.append("file '" + p.replace("'", "'\\''") + "'\n")
        if starts_us is not None and k + 1 < len(ordered):
            lines.append(f"duration {int(starts_us[k + 1]) - int(starts_us[k])}us\n")
    return "".join(lines)


def concat_args(listing: str, audio_file: str | None, plan: list[dict[str, Any]], partial: str,
                from_source: bool = False) -> list[str]:
    """Join the chunks listed in ``listing`` (stream copy) and add the audio streams copied or transcoded as the
    plan says: from the file split_source wrote (its streams in the plan's order) or, for seek chunks, from the
    source itself (``from_source``: the streams' own indices)."""
    extra: list[str] = []
    if audio_file is not None and plan:
        extra = ["-i", audio_file]
        for k, entry in enumerate(plan):
            extra += ["-map", f"1:{int(entry['index']) if from_source else k}", *aac_args(entry, k)]
    return ["-f", "concat", "-safe", "0", "-i", listing, *extra, "-map", "0:v", "-c:v", "copy", *muxing(partial)]


def concat(chunks: Sequence[str], audio_track: Sequence[str], *, output_name: str, audio: str, expected_frames: int,
           work: Path, container: str = "mp4", info: dict[str, Any] | None = None) -> int:
    """The concat_chunks task: chunks in segment order (not arrival order), audio back, frame count checked."""
    out, partial = work / f"{output_name}.{container}", work / f"partial.{output_name}.{container}"
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    plan = list((info or {}).get("audio") or []) if audio != "none" else []
    if len(audio_track) > 1:
        raise TaskError(f"audio_track holds {len(audio_track)} lines, not at most one file: give one audio file "
                        "(a path with a line break counts twice)")
    planned = list((info or {}).get("chunks") or [])
    write_atomic(work / "concat.txt", concat_list(chunks, [int(c["start_us"]) for c in planned] if planned else None))
    seek = any(c.get("mode") == "seek" for c in planned)
    run_quiet("joining the encoded chunks", concat_args("concat.txt", audio_track[0] if audio_track else None, plan,
                                                        partial.name, from_source=seek), work / "concat.log")
    frames = count_packets(str(partial))
    if frames != expected_frames:
        raise TaskError(f"the joined video has {frames} frames, not the source's {expected_frames}")
    os.replace(partial, out)
    return frames


# -- verification ----------------------------------------------------------------------------------

#: Sampled verification: this many evenly spread segments of SAMPLE_FRAMES frames each, found by seeking (each
#: decodes from its prior keyframe only), so its cost does not grow with the length of the video.
SAMPLE_SEGMENTS = 8
SAMPLE_FRAMES = 4


def per_frame(path: Path, key: str) -> list[float]:
    values: list[float] = []
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        m = re.search(rf"\b{key}:(\S+)", line)
        if m:
            values.append(float(m.group(1)) if m.group(1) != "inf" else math.inf)
    return values


def relative_times(scan: hevc_probe.PacketScan, time_base: str) -> list[Fraction]:
    """Presentation times of a stream's frames from its first, exact (rationals, seconds)."""
    tb = Fraction(time_base) if re.fullmatch(r"\d+/[1-9]\d*", time_base) else Fraction(1, 1000)
    return [(p - scan.pts[0]) * tb for p in scan.pts] if scan.pts else []


def timestamp_check(source: list[Fraction], video: list[Fraction], expected_frames: int) -> dict[str, Any]:
    """Whether the video's frames have the source's timestamps (from the first frame), and the first difference."""
    if len(source) != expected_frames:
        return {"checked": False, "why": f"the source has {len(source)} packets and {expected_frames} frames were "
                                         "decoded from it (damaged source): timestamps not compared"}
    if len(source) != len(video):
        return {"checked": True, "equal": False, "why": f"{len(video)} frames for the source's {len(source)}"}
    for i, (a, b) in enumerate(zip(source, video, strict=True)):
        if a != b:
            return {"checked": True, "equal": False,
                    "why": f"frame {i} at {float(b):.6f} s, the source's at {float(a):.6f} s"}
    return {"checked": True, "equal": True, "why": None}


def sample_starts(frames: int, keyframes: Sequence[int] | None = None, segments: int = SAMPLE_SEGMENTS,
                  length: int = SAMPLE_FRAMES) -> list[int]:
    """First frames of the sampled segments, spread over the video, the first and the last frames included; a video
    that short segments would cover is compared whole, segment after segment.

    With the encoded video's ``keyframes`` (display indices), each spread position moves to the nearest keyframe
    (distinct ones): seeking there decodes nothing before the segment, so the cost stays that of ``segments``
    short decodes whatever the length. Only the last segment (the video's last frames) decodes from its keyframe,
    at most one keyframe interval."""
    if frames <= segments * length:
        return list(range(0, frames, length))
    last = frames - length
    spread = [round(k * last / (segments - 1)) for k in range(segments)]
    if keyframes is None:
        return sorted(set(spread))
    keys = sorted(k for k in set(keyframes) if 0 <= k <= last)
    chosen: set[int] = {last}
    for target in spread[:-1]:
        free = [k for k in keys if k not in chosen]
        if free:
            chosen.add(min(free, key=lambda k: (abs(k - target), k)))
    return sorted(chosen)


def metrics_graph(profile: str, source_index: int = 0, frames: int | None = None, tag: str = "",
                  source_filter: str = "") -> tuple[str, list[str]]:
    """ffmpeg's filter graph comparing input 0 (video) with input 1's stream ``source_index`` (source) in the
    profile's pixel format (PSNR and SSIM), and the outputs to map. Frames pair by index, not timestamp: both
    streams get pts = frame number in one time base. ``frames``: compare only the first so many (a sampled segment).
    ``source_filter``: filters applied to the source first (a seek chunk's trim). VMAF runs apart (hevc_vmaf)."""
    trim = f"trim=end_frame={frames}," if frames else ""
    prep = f"{trim}format={PROFILES[profile].pix_fmt},settb=1/1000,setpts=N"
    graph = (f"[0:v:0]{prep},split=2[d1][d2];[1:{source_index}]{source_filter}{prep},split=2[r1][r2];"
             f"[d1][r1]psnr=stats_file=psnr{tag}.log[p];[d2][r2]ssim=stats_file=ssim{tag}.log[s]")
    return graph, ["-map", "[p]", "-f", "null", "-", "-map", "[s]", "-f", "null", "-"]


def video_seek(times: list[Fraction], index: int, keyframes: Sequence[int], at: str | None) -> list[str]:
    """-ss options for the encoded video of a sampled segment starting at frame ``index``: at a keyframe of the
    video, a plain seek to just after it (the demuxer lands on the keyframe and decoding starts there: nothing to
    discard); elsewhere the accurate seek ``at`` (decoding from the keyframe before)."""
    if at is None:
        return []
    if index in keyframes:
        after = times[index] + ((times[index + 1] - times[index]) / 2 if index + 1 < len(times) else Fraction(1, 10**6))
        return ["-noaccurate_seek", "-ss", f"{float(after):.6f}"]
    return ["-ss", at]


def seek_time(times: list[Fraction], index: int) -> str:
    """A -ss position that starts exactly at frame ``index``: half a frame interval before it (0 for the first)."""
    if index == 0:
        return "0"
    t = (times[index - 1] + times[index]) / 2
    return f"{float(t):.6f}"


def use_chunk_quality(paths: Sequence[str], work: Path) -> None:
    """A chunked run's quality, measured by its chunk jobs (chunk_quality): their per-frame values, in chunk order,
    become the logs build_report reads, and their decoders' damage lines the decode errors."""
    reports = [read_json(Path(p), "chunk quality") for p in paths]
    reports.sort(key=lambda r: str(r.get("chunk", "")))
    errors: list[str] = []
    for k, report in enumerate(reports):
        write_atomic(work / f"psnr_{k:05d}.log", "".join(f"n:{i + 1} psnr_avg:{v}\n"
                                                         for i, v in enumerate(report.get("psnr") or [])))
        write_atomic(work / f"ssim_{k:05d}.log", "".join(f"n:{i + 1} All:{v}\n"
                                                         for i, v in enumerate(report.get("ssim") or [])))
        errors += [str(e) for e in report.get("decode_errors") or []]
    write_atomic(work / "decode_errors.log", "".join(f"{e}\n" for e in errors))
    write_atomic(work / "metrics.log", "")


def measure(video: str, source: str, *, info: dict[str, Any], profile: str, mode: str, vmaf: bool, cpu: int,
            work: Path, chunk_quality: Sequence[str] = ()) -> bool:
    """The verify task's tool runs: ffprobe facts, first frame (colour, HDR) and packets of the video and the
    source's packets (demux only), then the comparison with the source: every frame (full), evenly spread segments
    (sampled) or none (off). Writes the files build_report reads; returns whether VMAF was computed."""
    src = dict(info.get("video") or {})
    index = int(src.get("index", 0))
    probe_info = hevc_probe.ffprobe_json(["-select_streams", "v:0", "-show_streams", "-show_format"], video,
                                         "cannot read the encoded video (ffprobe: {why})")
    write_atomic(work / "video.json", json.dumps(probe_info, indent=2) + "\n")
    first = hevc_probe.first_frame(video, "v:0", "cannot decode the encoded video's first frame (ffprobe: {why})")
    write_atomic(work / "video_first_frame.json", json.dumps({"frames": [first]}, indent=2) + "\n")
    scan = hevc_probe.packet_scan(video, "v:0", "cannot read the video's packets (ffprobe: {why})")
    times = {"video": relative_times(scan, str(((probe_info.get("streams") or [{}])[0]).get("time_base", "")))}
    video_keys = [bisect.bisect_left(scan.pts, k) for k in scan.keyframes]
    # The source's timestamps come from the probe, which read them already; a master is not read again.
    known = info.get("timestamps")
    if isinstance(known, dict) and isinstance(known.get("pts"), list):
        times["source"] = relative_times(hevc_probe.PacketScan(pts=[int(p) for p in known["pts"]]),
                                         str(known.get("time_base", "")))
    else:
        times["source"] = relative_times(
            hevc_probe.packet_scan(source, str(index), "cannot read the source's packets (ffprobe: {why})"),
            str(src.get("time_base", "")))
    write_atomic(work / "frames.txt", f"{len(times['video'])}\n")
    write_atomic(work / "timestamps.json", json.dumps({k: [str(t) for t in v] for k, v in times.items()}) + "\n")
    for stale in work.glob("psnr*.log"):
        stale.unlink()
    for stale in [*work.glob("ssim*.log"), *work.glob("vmaf*.json")]:
        stale.unlink()
    # VMAF: the image's second ffmpeg (hevc_vmaf: Debian's has no libvmaf); not for a chunked run's quality, which
    # the chunk jobs measured (PSNR/SSIM).
    with_vmaf = vmaf and mode != "off" and not chunk_quality and hevc_vmaf.available()
    errors = work / "decode_errors.log"
    errors.write_bytes(b"")
    if mode == "off":
        write_atomic(work / "metrics.log", "")
        return False
    if chunk_quality:
        use_chunk_quality(chunk_quality, work)
        return False
    if mode == "full":
        proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "level+warning", "-threads", str(cpu),
                               "-i", video, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "null", "-"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", check=False)
        write_atomic(errors, "".join(f"{line}\n" for line in decoder_errors(proc.stderr)))
        segments: list[tuple[int, int | None]] = [(0, None)]
    else:
        frames = len(times["video"])
        # A video that the segments would cover whole is compared in one pass: cheaper than segments that each
        # decode from the keyframe before them.
        segments = [(0, None)] if frames <= SAMPLE_SEGMENTS * SAMPLE_FRAMES else \
            [(start, SAMPLE_FRAMES) for start in sample_starts(frames, video_keys)]
    model = hevc_vmaf.model_for(int(src.get("width", 0)), int(src.get("height", 0)))
    with (work / "metrics.log").open("wb") as fh:
        for k, (start, length) in enumerate(segments):
            tag = f"_{k:03d}" if length else ""
            graph, maps = metrics_graph(profile, index, length, tag)
            at = seek_time(times["video"], start) if length else "0"
            seek: list[str] = ["-ss", at] if length else []
            status = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-threads", str(cpu),
                                     *video_seek(times["video"], start, video_keys, at if length else None),
                                     "-i", video, *seek, "-i", source, "-filter_complex", graph, *maps],
                                    stdin=subprocess.DEVNULL, stderr=fh, check=False).returncode
            if status != 0:
                raise TaskError("comparing the video with the source failed: "
                                f"{last_line((work / 'metrics.log').read_text(errors='replace'))}")
            if with_vmaf:
                argv = hevc_vmaf.vmaf_args(video, source, ref_stream=index, pix_fmt=PROFILES[profile].pix_fmt,
                                           threads=cpu, log_path=f"vmaf{tag}.json", model=model, frames=length,
                                           seek=at if length else None)
                if subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=fh, cwd=work, check=False).returncode:
                    raise TaskError("computing VMAF failed: "
                                    f"{last_line((work / 'metrics.log').read_text(errors='replace'))}")
    return with_vmaf


def decoder_errors(log: str) -> list[str]:
    """The lines of a decode's ``level+warning`` log that report damage: the HEVC decoder's errors and ffmpeg's
    corrupt-frame and decode-error lines; not the null muxer's timestamp warnings, which say nothing of the video."""
    keep = []
    for line in log.splitlines():
        if ("[hevc @" in line and "[error]" in line) or "corrupt decoded frame" in line \
                or "Error while decoding" in line or "[fatal]" in line:
            keep.append(line.strip())
    return keep


def frame_metrics(work: Path) -> tuple[list[float], list[float]]:
    """Per-frame PSNR (average of the planes) and SSIM (All) of every compared frame, in segment order."""
    psnr: list[float] = []
    ssim: list[float] = []
    for path in sorted(work.glob("psnr*.log")):
        psnr += per_frame(path, "psnr_avg")
    for path in sorted(work.glob("ssim*.log")):
        ssim += per_frame(path, "All")
    return psnr, ssim


def output_colour_and_hdr(work: Path) -> tuple[dict[str, str | None], dict[str, Any]]:
    stream = (json.loads((work / "video.json").read_text() or "{}").get("streams") or [{}])[0]
    frames = json.loads((work / "video_first_frame.json").read_text() or "{}").get("frames") or [{}]
    first = frames[0] if isinstance(frames[0], dict) else {}
    colour = hevc_probe.colour(stream)
    frame_colour = hevc_probe.colour(first)
    merged = {k: colour[k] or frame_colour[k] for k in hevc_probe.COLOUR_KEYS}
    # The bitstream's (SEI) HDR metadata only: ffmpeg copies a source container's mdcv/clli boxes to the output
    # container whatever the encoder did, so the container's would hide an encoder that dropped the SEI.
    return merged, hevc_probe.hdr_metadata(list(first.get("side_data_list") or []))


def colour_matches(source: dict[str, Any], output: dict[str, Any]) -> bool:
    """The output keeps every colour tag the source has; an untagged source gives an untagged output, except the
    range, which an HEVC encoder always signals and which means limited ("tv") when a YUV source leaves it out."""
    for key in hevc_probe.COLOUR_KEYS:
        want, got = source.get(key), output.get(key)
        if want is None and not (got is None or (key == "range" and got == "tv")):
            return False
        if want is not None and got != want:
            return False
    return True


def build_report(work: Path, *, expected_frames: int, width: int, height: int, profile: str, has_vmaf: bool,
                 vmaf_requested: bool, min_psnr: float, info: dict[str, Any] | None = None, mode: str = "full",
                 hdr_exempt: str | None = None, measured_by: str = "verify") -> dict[str, Any]:
    """The verification report from the files the verify task's ffprobe/ffmpeg runs wrote into ``work``."""
    src = dict((info or {}).get("video") or {})
    expected = {"frames": expected_frames, "width": width, "height": height, "profile": PROFILES[profile].name,
                "colour": src.get("colour"), "hdr": src.get("hdr")}
    probe_info = json.loads((work / "video.json").read_text() or "{}")
    stream = (probe_info.get("streams") or [{}])[0]
    frames_text = (work / "frames.txt").read_text().strip()
    frames = int(frames_text) if frames_text.isdigit() else 0
    decode_errors = [ln.strip() for ln in (work / "decode_errors.log").read_text().splitlines() if ln.strip()]
    log = (work / "metrics.log").read_text(errors="replace")
    psnr_frames, ssim_frames = frame_metrics(work)
    psnr: dict[str, float] = {}
    ssim: dict[str, float] = {}
    if mode == "full" and "PSNR y:" in log:
        m = re.search(r"PSNR y:(\S+) u:(\S+) v:(\S+) average:(\S+) min:(\S+) max:(\S+)", log)
        psnr = {k: float(x) for k, x in zip(("y", "u", "v", "average", "min", "max"), m.groups(), strict=True)} \
            if m else {}
        m = re.search(r"SSIM Y:(\S+) \(\S+\) U:(\S+) \(\S+\) V:(\S+) \(\S+\) All:(\S+)", log)
        ssim = {k: float(x) for k, x in zip(("y", "u", "v", "all"), m.groups(), strict=True)} if m else {}
    elif mode in ("full", "sampled") and psnr_frames:
        finite = [v for v in psnr_frames if math.isfinite(v)] or [100.0]
        psnr = {"average": sum(finite) / len(finite), "min": min(psnr_frames), "max": max(psnr_frames)}
        ssim = {"all": sum(ssim_frames) / len(ssim_frames)} if ssim_frames else {}
    vmaf: dict[str, Any] | None = None
    if has_vmaf:
        scores = [v for path in sorted(work.glob("vmaf*.json"))
                  for v in hevc_vmaf.frame_scores(json.loads(path.read_text()))]
        if scores:
            vmaf = {**hevc_vmaf.pool(scores), "model": hevc_vmaf.model_for(width, height)}
    checks: dict[str, bool] = {
        "decodes": not decode_errors and frames > 0,
        "codec_hevc": stream.get("codec_name") == "hevc",
        "profile": stream.get("profile") == expected["profile"],
        "resolution": (stream.get("width"), stream.get("height")) == (width, height),
        "frame_count": frames == expected_frames,
    }
    timing: dict[str, Any] = {"checked": False, "why": "no source timestamps"}
    if (work / "timestamps.json").exists():
        ts = json.loads((work / "timestamps.json").read_text())
        timing = timestamp_check([Fraction(t) for t in ts["source"]], [Fraction(t) for t in ts["video"]],
                                 expected_frames)
        if timing["checked"]:
            checks["timestamps"] = bool(timing["equal"])
    out_colour, out_hdr = output_colour_and_hdr(work)
    if info is not None:
        checks["colour_tags"] = colour_matches(dict(src.get("colour") or {}), out_colour)
        if hdr_exempt is None:
            checks["hdr_metadata"] = out_hdr == src.get("hdr")
    if mode == "full":
        checks["all_frames_compared"] = len(psnr_frames) == expected_frames == len(ssim_frames)
    elif mode == "sampled":
        checks["samples_compared"] = len(psnr_frames) > 0 and len(psnr_frames) == len(ssim_frames)
    if not math.isnan(min_psnr) and mode != "off":
        checks["min_psnr"] = bool(psnr) and psnr["average"] >= min_psnr
    fmt = probe_info.get("format", {})
    warnings = [hdr_exempt] if hdr_exempt else []
    if int(src.get("corrupt_packets") or 0) > 0:
        warnings.append(f"the source had {src['corrupt_packets']} corrupt video packets, accepted by "
                        "max_damaged_frames: the output carries what could be decoded")
    return {
        "passed": all(checks.values()),
        "warnings": warnings,
        "checks": checks,
        "mode": mode,
        "measured_by": measured_by,
        "video": {"codec": stream.get("codec_name"), "profile": stream.get("profile"),
                  "pix_fmt": stream.get("pix_fmt"), "width": stream.get("width"),
                  "height": stream.get("height"), "frames": frames,
                  "bytes": int(fmt.get("size", 0) or 0), "bit_rate": int(fmt.get("bit_rate", 0) or 0),
                  "colour": out_colour, "hdr": out_hdr, "decode_errors": decode_errors[:5]},
        "expected": expected,
        "timestamps": timing,
        "hdr_note": hdr_exempt,
        "frames_compared": len(psnr_frames),
        "psnr_db": psnr,
        "psnr_frame_min_db": min(psnr_frames) if psnr_frames else None,
        "ssim": ssim,
        "ssim_frame_min": min(ssim_frames) if ssim_frames else None,
        "vmaf": vmaf,
        "vmaf_note": None if has_vmaf else ("not computed: this image has no VMAF ffmpeg" if vmaf_requested and
                                            mode != "off" and measured_by == "verify" else
                                            "not computed: a chunked run's quality is measured by its chunk jobs "
                                            "(PSNR/SSIM)" if vmaf_requested and measured_by != "verify" else
                                            "not computed: verify_mode off" if vmaf_requested else "not requested"),
        "compared_in": profile,
    }


def report_text(report: dict[str, Any]) -> str:
    checks, v, expected = report["checks"], report["video"], report["expected"]
    psnr, ssim, vmaf = report["psnr_db"], report["ssim"], report["vmaf"]
    by = " per chunk, by the chunk jobs" if report.get("measured_by") == "chunk jobs" else ""
    lines = [f"verification: {'PASSED' if report['passed'] else 'FAILED'} ({report.get('mode', 'full')}{by})"]
    lines += [f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()]
    lines.append(f"video: {v['codec']} {v['profile']} {v['pix_fmt']} {v['width']}x{v['height']}, "
                 f"{v['frames']} frames (source {expected['frames']}), {v['bytes']} bytes")
    timing = report.get("timestamps") or {}
    if timing.get("why"):
        lines.append(f"timestamps: {timing['why']}")
    if v.get("colour") is not None:
        lines.append("colour: " + ", ".join(f"{k} {v['colour'][k]}" for k in v["colour"]))
    if report.get("hdr_note"):
        lines.append(f"HDR: {report['hdr_note']}")
    if psnr:
        lines.append(f"PSNR: average {psnr['average']:.3f} dB over {report.get('frames_compared', 0)} frames; "
                     f"lowest frame {report['psnr_frame_min_db']:.3f} dB")
    if ssim:
        lines.append(f"SSIM: All {ssim['all']:.5f}; lowest frame {report['ssim_frame_min']:.5f}")
    if report.get("mode") == "off":
        lines.append("PSNR/SSIM: not measured (verify = off)")
    lines.append(f"VMAF ({vmaf['model']}): {vmaf['mean']:.3f} mean, {vmaf['min']:.3f} min over {vmaf['frames']} frames"
                 if vmaf else f"VMAF: {report['vmaf_note']}")
    return "\n".join(lines) + "\n"


def verify(work: Path, **kwargs: Any) -> dict[str, Any]:
    """The verify task's report: writes verify_report.json/.txt, psnr.txt, ssim.txt; TaskError when a check fails."""
    report = build_report(work, **kwargs)
    write_atomic(work / "verify_report.json", json.dumps(report, indent=2) + "\n")
    text = report_text(report)
    write_atomic(work / "verify_report.txt", text)
    print(text, end="", file=sys.stderr)
    # verify = off measures nothing: -1 marks it (the report says why).
    write_atomic(work / "psnr.txt", f"{report['psnr_db'].get('average', -1.0)}\n")
    write_atomic(work / "ssim.txt", f"{report['ssim'].get('all', -1.0)}\n")
    if not report["passed"]:
        v, expected = report["video"], report["expected"]
        failed = ", ".join(name for name, ok in report["checks"].items() if not ok)
        raise TaskError(f"the encoded video failed verification ({failed}): see verify_report.txt "
                        f"(frames {v['frames']} vs {expected['frames']}, {v['width']}x{v['height']}, "
                        f"profile {v['profile']})")
    return report


# -- command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hevc-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("probe", help="check every setting, then the source; write the probe task's outputs")
    s.add_argument("--settings", type=Path, required=True, help="JSON object of the string settings")
    s.add_argument("--name", type=Path, required=True, help="JSON list: [] or [output_name]")
    s.add_argument("--streams", type=Path, required=True,
                   help="JSON object: video_stream and audio_stream, each [] (default) or [ffprobe stream index]")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--chunks", type=int, required=True)
    s.add_argument("--max-damaged-frames", type=int, default=0)
    s = sub.add_parser("encode", help="encode the source to HEVC; write <output_name>.<container>, frames.txt and "
                                      "encode_stats.json")
    s.add_argument("--settings", type=Path, required=True,
                   help="JSON object: output_name, encoder, preset, profile, rate_control, intermediate, audio, "
                        "container, frame_rate")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--info", type=Path, required=True, help="write_lines file: the probe's source_info.json path")
    s.add_argument("--keyint", type=Path, required=True, help="JSON list: [] (encoder default) or [frames]")
    s.add_argument("--chunk", type=Path, help="JSON list: [] or [index of a seek chunk of the probe's plan]")
    for number in ("--quality", "--bitrate-kbps", "--width", "--height", "--cpu"):
        s.add_argument(number, type=int, required=True)
    s.add_argument("--max-damaged-frames", type=int, default=0)
    s = sub.add_parser("split", help="cut the source at keyframes into segments/seg_*.nut; audio.mka aside")
    s.add_argument("--source", type=Path, required=True, help="write_lines file: the source's path")
    s.add_argument("--info", type=Path, required=True, help="write_lines file: the probe's source_info.json path")
    s.add_argument("--frames", type=int, required=True)
    s.add_argument("--chunks", type=int, required=True)
    s.add_argument("--cpu", type=int, default=4)
    s.add_argument("--keep-audio", choices=("true", "false"), required=True)
    s = sub.add_parser("concat", help="join the encoded chunks into <output_name>.<container>")
    s.add_argument("--settings", type=Path, required=True, help="JSON object: output_name, audio, container")
    s.add_argument("--info", type=Path, required=True, help="write_lines file: the probe's source_info.json path")
    s.add_argument("--chunks", type=Path, required=True, help="write_lines file: the chunks' paths")
    s.add_argument("--audio-track", type=Path, required=True, help="write_lines file: no path or one")
    s.add_argument("--expected-frames", type=int, required=True)
    s = sub.add_parser("verify", help="compare the video with the source; write the verification report")
    s.add_argument("--settings", type=Path, required=True, help="JSON object: profile, encoder, verify_mode")
    s.add_argument("--info", type=Path, required=True, help="write_lines file: the probe's source_info.json path")
    s.add_argument("--files", type=Path, required=True, help="write_lines file: the video's and the source's paths")
    s.add_argument("--expected-frames", type=int, required=True)
    s.add_argument("--width", type=int, required=True)
    s.add_argument("--height", type=int, required=True)
    s.add_argument("--vmaf", choices=("true", "false"), required=True)
    s.add_argument("--min-psnr", type=float, default=math.nan)
    s.add_argument("--cpu", type=int, default=4)
    s.add_argument("--chunk-quality", type=Path,
                   help="write_lines file: the chunk jobs' quality.json files (chunked runs: they measured)")
    return p


def read_info(listing: Path) -> dict[str, Any]:
    """The probe's source_info.json, named in a ``write_lines`` file."""
    (path,) = read_paths(listing, 1, "the source_info file's path")
    info = read_json(Path(path), "source_info")
    if not isinstance(info, dict) or not isinstance(info.get("video"), dict):
        raise TaskError(f"the task's source_info file {path} is not the probe's JSON report: pass probe_source.info")
    return info


def _probe(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    print(json.dumps(probe(args.settings, args.name, args.streams, source, args.chunks, args.max_damaged_frames,
                           Path.cwd())))


def _encode(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    job = encode_job(read_settings(args.settings), info=read_info(args.info), quality=args.quality,
                     bitrate_kbps=args.bitrate_kbps, keyint=read_json(args.keyint, "keyint"), width=args.width,
                     height=args.height, cpu=args.cpu, max_damaged_frames=args.max_damaged_frames,
                     chunk=read_json(args.chunk, "chunk") if args.chunk else None)
    values = read_settings(args.settings)
    # A chunk job measures its own quality as the run's verification asks (verify_mode, resolved by the probe; the
    # workflow gives it to chunk jobs only: a whole encode is measured by the verify task).
    quality_mode = pick(values, "verify_mode") if "verify_mode" in values else "off"
    print(json.dumps(encode(job, source, Path.cwd(), quality_mode)))


def _split(args: argparse.Namespace) -> None:
    (source,) = read_paths(args.source, 1, "the source file's path")
    split(source, args.frames, args.chunks, args.cpu, args.keep_audio == "true", Path.cwd(), read_info(args.info))


def _concat(args: argparse.Namespace) -> None:
    values = read_settings(args.settings)
    concat(read_lines(args.chunks), read_lines(args.audio_track), output_name=check_name(values.get("output_name", "")),
           audio=pick(values, "audio"), expected_frames=args.expected_frames, work=Path.cwd(),
           container=pick(values, "container"), info=read_info(args.info))


def _verify(args: argparse.Namespace) -> None:
    video, source = read_paths(args.files, 2, "the video's or the source's path")
    values = read_settings(args.settings)
    profile, encoder = pick(values, "profile"), pick(values, "encoder")
    info = read_info(args.info)
    mode = verify_mode(pick(values, "verify_mode"), info["video"])
    work = Path.cwd()
    chunk_quality = read_lines(args.chunk_quality) if args.chunk_quality else []
    with_vmaf = measure(video, source, info=info, profile=profile, mode=mode, vmaf=args.vmaf == "true", cpu=args.cpu,
                        work=work, chunk_quality=chunk_quality)
    job_hdr = hdr_not_carried_by(encoder, info)
    verify(work, expected_frames=args.expected_frames, width=args.width, height=args.height, profile=profile,
           has_vmaf=with_vmaf, vmaf_requested=args.vmaf == "true", min_psnr=args.min_psnr, info=info, mode=mode,
           hdr_exempt=job_hdr, measured_by="chunk jobs" if chunk_quality and mode != "off" else "verify")


COMMANDS: dict[str, Command] = {"probe": _probe, "encode": _encode, "split": _split, "concat": _concat,
                                "verify": _verify}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_parser(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
