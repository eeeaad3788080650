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
            description: "Aligner whose index to build",
            choices: ["bwa", "minimap2"]
        }
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
        String docker_image = "batchpipes/genomics:1141a18e66da"
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
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t v < ~{write_lines([reference_fasta, fasta_name, aligner])}
        if [ "${#v[@]}" -ne 3 ]; then echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1; fi
        ref=${v[0]} name=${v[1]} aligner=${v[2]}
        case "$aligner" in
            bwa|minimap2) ;;
            *) echo "ERROR: unknown aligner '${aligner}': choose bwa or minimap2" >&2; exit 1 ;;
        esac
        magic=$(head -c 2 -- "$ref" | od -An -tx1 | tr -d ' \n')
        if [ "$magic" = "1f8b" ]; then
            echo "ERROR: reference_fasta '${name}' is gzip-compressed: give the uncompressed FASTA (gunzip it first)" >&2
            exit 1
        fi
        first=$(head -c 1 -- "$ref")
        if [ "$first" != ">" ]; then
            echo "ERROR: reference_fasta '${name}' is not FASTA: it should start with '>', found '${first}'" >&2
            exit 1
        fi
        # The .fai and the index keep the FASTA's file name (only ever a quoted variable here).
        fa="./${name}"
        ln -s -- "$ref" "$fa"
        # samtools faidx reads the whole file once; htslib only warns about a repeated name and drops the
        # second sequence, so its warning is turned into an error (the lines are found only then).
        if ! samtools faidx "$fa" 2> faidx.log; then
            if seq=$(grep -m1 -o "Different line length in sequence '[^']*'" faidx.log); then
                echo "ERROR: reference_fasta '${name}': sequence ${seq#*sequence } has lines of different lengths, which samtools cannot index: rewrap the FASTA to one line length" >&2
            else
                msg=$(grep -m1 -v '^[[:space:]]*$' faidx.log | sed 's/^\[[^]]*\] *//' || true)
                echo "ERROR: reference_fasta '${name}' could not be indexed (${msg}): give a complete, uncompressed FASTA" >&2
            fi
            exit 1
        fi
        if grep -q 'Ignoring duplicate sequence' faidx.log; then
            grep -n '^>' -- "$fa" | LC_ALL=C awk '
                { line = $0; sub(/:.*$/, "", line); name = substr($0, length(line) + 3); sub(/[ \t].*$/, "", name) }
                name in seen { printf "%s\t%s\t%s\n", name, seen[name], line; exit }
                { seen[name] = line }' > dup.txt
            IFS=$'\t' read -r dname dfirst dsecond < dup.txt || true
            echo "ERROR: reference_fasta '${name}' names contig '${dname}' twice (lines ${dfirst} and ${dsecond}): give every sequence a unique name" >&2
            exit 1
        fi
        cat faidx.log >&2
        mkdir index
        ln -s "$PWD/${name}" "index/${name}"
        case "$aligner" in
            bwa) bwa index "index/${name}" ;;
            minimap2) minimap2 -x sr -t ~{cpu} -d "index/${name}.mmi" "index/${name}" ;;
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
