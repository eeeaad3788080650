version 1.0

task split_lane {
    meta {
        description: "One pass over one lane's FASTQ: checks both mates (format, truncation, quality length, mates in sync name by name, equal counts) while fastp trims them and writes its QC report and the reads as shards of at most reads_per_shard pairs, for parallel alignment."
        outputs: {
            shards_1: "First mates of each shard, gzip, in shard order",
            shards_2: "Second mates of each shard, gzip, in shard order (empty for a single-end lane)",
            read_counts: "Reads counted in each input file and pairs kept by fastp, tab-separated (<lane_id>.read_counts.tsv)",
            fastp_json: "fastp report, JSON: MultiQC reads it (<lane_id>.fastp.json)",
            fastp_html: "fastp report, HTML (<lane_id>.fastp.html)"
        }
    }

    parameter_meta {
        fastq_1: "First mates (or the single-end reads), FASTQ, plain or gzip"
        fastq_2: "Second mates, FASTQ, plain or gzip, same read order as fastq_1; absent for single-end reads"
        lane_id: {
            description: "The lane's read group ID: prefix of the reports",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
            pattern_help: "it may hold only letters, digits, '.', '_' and '-' (at most 100, not starting with . _ -)"
        }
        fastq_names: "How the two inputs are named in messages, e.g. fastq_r1 and fastq_r2"
        reads_per_shard: "Pairs (or single reads) per shard, at most: one alignment job each (fastp cuts per worker thread: about cpu x ceil(pairs / cpu / reads_per_shard) shards)"
        trim_reads: "Trim adapters and filter reads with fastp's defaults; false passes the reads through as they are"
        docker_image: "Image with fastp and genomics-tasks"
        cpu: "Threads for fastp (its compression of the shards)"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File fastq_1
        File? fastq_2
        String lane_id
        Array[String] fastq_names = ["fastq_1", "fastq_2"]
        Int reads_per_shard = 4000000
        Boolean trim_reads = true
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 4
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(fastq_1, "GiB") * 3 + size(fastq_2, "GiB") * 3) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t f < ~{write_lines(select_all([fastq_1, fastq_2]))}
        mapfile -t n < ~{write_lines(fastq_names)}
        mapfile -t l < ~{write_lines([lane_id])}
        if [ "${#n[@]}" -lt "${#f[@]}" ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        genomics-tasks check-id lane_id -- "${l[@]}"
        lane=${l[0]}
        # One pass: the checks feed fastp, which trims, reports and writes the shards (nothing if a check fails).
        genomics-tasks split-lane --fastq "${f[@]}" --names "${n[@]:0:${#f[@]}}" \
            --reads-per-shard ~{reads_per_shard} --threads ~{cpu} ~{true="" false="--no-trim" trim_reads} \
            --out-dir shards --counts "$lane.read_counts.tsv" --json "$lane.fastp.json" --html "$lane.fastp.html"
    >>>

    output {
        Array[File] shards_1 = glob("shards/shard_*_R1.fq.gz")
        Array[File] shards_2 = glob("shards/shard_*_R2.fq.gz")
        File read_counts = "~{lane_id}.read_counts.tsv"
        File fastp_json = "~{lane_id}.fastp.json"
        File fastp_html = "~{lane_id}.fastp.html"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task align_shard {
    meta {
        description: "Aligns one shard (bwa mem or minimap2, the lane's read group set), fixes mate information and coordinate-sorts."
        outputs: {
            bam: "Coordinate-sorted BAM of the shard (mate tags for duplicate marking)"
        }
    }

    parameter_meta {
        reads: "The shard: first mates, then second mates (paired) or the single-end reads"
        reference_fasta: "Reference FASTA the index was built from"
        aligner_index: "bwa index files (.amb .ann .bwt .pac .sa) or a minimap2 .mmi"
        sample_name: {
            description: "Sample name (SM of the read group)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        read_group: "Read group ID (no tab, backslash or control character)"
        library: "Library (LB): duplicates are marked within a library; default: the sample name"
        platform: "Sequencing platform (PL of the read group)"
        aligner: {
            description: "'bwa' (bwa mem) or 'minimap2' (minimap2 -ax sr); checked here",
            choices: ["bwa", "minimap2"]
        }
        sort_memory_mb: "Memory per samtools sort thread, MiB"
        docker_image: "Image with bwa, minimap2, samtools and genomics-tasks"
        cpu: "Threads for the aligner and samtools"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] reads
        File reference_fasta
        Array[File] aligner_index
        String sample_name
        String read_group
        String? library
        String platform = "ILLUMINA"
        String aligner = "bwa"
        Int sort_memory_mb = 512
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 8
        Int memory_gb = 14
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(reads, "GiB") * 4 + size(aligner_index, "GiB") + size(reference_fasta, "GiB")) + 20])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name, read_group, platform, aligner, select_first([library, sample_name])])}
        mapfile -t r < ~{write_lines(reads)}
        mapfile -t f < ~{write_lines([reference_fasta])}
        mapfile -t idx < ~{write_lines(aligner_index)}
        if [ "${#s[@]}" -ne 5 ] || [ "${#f[@]}" -ne 1 ] || [ "${#r[@]}" -lt 1 ] || [ "${#r[@]}" -gt 2 ]; then
            echo "ERROR: an input path or name contains a newline, or the shard is not 1 or 2 files: rename it" >&2; exit 1
        fi
        aligner=${s[3]}
        genomics-tasks choice aligner -- "$aligner"
        genomics-tasks same-shard -- "${r[@]}"
        rg=$(genomics-tasks read-group -- "${s[0]}" "${s[1]}" "${s[2]}" "${s[4]}")
        # Reference and index side by side under fixed names, whatever folders they were localized to.
        target=$(genomics-tasks link-index -- "$aligner" ref "${f[0]}" "${idx[@]}")
        mkdir -p tmp
        case "$aligner" in
            bwa) align() { bwa mem -t ~{cpu} -K 100000000 -Y -R "$rg" "$target" "${r[@]}"; } ;;
            minimap2) align() { minimap2 -ax sr -t ~{cpu} -Y -R "$rg" "$target" "${r[@]}"; } ;;
        esac
        if ! align | samtools fixmate -m -u - - 2> fixmate.err \
              | samtools sort -u -@ ~{cpu} -m ~{sort_memory_mb}M -T tmp/sort - > tmp/shard.bam; then
            cat fixmate.err >&2
            genomics-tasks sam-error -- fixmate.err  # a contig named twice in the reference (prebuilt index)
            exit 1
        fi
        cat fixmate.err >&2
        mv tmp/shard.bam shard.bam
    >>>

    output {
        File bam = "shard.bam"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task merge_sample {
    meta {
        description: "Merges a sample's shard BAMs (every lane's read group kept), marks duplicates within each library (each library merged and marked on its own: samtools markdup itself ignores LB) and indexes the BAM."
        outputs: {
            bam: "Coordinate-sorted, duplicate-marked BAM (<sample>.bam)",
            bai: "BAM index (<sample>.bam.bai)",
            markdup_metrics: "samtools markdup statistics, one block per library (<sample>.markdup.txt)"
        }
    }

    parameter_meta {
        bams: "Coordinate-sorted shard BAMs of the sample (all lanes), from align_shard"
        sample_name: {
            description: "Sample name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        mark_duplicates: "Mark PCR/optical duplicates with samtools markdup"
        docker_image: "Image with samtools and genomics-tasks"
        cpu: "Threads for samtools"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] bams
        String sample_name
        Boolean mark_duplicates = true
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 4
        Int memory_gb = 6
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bams, "GiB") * 3) + 20])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        genomics-tasks check-name sample_name -- "${s[@]}"
        sample=${s[0]}
        mkdir -p tmp
        # The lanes' @RG lines kept (-c: one per lane); samtools markdup ignores LB, so each library is merged and
        # marked on its own, then the libraries are merged.
        genomics-tasks merge-sample --bams ~{write_lines(bams)} --out "tmp/${sample}.bam" \
            --metrics "${sample}.markdup.txt" --threads ~{cpu} ~{true="" false="--no-markdup" mark_duplicates}
        samtools index -@ ~{cpu} "tmp/${sample}.bam"
        mv "tmp/${sample}.bam.bai" "${sample}.bam.bai"
        mv "tmp/${sample}.bam" "${sample}.bam"
    >>>

    output {
        File bam = "~{sample_name}.bam"
        File bai = "~{sample_name}.bam.bai"
        File markdup_metrics = "~{sample_name}.markdup.txt"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}
