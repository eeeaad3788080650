#!/bin/bash
# How the realistic-source recordings here were made, in the ffmpeg image (ffmpeg 5.1), e.g.
#   podman run --rm --network none --user 0:0 -v "$PWD:/data" -w /data batchpipes/ffmpeg:<tag> bash record.sh
# Each source gets the probe task's three ffprobe answers: NAME.streams.json (with NAME.streams.err when ffprobe
# refuses the file), NAME.packets.csv (+ its warnings, .err) and NAME.first_frame.json. The videos themselves are
# not kept. nvenc_check.log is the encode task's NVENC check on a machine without a GPU.
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
# HDR10 (PQ, BT.2020, mastering display and content light level in SEI) and HLG, 10-bit HEVC in MP4
$ff -f lavfi -i testsrc2=s=64x48:r=24:d=0.25 -pix_fmt yuv420p10le -c:v libx265 -color_primaries bt2020 \
    -color_trc smpte2084 -colorspace bt2020nc -color_range tv -x265-params "log-level=error:colorprim=bt2020:\
transfer=smpte2084:colormatrix=bt2020nc:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)\
L(10000000,50):max-cll=1000,400" hdr10.mp4
$ff -f lavfi -i testsrc2=s=64x48:r=50:d=0.12 -pix_fmt yuv420p10le -c:v libx265 -color_primaries bt2020 \
    -color_trc arib-std-b67 -colorspace bt2020nc -x265-params log-level=error hlg.mp4
# Variable frame rate: frames 1/24 s apart, then 1/60 s apart (timestamps kept by fps_mode passthrough)
$ff -f lavfi -i testsrc2=s=64x48:r=24 -frames:v 12 -vf "settb=1/600,setpts='if(lt(N,6),N/24,6/24+(N-6)/60)/TB'" \
    -fps_mode passthrough -enc_time_base 1/600 -c:v libx264 -threads 1 -bf 0 vfr.mkv
# A 160x90 proxy video listed first, the 320x180 master second, cover art third; stereo AAC and 5.1 PCM
$ff -f lavfi -i testsrc2=s=160x90:r=25:d=0.2 -f lavfi -i testsrc2=s=320x180:r=25:d=0.2 \
    -f lavfi -i sine=f=440:r=48000:d=0.2 -f lavfi -i sine=f=220:r=48000:d=0.2 \
    -map 0 -map 1 -map 2 -map 3 -c:v libx264 -threads 1 -c:a:0 aac -ac:a:0 2 -c:a:1 pcm_s24le -ac:a:1 6 \
    proxy_first.mkv
# A damaged transport stream: 2 KiB of 0xff written over the middle
$ff -f lavfi -i testsrc2=s=160x90:r=24:d=2 -c:v libx264 -threads 1 -g 12 damaged.ts
head -c 2048 /dev/zero | tr '\0' '\377' | dd of=damaged.ts bs=1 seek=30000 conv=notrunc status=none
# An MP4 cut before its index (no faststart, moov at the end, the last 4 KiB gone)
$ff -f lavfi -i testsrc2=s=64x48:r=24:d=0.5 -c:v libx264 -threads 1 moovless.mp4
truncate -s -4096 moovless.mp4
for f in prores10_pcm.mov hevc10_opus.mkv h264_aac_ac3.mp4 odd_641x361.mkv hdr10.mp4 hlg.mp4 vfr.mkv \
         proxy_first.mkv damaged.ts moovless.mp4; do
    n=${f%.*}
    # The probe's three ffprobe runs (containers/ffmpeg/hevc_probe.py): streams, the demux pass, the first frame.
    ffprobe -v error -show_streams -show_format -of json "$f" > "$n.streams.json" 2> "$n.streams.err" || true
    v=$( (ffprobe -v error -select_streams V -show_entries stream=index,width,height -of csv=p=0 "$f" 2>/dev/null || true) \
        | sort -t, -k2,2n | tail -1 | cut -d, -f1)
    if [ -n "$v" ]; then
        ffprobe -v warning -select_streams "$v" -show_entries packet=pts,dts,duration,flags -of csv=p=0 "$f" \
            > "$n.packets.csv" 2> "$n.packets.err"
        ffprobe -v error -threads 1 -select_streams "$v" -read_intervals "%+#1" -show_frames -show_entries \
            "frame=color_range,color_space,color_primaries,color_transfer:frame_side_data" -of json "$f" \
            > "$n.first_frame.json"
    fi
    [ -s "$n.streams.err" ] || rm -f "$n.streams.err"
    rm -f "$f"
done
ffmpeg -hide_banner -nostdin -v error -f lavfi -i color=black:s=1920x1080 -frames:v 1 -c:v hevc_nvenc -f null - \
    2> nvenc_check.log || true
