#!/bin/bash
# How the realistic-source recordings here were made, in the ffmpeg image (ffmpeg 5.1), e.g.
#   podman run --rm --network none --user 0:0 -v "$PWD:/data" -w /data batchpipes/ffmpeg:<tag> bash record.sh
# Each source gets the probe task's two ffprobe answers: NAME.streams.json and NAME.frames.json. The videos
# themselves are not kept. nvenc_check.log is the encode task's NVENC check on a machine without a GPU.
set -euo pipefail
ff="ffmpeg -hide_banner -nostdin -y -loglevel error"
# ProRes 422 HQ 10-bit, 29.97 fps, 24-bit PCM audio (a camera master)
$ff -f lavfi -i testsrc2=s=128x72:r=30000/1001:d=0.2 -f lavfi -i sine=f=440:r=48000:d=0.2 \
    -c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le -c:a pcm_s24le prores10_pcm.mov
# 10-bit HEVC in Matroska with Opus audio, 25 fps
$ff -f lavfi -i testsrc2=s=96x54:r=25:d=0.24 -f lavfi -i sine=f=440:r=48000:d=0.24 \
    -c:v libx265 -x265-params log-level=error -pix_fmt yuv420p10le -c:a libopus hevc10_opus.mkv
# H.264 MP4 with two audio streams: AAC stereo and AC-3 5.1
$ff -f lavfi -i testsrc2=s=64x48:r=24:d=0.25 -f lavfi -i sine=f=440:r=48000:d=0.25 -f lavfi -i sine=f=220:r=48000:d=0.25 \
    -map 0 -map 1 -map 2 -c:v libx264 -c:a:0 aac -ac:a:0 2 -c:a:1 ac3 -ac:a:1 6 h264_aac_ac3.mp4
# Odd size (FFV1 4:4:4 can hold it)
$ff -f lavfi -i testsrc2=s=642x362:r=24:d=0.125 -vf format=yuv444p,crop=641:361:0:0 -c:v ffv1 odd_641x361.mkv
for f in prores10_pcm.mov hevc10_opus.mkv h264_aac_ac3.mp4 odd_641x361.mkv; do
    ffprobe -v error -show_streams -show_format -of json "$f" > "${f%.*}.streams.json"
    ffprobe -v error -threads 2 -select_streams V:0 -count_frames -show_entries stream=nb_read_frames:packet=flags \
        -of json "$f" > "${f%.*}.frames.json"
    rm -f "$f"
done
ffmpeg -hide_banner -nostdin -v error -f lavfi -i color=black:s=1920x1080 -frames:v 1 -c:v hevc_nvenc -f null - \
    2> nvenc_check.log || true
