#!/usr/bin/env python3
"""The programs of the HEVC workflow's tasks (wdl/tasks/hevc.wdl), installed in the ffmpeg image as ``hevc-tasks``.

Every value reaches this program as an argument or inside a JSON file that the WDL engine wrote
(``write_json``/``write_lines``); nothing is pasted into source code. Subcommands:

* ``settings JSON KEY...``: check the named settings of the JSON object and print their values, one a line
  (every checked value is one line, so ``mapfile`` reads them back at fixed positions);
* ``probe``: check the settings, then the source with ffprobe (frame count by decoding); write the outputs;
* ``split-points FRAMES CHUNKS``: frame numbers where keyframe segments should start;
* ``concat-list LIST``: the concat demuxer's list for the chunk paths in LIST (one a line), in name order;
* ``encode-stats``: the encode task's statistics JSON;
* ``verify-report``: the verification report from the ffprobe/ffmpeg logs in the working directory.

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
import unicodedata
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

#: Output names: the pattern declared as ``pattern`` in the workflow's and the tasks' parameter_meta.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RULE = "may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it"
CHOICES: dict[str, tuple[str, ...]] = {
    "encoder": ("libx265", "hevc_nvenc"),
    "profile": ("main", "main10"),
    "rate_control": ("crf", "vbr", "cbr"),
    "audio": ("copy", "aac", "none"),
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
PRESETS: dict[str, tuple[str, ...]] = {
    "libx265": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo"),
    "hevc_nvenc": ("p1", "p2", "p3", "p4", "p5", "p6", "p7"),
}
#: Audio codecs an MP4 can carry unchanged (audio = copy).
MP4_COPYABLE = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "mp2"})
#: The settings ``settings`` knows, in the order they are checked (preset needs the encoder).
KNOWN = ("output_name", "encoder", "preset", "profile", "rate_control", "audio", "intermediate",
         "expected_resolution", "frame_rate")
NAME_SUFFIX = ".hevc"


class TaskError(Exception):
    """A problem with the task's input: the message is the one ERROR line (problem and fix)."""


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
    # \Z, not $: "$" would also match before a trailing newline.
    return re.fullmatch(NAME_PATTERN.rstrip("$") + r"\Z", value) is not None


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
            if value not in CHOICES[key]:
                raise TaskError(f"unknown {CHOICE_LABELS.get(key, key)} {shown(value)}: {CHOICE_HINTS[key]}")
        elif key == "preset":
            encoder = values["encoder"]
            if encoder not in PRESETS:
                raise TaskError(f"unknown encoder {shown(str(encoder))}: {CHOICE_HINTS['encoder']}")
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


def read_settings(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read the task's settings file {path}: {exc}") from exc
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


def probe(settings_file: Path, name_file: Path, source: str, chunks: int, cpu: int, out_dir: Path) -> dict[str, Any]:
    """The probe task: settings first (cheap), then the source; writes the task's output files."""
    values = read_settings(settings_file)
    s = check_settings(values, ["encoder", "preset", "profile", "rate_control", "audio", "expected_resolution"])
    if chunks < 1:
        raise TaskError(f"chunks is {chunks}: give 1 (single encode) or more")
    given = json.loads(name_file.read_text())
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


# -- split and concat ------------------------------------------------------------------------------


def split_points(frames: int, chunks: int) -> list[int]:
    """Frame numbers where segments 2..chunks should start (strictly increasing, inside the video)."""
    points = {round(i * frames / chunks) for i in range(1, chunks)}
    return sorted(p for p in points if 0 < p < frames)


def concat_list(paths: Iterable[str]) -> str:
    """The concat demuxer's list: one ``file '<path>'`` line per chunk, ordered by file name."""
    ordered = sorted((p for p in paths if p.strip()), key=os.path.basename)
    lines = []
    for p in ordered:
        if "\n" in p or "\r" in p:
            raise TaskError(f"chunk path {shown(p)} holds a line break: rename the chunk")
        lines.append("file '" + p.replace("'", "'\\''") + "'\n")
    return "".join(lines)


# -- encode statistics -----------------------------------------------------------------------------


def encode_stats(settings: dict[str, str], start: float, end: float, frames: int, cpu: int) -> dict[str, Any]:
    seconds = max(end - start, 1e-6)
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 4),
            "encoder": settings["encoder"], "preset": settings["preset"], "profile": settings["profile"],
            "rate_control": settings["rate_control"], "intermediate": settings["intermediate"], "cpu": cpu}


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
                "profile": {"main": "Main", "main10": "Main 10"}[profile]}
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


# -- command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hevc-tasks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("settings", help="check settings from a JSON object; print the named ones, one a line")
    s.add_argument("settings_json", type=Path)
    s.add_argument("keys", nargs="+", choices=KNOWN)
    s = sub.add_parser("probe", help="check the settings and the source; write the probe task's outputs")
    s.add_argument("--settings", type=Path, required=True, help="JSON object of the string settings")
    s.add_argument("--name", type=Path, required=True, help="JSON list: [] or [output_name]")
    s.add_argument("--chunks", type=int, required=True)
    s.add_argument("--cpu", type=int, default=4)
    s.add_argument("source")
    s = sub.add_parser("split-points", help="frame numbers where segments start, comma-separated")
    s.add_argument("frames", type=int)
    s.add_argument("chunks", type=int)
    s = sub.add_parser("concat-list", help="the concat demuxer's list for the chunk paths in LIST")
    s.add_argument("list", type=Path)
    s = sub.add_parser("encode-stats", help="write encode_stats.json")
    s.add_argument("--settings", type=Path, required=True)
    s.add_argument("--start", type=float, required=True)
    s.add_argument("--end", type=float, required=True)
    s.add_argument("--frames", type=int, required=True)
    s.add_argument("--cpu", type=int, required=True)
    s = sub.add_parser("verify-report", help="write the verification report from the logs in the working directory")
    s.add_argument("--expected-frames", type=int, required=True)
    s.add_argument("--width", type=int, required=True)
    s.add_argument("--height", type=int, required=True)
    s.add_argument("--profile", choices=CHOICES["profile"], required=True)
    s.add_argument("--has-vmaf", choices=("true", "false"), required=True)
    s.add_argument("--vmaf-requested", choices=("true", "false"), required=True)
    s.add_argument("--min-psnr", type=float, default=math.nan)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            values = check_settings(read_settings(args.settings_json), args.keys)
            sys.stdout.write("".join(f"{values[k]}\n" for k in args.keys))
        elif args.command == "probe":
            print(json.dumps(probe(args.settings, args.name, args.source, args.chunks, args.cpu, Path.cwd())))
        elif args.command == "split-points":
            if args.frames < 1 or args.chunks < 1:
                raise TaskError(f"cannot split {args.frames} frames into {args.chunks} chunks: give 1 or more of each")
            print(",".join(str(p) for p in split_points(args.frames, args.chunks)))
        elif args.command == "concat-list":
            sys.stdout.write(concat_list(args.list.read_text().splitlines()))
        elif args.command == "encode-stats":
            settings = check_settings(read_settings(args.settings),
                                      ["encoder", "preset", "profile", "rate_control", "intermediate"])
            stats = encode_stats(settings, args.start, args.end, args.frames, args.cpu)
            write_atomic(Path("encode_stats.json"), json.dumps(stats, indent=2) + "\n")
            print(json.dumps(stats))
        elif args.command == "verify-report":
            verify(Path.cwd(), expected_frames=args.expected_frames, width=args.width, height=args.height,
                   profile=args.profile, has_vmaf=args.has_vmaf == "true",
                   vmaf_requested=args.vmaf_requested == "true", min_psnr=args.min_psnr)
    except TaskError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
