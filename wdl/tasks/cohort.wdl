version 1.0

task check_samples {
    meta {
        description: "Checks the cohort before any read is touched: sample names, read group IDs (unique in the cohort), libraries and platforms, no FASTQ given twice, every sample all paired or all single-end. Writes the order the workflow scatters over."
        outputs: {
            sample_indexes: "0, 1, ... one per sample: the workflow scatters over these, so nothing starts before the check",
            summary: "One line: 'N samples, M lanes (P paired, S single-end)'"
        }
    }

    parameter_meta {
        lanes: "One row per lane: sample, read group, library, platform, fastq_1, fastq_2 (empty for single-end)"
        sample_count: "Number of samples in the cohort"
        docker_image: "Image with genomics-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[Array[String]] lanes
        Int sample_count
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 1
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # The rows reach the program as a file (see docs/development.md, "Shell safety").
        genomics-tasks check-samples --lanes ~{write_tsv(lanes)} --samples ~{sample_count} \
            --indexes indexes.json --summary summary.txt
    >>>

    output {
        Array[Int] sample_indexes = read_json("indexes.json")
        String summary = read_string("summary.txt")
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

task sample_vcf {
    meta {
        description: "One sample's calls taken from the cohort VCF: its genotype column, only the sites where it carries an alternate allele, indexed."
        outputs: {
            vcf: "The sample's calls, bgzip (<sample>.vcf.gz)",
            vcf_index: "Tabix index of vcf"
        }
    }

    parameter_meta {
        cohort_vcf: "Joint calls of the cohort, bgzip"
        cohort_vcf_index: "Tabix index of cohort_vcf"
        sample_name: {
            description: "The sample (a column of the cohort VCF)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with bcftools and genomics-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File cohort_vcf
        File cohort_vcf_index
        String sample_name
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(cohort_vcf, "GiB") * 2) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([cohort_vcf, cohort_vcf_index])}
        genomics-tasks check-name sample_name -- "${s[@]}"
        sample=${s[0]}
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/cohort.vcf.gz
        ln -s -- "${v[1]}" in/cohort.vcf.gz.tbi
        # -c 1: sites where this sample has an alternate allele; --trim-alt-alleles: only its own alleles.
        bcftools view -s "$sample" -c 1 --trim-alt-alleles -Oz -o "tmp/${sample}.vcf.gz" in/cohort.vcf.gz
        bcftools index -t "tmp/${sample}.vcf.gz"
        mv "tmp/${sample}.vcf.gz.tbi" "tmp/${sample}.vcf.gz" .
    >>>

    output {
        File vcf = "~{sample_name}.vcf.gz"
        File vcf_index = "~{sample_name}.vcf.gz.tbi"
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
