#!/usr/bin/env bash
# A real NVDEC -> NVENC encode of a short 8K HEVC Main 10 clip, as the HEVC workflow's GPU path runs it
# (containers/ffmpeg/hevc_decode.py: -hwaccel cuda -hwaccel_output_format cuda, scale_cuda=format=p010le,
# hevc_nvenc main10): prints the GPU, the decode method, fps and PSNR against the source, exits 0.
# Without an NVIDIA GPU/NVENC it prints one line saying so and exits 0; a failure on a GPU exits 1.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/gpu-check.sh [--help] [IMAGE]

Runs a short real NVDEC -> NVENC encode (8K HEVC Main 10 source, GPU decode, scale_cuda, hevc_nvenc main10)
and prints the decode method, fps and PSNR against the source. With IMAGE (or GPU_CHECK_IMAGE), ffmpeg runs
in that container image with the GPU passed in (podman: --device nvidia.com/gpu=all; docker: --gpus all;
GPU_CHECK_ENGINE=podman|docker chooses); without, the host's ffmpeg. Exits 0 with one line where there is no
NVIDIA GPU or NVENC. Environment: GPU_CHECK_FRAMES (default 30), GPU_CHECK_SIZE (default 7680x4320),
GPU_CHECK_SOURCE_ENCODER (hevc_nvenc, the default, or libx265 for the source clip).
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
esac
[[ $# -le 1 ]] || { usage >&2; exit 2; }

IMAGE=${1:-${GPU_CHECK_IMAGE:-}}
FRAMES=${GPU_CHECK_FRAMES:-30}
SIZE=${GPU_CHECK_SIZE:-7680x4320}
SOURCE_ENCODER=${GPU_CHECK_SOURCE_ENCODER:-hevc_nvenc}
[[ $FRAMES =~ ^[1-9][0-9]{0,4}$ ]] || { echo "gpu-check: GPU_CHECK_FRAMES must be a whole number from 1" >&2; exit 2; }
[[ $SIZE =~ ^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$ ]] || { echo "gpu-check: GPU_CHECK_SIZE must be WxH" >&2; exit 2; }
case $SOURCE_ENCODER in
    hevc_nvenc | libx265) ;;
    *) echo "gpu-check: GPU_CHECK_SOURCE_ENCODER must be hevc_nvenc or libx265" >&2; exit 2 ;;
esac

no_gpu() {
    echo "gpu-check: no NVIDIA GPU/NVENC here ($1): nothing to check"
    exit 0
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

# How ffmpeg/ffprobe run: on the host, or in IMAGE with the GPU and $WORK (same path) passed in. The image
# runs as uid 10001; files in $WORK must belong to the caller so that the trap can remove them: podman's
# root is the caller (rootless) or root already, docker runs as the caller's uid.
ENGINE=()
if [[ -n $IMAGE ]]; then
    engine=${GPU_CHECK_ENGINE:-}
    if [[ -z $engine ]]; then
        if command -v podman >/dev/null; then engine=podman
        elif command -v docker >/dev/null; then engine=docker
        else no_gpu "neither podman nor docker to run $IMAGE"
        fi
    fi
    case $engine in
        podman) ENGINE=(podman run --rm --device nvidia.com/gpu=all --user 0:0) ;;
        docker) ENGINE=(docker run --rm --gpus all --user "$(id -u):$(id -g)") ;;
        *) echo "gpu-check: GPU_CHECK_ENGINE must be podman or docker" >&2; exit 2 ;;
    esac
    ENGINE+=(-e "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video" -v "$WORK:$WORK" -w "$WORK")
fi

tool() {  # tool NAME ARGS...: ffmpeg or ffprobe, on the host or in IMAGE
    local name=$1
    shift
    if [[ -n $IMAGE ]]; then
        "${ENGINE[@]}" --entrypoint "$name" "$IMAGE" "$@"
    else
        "$name" "$@"
    fi
}

command -v nvidia-smi >/dev/null || no_gpu "nvidia-smi not found"
GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1) || true
[[ -n $GPU ]] || no_gpu "nvidia-smi lists no GPU"

# The workflow's own check (hevc_tasks.NVENC_PROBE): can hevc_nvenc open an encoder at all?
if ! tool ffmpeg -hide_banner -nostdin -v error -f lavfi -i color=black:s=1920x1080 -frames:v 1 -c:v hevc_nvenc \
        -f null - 2>"$WORK/nvenc.log"; then
    reason=$(grep -m 1 'hevc_nvenc @' "$WORK/nvenc.log" | sed -E 's/^\[hevc_nvenc @ [^]]*\] /hevc_nvenc: /') || true
    [[ -n $reason ]] || reason=$(grep -v '^[[:space:]]*$' "$WORK/nvenc.log" | tail -n 1) || true
    no_gpu "${reason:-hevc_nvenc cannot open an encoder}"
fi

version=$(tool ffmpeg -hide_banner -version | awk 'NR == 1 { print $3 }')
echo "gpu-check: GPU $GPU; ffmpeg $version${IMAGE:+ in $IMAGE}"

# The source: FRAMES frames of SIZE, HEVC Main 10 4:2:0 (as an 8K master would be).
SRC=$WORK/source.mp4
OUT=$WORK/nvdec-nvenc.mp4
if [[ $SOURCE_ENCODER == hevc_nvenc ]]; then
    src_codec=(-c:v hevc_nvenc -preset p4 -profile:v main10 -rc vbr -cq 16 -b:v 0)
else
    src_codec=(-c:v libx265 -preset ultrafast -x265-params log-level=error -crf 16)
fi
if ! tool ffmpeg -hide_banner -nostdin -v error -f lavfi -i "testsrc2=s=$SIZE:r=30" -frames:v "$FRAMES" \
        -pix_fmt p010le "${src_codec[@]}" -tag:v hvc1 "$SRC" 2>"$WORK/source.log"; then
    echo "gpu-check: FAILED making the $SIZE source with $SOURCE_ENCODER:" >&2
    tail -n 5 "$WORK/source.log" >&2
    exit 1
fi

# The encode exactly as the workflow's GPU path runs it (NVDEC plan, Main 10, default preset and quality):
# frames stay on the GPU; scale_cuda cannot take CPU frames, so success means NVDEC decoded them. fps is
# frames / ffmpeg's own wall time (-benchmark rtime: opening, decoding, encoding, muxing; no container start).
encode=(-hide_banner -nostdin -nostats -benchmark -hwaccel cuda -hwaccel_output_format cuda -i "$SRC"
        -map 0:v:0 -vf scale_cuda=format=p010le -c:v hevc_nvenc -preset p5 -tune hq -profile:v main10
        -rc vbr -cq 22 -b:v 0 -tag:v hvc1 -movflags +faststart "$OUT")
if ! tool ffmpeg "${encode[@]}" 2>"$WORK/encode.log"; then
    echo "gpu-check: FAILED: the NVDEC -> NVENC encode (ffmpeg ${encode[*]}):" >&2
    grep -v '^[[:space:]]' "$WORK/encode.log" | tail -n 5 >&2
    exit 1
fi
seconds=$(sed -nE 's/^bench: .*rtime=([0-9.]+)s.*/\1/p' "$WORK/encode.log" | head -n 1)
[[ -n $seconds ]] || { echo "gpu-check: FAILED: no 'bench: ... rtime=' line in ffmpeg's log" >&2; exit 1; }

frames_out=$(tool ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
    -of default=nw=1:nk=1 "$OUT")
fps=$(awk -v n="$frames_out" -v t="$seconds" 'BEGIN { printf "%.1f", (t > 0 ? n / t : 0) }')
if ! tool ffmpeg -hide_banner -nostdin -i "$OUT" -i "$SRC" -lavfi "[0:v][1:v]psnr" -f null - 2>"$WORK/psnr.log"; then
    echo "gpu-check: FAILED: the PSNR comparison:" >&2
    tail -n 5 "$WORK/psnr.log" >&2
    exit 1
fi
psnr=$(grep -m 1 -o 'PSNR y:.*' "$WORK/psnr.log") || psnr="(no PSNR line in ffmpeg's output)"

echo "gpu-check: decode nvdec (-hwaccel cuda -hwaccel_output_format cuda), scale_cuda=format=p010le, hevc_nvenc main10"
echo "gpu-check: $frames_out of $FRAMES frames at $SIZE in $seconds s: $fps fps"
echo "gpu-check: PSNR against the source: $psnr"
if [[ $frames_out != "$FRAMES" ]]; then
    echo "gpu-check: FAILED: $frames_out frames out for $FRAMES in" >&2
    exit 1
fi
