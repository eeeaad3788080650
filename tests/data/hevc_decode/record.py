#!/usr/bin/env python3
"""Record what tests/test_hevc_decode.py checks the NVDEC plan against: the host ffmpeg's answers (no GPU needed).

Run from the repository root on a host whose ffmpeg is the image's build (Debian 12's 5.1.9-0+deb12u1):
``python3 tests/data/hevc_decode/record.py``. It rewrites the files beside it; review the diff.
"""

from __future__ import annotations

import json
import re
import subprocess
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBAVCODEC = Path("/lib/x86_64-linux-gnu/libavcodec.so.59")
LIBAVFILTER = Path("/lib/x86_64-linux-gnu/libavfilter.so.8")
TINY = "nullsrc=s=64x64:d=0.04"

#: ffmpeg runs whose stderr shows whether its option parser takes an argument: the plan's own arguments
#: ("accepted": they fail later, for want of a CUDA device or of CUDA frames) and deliberately wrong ones
#: ("rejected": the parser names them), which show that the difference can be seen.
PARSE_CHECKS: list[tuple[str, str, list[str]]] = [
    ("input_args nvdec", "accepted",
     ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-f", "lavfi", "-i", TINY, "-f", "null", "-"]),
    ("video_filter nv12", "accepted", ["-f", "lavfi", "-i", f"{TINY},scale_cuda=format=nv12", "-f", "null", "-"]),
    ("video_filter p010le", "accepted",
     ["-f", "lavfi", "-i", f"{TINY},scale_cuda=format=p010le", "-f", "null", "-"]),
    ("wrong hwaccel", "rejected", ["-hwaccel", "cudax", "-f", "lavfi", "-i", TINY, "-f", "null", "-"]),
    ("wrong hwaccel_output_format", "rejected",
     ["-hwaccel", "cuda", "-hwaccel_output_format", "cudaz", "-f", "lavfi", "-i", TINY, "-f", "null", "-"]),
    ("wrong scale_cuda option", "rejected",
     ["-f", "lavfi", "-i", f"{TINY},scale_cuda=formt=p010le", "-f", "null", "-"]),
    ("wrong scale_cuda format", "rejected",
     ["-f", "lavfi", "-i", f"{TINY},scale_cuda=format=p010x", "-f", "null", "-"]),
]


def ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", *args], capture_output=True, text=True,
                          check=False)


def unaddressed(text: str) -> str:
    """ffmpeg's log with the context addresses ('[hevc @ 0x55d0...]') made constant, for stable diffs."""
    return re.sub(r" @ 0x[0-9a-f]+\]", " @ 0x-]", text)


def nvdec_hwaccels() -> list[str]:
    """The NVDEC hwaccels compiled into libavcodec ('hevc_nvdec', ...): their names are strings in the library."""
    names = re.findall(rb"(?<![A-Za-z0-9_])([a-z0-9]+_nvdec)(?![A-Za-z0-9_])", LIBAVCODEC.read_bytes())
    return sorted({n.decode() for n in names})


def scale_cuda_conversions() -> list[str]:
    """'IN OUT' pixel format pairs scale_cuda has kernels for: the kernel names of the (gzip-compressed) PTX
    embedded in libavfilter, Subsample_Nearest_<in>_<out>."""
    data = LIBAVFILTER.read_bytes()
    for m in re.finditer(rb"\x1f\x8b\x08", data):
        try:
            ptx = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start() + 8_000_000])
        except zlib.error:
            continue
        pairs = re.findall(rb"\.entry\s+Subsample_Nearest_([a-z0-9]+)_([a-z0-9]+)\(", ptx)
        if pairs:
            return sorted({f"{a.decode()} {b.decode()}" for a, b in pairs})
    raise SystemExit("no scale_cuda PTX found in " + str(LIBAVFILTER))


def main() -> None:
    version = ffmpeg("-version").stdout.splitlines()[0]
    (HERE / "ffmpeg-version.txt").write_text(version + "\n")
    (HERE / "hwaccels.txt").write_text(ffmpeg("-hwaccels").stdout)
    (HERE / "scale_cuda-help.txt").write_text(ffmpeg("-h", "filter=scale_cuda").stdout)
    (HERE / "hevc_nvenc-help.txt").write_text(ffmpeg("-h", "encoder=hevc_nvenc").stdout)
    (HERE / "nvdec-hwaccels.txt").write_text("\n".join(nvdec_hwaccels()) + "\n")
    (HERE / "scale_cuda-conversions.txt").write_text("\n".join(scale_cuda_conversions()) + "\n")
    checks = []
    for what, expect, args in PARSE_CHECKS:
        proc = ffmpeg("-v", "error", *args)
        checks.append({"what": what, "expect": expect, "argv": ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
                                                                 *args],
                       "status": proc.returncode, "stderr": unaddressed(proc.stderr)})
    (HERE / "parse-checks.json").write_text(json.dumps({"ffmpeg": version, "checks": checks}, indent=1) + "\n")


if __name__ == "__main__":
    main()
