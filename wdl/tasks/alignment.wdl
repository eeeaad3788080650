version 1.0

task align_reads {
    meta {
        description: "Checks paired FASTQ in one pass (format, truncation, quality length, mates in sync by read name), aligns with bwa mem or minimap2 (read group set), fixes mate information, coordinate-sorts, marks duplicates and indexes the BAM."
        outputs: {
            bam: "Coordinate-sorted, duplicate-marked BAM",
            bai: "BAM index",
            markdup_metrics: "samtools markdup statistics",
            read_counts: "Read pairs counted in each mate file (tab-separated)"
        }
    }

    parameter_meta {
        fastq_r1: "First mates, FASTQ (plain or gzip)"
        fastq_r2: "Second mates, FASTQ (plain or gzip), same read order as fastq_r1"
        reference_fasta: "Reference FASTA the index was built from"
        aligner_index: "bwa index files (.amb .ann .bwt .pac .sa) or a minimap2 .mmi"
        sample_name: {
            description: "Sample name (SM of the read group; prefix of the outputs)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        read_group_id: "Read group ID (no tab, backslash or control character); default: the sample name"
        platform: "Sequencing platform (PL of the read group; no tab, backslash or control character)"
        aligner: {
            description: "'bwa' (bwa mem) or 'minimap2' (minimap2 -ax sr); checked here, once",
            choices: ["bwa", "minimap2"]
        }
        mark_duplicates: "Mark PCR/optical duplicates with samtools markdup"
        sort_memory_mb: "Memory per samtools sort thread, MiB"
        docker_image: "Image with bwa, minimap2, samtools and genomics-tasks"
        cpu: "Threads for the aligner and samtools"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File fastq_r1
        File fastq_r2
        File reference_fasta
        Array[File] aligner_index
        String sample_name
        String? read_group_id
        String platform = "ILLUMINA"
        String aligner = "bwa"
        Boolean mark_duplicates = true
        Int sort_memory_mb = 768
        String docker_image = "batchpipes/genomics:08b8d4158ec2"
        Int cpu = 4
        Int memory_gb = 8
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    String rg_id = select_first([read_group_id, sample_name])
    Int disk = select_first([disk_gb, ceil(size([fastq_r1, fastq_r2], "GiB") * 5 + size(reference_fasta, "GiB") * 3) + 20])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name, rg_id, platform, aligner])}
        mapfile -t f < ~{write_lines([fastq_r1, fastq_r2, reference_fasta])}
        mapfile -t idx < ~{write_lines(aligner_index)}
        if [ "${#s[@]}" -ne 4 ] || [ "${#f[@]}" -ne 3 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]} aligner=${s[3]} r1=${f[0]} r2=${f[1]}
        # The aligner's one check (index_reference, when it ran before, built an index only for a known one).
        genomics-tasks choice aligner -- "$aligner"
        rg=$(genomics-tasks read-group -- "$sample" "${s[1]}" "${s[2]}")
        # Both mates in one pass: format, truncation, CRLF, quality length, same reads in the same order.
        genomics-tasks check-fastq -- "$r1" "$r2" read_counts.tsv
        # Reference and index side by side under fixed names, whatever folders they were localized to.
        target=$(genomics-tasks link-index -- "$aligner" ref "${f[2]}" "${idx[@]}")
        mkdir -p tmp
        case "$aligner" in
            bwa) align() { bwa mem -t ~{cpu} -K 100000000 -Y -R "$rg" "$target" "$r1" "$r2"; } ;;
            minimap2) align() { minimap2 -ax sr -t ~{cpu} -Y -R "$rg" "$target" "$r1" "$r2"; } ;;
        esac
        if ! align | samtools fixmate -m -u - - 2> fixmate.err \
              | samtools sort -u -@ ~{cpu} -m ~{sort_memory_mb}M -T tmp/sort - > sorted.bam; then
            cat fixmate.err >&2
            genomics-tasks sam-error -- fixmate.err  # a contig named twice in the reference (prebuilt index)
            exit 1
        fi
        cat fixmate.err >&2
        if [ ~{true="true" false="false" mark_duplicates} = true ]; then
            samtools markdup -@ ~{cpu} -s -f markdup.txt sorted.bam "tmp/${sample}.bam"
            rm sorted.bam
        else
            mv sorted.bam "tmp/${sample}.bam"
            echo "duplicate marking disabled" > markdup.txt
        fi
        samtools index -@ ~{cpu} "tmp/${sample}.bam"
        mv "tmp/${sample}.bam.bai" "${sample}.bam.bai"
        mv "tmp/${sample}.bam" "${sample}.bam"
    >>>

    output {
        File bam = "~{sample_name}.bam"
        File bai = "~{sample_name}.bam.bai"
        File markdup_metrics = "markdup.txt"
        File read_counts = "read_counts.tsv"
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
