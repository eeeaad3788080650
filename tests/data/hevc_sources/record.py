"""Record the fast-lane fixtures of tests/test_hevc_sources.py with the host's ffmpeg (the image's build).

Run from the repository root: ``.venv/bin/python tests/data/hevc_sources/record.py``. It generates every kind of
``batchpipes.testdata.hevc.KINDS`` in a temporary folder with local bash, probes each with
``probe_script`` and replaces ``probe/`` (the raw ffprobe/ffmpeg outputs) and ``files.json`` (bytes and sha256 of
each file) here; it prints the size and generation seconds of each kind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "scripts"))

from batchpipes.testdata import hevc  # noqa: E402


def local_bash(workdir: Path, script: str) -> str:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed in {workdir}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode(errors="replace")


def main() -> None:
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.split()[2]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = {}
        for name in hevc.KINDS:
            start = time.perf_counter()
            hevc.generate_kinds(work, (name,), runner=local_bash)
            seconds = time.perf_counter() - start
            data = (work / name).read_bytes()
            files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            print(f"{name:30} {len(data):8d} bytes {seconds:5.2f} s")
        hevc.probe_kinds(work, runner=local_bash)
        shutil.rmtree(HERE / "probe", ignore_errors=True)
        (HERE / "probe").mkdir()
        for name in hevc.KINDS:
            shutil.copytree(work / f"{name}.probe", HERE / "probe" / f"{name}.probe")
    (HERE / "files.json").write_text(json.dumps({"ffmpeg": version, "files": files}, indent=1) + "\n")


if __name__ == "__main__":
    main()
