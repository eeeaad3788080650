"""Which GROMACS build runs mdrun (``gmx_simd.choose``), from the CPU's flags in /proc/cpuinfo; installed beside
task_common.py in the gromacs and gromacs-cuda images (/usr/local/bin/gmx_simd.py; containers/shared/, image.toml)
and imported by gromacs-tasks. Python 3.10+ standard library only.

The gromacs image holds three builds of the same GROMACS 2022.5 that differ only in their SIMD level (its
Dockerfile): Debian's ``/usr/bin/gmx`` (SSE4.1, runs on any x86-64 CPU; on arm64 it is Debian's NEON build) and
``/opt/gromacs-avx2_256/bin/gmx`` and ``/opt/gromacs-avx_512/bin/gmx``. A requested level is one of
:data:`SIMD_CHOICES`; "SSE4.1" names Debian's build. ``auto`` picks, among the builds the CPU can run, the one
GROMACS recommends for it (:func:`recommended`):

* AVX_512 on Intel CPUs with AVX-512 and two AVX-512 FMA units (GROMACS 2022 ``simdSuggested``: with one FMA unit,
  Xeon Bronze, Silver and most Gold 5xxx, AVX2_256 is faster; GROMACS tells them apart by the brand string,
  ``detectProcCpuInfoSecondAvx512FMA`` in src/gromacs/hardware/cpuinfo.cpp, ported in :func:`second_avx512_fma`);
* AVX_512 on AMD CPUs with AVX-512 (Zen4 and later: GROMACS 2023+ selects AVX_512 there and its install guide
  says AVX_512 "On AMD it is beneficial to use starting with Zen4"; GROMACS 2022's own check predates Zen4 and
  then notes in md.log that AVX2_256 might be better: set simd to AVX2_256 to follow it);
* AVX2_256 on every other CPU with AVX2 and FMA (AMD Zen2/Zen3 and Intel Haswell on; GROMACS prefers AVX2_128 on
  Zen1, which is not built: AVX2_256 is "only up to a few percent slower" there, GROMACS's simd/support.cpp);
* Debian's SSE4.1 build otherwise (older x86 CPUs, arm64 such as Graviton).

The flags each level needs are those of the compiler flags GROMACS 2022 builds it with on GCC
(cmake/gmxSimdFlags.cmake): AVX2_256 ``-mavx2 -mfma``; AVX_512 ``-mavx512f -mfma -mavx512vl -mavx512dq
-mavx512bw``. Linux lists an AVX-512 flag only when the kernel has enabled its register state, so the flags
say what the CPU *and* the kernel can run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from task_common import TaskError

SIMD_CHOICES = ("auto", "AVX_512", "AVX2_256", "SSE4.1")
#: The level name of Debian's build (the "SSE4.1" choice), and the levels from the best down.
DEBIAN = "SSE4.1"
LEVELS = ("AVX_512", "AVX2_256", DEBIAN)
#: Where the gromacs image has each build (gromacs-cuda has none of them: its one build is `gmx` on PATH).
ENGINE_PATHS = {
    "AVX_512": "/opt/gromacs-avx_512/bin/gmx",
    "AVX2_256": "/opt/gromacs-avx2_256/bin/gmx",
    DEBIAN: "/usr/bin/gmx",
}
#: The /proc/cpuinfo flags a level's code needs (GROMACS 2022's GCC flags for it, see the module text).
NEEDS = {
    "AVX_512": frozenset({"avx", "avx2", "fma", "avx512f", "avx512vl", "avx512dq", "avx512bw"}),
    "AVX2_256": frozenset({"avx", "avx2", "fma"}),
    DEBIAN: frozenset(),
}
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Cpu:
    """What /proc/cpuinfo says of the first processor: vendor (``vendor_id``; "" on arm64), ``cpu family`` and
    ``model`` (decimal, as Linux prints them), ``model name`` and the flags (``flags``, arm64: ``Features``)."""

    vendor: str
    family: int
    model: int
    name: str
    flags: frozenset[str]


@dataclass(frozen=True)
class Engine:
    """The build to run mdrun with: ``gmx`` (its path), ``simd`` (its level) and ``reason`` (one line for the log)."""

    gmx: str
    simd: str
    reason: str


def parse_cpuinfo(text: str) -> Cpu:
    """The first processor block of /proc/cpuinfo (x86: vendor_id, cpu family, model, model name, flags; arm64:
    Features, CPU implementer, CPU part)."""
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def number(key: str) -> int:
        value = fields.get(key, "")
        return int(value, 0) if value[:1].isdigit() else -1

    name = fields.get("model name") or " ".join(
        f"{k} {fields[k]}" for k in ("CPU implementer", "CPU part") if k in fields)
    return Cpu(vendor=fields.get("vendor_id", ""), family=number("cpu family"), model=number("model"),
               name=name or "unknown CPU", flags=frozenset((fields.get("flags") or fields.get("Features", "")).split()))


def second_avx512_fma(cpu: Cpu) -> bool:
    """Whether an Intel CPU with AVX-512 has two AVX-512 FMA units, from its brand string and model: GROMACS 2022's
    ``detectProcCpuInfoSecondAvx512FMA`` (src/gromacs/hardware/cpuinfo.cpp), position for position."""
    brand = cpu.name
    if cpu.model == 0x55:  # Skylake server (and Cascade/Cooper Lake)
        if brand.find("Xeon") == 9:
            if (brand.find("Silver") == 17 or brand.find("Bronze") == 17
                    or (brand.find("W") == 17 and brand.find("0") == 21)  # Xeon W 210x
                    or (brand.find("D") == 17 and brand.find("21") == 19)):  # Xeon D 2xxx
                return False
            if brand.find("Gold") == 17 and brand.find("5") == 22:  # Gold 5xxx: one unit but 5122, Cooper Lake
                return brand.find("53") == 22 or brand.find("22") == 24
        return True
    return cpu.model not in (0x66, 0x7D, 0x7E)  # Cannon Lake and Ice Lake clients: one unit


def runnable(level: str, cpu: Cpu) -> bool:
    return NEEDS[level] <= cpu.flags


def best_level(cpu: Cpu) -> str:
    """The highest level this CPU can run (Debian's build runs everywhere)."""
    return next(level for level in LEVELS if runnable(level, cpu))


def recommended(cpu: Cpu) -> tuple[str, str]:
    """The level GROMACS recommends for ``cpu`` among those built, and why (see the module text)."""
    amd = cpu.vendor in ("AuthenticAMD", "HygonGenuine")
    if runnable("AVX_512", cpu):
        if amd:
            return "AVX_512", "AMD with AVX-512 (Zen4 or later): GROMACS 2023+ recommends AVX_512"
        if cpu.vendor == "GenuineIntel" and not second_avx512_fma(cpu):
            return "AVX2_256", "AVX-512 with one FMA unit: GROMACS recommends AVX2_256"
        return "AVX_512", "AVX-512 with two FMA units"
    if runnable("AVX2_256", cpu):
        return "AVX2_256", "AVX2 and FMA"
    if "asimd" in cpu.flags:
        return DEBIAN, "arm64: Debian's build (NEON), no x86 SIMD builds apply"
    return DEBIAN, "no AVX2/FMA: Debian's SSE4.1 build"


def decide(requested: str, cpu: Cpu, engines: Mapping[str, str], own_gmx: str = "gmx") -> Engine:
    """The build for ``requested`` on ``cpu`` among ``engines`` (level -> gmx path, those the image has); an image
    without any of them (gromacs-cuda) has one build, ``own_gmx``, which ``auto`` gives."""
    if requested not in SIMD_CHOICES:
        raise TaskError(f"simd is '{requested}': choose one of {', '.join(SIMD_CHOICES)}")
    shown = f"{cpu.name} ({cpu.vendor or 'no x86 vendor'})"
    if not engines:
        if requested == "auto":
            return Engine(own_gmx, "image", f"auto: this image's one GROMACS build ({own_gmx}) on {shown}")
        raise TaskError(f"simd is {requested} but this image has one GROMACS build and no SIMD variants: "
                        "set simd to auto (the variants are in the gromacs image)")
    if requested == "auto":
        level, why = recommended(cpu)
        if level not in engines:  # an image with fewer builds: the best it has that the CPU runs
            level = next(lv for lv in LEVELS if lv in engines and runnable(lv, cpu))
            why += f"; this image has no {recommended(cpu)[0]} build"
        return Engine(engines[level], level, f"auto: {level} ({why}) on {shown}")
    if requested not in engines:
        raise TaskError(f"simd is {requested} but this image has no {requested} build of gmx "
                        f"(it has {', '.join(lv for lv in LEVELS if lv in engines)}): set simd to auto or one of those")
    if not runnable(requested, cpu):
        missing = " ".join(sorted(NEEDS[requested] - cpu.flags))
        raise TaskError(f"simd is {requested} but this CPU ({shown}) lacks {missing}: its best level is "
                        f"{best_level(cpu)}; set simd to auto or {best_level(cpu)}")
    return Engine(engines[requested], requested, f"requested: {requested} on {shown}")


def installed_engines() -> dict[str, str]:
    """The builds of :data:`ENGINE_PATHS` this image has (executable files)."""
    return {level: path for level, path in ENGINE_PATHS.items() if os.access(path, os.X_OK)}


def choose(requested: str) -> Engine:
    """The build to run mdrun with for ``requested`` (one of :data:`SIMD_CHOICES`) on this machine's CPU; a level
    the CPU cannot run or the image does not have is a TaskError (one line)."""
    text = CPUINFO.read_text(encoding="utf-8", errors="replace") if CPUINFO.exists() else ""
    return decide(requested, parse_cpuinfo(text), installed_engines(), shutil.which("gmx") or "gmx")
