#!/bin/sh
# Build one GROMACS mdrun engine of the gromacs image (its Dockerfile's gmx-build stage runs this once per SIMD
# level): GROMACS from the source tree SRC, for the SIMD level LEVEL, into /opt/gromacs-<level, lower case>/bin/gmx.
#   sh build-gmx-engine.sh SRC LEVEL        LEVEL: AVX2_256 or AVX_512
# The same build as Debian's gmx (GROMACS 2022.5, mixed precision, thread-MPI, OpenMP, FFTW 3 and hwloc of
# Debian, no GPU, GCC's Release flags) except the SIMD level; what mdrun does not need is not built: no tests,
# help, manual, gmxapi or nblib, and only the `gmx` target. Static GROMACS libraries, so each engine is one
# binary beside Debian's libgromacs (system libraries stay shared). Its data files are Debian's
# (/usr/share/gromacs, the same release), found by GROMACS's fallback search. Writes the build's wall seconds,
# flags and ISA check to /opt/gromacs-<level>/BUILD.
set -eu
src=$1
level=$2
case $level in
  AVX2_256) zmm_wanted=no ;;
  AVX_512) zmm_wanted=yes ;;
  *) echo "ERROR: SIMD level '$level': give AVX2_256 or AVX_512" >&2; exit 1 ;;
esac
lower=$(echo "$level" | tr 'A-Z' 'a-z')
prefix=/opt/gromacs-$lower
build=/tmp/build-$lower
start=$(date +%s)
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DGMX_SIMD="$level" -DGMX_MPI=OFF -DGMX_THREAD_MPI=ON -DGMX_OPENMP=ON -DGMX_GPU=OFF -DGMX_DOUBLE=OFF \
  -DGMX_FFT_LIBRARY=fftw3 -DGMX_BUILD_OWN_FFTW=OFF -DGMX_HWLOC=ON -DGMX_USE_RDTSCP=ON \
  -DBUILD_SHARED_LIBS=OFF -DGMX_PREFER_STATIC_LIBS=OFF -DGMXAPI=OFF -DGMX_INSTALL_NBLIB_API=OFF \
  -DBUILD_TESTING=OFF -DGMX_BUILD_UNITTESTS=OFF -DGMX_BUILD_HELP=OFF -DGMX_BUILD_MANUAL=OFF \
  -DGMX_DEFAULT_SUFFIX=OFF -DGMX_BINARY_SUFFIX= -DGMX_LIBS_SUFFIX= > "$build.cmake.log"
cmake --build "$build" --target gmx -j"$(nproc)" > "$build.make.log"
seconds=$(( $(date +%s) - start ))
install -D -m 0755 -s "$build/bin/gmx" "$prefix/bin/gmx"
# The level is what the build configured (the generated config header) ...
grep -q "^#define GMX_SIMD_X86_${level} 1" "$build/src/include/config.h"
# ... and what the binary holds: 512-bit (zmm) instructions throughout for AVX_512; in the AVX2_256 build only
# GROMACS's AVX-512 FMA-unit probe has them. Checked without running it: the build host may lack AVX-512.
zmm=$(objdump -d --no-show-raw-insn "$prefix/bin/gmx" | grep -c '%zmm' || true)
if [ "$zmm_wanted" = yes ] && [ "$zmm" -lt 10000 ]; then
  echo "ERROR: $prefix/bin/gmx has $zmm zmm instructions: not an AVX-512 build" >&2; exit 1
fi
if [ "$zmm_wanted" = no ] && [ "$zmm" -ge 10000 ]; then
  echo "ERROR: $prefix/bin/gmx has $zmm zmm instructions: not an AVX2_256 build" >&2; exit 1
fi
{
  echo "GROMACS $level engine: built in $seconds s on $(nproc) cores"
  echo "zmm instructions in bin/gmx: $zmm"
  grep -E '^(CMAKE_BUILD_TYPE|GMX_SIMD|GMX_HWLOC|GMX_FFT_LIBRARY|BUILD_SHARED_LIBS):' "$build/CMakeCache.txt"
  grep -E 'SIMD_(AVX_512|AVX2_256)_CXX_FLAGS:INTERNAL' "$build/CMakeCache.txt" || true
} > "$prefix/BUILD"
cat "$prefix/BUILD"
rm -rf "$build" "$build.cmake.log" "$build.make.log"
