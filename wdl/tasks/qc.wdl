version 1.0

task alignment_qc {
    meta {
        description: "Alignment QC with samtools stats and samtools flagstat (text and JSON); target coverage statistics in exome mode."
        outputs: {
            stats: "samtools stats of all reads",
            flagstat: "samtools flagstat, text",
            flagstat_json: "samtools flagstat, JSON",
            target_stats: "samtools stats restricted to the target intervals (exome mode only)"
        }
    }

    parameter_meta {
        bam: "Coordinate-sorted BAM"
        bai: "Index of the BAM"
        reference_fasta: "Reference FASTA (for mismatch statistics)"
        targets: "Target intervals (BED); enables target_stats"
        sample_name: "Output prefix"
        docker_image: "Image with samtools"
        cpu: "Threads for samtools"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File bam
        File bai
        File reference_fasta
        File? targets
        String sample_name
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
        Int cpu = 2
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB") + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        mkdir -p in
        ln -s '~{bam}' in/sample.bam
        ln -s '~{bai}' in/sample.bam.bai
        samtools stats -@ ~{cpu} --reference '~{reference_fasta}' in/sample.bam > '~{sample_name}.stats.txt'
        samtools flagstat -@ ~{cpu} in/sample.bam > '~{sample_name}.flagstat.txt'
        samtools flagstat -@ ~{cpu} -O json in/sample.bam > '~{sample_name}.flagstat.json'
        targets='~{default="" targets}'
        if [ -n "$targets" ]; then
            samtools stats -@ ~{cpu} --reference '~{reference_fasta}' -t "$targets" in/sample.bam > '~{sample_name}.target.stats.txt'
        fi
    >>>

    output {
        File stats = "~{sample_name}.stats.txt"
        File flagstat = "~{sample_name}.flagstat.txt"
        File flagstat_json = "~{sample_name}.flagstat.json"
        File? target_stats = "~{sample_name}.target.stats.txt"
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
