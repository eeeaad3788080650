version 1.0

task index_reference {
    meta {
        description: "Validates a reference FASTA and builds its samtools .fai and the aligner's index (bwa or minimap2)."
        outputs: {
            fai: "samtools faidx index of the reference",
            aligner_index: "bwa index files (.amb .ann .bwt .pac .sa) or the minimap2 short-read index (.mmi)"
        }
    }

    parameter_meta {
        reference_fasta: "Uncompressed reference FASTA"
        aligner: "Aligner whose index to build: 'bwa' or 'minimap2'"
        docker_image: "Image with samtools, bwa and minimap2"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB (bwa index needs about 5.4 x the genome size in bytes)"
        disk_gb: "Scratch disk, GiB; default derived from the reference size"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File reference_fasta
        String aligner = "bwa"
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
        Int cpu = 1
        Int memory_gb = 8
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    String fasta_name = basename(reference_fasta)
    Int disk = select_first([disk_gb, ceil(size(reference_fasta, "GiB") * 8) + 10])

    command <<<
        set -euo pipefail
        magic=$(head -c 2 '~{reference_fasta}' | od -An -tx1 | tr -d ' \n')
        if [ "$magic" = "1f8b" ]; then
            echo "ERROR: reference_fasta '~{fasta_name}' is gzip-compressed: give the uncompressed FASTA (gunzip it first)" >&2
            exit 1
        fi
        first=$(head -c 1 '~{reference_fasta}')
        if [ "$first" != ">" ]; then
            echo "ERROR: reference_fasta '~{fasta_name}' is not FASTA: it should start with '>', found '${first}'" >&2
            exit 1
        fi
        ln -s '~{reference_fasta}' '~{fasta_name}'
        samtools faidx '~{fasta_name}'
        mkdir index
        ln -s "$PWD/~{fasta_name}" 'index/~{fasta_name}'
        aligner='~{aligner}'
        case "$aligner" in
            bwa) bwa index 'index/~{fasta_name}' ;;
            minimap2) minimap2 -x sr -t ~{cpu} -d 'index/~{fasta_name}.mmi' 'index/~{fasta_name}' ;;
            *) echo "ERROR: unknown aligner '~{aligner}': choose bwa or minimap2" >&2; exit 1 ;;
        esac
        rm 'index/~{fasta_name}'
    >>>

    output {
        File fai = "~{fasta_name}.fai"
        Array[File] aligner_index = glob("index/*")
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
