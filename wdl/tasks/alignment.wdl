version 1.0

task align_reads {
    meta {
        description: "Checks paired FASTQ, aligns with bwa mem or minimap2 (read group set), fixes mate information, coordinate-sorts, marks duplicates and indexes the BAM."
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
        sample_name: "Sample name (SM of the read group; prefix of the outputs)"
        read_group_id: "Read group ID; default: the sample name"
        platform: "Sequencing platform (PL of the read group)"
        aligner: "'bwa' (bwa mem) or 'minimap2' (minimap2 -ax sr)"
        mark_duplicates: "Mark PCR/optical duplicates with samtools markdup"
        sort_memory_mb: "Memory per samtools sort thread, MiB"
        docker_image: "Image with bwa, minimap2 and samtools"
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
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
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

        # Reference and index side by side, whatever folders they were localized to.
        mkdir -p ref tmp
        ln -s '~{reference_fasta}' ref/genome.fa
        for f in ~{sep=" " aligner_index}; do
            case "$f" in
                *.mmi) ln -sf "$f" ref/genome.mmi ;;
                *.fai) ;;
                *) ln -sf "$f" "ref/genome.fa.${f##*.}" ;;
            esac
        done

        # FASTQ checks, both mates in parallel: format, truncation, and equal record counts.
        check_fastq() {  # file label -> prints the record count
            local file=$1 label=$2 first
            if [ ! -s "$file" ]; then
                echo "ERROR: ${label} '$(basename "$file")' is empty" >&2; return 1
            fi
            first=$( (gzip -cdf "$file" 2>/dev/null || true) | head -c 1)
            if [ "$first" = ">" ]; then
                echo "ERROR: ${label} '$(basename "$file")' is FASTA, not FASTQ (starts with '>'): give sequencing reads with qualities" >&2
                return 1
            fi
            gzip -cdf "$file" | awk -v label="${label}" -v name="$(basename "$file")" '
                NR % 4 == 1 && substr($0, 1, 1) != "@" { msg = "record header expected (line starting with @)"; bad = NR; exit }
                NR % 4 == 3 && substr($0, 1, 1) != "+" { msg = "separator line starting with + expected"; bad = NR; exit }
                END {
                    if (bad) { printf "ERROR: %s %s is not FASTQ: line %d: %s\n", label, name, bad, msg > "/dev/stderr"; exit 1 }
                    if (NR == 0 || NR % 4 != 0) { printf "ERROR: %s %s is truncated or empty: %d lines is not a whole number of 4-line records\n", label, name, NR > "/dev/stderr"; exit 1 }
                    print NR / 4
                }'
        }
        check_fastq '~{fastq_r1}' fastq_r1 > r1.count & p1=$!
        check_fastq '~{fastq_r2}' fastq_r2 > r2.count & p2=$!
        wait "$p1" || exit 1
        wait "$p2" || exit 1
        n1=$(cat r1.count); n2=$(cat r2.count)
        printf 'fastq_r1\t%s\nfastq_r2\t%s\n' "$n1" "$n2" > read_counts.tsv
        if [ "$n1" != "$n2" ]; then
            echo "ERROR: mates differ in length: fastq_r1 has ${n1} reads, fastq_r2 has ${n2}; give the two files of one paired run" >&2
            exit 1
        fi

        rg='@RG\tID:~{rg_id}\tSM:~{sample_name}\tPL:~{platform}\tLB:~{sample_name}'
        aligner='~{aligner}'
        case "$aligner" in
            bwa)
                for ext in amb ann bwt pac sa; do
                    [ -e "ref/genome.fa.$ext" ] || { echo "ERROR: bwa index file .$ext is missing from aligner_index: give all of .amb .ann .bwt .pac .sa, or leave aligner_index out to build it" >&2; exit 1; }
                done
                align() { bwa mem -t ~{cpu} -K 100000000 -Y -R "$rg" ref/genome.fa '~{fastq_r1}' '~{fastq_r2}'; } ;;
            minimap2)
                target=ref/genome.fa; [ -e ref/genome.mmi ] && target=ref/genome.mmi
                align() { minimap2 -ax sr -t ~{cpu} -Y -R "$rg" "$target" '~{fastq_r1}' '~{fastq_r2}'; } ;;
            *) echo "ERROR: unknown aligner '~{aligner}': choose bwa or minimap2" >&2; exit 1 ;;
        esac

        align \
          | samtools fixmate -m -u - - \
          | samtools sort -u -@ ~{cpu} -m ~{sort_memory_mb}M -T tmp/sort - \
          > sorted.bam
        if [ '~{mark_duplicates}' = true ]; then
            samtools markdup -@ ~{cpu} -s -f markdup.txt sorted.bam '~{sample_name}.bam'
            rm sorted.bam
        else
            mv sorted.bam '~{sample_name}.bam'
            echo "duplicate marking disabled" > markdup.txt
        fi
        samtools index -@ ~{cpu} '~{sample_name}.bam'
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
