version 1.0

# HEVC (H.265) encoding tasks for wdl/hevc.wdl: probe, encode (libx265 on CPU or hevc_nvenc on an
# NVIDIA GPU), keyframe split and lossless concatenation for chunked encodes, verification.
# Every task fails with one "ERROR: ..." line on stderr that names the problem and the fix.

task probe_source {
    meta {
        description: "Checks every setting of the run (encoder, preset for that encoder, profile, rate control, audio mode, container, verify mode, intermediate, expected resolution, chunks, stream choice) and the output name, then the source, before anything expensive runs, from metadata and one demux pass (no decoding, so its cost does not grow with decoding work: containers/ffmpeg/hevc_probe.py): the chosen video stream (default: the one with the most pixels) with frames, even width and height (4:2:0), the expected resolution, a size the encoder takes, no corrupt packets beyond max_damaged_frames, audio that the audio mode and container can carry. Reads colour tags and HDR10 metadata from the first frame, plans the audio (copy or AAC per stream) and chooses the decoder (NVDEC or CPU, with the reason). The later tasks take the settings as checked here and do not check them again. Without output_name, names the output after the source (made safe: see default_name in containers/ffmpeg/hevc_tasks.py)."
        outputs: {
            width: "Width of the first video stream, pixels",
            height: "Height, pixels",
            frames: "Frame count for planning and disk sizing: the video stream's packets (the encode counts the decoded frames)",
            duration_s: "Duration, seconds",
            frame_rate: "Frame rate as a rational, e.g. 24/1 or 30000/1001",
            has_audio: "Whether audio is kept (the source has audio and audio is not none)",
            info: "JSON summary of the source: the chosen video stream (codec, pixel format, bit depth, chroma, size, time base, frame rate, variable frame rate, packets, keyframes, colour tags, HDR10 metadata), the audio plan, the decoder choice and the verify mode",
            decode: "Where the encode decodes the source: nvdec (GPU) or cpu",
            chunk_mode: "single (chunks 1), segments (cut at closed keyframes) or seek (each chunk job decodes the source from the keyframe before its first frame)",
            chunk_count: "Number of chunks planned",
            verification: "The verification that runs: full, sampled or off (auto resolved)",
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
        audio: "auto, copy, aac or none"
        container: "mp4 or mov"
        verify_mode: "auto, full, sampled or off"
        intermediate: "none or yuv_file (checked here; used by encode)"
        chunks: "Number of chunks requested (at least 1)"
        expected_resolution: "WIDTHxHEIGHT the source must have, or 'any'"
        video_stream: "ffprobe index of the video stream to encode; default: the one with the most pixels"
        audio_stream: "ffprobe index of the one audio stream to keep; default: all audio streams"
        max_damaged_frames: "Corrupt packets the probe accepts (the encode counts damaged frames against the same limit)"
        docker_image: "Image with ffmpeg/ffprobe and python3"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch)"
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
        String container = "mp4"
        String verify_mode = "auto"
        String intermediate = "none"
        Int chunks
        String expected_resolution
        Int? video_stream
        Int? audio_stream
        Int max_damaged_frames = 0
        String docker_image = "batchpipes/ffmpeg:af80a6ea69e5"
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = ceil(size(source, "GiB")) + 10

    command <<<
        set -euo pipefail
        # Every setting of the run is checked here, once, before anything expensive; the later tasks do not check
        # them again. Metadata and one demux pass: nothing is decoded but the first frame.
        hevc-tasks probe --chunks ~{chunks} --max-damaged-frames ~{max_damaged_frames} \
            --settings ~{write_json({"encoder": encoder, "preset": preset, "profile": profile, "rate_control": rate_control, "audio": audio, "container": container, "verify_mode": verify_mode, "intermediate": intermediate, "expected_resolution": expected_resolution})} \
            --streams ~{write_json({"video_stream": select_all([video_stream]), "audio_stream": select_all([audio_stream])})} \
            --name ~{write_json(select_all([output_name]))} --source ~{write_lines([source])}
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
        String decode = read_string("decode.txt")
        String verification = read_string("verification.txt")
        String chunk_mode = read_string("chunk_mode.txt")
        Int chunk_count = read_int("chunk_count.txt")
    }

    runtime {
        docker: docker_image
        cpu: 1
        memory: "2 GiB"
        disks: "local-disk ~{disk} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task encode {
    meta {
        description: "Encodes the chosen video stream to HEVC in MP4 or MOV (hvc1) with libx265 or hevc_nvenc; the command line is built by hevc-tasks encode (encode_steps in containers/ffmpeg/hevc_tasks.py) from the settings and findings of probe_source: NVDEC decoding with GPU-side format conversion where the probe chose it, every frame with its source timestamp (variable frame rate kept), the source's colour tags and (libx265) HDR10 mastering display and content light level, the audio plan. By default frames go from the decoder straight into the encoder inside one ffmpeg process (no intermediate file); intermediate = yuv_file decodes to a raw YUV file on disk first, as the original pipeline did (about 90 GB per minute of 8K 8-bit at 30 fps, twice that at 10-bit). Counts the decoded frames and the source's damaged frames (corrupt or lost); more than max_damaged_frames fails the task with nothing published."
        outputs: {
            video: "HEVC video, MP4 or MOV",
            frames: "Frames decoded from the source and encoded",
            quality_report: "A chunk job's PSNR/SSIM of its frames against the source's (verify_mode full: every frame; sampled: its first 8; otherwise none), read by verify",
            stats: "JSON: frames encoded, wall seconds of decode+encode, frames per second, settings, decoder, source damage, warnings"
        }
    }

    parameter_meta {
        source: "Source video, or one keyframe-aligned segment of it"
        info: "The probe's source_info.json (video stream, colour, HDR10 metadata, audio plan, decoder, chunk plan)"
        chunk: "Index of a seek chunk of the probe's plan: encode only its frames, decoding the whole source from the keyframe before them"
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
        audio: "auto, copy, aac or none: what happens to the source's audio streams (the plan is in info)"
        container: "mp4 or mov"
        max_damaged_frames: "Damaged source frames (decoded corrupt, or lost) the run accepts"
        verify_mode: "full, sampled or off: the quality a chunk job measures itself (off for a whole encode, which verify measures)"
        width: "Source width (for the raw YUV file)"
        height: "Source height (for the raw YUV file)"
        frame_rate: "Source frame rate as a rational (for the raw YUV file)"
        cpu: "vCPUs (libx265 thread pool size)"
        memory_gb: "Memory, GiB"
        disk_gb: "Scratch disk, GiB (sized by the workflow from the probe)"
        docker_image: "Image with ffmpeg (libx265, hevc_nvenc)"
        gpu_queue_arn: "AWS Batch queue of NVIDIA instances, used when encoder is hevc_nvenc (Cromwell on AWS)"
        cpu_queue_arn: "AWS Batch queue for libx265 encodes (Cromwell on AWS)"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File source
        File info
        Int? chunk
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
        String container = "mp4"
        Int max_damaged_frames = 0
        String verify_mode = "off"
        Int width
        Int height
        String frame_rate
        Int cpu
        Int memory_gb
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:af80a6ea69e5"
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # hevc-tasks builds and runs the ffmpeg command line (encode_steps in containers/ffmpeg/hevc_tasks.py).
        hevc-tasks encode --quality ~{quality} --bitrate-kbps ~{bitrate_kbps} --width ~{width} --height ~{height} \
            --cpu ~{cpu} --keyint ~{write_json(select_all([keyint]))} --source ~{write_lines([source])} \
            --info ~{write_lines([info])} --max-damaged-frames ~{max_damaged_frames} --chunk ~{write_json(select_all([chunk]))} \
            --settings ~{write_json({"output_name": output_name, "encoder": encoder, "preset": preset, "profile": profile, "rate_control": rate_control, "intermediate": intermediate, "audio": audio, "container": container, "frame_rate": frame_rate, "verify_mode": verify_mode})}
    >>>

    output {
        File video = "~{output_name}.~{container}"
        Int frames = read_int("frames.txt")
        File stats = "encode_stats.json"
        File quality_report = "quality.json"
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
        description: "Splits the chosen video stream into the probe's chunk plan without re-encoding (stream copy, NUT container; hevc-tasks split): cuts at closed keyframes only, each segment's frame count checked against the plan by demuxing; copies the kept audio streams aside for the concatenation."
        outputs: {
            segments: "Keyframe-aligned segments seg_00000.nut, seg_00001.nut, ... in order",
            audio_track: "The kept audio streams (the probe's plan, in its order), stream-copied to Matroska: one file, or none when no audio is kept"
        }
    }

    parameter_meta {
        source: "Source video"
        info: "The probe's source_info.json (the video stream and the audio plan)"
        frames: "Frame count of the source (from probe_source)"
        chunks: "Segments wanted; fewer come out when the source has fewer keyframes"
        keep_audio: "Copy the audio streams aside"
        cpu: "vCPUs for the split (stream copy and a demux count of each segment's frames)"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File source
        File info
        Int frames
        Int chunks
        Boolean keep_audio
        Int cpu = 1
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:af80a6ea69e5"
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        hevc-tasks split --frames ~{frames} --chunks ~{chunks} --cpu ~{cpu} --info ~{write_lines([info])} \
            --keep-audio ~{true="true" false="false" keep_audio} --source ~{write_lines([source])}
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
        description: "Joins encoded chunks in segment order without re-encoding (concat demuxer, stream copy; hevc-tasks concat), each chunk's duration given exactly from the source's timestamps so the joined video keeps them, and adds the audio back as the probe's plan says; checks the joined frame count."
        outputs: {
            video: "HEVC video, MP4 or MOV"
        }
    }

    parameter_meta {
        chunks: "Encoded chunks, named after their segments (seg_00000.mp4, ...); joined in name order"
        audio_track: "Audio streams to add (from split_source; empty for none)"
        audio: "auto, copy, aac or none: how the audio track is added (the plan is in info; none: it is not)"
        container: "mp4 or mov"
        info: "The probe's source_info.json (the audio plan)"
        output_name: {
            description: "Output file name without extension",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        expected_frames: "Frame count the joined video must have"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] chunks
        Array[File] audio_track = []
        String audio
        String container = "mp4"
        File info
        String output_name
        Int expected_frames
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:af80a6ea69e5"
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # Joined in segment-name order, not in the order the files arrived in.
        hevc-tasks concat --expected-frames ~{expected_frames} --chunks ~{write_lines(chunks)} \
            --audio-track ~{write_lines(audio_track)} \
            --info ~{write_lines([info])} --settings ~{write_json({"output_name": output_name, "audio": audio, "container": container})}
    >>>

    output {
        File video = "~{output_name}.~{container}"
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
        description: "Checks the encoded video against the source (hevc-tasks verify): HEVC, the requested profile, the source's resolution, the frame count the encode decoded, the source's timestamps (exact, from the first frame), its colour tags and HDR10 metadata (not required of hevc_nvenc, which cannot write the latter: the report says so); then PSNR and SSIM (and VMAF where this ffmpeg has libvmaf) against the source in the encoded pixel format: every frame (full, which also decodes the whole video for errors), 8 evenly spread segments of 4 frames found by seeking (sampled: constant cost), or none (off). Writes the report as JSON and text; fails after writing it when a check fails."
        outputs: {
            report_json: "Verification report, JSON",
            report_txt: "The same, as text",
            psnr: "Average PSNR over the compared frames and planes, dB (-1 when verify_mode is off)",
            ssim: "Average SSIM (All) over the compared frames (-1 when verify_mode is off)"
        }
    }

    parameter_meta {
        video: "Encoded video"
        source: "Source video"
        info: "The probe's source_info.json (the video stream, its timestamps' time base, colour and HDR10 metadata)"
        encoder: "libx265 or hevc_nvenc (hevc_nvenc cannot carry HDR10 metadata)"
        verify_mode: "full, sampled, off (or auto: sampled for long high-resolution sources)"
        expected_frames: "Frames the encode decoded from the source"
        chunk_quality: "Chunked runs: the chunk jobs' quality files (they measured PSNR/SSIM in parallel; verify then decodes nothing)"
        width: "Source width"
        height: "Source height"
        profile: "main or main10: the profile the video must carry; also the comparison pixel format"
        vmaf: "Also compute VMAF when the ffmpeg build has libvmaf"
        min_psnr: "Fail when the average PSNR is below this, dB"
        cpu: "Threads"
        memory_gb: "Memory, GiB"
        disk_gb: "Scratch disk, GiB"
        docker_image: "Image with ffmpeg and python3"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File video
        File source
        File info
        String encoder
        String verify_mode
        Array[File] chunk_quality = []
        Int expected_frames
        Int width
        Int height
        String profile
        Boolean vmaf = true
        Float? min_psnr
        Int cpu = 4
        Int memory_gb = 8
        Int disk_gb
        String docker_image = "batchpipes/ffmpeg:af80a6ea69e5"
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        hevc-tasks verify --expected-frames ~{expected_frames} --width ~{width} --height ~{height} --cpu ~{cpu} \
            --vmaf ~{true="true" false="false" vmaf} --min-psnr ~{default="nan" min_psnr} \
            --info ~{write_lines([info])} --files ~{write_lines([video, source])} --chunk-quality ~{write_lines(chunk_quality)} \
            --settings ~{write_json({"profile": profile, "encoder": encoder, "verify_mode": verify_mode})}
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
