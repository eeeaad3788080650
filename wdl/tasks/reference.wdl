version 1.0

task index_reference {
    meta {
        description: "Validates a reference FASTA (uncompressed, FASTA, unique contig names) and builds its samtools .fai and the aligner's index (bwa or minimap2)."
        outputs: {
            fai: "samtools faidx index of the reference",
            aligner_index: "bwa index files (.amb .ann .bwt .pac .sa) or the minimap2 short-read index (.mmi)"
        }
    }

    parameter_meta {
        reference_fasta: "Uncompressed reference FASTA; every sequence name (up to the first space) must be unique"
        aligner: {
            description: "Aligner whose index to build (checked once, by align_reads: another value builds no index)",
            choices: ["bwa", "minimap2"]
        }
        docker_image: "Image with samtools, bwa, minimap2 and genomics-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB (bwa index needs about 5.4 x the genome size in bytes)"
        disk_gb: "Scratch disk, GiB; default derived from the reference size"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File reference_fasta
        String aligner = "bwa"
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
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
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t v < ~{write_lines([reference_fasta, fasta_name, aligner])}
        if [ "${#v[@]}" -ne 3 ]; then echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1; fi
        ref=${v[0]} name=${v[1]} aligner=${v[2]}
        # The .fai and the index keep the FASTA's file name (only ever a quoted variable here).
        ln -s -- "$ref" "./${name}"
        # Not gzip, FASTA, indexable by samtools, every sequence name once (genomics-tasks faidx).
        genomics-tasks faidx -- "./${name}" "$name"
        mkdir index
        ln -s "$PWD/${name}" "index/${name}"
        case "$aligner" in
            bwa) bwa index "index/${name}" ;;
            minimap2) minimap2 -x sr -t ~{cpu} -d "index/${name}.mmi" "index/${name}" ;;
            *) echo "aligner '${aligner}': no index built (align_reads, which always runs, checks the aligner)" >&2 ;;
        esac
        rm "index/${name}"
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
