version 1.0

task alignment_qc {
    meta {
        description: "Alignment QC with samtools stats and samtools flagstat (text and JSON); target coverage statistics in exome mode."
        outputs: {
            stats: "samtools stats of all reads",
            flagstat: "samtools flagstat, text",
            flagstat_json: "samtools flagstat, JSON",
            target_stats: "samtools stats restricted to the target intervals (exome mode only); 'bases inside the target' is their total length"
        }
    }

    parameter_meta {
        bam: "Coordinate-sorted BAM"
        bai: "Index of the BAM"
        reference_fasta: "Reference FASTA (for mismatch statistics)"
        targets: "Target intervals, BED (0-based, half-open; converted to the 1-based inclusive intervals samtools stats -t reads); enables target_stats"
        sample_name: {
            description: "Sample name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
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
        String docker_image = "batchpipes/genomics:1141a18e66da"
        Int cpu = 2
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB") + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([bam, bai, reference_fasta])}
        mapfile -t t < ~{write_lines(select_all([targets]))}
        if [ "${#s[@]}" -ne 1 ] || [ "${#v[@]}" -ne 3 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]}
        if [[ ! "$sample" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
            echo "ERROR: sample_name '${sample}' may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it" >&2; exit 1
        fi
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/sample.bam
        ln -s -- "${v[1]}" in/sample.bam.bai
        ln -s -- "${v[2]}" in/ref.fa
        samtools stats -@ ~{cpu} --reference in/ref.fa in/sample.bam > "tmp/${sample}.stats.txt"
        samtools flagstat -@ ~{cpu} in/sample.bam > "tmp/${sample}.flagstat.txt"
        samtools flagstat -@ ~{cpu} -O json in/sample.bam > "tmp/${sample}.flagstat.json"
        if [ "${#t[@]}" -eq 1 ]; then
            # BED start is 0-based; samtools stats -t wants 1-based, inclusive: start + 1, same end.
            awk 'BEGIN { FS = OFS = "\t" } /^(#|track|browser)/ || NF < 3 { next } { print $1, $2 + 1, $3 }' "${t[0]}" > in/targets.1based.tsv
            samtools stats -@ ~{cpu} --reference in/ref.fa -t in/targets.1based.tsv in/sample.bam > "tmp/${sample}.target.stats.txt"
        fi
        mv tmp/* .
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

task callable_regions {
    meta {
        description: "Where calls can be made: bases covered by at least min_depth reads of mapping quality min_mapq or more (mosdepth; duplicates, secondary, QC-failed and unmapped reads not counted, overlapping mates counted once), over the genome or, in exome mode, the target intervals. Reads of repeats and duplicated regions (MAPQ 0) leave blind spots the callers skip without a word: this task reports them."
        outputs: {
            callable_bed: "Callable regions, BED (0-based, half-open), bgzip-compressed",
            callable_bed_index: "Tabix index of callable_bed",
            callable_summary: "First line: '<sample>: N bp (x%) of the genome|targets not callable (...)'; then name<TAB>value lines: scope, total_bp, callable_bp, not_callable_bp, no_coverage_bp, low_coverage_bp, min_depth, min_mapq"
        }
    }

    parameter_meta {
        bam: "Coordinate-sorted, duplicate-marked BAM"
        bai: "Index of the BAM"
        reference_fai: "samtools .fai of the reference (contig lengths: the genome's size)"
        targets: "Target intervals, BED (0-based, merged): exome mode; whole genome when absent"
        target_padding: "Padding already added to the targets (shown in the summary only)"
        sample_name: {
            description: "Sample name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        min_depth: "A base is callable with at least this many reads (of MAPQ >= min_mapq) over it"
        min_mapq: "Reads with a lower mapping quality do not count (use the callers' own minimum)"
        docker_image: "Image with mosdepth, bedtools and tabix"
        cpu: "BAM decompression threads"
        memory_gb: "Memory requested, GiB (mosdepth holds 4 bytes per base of the longest contig: 1 GiB for human chr1)"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File bam
        File bai
        File reference_fai
        File? targets
        Int target_padding = 0
        String sample_name
        Int min_depth = 4
        Int min_mapq = 20
        String docker_image = "batchpipes/genomics:1141a18e66da"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([bam, bai, reference_fai])}
        mapfile -t t < ~{write_lines(select_all([targets]))}
        if [ "${#s[@]}" -ne 1 ] || [ "${#v[@]}" -ne 3 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]}
        if [[ ! "$sample" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
            echo "ERROR: sample_name '${sample}' may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it" >&2; exit 1
        fi
        if [ ~{min_depth} -lt 1 ]; then echo "ERROR: min_depth must be at least 1, got ~{min_depth}" >&2; exit 1; fi
        if [ ~{min_mapq} -lt 0 ]; then echo "ERROR: min_mapq must be 0 or more, got ~{min_mapq}" >&2; exit 1; fi
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/sample.bam
        ln -s -- "${v[1]}" in/sample.bam.bai
        ln -s -- "${v[2]}" in/ref.fa.fai

        # Depth classes of every base: 0 reads, 1 to min_depth - 1, min_depth or more (mosdepth --quantize).
        if [ ~{min_depth} -gt 1 ]; then
            bins=0:1:~{min_depth}:
            export MOSDEPTH_Q0=NO_COVERAGE MOSDEPTH_Q1=LOW_COVERAGE MOSDEPTH_Q2=CALLABLE
        else
            bins=0:1:
            export MOSDEPTH_Q0=NO_COVERAGE MOSDEPTH_Q1=CALLABLE
        fi
        mosdepth -t ~{cpu} -n --quantize "$bins" --mapq ~{min_mapq} tmp/q in/sample.bam
        gzip -cd tmp/q.quantized.bed.gz > tmp/classes.bed
        if [ "${#t[@]}" -eq 1 ]; then
            scope=targets
            awk 'BEGIN { FS = OFS = "\t" } /^(#|track|browser)/ || NF < 3 { next } { print $1, $2, $3 }' "${t[0]}" > tmp/scope.bed
            # Targets are merged: each base of a class interval is counted once.
            bedtools intersect -a tmp/classes.bed -b tmp/scope.bed > tmp/in_scope.bed
        else
            scope=genome
            awk 'BEGIN { OFS = "\t" } { print $1, 0, $2 }' in/ref.fa.fai > tmp/scope.bed
            cp tmp/classes.bed tmp/in_scope.bed
        fi
        awk 'BEGIN { FS = OFS = "\t" } $4 == "CALLABLE" { print $1, $2, $3 }' tmp/in_scope.bed > tmp/callable.bed
        bgzip -c tmp/callable.bed > "tmp/${sample}.callable.bed.gz"
        tabix -p bed "tmp/${sample}.callable.bed.gz"

        # Totals; bases mosdepth did not list (contigs without reads) count as no coverage.
        SAMPLE="$sample" SCOPE="$scope" LC_ALL=C awk -v depth=~{min_depth} -v mapq=~{min_mapq} -v pad=~{target_padding} '
            BEGIN { FS = "\t" }
            FILENAME == ARGV[1] { total += $3 - $2; next }
            { n[$4] += $3 - $2 }
            END {
                callable = n["CALLABLE"] + 0; low = n["LOW_COVERAGE"] + 0; nc = total - callable
                what = ENVIRON["SCOPE"] == "targets" ? "of the targets" (pad > 0 ? " (padded by " pad " bp)" : "") : "of the genome"
                printf "%s: %d bp (%.2f%%) %s not callable (fewer than %d reads with MAPQ >= %d); %d of %d bp callable\n", \
                    ENVIRON["SAMPLE"], nc, total ? 100 * nc / total : 0, what, depth, mapq, callable, total
                printf "scope\t%s\ntotal_bp\t%d\ncallable_bp\t%d\nnot_callable_bp\t%d\nno_coverage_bp\t%d\nlow_coverage_bp\t%d\nmin_depth\t%d\nmin_mapq\t%d\n", \
                    ENVIRON["SCOPE"], total, callable, nc, nc - low, low, depth, mapq
            }' tmp/scope.bed tmp/in_scope.bed > "tmp/${sample}.callable.txt"
        echo "callable regions: $(head -n 1 "tmp/${sample}.callable.txt")" >&2
        mv "tmp/${sample}.callable.txt" "tmp/${sample}.callable.bed.gz.tbi" "tmp/${sample}.callable.bed.gz" .
    >>>

    output {
        File callable_bed = "~{sample_name}.callable.bed.gz"
        File callable_bed_index = "~{sample_name}.callable.bed.gz.tbi"
        File callable_summary = "~{sample_name}.callable.txt"
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
