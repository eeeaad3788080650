version 1.0

# HEVC (H.265) encoding tasks for wdl/hevc.wdl: probe, encode (libx265 on CPU or hevc_nvenc on an
# NVIDIA GPU), keyframe split and lossless concatenation for chunked encodes, verification.
# Every task fails with one "ERROR: ..." line on stderr that names the problem and the fix.

task probe_source {
    meta {
        description: "Checks the encoding settings and the output name, then the source, before anything expensive runs: a decodable video stream with at least one frame, even width and height (4:2:0), the expected resolution, a known encoder/preset/profile, audio that the chosen audio mode can carry. Counts the frames exactly by decoding. Without output_name, names the output after the source (made safe: see default_name in containers/ffmpeg/hevc_tasks.py)."
        outputs: {
            width: "Width of the first video stream, pixels",
            height: "Height, pixels",
            frames: "Decoded frame count",
            duration_s: "Duration, seconds",
            frame_rate: "Frame rate as a rational, e.g. 24/1 or 30000/1001",
            has_audio: "Whether the source has an audio stream",
            info: "JSON summary of the source (codec, pixel format, frames, keyframes, audio)",
            name: "Output base name: output_name when given, else the source's file name without extension made safe (letters, digits, . _ - only, at most 64) plus .hevc"
        }
    }

    parameter_meta {
        source: "Source video (any container/codec this ffmpeg decodes)"
        output_name: {
            description: "Base name of the output file; when absent, derived from the source's file name",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        encoder: "libx265 or hevc_nvenc"
        profile: "main or main10"
        preset: "Encoder preset (libx265: ultrafast..placebo; hevc_nvenc: p1..p7)"
        rate_control: "crf, vbr or cbr"
        audio: "copy, aac or none"
        chunks: "Number of chunks requested (at least 1)"
        expected_resolution: "WIDTHxHEIGHT the source must have, or 'any'"
        cpu: "Threads for decoding (the frame count decodes the whole source)"
        docker_image: "Image with ffmpeg/ffprobe and python3"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File source
        String? output_name
        String encoder
        String profile
        String preset
        String rate_control
        String audio
        Int chunks
        String expected_resolution
        Int cpu = 4
        String docker_image = "batchpipes/ffmpeg:1f4f22d0b902"
        Int max_retries = 1
        Int batch_retries = 2
    }

    Int disk = ceil(size(source, "GiB")) + 10

    command <<<
        set -euo pipefail
        mapfile -t src < ~{write_lines([source])}
        if [ "${#src[@]}" -ne 1 ]; then
            echo "ERROR: the source file's path holds a line break: rename the file" >&2
            exit 1
        fi
        # Settings and output_name are checked first (cheap), then the source (the frame count decodes all of it).
        hevc-tasks probe --chunks ~{chunks} --cpu ~{cpu} \
            --settings ~{write_json({"encoder": encoder, "preset": preset, "profile": profile, "rate_control": rate_control, "audio": audio, "expected_resolution": expected_resolution})} \
            --name ~{write_json(select_all([output_name]))} \
            -- "${src[0]}"
    >>>

    output {
        Int width = read_int("width.txt")
        Int height = read_int("height.txt")
        Int frames = read_int("frames.txt")
        Float duration_s = read_float("duration_s.txt")
        String frame_rate = read_string("frame_rate.txt")
        Boolean has_audio = read_boolean("has_audio.txt")
        File info = "source_info.json"
        String name = read_string("name.txt")
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "4 GiB"
        disks: "local-disk ~{disk} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task encode {
    meta {
        description: "Encodes the first video stream to HEVC in MP4 (hvc1) with libx265 or hevc_nvenc. By default frames go from the decoder straight into the encoder inside one ffmpeg process (no intermediate file); intermediate = yuv_file decodes to a raw YUV file on disk first, as the original pipeline did (about 90 GB per minute of 8K 8-bit at 30 fps, twice that at 10-bit)."
        outputs: {
            video: "HEVC video, MP4",
            stats: "JSON: frames encoded, wall seconds of decode+encode, frames per second, settings"
        }
    }

    parameter_meta {
        source: "Source video, or one keyframe-aligned segment of it"
        output_name: {
            description: "Output file name without extension",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        encoder: "libx265 (CPU) or hevc_nvenc (NVIDIA GPU)"
        profile: "main (8-bit, yuv420p) or main10 (10-bit)"
        preset: "Encoder preset"
        rate_control: "crf (constant quality: x265 CRF / NVENC CQ), vbr (average bitrate) or cbr"
        quality: "CRF (libx265) or CQ (hevc_nvenc) for rate_control crf; lower is better, 0-51"
        bitrate_kbps: "Target bitrate for vbr/cbr, kbit/s (vbr peaks at 1.5x)"
        keyint: "Frames between keyframes; encoder default when absent"
        intermediate: "none (decode straight into the encoder) or yuv_file (raw YUV file on disk first)"
        audio: "copy, aac or none: what happens to the source's audio streams"
        width: "Source width (for the raw YUV file)"
        height: "Source height (for the raw YUV file)"
        frame_rate: "Source frame rate as a rational (for the raw YUV file)"
        cpu: "vCPUs (libx265 thread pool size)"
        memory_gb: "Memory, GiB"
        disk_gb: "Scratch disk, GiB (sized by the workflow from the probe)"
        docker_image: "Image with ffmpeg (libx265, hevc_nvenc)"
        gpu_queue_arn: "AWS Batch queue of NVIDIA instances, used when encoder is hevc_nvenc (Cromwell on AWS)"
        cpu_queue_arn: "AWS Batch queue for libx265 encodes (Cromwell on AWS)"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File source
        String output_name
        String encoder
        String profile
        String preset
        String rate_control
        Int quality
        Int bitrate_kbps
        Int? keyint
        String intermediate = "none"
        String audio = "none"
        Int width
        Int height
        String frame_rate
        Int cpu
        Int memory_gb
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:1f4f22d0b902"
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # Every string arrives in a file the engine wrote; hevc-tasks checks them (one ERROR line) and prints them
        # one a line, so they land in quoted variables and never in the script's text.
        cp ~{write_json({"output_name": output_name, "encoder": encoder, "preset": preset, "profile": profile, "rate_control": rate_control, "intermediate": intermediate, "audio": audio, "frame_rate": frame_rate})} settings.json
        hevc-tasks settings settings.json output_name encoder preset profile rate_control intermediate audio frame_rate > settings.txt
        mapfile -t s < settings.txt
        out="${s[0]}.mp4"
        encoder="${s[1]}"
        preset="${s[2]}"
        profile="${s[3]}"
        rc="${s[4]}"
        intermediate="${s[5]}"
        audio="${s[6]}"
        frame_rate="${s[7]}"
        mapfile -t src < ~{write_lines([source])}
        if [ "${#src[@]}" -ne 1 ]; then
            echo "ERROR: the source file's path holds a line break: rename the file" >&2
            exit 1
        fi
        source="${src[0]}"
        quality=~{quality}
        kbps=~{bitrate_kbps}
        keyint="~{default="" keyint}"
        # ffmpeg writes a temporary name; the output gets its real name only once it holds frames.
        partial="partial.$out"
        rm -f "$partial" "$out"

        # run_ffmpeg WHAT ARGS...: ffmpeg with progress on stderr, one ERROR line when it fails
        run_ffmpeg() {
            local what=$1 status
            shift
            set +e
            ffmpeg -hide_banner -nostdin -y -loglevel warning -stats_period 30 -stats "$@" 2>&1 >/dev/null \
                | tr '\r' '\n' | tee -a ffmpeg.log >&2
            status=${PIPESTATUS[0]}
            set -e
            if [ "$status" -ne 0 ]; then
                echo "ERROR: $what failed: $(grep -v '^\s*$' ffmpeg.log | grep -v '^frame=' | tail -n 1)" >&2
                exit 1
            fi
        }

        case "$profile" in
            main) pix=yuv420p; nvpix=yuv420p; bytes=1 ;;
            main10) pix=yuv420p10le; nvpix=p010le; bytes=2 ;;
            *) echo "ERROR: unknown profile '$profile': choose main or main10" >&2; exit 1 ;;
        esac

        enc=()
        case "$encoder" in
            libx265)
                params="pools=~{cpu}:log-level=warning"
                enc=(-c:v libx265 -preset "$preset" -profile:v "$profile" -pix_fmt "$pix")
                case "$rc" in
                    crf) enc+=(-crf "$quality") ;;
                    vbr) enc+=(-b:v "${kbps}k" -maxrate "$((kbps * 3 / 2))k" -bufsize "$((kbps * 2))k") ;;
                    cbr) enc+=(-b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "${kbps}k"); params+=":strict-cbr=1" ;;
                    *) echo "ERROR: unknown rate_control '$rc': choose crf, vbr or cbr" >&2; exit 1 ;;
                esac
                enc+=(-x265-params "$params")
                ;;
            hevc_nvenc)
                # Fail fast with a clear message where no NVIDIA encoder is visible to the container.
                if ! ffmpeg -hide_banner -nostdin -v error -f lavfi -i color=black:s=1920x1080 -frames:v 1 \
                        -c:v hevc_nvenc -f null - 2> nvenc_check.log; then
                    why=$(grep -m 1 'hevc_nvenc @' nvenc_check.log | sed 's/^\[[^]]*\] //' || true)
                    echo "ERROR: hevc_nvenc cannot open an NVIDIA encoder here (${why:-$(tail -n 1 nvenc_check.log)}): run on a GPU instance (runtime gpuCount 1, NVIDIA_DRIVER_CAPABILITIES with video) or set encoder to libx265" >&2
                    exit 1
                fi
                enc=(-c:v hevc_nvenc -preset "$preset" -tune hq -profile:v "$profile" -pix_fmt "$nvpix")
                case "$rc" in
                    crf) enc+=(-rc vbr -cq "$quality" -b:v 0) ;;
                    vbr) enc+=(-rc vbr -b:v "${kbps}k" -maxrate "$((kbps * 3 / 2))k" -bufsize "$((kbps * 2))k") ;;
                    cbr) enc+=(-rc cbr -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "${kbps}k") ;;
                    *) echo "ERROR: unknown rate_control '$rc': choose crf, vbr or cbr" >&2; exit 1 ;;
                esac
                ;;
            *) echo "ERROR: unknown encoder '$encoder': choose libx265 or hevc_nvenc" >&2; exit 1 ;;
        esac
        if [ -n "$keyint" ]; then
            enc+=(-g "$keyint")
        fi

        # audio_args INPUT: how the source's audio streams (input number INPUT) reach the output.
        audio_args() {
            case "$audio" in
                copy) aud=(-map "$1:a?" -c:a copy) ;;
                aac) aud=(-map "$1:a?" -c:a aac -b:a 256k) ;;
                none) aud=() ;;
                *) echo "ERROR: unknown audio mode '$audio': choose copy, aac or none" >&2; exit 1 ;;
            esac
        }
        aud=()

        start=$(date +%s.%N)
        case "$intermediate" in
            none)
                audio_args 0
                run_ffmpeg "encoding with $encoder" -i "$source" -map 0:v:0 "${enc[@]}" "${aud[@]}" \
                    -tag:v hvc1 -movflags +faststart "$partial"
                ;;
            yuv_file)
                # Audio comes from the original file (input 1), never through the raw YUV file.
                need=$(( ~{width} * ~{height} * 3 * bytes / 2 ))
                echo "decoding to a raw YUV file ($need bytes per frame)" >&2
                run_ffmpeg "decoding to raw YUV" -i "$source" -map 0:v:0 -pix_fmt "$pix" -f rawvideo source.yuv
                audio_args 1
                run_ffmpeg "encoding with $encoder" -f rawvideo -pix_fmt "$pix" -video_size "~{width}x~{height}" \
                    -framerate "$frame_rate" -i source.yuv -i "$source" -map 0:v:0 "${enc[@]}" "${aud[@]}" \
                    -tag:v hvc1 -movflags +faststart "$partial"
                rm -f source.yuv
                ;;
            *) echo "ERROR: unknown intermediate '$intermediate': choose none or yuv_file" >&2; exit 1 ;;
        esac
        end=$(date +%s.%N)

        frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$partial")
        if [ "${frames:-0}" -eq 0 ]; then
            echo "ERROR: the encoder wrote no frames to $out" >&2
            exit 1
        fi
        mv "$partial" "$out"
        hevc-tasks encode-stats --settings settings.json --start "$start" --end "$end" --frames "$frames" --cpu ~{cpu}
    >>>

    output {
        File video = "~{output_name}.mp4"
        File stats = "encode_stats.json"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        gpuCount: if encoder == "hevc_nvenc" then 1 else 0
        queueArn: if encoder == "hevc_nvenc" then gpu_queue_arn else cpu_queue_arn
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task split_source {
    meta {
        description: "Splits the first video stream at keyframes into about `chunks` segments without re-encoding (stream copy, NUT container), and copies the audio aside for the concatenation. Fails when the segments do not add up to the source's frame count."
        outputs: {
            segments: "Keyframe-aligned segments seg_00000.nut, seg_00001.nut, ... in order",
            audio_track: "The source's audio streams, stream-copied to Matroska: one file, or none when the source has no audio"
        }
    }

    parameter_meta {
        source: "Source video"
        frames: "Decoded frame count of the source (from probe_source)"
        chunks: "Segments wanted; fewer come out when the source has fewer keyframes"
        keep_audio: "Copy the audio streams aside"
        cpu: "Threads for decoding the segments (their frames are counted)"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File source
        Int frames
        Int chunks
        Boolean keep_audio
        Int cpu = 4
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:1f4f22d0b902"
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        mapfile -t src < ~{write_lines([source])}
        if [ "${#src[@]}" -ne 1 ]; then
            echo "ERROR: the source file's path holds a line break: rename the file" >&2
            exit 1
        fi
        source="${src[0]}"
        frames=~{frames}
        # Frame numbers where a segment should start; the stream copy cuts at the first keyframe at or after each.
        cuts=$(hevc-tasks split-points ~{frames} ~{chunks})
        mkdir -p segments
        seg=()
        if [ -n "$cuts" ]; then
            seg=(-segment_frames "$cuts")
        else
            seg=(-segment_time 1000000000)
        fi
        if ! ffmpeg -hide_banner -nostdin -y -loglevel error -i "$source" -map 0:v:0 -c copy -f segment \
                -segment_format nut "${seg[@]}" -reset_timestamps 1 segments/seg_%05d.nut 2> split.log; then
            echo "ERROR: splitting the source at keyframes failed: $(tail -n 1 split.log)" >&2
            exit 1
        fi
        total=0
        for f in segments/seg_*.nut; do
            n=$(ffprobe -v error -threads ~{cpu} -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$f")
            echo "$(basename "$f"): $n frames" >&2
            total=$((total + n))
        done
        if [ "$total" -ne "$frames" ]; then
            echo "ERROR: the keyframe segments decode to $total frames, not the source's $frames (open-GOP source?): encode with chunks = 1" >&2
            exit 1
        fi
        if ~{true="true" false="false" keep_audio} && ffprobe -v error -select_streams a -show_entries stream=index -of csv=p=0 "$source" | grep -q .; then
            ffmpeg -hide_banner -nostdin -y -loglevel error -i "$source" -map 0:a -c copy partial.audio.mka
            mv partial.audio.mka audio.mka
        fi
    >>>

    output {
        Array[File] segments = glob("segments/seg_*.nut")
        Array[File] audio_track = glob("audio.mka")
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "4 GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task concat_chunks {
    meta {
        description: "Joins encoded chunks in segment order without re-encoding (concat demuxer, stream copy) and adds the audio back; checks the joined frame count."
        outputs: {
            video: "HEVC video, MP4"
        }
    }

    parameter_meta {
        chunks: "Encoded chunks, named after their segments (seg_00000.mp4, ...); joined in name order"
        audio_track: "Audio streams to add (from split_source; empty for none)"
        audio: "copy, aac or none"
        output_name: {
            description: "Output file name without extension",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        expected_frames: "Frame count the joined video must have"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] chunks
        Array[File] audio_track = []
        String audio
        String output_name
        Int expected_frames
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:1f4f22d0b902"
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        hevc-tasks settings ~{write_json({"output_name": output_name, "audio": audio})} output_name audio > settings.txt
        mapfile -t s < settings.txt
        out="${s[0]}.mp4"
        audio="${s[1]}"
        partial="partial.$out"
        rm -f "$partial" "$out"
        # Order by segment name, not by the order the files arrived in.
        hevc-tasks concat-list ~{write_lines(chunks)} > concat.txt
        mapfile -t audio_file < ~{write_lines(audio_track)}
        if [ "${#audio_file[@]}" -gt 1 ]; then
            echo "ERROR: audio_track holds ${#audio_file[@]} lines, not at most one file: give one audio file (a path with a line break counts twice)" >&2
            exit 1
        fi
        aud=()
        if [ "${#audio_file[@]}" -eq 1 ]; then
            case "$audio" in
                copy) aud=(-i "${audio_file[0]}" -map 1:a -c:a copy) ;;
                aac) aud=(-i "${audio_file[0]}" -map 1:a -c:a aac -b:a 256k) ;;
                *) aud=() ;;
            esac
        fi
        if ! ffmpeg -hide_banner -nostdin -y -loglevel error -f concat -safe 0 -i concat.txt "${aud[@]}" \
                -map 0:v -c:v copy -tag:v hvc1 -movflags +faststart "$partial" 2> concat.log; then
            echo "ERROR: joining the encoded chunks failed: $(tail -n 1 concat.log)" >&2
            exit 1
        fi
        frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$partial")
        if [ "$frames" -ne ~{expected_frames} ]; then
            echo "ERROR: the joined video has $frames frames, not the source's ~{expected_frames}" >&2
            exit 1
        fi
        mv "$partial" "$out"
    >>>

    output {
        File video = "~{output_name}.mp4"
    }

    runtime {
        docker: docker_image
        cpu: 1
        memory: "2 GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task verify {
    meta {
        description: "Checks the encoded video against the source: HEVC that decodes without errors, the requested profile, the source's resolution, the source's exact frame count; PSNR and SSIM (and VMAF where this ffmpeg has libvmaf) frame by frame against the source in the encoded pixel format. Writes the report as JSON and text; fails after writing it when a check fails."
        outputs: {
            report_json: "Verification report, JSON",
            report_txt: "The same, as text",
            psnr: "Average PSNR over all frames and planes, dB",
            ssim: "Average SSIM (All)"
        }
    }

    parameter_meta {
        video: "Encoded video"
        source: "Source video"
        expected_frames: "Source frame count (from probe_source)"
        width: "Source width"
        height: "Source height"
        profile: "main or main10: the profile the video must carry; also the comparison pixel format"
        vmaf: "Also compute VMAF when the ffmpeg build has libvmaf"
        min_psnr: "Fail when the average PSNR is below this, dB"
        cpu: "Threads"
        memory_gb: "Memory, GiB"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg and python3"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File video
        File source
        Int expected_frames
        Int width
        Int height
        String profile
        Boolean vmaf = true
        Float? min_psnr
        Int cpu = 4
        Int memory_gb = 8
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:1f4f22d0b902"
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        mapfile -t f < ~{write_lines([video, source])}
        if [ "${#f[@]}" -ne 2 ]; then
            echo "ERROR: the video's or the source's path holds a line break: rename the file" >&2
            exit 1
        fi
        vid="${f[0]}"
        src="${f[1]}"
        profile=$(hevc-tasks settings ~{write_json({"profile": profile})} profile)
        pix=yuv420p
        if [ "$profile" = main10 ]; then pix=yuv420p10le; fi
        ffprobe -v error -select_streams v:0 -show_streams -show_format -of json "$vid" > video.json
        ffprobe -v error -threads ~{cpu} -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$vid" > frames.txt
        ffmpeg -hide_banner -nostdin -v error -threads ~{cpu} -i "$vid" -map 0:v:0 -f null - 2> decode_errors.log || true

        has_vmaf=false
        if ~{true="true" false="false" vmaf} && ffmpeg -hide_banner -filters 2>/dev/null | grep -qw libvmaf; then
            has_vmaf=true
        fi
        # Pair frames by index, not timestamp: both streams get pts = frame number in one time base.
        prep="format=$pix,settb=1/1000,setpts=N"
        graph="[0:v]$prep,split=3[d1][d2][d3];[1:v]$prep,split=3[r1][r2][r3];[d1][r1]psnr=stats_file=psnr.log[p];[d2][r2]ssim=stats_file=ssim.log[s]"
        maps=(-map '[p]' -f null - -map '[s]' -f null -)
        if [ "$has_vmaf" = true ]; then
            graph+=";[d3][r3]libvmaf=log_fmt=json:log_path=vmaf.json:n_threads=~{cpu}[m]"
            maps+=(-map '[m]' -f null -)
        else
            graph+=";[d3]nullsink;[r3]nullsink"
        fi
        if ! ffmpeg -hide_banner -nostdin -threads ~{cpu} -i "$vid" -i "$src" -filter_complex "$graph" "${maps[@]}" 2> metrics.log; then
            echo "ERROR: comparing the video with the source failed: $(grep -v '^\s*$' metrics.log | tail -n 1)" >&2
            exit 1
        fi

        hevc-tasks verify-report --expected-frames ~{expected_frames} --width ~{width} --height ~{height} \
            --profile "$profile" --has-vmaf "$has_vmaf" --vmaf-requested ~{true="true" false="false" vmaf} \
            --min-psnr ~{default="nan" min_psnr}
    >>>

    output {
        File report_json = "verify_report.json"
        File report_txt = "verify_report.txt"
        Float psnr = read_float("psnr.txt")
        Float ssim = read_float("ssim.txt")
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}
