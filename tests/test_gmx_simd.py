"""containers/shared/gmx_simd.py: which GROMACS build runs mdrun, from real /proc/cpuinfo records of AWS instance
types (tests/data/gmx_simd/, provenance.json), and, in the built gromacs image, the engine it picks on this machine
running mdrun at its SIMD level."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from batchpipes import containers, settings
from scriptload import load_script

gmx_simd = load_script(settings.CONTAINERS_DIR / "shared" / "gmx_simd.py")
TaskError = gmx_simd.TaskError
DATA = Path(__file__).parent / "data" / "gmx_simd"
ALL = dict(gmx_simd.ENGINE_PATHS)  # the gromacs image: all three builds


def cpu(record: str):
    return gmx_simd.parse_cpuinfo((DATA / f"{record}.cpuinfo").read_text())


def test_every_record_has_its_provenance() -> None:
    files = json.loads((DATA / "provenance.json").read_text())["files"]
    assert sorted(files) == sorted(p.name for p in DATA.glob("*.cpuinfo"))
    assert all(entry["source"] and entry["instance"] for entry in files.values())


@pytest.mark.parametrize(("record", "level", "why"), [
    ("c5.large", "AVX_512", "two FMA units"),  # Skylake-SP Platinum
    ("t3.2xlarge", "AVX_512", "two FMA units"),  # as m5/r5
    ("m7a.8xlarge", "AVX_512", "Zen4"),  # AMD Genoa, as c7a
    ("host-amd-epyc-zen3", "AVX2_256", "AVX2 and FMA"),  # AMD Milan, as c6a/m6a
    ("m5a.2xlarge", "AVX2_256", "AVX2 and FMA"),  # AMD Zen1: GROMACS's AVX2_128 is not built
    ("i3.large", "AVX2_256", "AVX2 and FMA"),  # Broadwell
    ("c6g.xlarge", "SSE4.1", "arm64"),  # Graviton2: Debian's (NEON) build
])
def test_auto_picks_what_gromacs_recommends(record: str, level: str, why: str) -> None:
    engine = gmx_simd.decide("auto", cpu(record), ALL)
    assert (engine.gmx, engine.simd) == (ALL[level], level)
    assert engine.reason.startswith(f"auto: {level} (") and why in engine.reason and "\n" not in engine.reason


def test_one_avx512_fma_unit_gets_avx2() -> None:
    """GROMACS's brand-string rule (cpuinfo.cpp): Skylake-SP Silver/Bronze and Gold 5xxx but 5122 have one unit.
    The c5.large record with other brand strings (family 6, model 85 as theirs)."""
    skylake = cpu("c5.large")
    for model, units in [("Silver 4114", 1), ("Bronze 3104", 1), ("Gold 5120", 1), ("Gold 5122", 2),
                         ("Gold 6148", 2), ("W-2104", 1)]:
        brand = f"Intel(R) Xeon(R) {model} CPU @ 2.20GHz"
        engine = gmx_simd.decide("auto", replace(skylake, name=brand), ALL)
        assert engine.simd == ("AVX_512" if units == 2 else "AVX2_256"), brand
        assert ("one FMA unit" in engine.reason) == (units == 1)
    assert not gmx_simd.second_avx512_fma(replace(skylake, model=0x7E))  # Ice Lake client
    assert gmx_simd.second_avx512_fma(replace(skylake, model=106))  # Ice Lake server (c6i)


def test_a_requested_level_is_used_when_the_cpu_runs_it() -> None:
    for record, level in [("c5.large", "AVX2_256"), ("m7a.8xlarge", "AVX2_256"), ("c5.large", "AVX_512"),
                          ("host-amd-epyc-zen3", "SSE4.1"), ("c6g.xlarge", "SSE4.1")]:
        engine = gmx_simd.decide(level, cpu(record), ALL)
        assert (engine.gmx, engine.simd) == (ALL[level], level)
        assert engine.reason.startswith(f"requested: {level} on ")


def test_a_level_the_cpu_lacks_is_one_line() -> None:
    with pytest.raises(TaskError) as err:
        gmx_simd.decide("AVX_512", cpu("host-amd-epyc-zen3"), ALL)
    assert str(err.value) == ("simd is AVX_512 but this CPU (AMD EPYC (AuthenticAMD)) lacks avx512bw avx512dq avx512f "
                              "avx512vl: its best level is AVX2_256; set simd to auto or AVX2_256")
    with pytest.raises(TaskError, match=r"^simd is AVX2_256 but this CPU \(CPU implementer 0x41 CPU part 0xd0c "
                                        r"\(no x86 vendor\)\) lacks avx avx2 fma: its best level is SSE4\.1; "
                                        r"set simd to auto or SSE4\.1$"):
        gmx_simd.decide("AVX2_256", cpu("c6g.xlarge"), ALL)


def test_an_unknown_level_is_one_line() -> None:
    with pytest.raises(TaskError) as err:
        gmx_simd.decide("avx512", cpu("c5.large"), ALL)
    assert str(err.value) == "simd is 'avx512': choose one of auto, AVX_512, AVX2_256, SSE4.1"


def test_a_build_the_image_lacks() -> None:
    debian_only = {"SSE4.1": "/usr/bin/gmx"}
    with pytest.raises(TaskError) as err:
        gmx_simd.decide("AVX_512", cpu("c5.large"), debian_only)
    assert str(err.value) == ("simd is AVX_512 but this image has no AVX_512 build of gmx (it has SSE4.1): "
                              "set simd to auto or one of those")
    engine = gmx_simd.decide("auto", cpu("c5.large"), debian_only)
    assert engine.simd == "SSE4.1" and "this image has no AVX_512 build" in engine.reason


def test_gromacs_cuda_runs_its_own_gmx() -> None:
    """gromacs-cuda has none of the gromacs image's builds (its one build, CUDA and AVX2_256, is /opt/gromacs/bin/gmx
    on PATH): auto gives it, an explicit level is refused. Static: what its Dockerfile installs."""
    text = (settings.CONTAINERS_DIR / "gromacs-cuda" / "Dockerfile").read_text()
    assert "COPY shared/gmx_simd.py /usr/local/bin/gmx_simd.py" in text
    assert "gmx_simd.py" in containers.get("gromacs-cuda").shared
    assert not any(path in text for path in gmx_simd.ENGINE_PATHS.values())
    assert not re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*\bgromacs\b", text), "no Debian gromacs in gromacs-cuda"
    assert "-DCMAKE_INSTALL_PREFIX=/opt/gromacs \\\n" in text and "PATH=/opt/gromacs/bin:" in text
    engine = gmx_simd.decide("auto", cpu("c5.large"), {}, "/opt/gromacs/bin/gmx")
    assert (engine.gmx, engine.simd) == ("/opt/gromacs/bin/gmx", "image")
    with pytest.raises(TaskError) as err:
        gmx_simd.decide("AVX2_256", cpu("c5.large"), {}, "/opt/gromacs/bin/gmx")
    assert str(err.value) == ("simd is AVX2_256 but this image has one GROMACS build and no SIMD variants: "
                              "set simd to auto (the variants are in the gromacs image)")


def test_the_gromacs_image_installs_every_build_where_gmx_simd_looks() -> None:
    text = (settings.CONTAINERS_DIR / "gromacs" / "Dockerfile").read_text()
    script = (settings.CONTAINERS_DIR / "gromacs" / "build-gmx-engine.sh").read_text()
    assert "gmx_simd.py" in containers.get("gromacs").shared
    assert "COPY shared/gmx_simd.py /usr/local/bin/gmx_simd.py" in text
    assert "prefix=/opt/gromacs-$lower" in script
    assert 'install -D -m 0755 -s "$build/bin/gmx" "$prefix/bin/gmx"' in script
    for level in ("AVX2_256", "AVX_512"):
        assert f"RUN sh /tmp/build-gmx-engine.sh /tmp/src {level}\n" in text
        assert f"COPY --from=gmx-build /opt/gromacs-{level.lower()} /opt/gromacs-{level.lower()}\n" in text
        assert gmx_simd.ENGINE_PATHS[level] == f"/opt/gromacs-{level.lower()}/bin/gmx"
    assert gmx_simd.ENGINE_PATHS["SSE4.1"] == "/usr/bin/gmx"  # Debian's gromacs package


def test_the_flags_follow_gromacs_compiler_flags() -> None:
    """The CPU flags a level needs are the instruction sets of the GCC flags GROMACS 2022 compiles it with."""
    assert gmx_simd.NEEDS["AVX_512"] == {"avx", "avx2", "fma", "avx512f", "avx512vl", "avx512dq", "avx512bw"}
    assert gmx_simd.NEEDS["AVX2_256"] == {"avx", "avx2", "fma"}
    assert tuple(gmx_simd.SIMD_CHOICES) == ("auto", "AVX_512", "AVX2_256", "SSE4.1")


# -- in the built image ------------------------------------------------------------------------------------------

WATER_BOX = r"""
set -eu
cd "$(mktemp -d)"
gmx solvate -cs spc216.gro -box 2.5 2.5 2.5 -o water.gro >/dev/null 2>&1
printf '#include "oplsaa.ff/%s.itp"\n' forcefield spce > water.top
printf '[ system ]\nwater\n[ molecules ]\nSOL %d\n' $(( $(sed -n 2p water.gro) / 3 )) >> water.top
printf '%s\n' 'integrator = md' 'nsteps = 100' 'dt = 0.002' 'cutoff-scheme = Verlet' 'coulombtype = PME' \
  'rcoulomb = 0.9' 'rvdw = 0.9' > md.mdp
gmx grompp -f md.mdp -c water.gro -p water.top -o md.tpr >/dev/null 2>&1
engine=$(python3 -c 'import sys; sys.path.insert(0, "/usr/local/bin"); import gmx_simd
e = gmx_simd.choose("auto"); print(e.gmx, e.simd)')
set -- $engine
echo "engine: $1 $2"
for gmx in "$1" /usr/bin/gmx; do
  "$gmx" mdrun -s md.tpr -deffnm md -ntmpi 1 -ntomp 2 >/dev/null 2>&1
  grep -E 'SIMD (instructions|level)' md.log | sed "s#^#$gmx: #"
done
"""


@pytest.mark.containers
def test_the_image_runs_mdrun_with_the_chosen_engine(podman_ready: None) -> None:
    """On this machine, gmx_simd.py in the gromacs image picks what decide() picks from this machine's CPU; that
    build's mdrun reports its level in md.log ("SIMD instructions:") with no note that another level fits better,
    and Debian's SSE4.1 mdrun names the same level as the best for this host (a 100-step water box, both builds)."""
    ref = containers.build(containers.get("gromacs"))
    out = subprocess.run(["podman", "run", "--rm", ref, "bash", "-c", WATER_BOX], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    host = gmx_simd.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    expected = gmx_simd.decide("auto", host, ALL)
    assert f"engine: {expected.gmx} {expected.simd}\n" in out
    chosen = [ln for ln in out.splitlines() if ln.startswith(f"{expected.gmx}: ")]
    assert re.fullmatch(rf"{expected.gmx}: SIMD instructions: +{re.escape(expected.simd)}", chosen[0]), out
    debian = "\n".join(ln for ln in out.splitlines() if ln.startswith("/usr/bin/gmx: "))
    assert re.search(r"^/usr/bin/gmx: SIMD instructions: +SSE4\.1$", debian, re.M), out
    if expected.simd == "SSE4.1":
        return
    zen4 = host.vendor == "AuthenticAMD" and expected.simd == "AVX_512"  # GROMACS 2022 predates Zen4 (module text)
    if not zen4:
        assert len(chosen) == 1, f"GROMACS notes a better level for this host than the chosen one: {out}"
        assert re.search(rf"^/usr/bin/gmx: Highest SIMD level supported by all nodes in run: "
                         rf"{re.escape(expected.simd)}$", debian, re.M), out
