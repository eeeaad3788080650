"""HEVC: frames per second of the workflow vs bare ffmpeg on the same input, and chunked vs single encode.

Same image, same source, same encoder settings. "Bare ffmpeg" is the encode task's own program
(``hevc-tasks encode`` in the image, which builds and runs the ffmpeg command line) in a plain container,
without the workflow engine; the workflow runs through the package (miniwdl). Prints three ratios measured in
one run: the whole workflow's fps (probe + encode + verify) over bare ffmpeg's; the encode task's own
fps over bare ffmpeg's (the same command inside the workflow vs outside it); and the
chunked workflow's wall time over the single-job workflow's. On one small machine the chunks share
the same cores, so chunking shows its cost here; its gain needs one instance per chunk (AWS Batch).
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
    p.add_argument("--size", default="7680x4320", help="WIDTHxHEIGHT of the generated source (default 8K)")
    p.add_argument("--frames", type=int, default=16, help="frames in the generated source")
    p.add_argument("--source", type=Path, help="use this video instead of generating one")
    p.add_argument("--preset", default="ultrafast", help="libx265 preset for every encode")
    p.add_argument("--profile", default="main10", choices=["main", "main10"])
    p.add_argument("--crf", type=int, default=22)
    p.add_argument("--cpu", type=int, default=2, help="vCPUs for bare ffmpeg and each encode job")
    p.add_argument("--chunks", type=int, default=2, help="chunks for the chunked run")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON")


def _source(work: Path, args: argparse.Namespace) -> tuple[Path, int]:
    if args.source:
        if not args.source.is_file():
            raise UserError(f"--source {args.source} does not exist: give a video file")
        return args.source.resolve(), 0
    try:
        width, height = (int(x) for x in args.size.lower().split("x"))
    except ValueError as exc:
        raise UserError(f"--size '{args.size}' is not WIDTHxHEIGHT (e.g. 7680x4320)") from exc
    if width % 2 or height % 2 or args.frames < 2 or args.chunks < 1:
        raise UserError("--size needs even numbers, --frames at least 2 and --chunks at least 1")
    gop = max(1, args.frames // max(args.chunks, 1))
    name = f"bench_{width}x{height}.mp4"
    log.info("generating %s: %d frames, keyframe every %d", name, args.frames, gop)
    testdata.in_container(work, testdata.pattern_script(name, width, height, args.frames, gop))
    return work / name, args.frames


def _bare(src: Path, work: Path, args: argparse.Namespace) -> float:
    """The encode task's own program (``hevc-tasks encode``, installed in the image) with the workflow's settings,
    run in a plain container without the engine: the baseline. Its seconds are ffmpeg's, timed inside the container
    exactly as the encode task times itself."""
    image = containers.build(containers.get("ffmpeg"))
    out = work / "bare"
    out.mkdir()
    # intermediate none: the frame rate, width and height (used for a raw YUV file only) play no part.
    job = {"output_name": "bare", "encoder": "libx265", "preset": args.preset, "profile": args.profile,
           "rate_control": "crf", "intermediate": "none", "audio": "none", "frame_rate": "1/1"}
    (out / "settings.json").write_text(json.dumps(job))
    (out / "keyint.json").write_text("[]")
    (out / "source.txt").write_text(f"/in/{src.name}\n")
    argv = ["hevc-tasks", "encode", "--settings", "/out/settings.json", "--source", "/out/source.txt",
            "--keyint", "/out/keyint.json", "--quality", str(args.crf), "--bitrate-kbps", "1", "--width", "0",
            "--height", "0", "--cpu", str(args.cpu)]
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(),
                           "-v", f"{src.parent}:/in:ro", "-v", f"{out}:/out", "-w", "/out", image, *argv],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"bare encode failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(json.loads((out / "encode_stats.json").read_text())["seconds"])


def _workflow(src: Path, work: Path, args: argparse.Namespace, chunks: int) -> dict[str, Any]:
    flow = workflows.get("hevc")
    data = {"hevc.source": str(src), "hevc.expected_resolution": "any", "hevc.preset": args.preset,
            "hevc.profile": args.profile, "hevc.quality": args.crf, "hevc.chunks": chunks,
            "hevc.encode_cpu": args.cpu, "hevc.encode_memory_gb": 6, "hevc.verify_cpu": args.cpu,
            "hevc.verify_memory_gb": 4}
    path = work / f"inputs_{chunks}.json"
    path.write_text(json.dumps(data))
    inputs = local.resolve_images(flow, local.prepare_inputs(flow, path, {}))  # image push not timed
    started = time.monotonic()
    result = local.run(flow, inputs, run_dir=work / f"run_{chunks}", call_cache=False)
    wall = time.monotonic() - started
    stats = [json.loads(Path(p).read_text()) for p in result.outputs["hevc.encode_stats"]]
    report = json.loads(Path(result.outputs["hevc.report_json"]).read_text())
    return {"wall_s": wall, "frames": report["video"]["frames"], "encode_jobs": len(stats),
            "encode_s": sum(s["seconds"] for s in stats), "encode_fps_max_job": max(s["fps"] for s in stats),
            "psnr_db": report["psnr_db"]["average"]}


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="batchpipes-bench-hevc-") as tmp:
        work = Path(tmp)
        src, frames = _source(work, args)
        containers.build(containers.get("ffmpeg"))
        log.info("bare ffmpeg")
        bare_s = _bare(src, work, args)
        log.info("workflow, one encode job")
        single = _workflow(src, work, args, 1)
        frames = frames or single["frames"]
        log.info("workflow, %d chunks", args.chunks)
        chunked = _workflow(src, work, args, args.chunks)
    bare_fps = frames / bare_s
    single_fps = frames / single["wall_s"]
    encode_fps = frames / single["encode_s"]
    result = {
        "frames": frames, "size": args.size if not args.source else str(args.source), "preset": args.preset,
        "cpu": args.cpu, "bare_s": round(bare_s, 2), "bare_fps": round(bare_fps, 4),
        "workflow_s": round(single["wall_s"], 2), "workflow_fps": round(single_fps, 4),
        "encode_task_s": round(single["encode_s"], 2), "encode_task_fps": round(encode_fps, 4),
        "workflow_vs_bare_fps": round(single_fps / bare_fps, 3),
        "encode_task_vs_bare_fps": round(encode_fps / bare_fps, 3),
        "chunked_s": round(chunked["wall_s"], 2), "chunks": chunked["encode_jobs"],
        "chunked_vs_single_wall": round(chunked["wall_s"] / single["wall_s"], 3),
        "psnr_single_db": single["psnr_db"], "psnr_chunked_db": chunked["psnr_db"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"source              {result['size']}, {frames} frames, libx265 {args.preset}, {args.cpu} vCPUs")
    print(f"bare ffmpeg         {bare_s:8.2f} s  {bare_fps:7.3f} fps")
    print(f"workflow (1 job)    {single['wall_s']:8.2f} s  {single_fps:7.3f} fps  (probe + encode + verify)")
    print(f"  encode task       {single['encode_s']:8.2f} s  {encode_fps:7.3f} fps")
    print(f"workflow/bare fps   {result['workflow_vs_bare_fps']:8.3f} x")
    print(f"encode task/bare    {result['encode_task_vs_bare_fps']:8.3f} x")
    print(f"chunked ({chunked['encode_jobs']} jobs)    {chunked['wall_s']:8.2f} s  "
          f"(sum of chunk encodes {chunked['encode_s']:.2f} s)")
    print(f"chunked/single wall {result['chunked_vs_single_wall']:8.3f} x")
    print(f"PSNR single/chunked {single['psnr_db']:.3f} / {chunked['psnr_db']:.3f} dB")
    return 0
