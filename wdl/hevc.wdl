version 1.0

import "tasks/hevc.wdl" as tasks

workflow hevc {
    meta {
        description: "8K HEVC encoding: probe the source from metadata and one demux pass (every setting and the source checked once, before anything expensive; stream choice, colour and HDR10 metadata, audio plan, decoder) -> encode (libx265 on CPU, or NVDEC -> hevc_nvenc on an NVIDIA GPU instance; source timestamps, colour tags and HDR10 metadata kept; damaged source frames counted) as one job or as keyframe-aligned chunks encoded in parallel and joined losslessly -> verify (resolution, frame count, timestamps, colour and HDR10 metadata, PSNR/SSIM against the source over every frame or sampled segments). Disks are sized from the probe."
        author: "batchpipes"
        outputs: {
            video: "HEVC video in MP4 or MOV (hvc1), Main or Main 10",
            report_json: "Verification report, JSON",
            report_txt: "Verification report, text",
            psnr: "Average PSNR against the source over the compared frames, dB (-1 with verify_mode off)",
            ssim: "Average SSIM against the source over the compared frames (-1 with verify_mode off)",
            source_info: "What the probe found in the source (JSON)",
            encode_stats: "Per encode job: frames, seconds, fps (JSON; one per chunk when chunked)"
        }
    }

    parameter_meta {
        source: "Source video: a local file, or an s3:// object under Cromwell on AWS"
        output_name: {
            description: "Output base name (the video is <output_name>.mp4, or .mov with container mov). Default: the source's file name without extension, made safe (accents dropped, every run of other characters than letters, digits, . _ - becomes one _, cut to 64 characters), plus .hevc: my clip'$(x) 1.mov gives my_clip_x_1.hevc",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        encoder: {
            description: "HEVC encoder: libx265 (CPU) or hevc_nvenc (NVIDIA GPU, runtime gpuCount 1; H.264 NVENC cannot encode 8K, HEVC NVENC can up to 8192x8192)",
            choices: ["libx265", "hevc_nvenc"]
        }
        profile: {
            description: "main (8-bit 4:2:0) or main10 (10-bit 4:2:0)",
            choices: ["main", "main10"]
        }
        preset: {
            description: "Encoder preset; default medium (libx265) or p5 (hevc_nvenc). libx265: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo; hevc_nvenc: p1 to p7 (the probe checks that it fits the encoder)",
            pattern: "^(ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow|placebo|p[1-7])$",
            pattern_help: "this is not a preset name: choose one of ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo (libx265) or p1 to p7 (hevc_nvenc)"
        }
        rate_control: {
            description: "crf: constant quality (x265 CRF, NVENC CQ) from `quality`; vbr: average `bitrate_kbps`, peaks 1.5x; cbr: constant `bitrate_kbps`",
            choices: ["crf", "vbr", "cbr"]
        }
        quality: "CRF/CQ for rate_control crf (0-51, lower is better)"
        bitrate_kbps: "Bitrate for vbr/cbr, kbit/s"
        keyint: "Frames between keyframes; encoder default (x265: 250) when absent"
        intermediate: {
            description: "none: decoded frames go straight into the encoder (one ffmpeg process, no intermediate file); yuv_file: decode to a raw YUV file first (the original pipeline; about 90 GB per minute of 8K 8-bit 30 fps) - the disk is sized for it",
            choices: ["none", "yuv_file"]
        }
        audio: {
            description: "Source audio: auto copies the streams the container carries unchanged and re-encodes the others to AAC (96 kbit/s per channel, channel layout kept); copy keeps every stream unchanged (or the probe refuses); aac re-encodes all; none drops the audio",
            choices: ["auto", "copy", "aac", "none"]
        }
        container: {
            description: "Output container: mp4, or mov for mezzanine use (MOV also carries PCM audio unchanged)",
            choices: ["mp4", "mov"]
        }
        video_stream: "ffprobe index of the video stream to encode when the source has several (Stream #0:N); default: the one with the most pixels, so a proxy listed first is not chosen"
        audio_stream: "ffprobe index of the one audio stream to keep; default: every audio stream"
        max_damaged_frames: "Damaged source frames the run accepts: corrupt packets (probe), frames decoded corrupt or lost (encode); above it the run fails with one line. Default 0"
        verify_mode: {
            description: "Verification against the source: full (every frame), sampled (8 evenly spread segments of 4 frames: constant cost), off (metadata, frame count and timestamps only), or auto (sampled above 120 frames of 8K, full below)",
            choices: ["auto", "full", "sampled", "off"]
        }
        chunks: "1: one encode job. More: split at closed keyframes (the nearest to an even split) into this many segments, encode them in parallel, join losslessly with the source's exact timestamps; refused with one line when the source's keyframes cannot give that many"
        expected_resolution: {
            description: "WIDTHxHEIGHT the source must have (checked by the probe before encoding), or 'any'",
            pattern: "^([1-9][0-9]{0,5}x[1-9][0-9]{0,5}|any)$",
            pattern_help: "give WIDTHxHEIGHT (e.g. 7680x4320) or 'any'"
        }
        vmaf: "Compute VMAF too when the ffmpeg build has libvmaf (Debian's has not)"
        min_psnr: "Fail verification when the average PSNR is below this, dB"
        encode_cpu: "vCPUs per encode job; default 16 (libx265) or 8 (hevc_nvenc)"
        encode_memory_gb: "Memory per encode job, GiB; default 24 (libx265) or 16 (hevc_nvenc)"
        verify_cpu: "vCPUs for verification"
        verify_memory_gb: "Memory for verification, GiB"
        ffmpeg_image: "Image with ffmpeg (libx265, hevc_nvenc) and python3 (pinned by content hash)"
        gpu_queue_arn: "Cromwell on AWS: Batch queue of NVIDIA instances for hevc_nvenc encodes (filled in by batchpipes aws cromwell-command)"
        cpu_queue_arn: "Cromwell on AWS: Batch queue for libx265 encodes (filled in by batchpipes aws cromwell-command)"
    }

    input {
        File source
        String? output_name
        String encoder = "libx265"
        String profile = "main10"
        String? preset
        String rate_control = "crf"
        Int quality = 22
        Int bitrate_kbps = 80000
        Int? keyint
        String intermediate = "none"
        String audio = "auto"
        String container = "mp4"
        Int? video_stream
        Int? audio_stream
        Int max_damaged_frames = 0
        String verify_mode = "auto"
        Int chunks = 1
        String expected_resolution = "7680x4320"
        Boolean vmaf = true
        Float? min_psnr
        Int? encode_cpu
        Int? encode_memory_gb
        Int verify_cpu = 4
        Int verify_memory_gb = 8
        String ffmpeg_image = "batchpipes/ffmpeg:af80a6ea69e5"
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }

    Boolean gpu = encoder == "hevc_nvenc"
    String chosen_preset = select_first([preset, if gpu then "p5" else "medium"])
    Int cpu = select_first([encode_cpu, if gpu then 8 else 16])
    Int memory_gb = select_first([encode_memory_gb, if gpu then 16 else 24])

    call tasks.probe_source {
        input:
            source = source,
            output_name = output_name,
            encoder = encoder,
            profile = profile,
            preset = chosen_preset,
            rate_control = rate_control,
            audio = audio,
            container = container,
            verify_mode = verify_mode,
            intermediate = intermediate,
            chunks = chunks,
            expected_resolution = expected_resolution,
            video_stream = video_stream,
            audio_stream = audio_stream,
            max_damaged_frames = max_damaged_frames,
            docker_image = ffmpeg_image
    }

    # Disk sizes from the probe, in GiB (Float: 8K frame counts overflow 32-bit byte counts).
    Float source_gib = size(source, "GiB")
    Int bytes_per_sample = if profile == "main10" then 2 else 1
    Float raw_gib = probe_source.width * probe_source.height * 1.5 * bytes_per_sample * probe_source.frames / 1073741824.0
    # Output estimate: the bitrate for vbr/cbr; for crf at most 1/50 of the raw video, at least the source.
    Float bitrate_gib = bitrate_kbps * 1000.0 / 8.0 * 1.5 * probe_source.duration_s / 1073741824.0
    Float crf_gib = if raw_gib / 50.0 > source_gib then raw_gib / 50.0 else source_gib
    Float output_gib = if rate_control == "crf" then crf_gib else bitrate_gib
    Float yuv_gib = if intermediate == "yuv_file" then raw_gib else 0.0
    # The output counts twice: +faststart rewrites the MP4 to move its index to the front.
    Int encode_disk = ceil((source_gib + 2.0 * output_gib + yuv_gib) * 1.1) + 10

    if (chunks <= 1) {
        call tasks.encode as encode_whole {
            input:
                source = source,
                info = probe_source.info,
                output_name = probe_source.name,
                encoder = encoder,
                profile = profile,
                preset = chosen_preset,
                rate_control = rate_control,
                quality = quality,
                bitrate_kbps = bitrate_kbps,
                keyint = keyint,
                intermediate = intermediate,
                audio = audio,
                container = container,
                max_damaged_frames = max_damaged_frames,
                width = probe_source.width,
                height = probe_source.height,
                frame_rate = probe_source.frame_rate,
                cpu = cpu,
                memory_gb = memory_gb,
                disk_gb = encode_disk,
                docker_image = ffmpeg_image,
                gpu_queue_arn = gpu_queue_arn,
                cpu_queue_arn = cpu_queue_arn
        }
    }

    # Chunks of a source whose closed keyframes allow them: stream-copied segments, one encode job each.
    if (chunks > 1 && probe_source.chunk_mode == "segments") {
        call tasks.split_source {
            input:
                source = source,
                info = probe_source.info,
                frames = probe_source.frames,
                chunks = chunks,
                keep_audio = probe_source.has_audio,
                disk_gb = ceil(source_gib * 2.1) + 10,
                docker_image = ffmpeg_image
        }

        scatter (segment in split_source.segments) {
            # Each chunk's share of the output and raw video, by its share of the source's bytes.
            Float share = if source_gib > 0.0 then size(segment, "GiB") / source_gib else 1.0
            call tasks.encode as encode_chunk {
                input:
                    source = segment,
                    info = probe_source.info,
                    output_name = sub(basename(segment), "\\.nut$", ""),
                    encoder = encoder,
                    profile = profile,
                    preset = chosen_preset,
                    rate_control = rate_control,
                    quality = quality,
                    bitrate_kbps = bitrate_kbps,
                    keyint = keyint,
                    intermediate = intermediate,
                    audio = "none",
                    container = "mp4",
                    max_damaged_frames = max_damaged_frames,
                    verify_mode = probe_source.verification,
                    width = probe_source.width,
                    height = probe_source.height,
                    frame_rate = probe_source.frame_rate,
                    cpu = cpu,
                    memory_gb = memory_gb,
                    disk_gb = ceil((size(segment, "GiB") + (2.0 * output_gib + yuv_gib) * share) * 1.25) + 10,
                    docker_image = ffmpeg_image,
                    gpu_queue_arn = gpu_queue_arn,
                    cpu_queue_arn = cpu_queue_arn
            }
        }
    }

    # Chunks of a source without enough closed keyframes (open GOP): every job reads the source from the keyframe
    # before its first frame and keeps exactly its frames (long-GOP sources are compact; all-intra masters such as
    # ProRes have a closed keyframe on every frame and take the segment path).
    if (chunks > 1 && probe_source.chunk_mode == "seek") {
        scatter (k in range(probe_source.chunk_count)) {
            call tasks.encode as encode_seek {
                input:
                    source = source,
                    info = probe_source.info,
                    chunk = k,
                    output_name = "seek_~{100000 + k}",
                    encoder = encoder,
                    profile = profile,
                    preset = chosen_preset,
                    rate_control = rate_control,
                    quality = quality,
                    bitrate_kbps = bitrate_kbps,
                    keyint = keyint,
                    intermediate = "none",
                    audio = "none",
                    container = "mp4",
                    max_damaged_frames = max_damaged_frames,
                    verify_mode = probe_source.verification,
                    width = probe_source.width,
                    height = probe_source.height,
                    frame_rate = probe_source.frame_rate,
                    cpu = cpu,
                    memory_gb = memory_gb,
                    disk_gb = ceil((source_gib + 2.0 * output_gib / probe_source.chunk_count) * 1.25) + 10,
                    docker_image = ffmpeg_image,
                    gpu_queue_arn = gpu_queue_arn,
                    cpu_queue_arn = cpu_queue_arn
            }
        }
    }

    if (chunks > 1) {
        call tasks.concat_chunks {
            input:
                chunks = select_first([encode_chunk.video, encode_seek.video]),
                # Seek chunks: the audio comes from the source itself (split_source copied it aside otherwise).
                audio_track = if probe_source.chunk_mode == "seek" && probe_source.has_audio then [source]
                              else select_first([split_source.audio_track, []]),
                audio = audio,
                container = container,
                info = probe_source.info,
                output_name = probe_source.name,
                expected_frames = probe_source.frames,
                disk_gb = ceil(output_gib * 3.3 + (if probe_source.chunk_mode == "seek" then source_gib else 0.0)) + 10,
                docker_image = ffmpeg_image
        }
    }

    File encoded = select_first([encode_whole.video, concat_chunks.video])

    call tasks.verify {
        input:
            video = encoded,
            source = source,
            info = probe_source.info,
            encoder = encoder,
            verify_mode = probe_source.verification,
            chunk_quality = if chunks > 1 then select_first([encode_chunk.quality_report, encode_seek.quality_report]) else [],
            expected_frames = select_first([encode_whole.frames, probe_source.frames]),
            width = probe_source.width,
            height = probe_source.height,
            profile = profile,
            vmaf = vmaf,
            min_psnr = min_psnr,
            cpu = verify_cpu,
            memory_gb = verify_memory_gb,
            disk_gb = ceil((source_gib + size(encoded, "GiB")) * 1.1) + 10,
            docker_image = ffmpeg_image
    }

    output {
        File video = encoded
        File report_json = verify.report_json
        File report_txt = verify.report_txt
        Float psnr = verify.psnr
        Float ssim = verify.ssim
        File source_info = probe_source.info
        Array[File] encode_stats = if chunks > 1 then select_first([encode_chunk.stats, encode_seek.stats]) else select_all([encode_whole.stats])
    }
}
