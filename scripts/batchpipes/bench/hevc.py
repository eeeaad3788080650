"""HEVC: probe, encode and verify seconds at several source lengths, and the workflow's fps against bare ffmpeg.

Same image, same encoder settings throughout. For each length (default 8, 32 and 128 frames of 8K, generated: SMPTE
bars with a moving patch, H.264 lossless) the task programs run one at a time in a plain container, as the tasks
run them: ``hevc-tasks probe`` (metadata and one demux pass), ``hevc-tasks encode`` (libx265; "bare ffmpeg": the
encode task's own program without the workflow engine) and ``hevc-tasks verify`` sampled and full. Each time is
the container's wall time (so each includes one container start, about 0.3 s). Then the whole workflow runs
through the package (miniwdl) on the longest source with sampled verification, and its fps is printed as a ratio
of the bare encode's fps (VMAF off unless --vmaf). Printed: how each step's time grows with the length (a flat
probe is the target), and the ratio (the target: 0.9x or better at 64+ frames).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import containers, local, podman, workflows
from ..errors import UserError
from ..testdata import hevc as testdata

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="7680x4320", help="WIDTHxHEIGHT of the generated sources (default 8K)")
    p.add_argument("--frames", default="8,32,128", help="comma-separated source lengths in frames")
    p.add_argument("--preset", default="ultrafast", help="libx265 preset for every encode")
    p.add_argument("--profile", default="main10", choices=["main", "main10"])
    p.add_argument("--crf", type=int, default=22)
    p.add_argument("--cpu", type=int, default=2, help="vCPUs for every step")
    p.add_argument("--gop", type=int, default=8, help="frames between keyframes of the generated sources")
    p.add_argument("--no-workflow", action="store_true", help="skip the whole-workflow run")
    p.add_argument("--vmaf", action="store_true", help="compute VMAF in the workflow's verification too (about 2-3 s "
                   "per sampled 8K frame on 2 vCPUs; off by default: the ratio measures the pipeline's overhead)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")


def _lengths(args: argparse.Namespace) -> tuple[int, int, list[int]]:
    try:
        width, height = (int(x) for x in args.size.lower().split("x"))
        lengths = sorted({int(x) for x in args.frames.split(",")})
    except ValueError as exc:
        raise UserError(f"--size '{args.size}' or --frames '{args.frames}' is not WIDTHxHEIGHT / N,N,...") from exc
    if width % 2 or height % 2 or not lengths or lengths[0] < 2 or args.gop < 1:
        raise UserError("--size needs even numbers, --frames lengths of at least 2 and --gop at least 1")
    return width, height, lengths


class Steps:
    """The task programs in a plain container of the ffmpeg image, one working folder per source."""

    def __init__(self, image: str, args: argparse.Namespace) -> None:
        self.image, self.args = image, args

    def run(self, src: Path, out: Path, argv: list[str]) -> float:
        started = time.monotonic()
        proc = subprocess.run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(),
                               "-v", f"{src.parent}:/in:ro", "-v", f"{out}:/out", "-w", "/out", self.image,
                               "hevc-tasks", *argv], capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise UserError(f"hevc-tasks {argv[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return seconds

    def files(self, out: Path, src: Path, **json_files: Any) -> None:
        (out / "source.txt").write_text(f"/in/{src.name}\n")
        for name, value in json_files.items():
            (out / f"{name}.json").write_text(json.dumps(value))

    def measure(self, src: Path, work: Path) -> dict[str, float]:
        a = self.args
        out = work / f"steps_{src.stem}"
        out.mkdir()
        settings = {"encoder": "libx265", "preset": a.preset, "profile": a.profile, "rate_control": "crf",
                    "audio": "none", "container": "mp4", "verify_mode": "full", "intermediate": "none",
                    "expected_resolution": "any"}
        self.files(out, src, settings=settings, name=["bench"], streams={"video_stream": [], "audio_stream": []})
        probe_s = self.run(src, out, ["probe", "--settings", "/out/settings.json", "--name", "/out/name.json",
                                      "--streams", "/out/streams.json", "--source", "/out/source.txt",
                                      "--chunks", "1"])
        info = json.loads((out / "source_info.json").read_text())
        (out / "info.txt").write_text("/out/source_info.json\n")
        job = {**{k: settings[k] for k in ("encoder", "preset", "profile", "rate_control", "intermediate", "audio",
                                           "container")}, "output_name": "bench", "frame_rate": info["frame_rate"]}
        self.files(out, src, job=job, keyint=[])
        self.run(src, out, ["encode", "--settings", "/out/job.json", "--source", "/out/source.txt", "--info",
                            "/out/info.txt", "--keyint", "/out/keyint.json", "--quality", str(a.crf),
                            "--bitrate-kbps", "1", "--width", str(info["width"]), "--height", str(info["height"]),
                            "--cpu", str(a.cpu)])
        # The encode's own time (ffmpeg's run, as the task times itself): the bare baseline.
        encode_s = float(json.loads((out / "encode_stats.json").read_text())["seconds"])
        (out / "files.txt").write_text(f"/out/bench.mp4\n/in/{src.name}\n")
        times = {"probe_s": probe_s, "encode_s": encode_s}
        for mode in ("sampled", "full"):
            self.files(out, src, verify={"profile": a.profile, "encoder": "libx265", "verify_mode": mode})
            times[f"verify_{mode}_s"] = self.run(
                src, out, ["verify", "--settings", "/out/verify.json", "--info", "/out/info.txt", "--files",
                           "/out/files.txt", "--expected-frames", str(info["frames"]), "--width", str(info["width"]),
                           "--height", str(info["height"]), "--vmaf", "false", "--cpu", str(a.cpu)])
        return times


def _workflow(src: Path, work: Path, args: argparse.Namespace) -> float:
    flow = workflows.get("hevc")
    data = {"hevc.source": str(src), "hevc.expected_resolution": "any", "hevc.preset": args.preset,
            "hevc.profile": args.profile, "hevc.quality": args.crf, "hevc.verify_mode": "sampled",
            "hevc.vmaf": args.vmaf,
            "hevc.encode_cpu": args.cpu, "hevc.encode_memory_gb": 6, "hevc.verify_cpu": args.cpu,
            "hevc.verify_memory_gb": 4}
    path = work / "inputs.json"
    path.write_text(json.dumps(data))
    inputs = local.resolve_images(flow, local.prepare_inputs(flow, path, {}))  # image push not timed
    started = time.monotonic()
    local.run(flow, inputs, run_dir=work / "run", call_cache=False)
    return time.monotonic() - started


def main(args: argparse.Namespace) -> int:
    width, height, lengths = _lengths(args)
    image = containers.build(containers.get("ffmpeg"))
    steps = Steps(image, args)
    rows: list[dict[str, Any]] = []
    workflow: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="batchpipes-bench-hevc-") as tmp:
        work = Path(tmp)
        for frames in lengths:
            name = f"bench_{width}x{height}_{frames}.mp4"
            log.info("generating %s (%d frames, keyframe every %d)", name, frames, args.gop)
            testdata.in_container(work, testdata.pattern_script(name, width, height, frames, args.gop))
            log.info("probe, encode, verify (sampled, full): %d frames", frames)
            rows.append({"frames": frames, **steps.measure(work / name, work)})
        if not args.no_workflow:
            longest = rows[-1]
            log.info("whole workflow, %d frames, sampled verify", longest["frames"])
            wall = _workflow(work / f"bench_{width}x{height}_{longest['frames']}.mp4", work, args)
            bare_fps = longest["frames"] / longest["encode_s"]
            workflow = {"frames": longest["frames"], "wall_s": round(wall, 2),
                        "fps": round(longest["frames"] / wall, 4), "bare_fps": round(bare_fps, 4),
                        "workflow_vs_bare_fps": round(longest["frames"] / wall / bare_fps, 3)}
    first, last = rows[0], rows[-1]
    growth = {key: round(last[key] / first[key], 2) for key in first if key.endswith("_s")}
    result = {"size": f"{width}x{height}", "preset": args.preset, "cpu": args.cpu,
              "steps": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
              "growth_longest_vs_shortest": growth, "length_ratio": round(last["frames"] / first["frames"], 2),
              "workflow": workflow}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"source {width}x{height}, libx265 {args.preset}, {args.cpu} vCPUs, keyframe every {args.gop}")
    print(f"{'frames':>7} {'probe s':>9} {'encode s':>9} {'verify sampled s':>17} {'verify full s':>14}")
    for r in rows:
        print(f"{r['frames']:7d} {r['probe_s']:9.2f} {r['encode_s']:9.2f} {r['verify_sampled_s']:17.2f} "
              f"{r['verify_full_s']:14.2f}")
    print(f"{last['frames']}/{first['frames']} frames ({result['length_ratio']}x): probe {growth['probe_s']}x, "
          f"encode {growth['encode_s']}x, verify sampled {growth['verify_sampled_s']}x, "
          f"full {growth['verify_full_s']}x")
    if workflow:
        print(f"workflow ({workflow['frames']} frames, sampled verify) {workflow['wall_s']:.2f} s "
              f"{workflow['fps']:.3f} fps; bare ffmpeg {workflow['bare_fps']:.3f} fps; "
              f"workflow/bare {workflow['workflow_vs_bare_fps']:.3f}x")
    return 0
