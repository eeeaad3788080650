"""``batchpipes bench stage`` on tiny data: it runs both tools against moto_server and prints positive ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from batchpipes.bench import stage as bench

EXE = str(Path(sys.executable).with_name("batchpipes"))


def test_file_set_is_a_quarter_small_files_and_three_large(tmp_path: Path) -> None:
    n, size = bench.file_set(tmp_path / "set", 4, 64)
    files = sorted(p for p in (tmp_path / "set").rglob("*") if p.is_file())
    assert (n, size) == (len(files), sum(p.stat().st_size for p in files))
    small = [p for p in files if p.parent.name == "small"]
    assert len(small) == 16 and {p.stat().st_size for p in small} == {64 * 1024}
    large = [p for p in files if p.parent.name != "small"]
    assert len(large) == bench.LARGE_FILES and {p.stat().st_size for p in large} == {1024 * 1024}
    assert len({p.read_bytes() for p in small}) == len(small), "random contents, no two alike"


def test_bench_prints_positive_ratios() -> None:
    r = subprocess.run([EXE, "bench", "stage", "--sizes", "2,3", "--small-kib", "128", "--repeats", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for total in (2, 3):
        for what in ("throughput", "peak RSS"):
            m = re.search(rf"^  {what} ratio \(ours/awscli\) at {total} MiB: (\S+)$", r.stdout, re.M)
            assert m, r.stdout
            assert float(m.group(1)) > 0
    assert len(re.findall(r"MB/s  peak RSS +\d+\.\d MiB", r.stdout)) == 4
