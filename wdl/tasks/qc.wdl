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
        docker_image: "Image with samtools and genomics-tasks"
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
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 2
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB") + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([bam, bai, reference_fasta])}
        mapfile -t t < ~{write_lines(select_all([targets]))}
        [ -n "${t[*]}" ] || t=()  # no targets: Cromwell writes an empty list as one empty line
        genomics-tasks check-name sample_name -- "${s[@]}"
        if [ "${#v[@]}" -ne 3 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]}
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/sample.bam
        ln -s -- "${v[1]}" in/sample.bam.bai
        ln -s -- "${v[2]}" in/ref.fa
        samtools stats -@ ~{cpu} --reference in/ref.fa in/sample.bam > "tmp/${sample}.stats.txt"
        samtools flagstat -@ ~{cpu} in/sample.bam > "tmp/${sample}.flagstat.txt"
        samtools flagstat -@ ~{cpu} -O json in/sample.bam > "tmp/${sample}.flagstat.json"
        if [ "${#t[@]}" -eq 1 ]; then
            # BED start is 0-based; samtools stats -t wants 1-based, inclusive: start + 1, same end.
            genomics-tasks bed --one-based -- "${t[0]}" > in/targets.1based.tsv
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
            callable_summary: "First line: '<sample>: N bp (x%) of the genome|targets not callable (...)'; then name<TAB>value lines: scope, total_bp, callable_bp, not_callable_bp, no_coverage_bp, low_coverage_bp, min_depth, min_mapq",
            mosdepth_dist: "mosdepth's cumulative coverage distribution (<sample>.mosdepth.global.dist.txt; MultiQC reads it)",
            mosdepth_summary: "mosdepth's mean depth per contig (<sample>.mosdepth.summary.txt)"
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
        docker_image: "Image with mosdepth, bedtools, tabix and genomics-tasks"
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
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([bam, bai, reference_fai])}
        mapfile -t t < ~{write_lines(select_all([targets]))}
        [ -n "${t[*]}" ] || t=()  # no targets: Cromwell writes an empty list as one empty line
        genomics-tasks check-name sample_name -- "${s[@]}"
        if [ "${#v[@]}" -ne 3 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]}
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/sample.bam
        ln -s -- "${v[1]}" in/sample.bam.bai
        # Depth class of every base (checks min_depth and min_mapq): NO_COVERAGE, LOW_COVERAGE, CALLABLE.
        genomics-tasks mosdepth in/sample.bam tmp/q --min-depth ~{min_depth} --min-mapq ~{min_mapq} --threads ~{cpu}
        if [ "${#t[@]}" -eq 1 ]; then
            scope=targets
            genomics-tasks bed -- "${t[0]}" > tmp/scope.bed
            # Targets are merged: each base of a class interval is counted once.
            bedtools intersect -a tmp/q.classes.bed -b tmp/scope.bed > tmp/in_scope.bed
        else
            scope=genome
            genomics-tasks bed --fai "${v[2]}" > tmp/scope.bed
            cp tmp/q.classes.bed tmp/in_scope.bed
        fi
        # Totals; bases mosdepth did not list (contigs without reads) count as no coverage.
        genomics-tasks callable --scope tmp/scope.bed --scope-name "$scope" --classes tmp/in_scope.bed \
            --sample "$sample" --min-depth ~{min_depth} --min-mapq ~{min_mapq} --padding ~{target_padding} \
            --bed-out tmp/callable.bed --summary-out "tmp/${sample}.callable.txt"
        bgzip -c tmp/callable.bed > "tmp/${sample}.callable.bed.gz"
        tabix -p bed "tmp/${sample}.callable.bed.gz"
        echo "callable regions: $(head -n 1 "tmp/${sample}.callable.txt")" >&2
        mv tmp/q.mosdepth.global.dist.txt "${sample}.mosdepth.global.dist.txt"
        mv tmp/q.mosdepth.summary.txt "${sample}.mosdepth.summary.txt"
        mv "tmp/${sample}.callable.txt" "tmp/${sample}.callable.bed.gz.tbi" "tmp/${sample}.callable.bed.gz" .
    >>>

    output {
        File callable_bed = "~{sample_name}.callable.bed.gz"
        File callable_bed_index = "~{sample_name}.callable.bed.gz.tbi"
        File callable_summary = "~{sample_name}.callable.txt"
        File mosdepth_dist = "~{sample_name}.mosdepth.global.dist.txt"
        File mosdepth_summary = "~{sample_name}.mosdepth.summary.txt"
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

task cohort_callable {
    meta {
        description: "Callable regions of the cohort: the bases callable in every sample (intersection of the samples' callable BEDs), with a summary per sample and for the cohort."
        outputs: {
            callable_bed: "Bases callable in every sample, BED, bgzip (<cohort>.callable.bed.gz)",
            callable_bed_index: "Tabix index of callable_bed",
            callable_summary: "First line: '<cohort>: N bp callable in all K samples (x% of the scope)'; then one line per sample: name<TAB>callable bp"
        }
    }

    parameter_meta {
        callable_beds: "Each sample's callable BED (bgzip), from callable_regions"
        callable_summaries: "Each sample's callable summary (its scope's size: total_bp), in the same order"
        sample_names: "The samples' names, in the order of callable_beds"
        cohort_name: {
            description: "Cohort name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with tabix and genomics-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] callable_beds
        Array[File] callable_summaries
        Array[String] sample_names
        String cohort_name
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t n < ~{write_lines([cohort_name])}
        genomics-tasks check-name cohort_name -- "${n[@]}"
        cohort=${n[0]}
        mkdir -p tmp
        genomics-tasks intersect-callable --beds ~{write_lines(callable_beds)} --names ~{write_lines(sample_names)} \
            --summaries ~{write_lines(callable_summaries)} --name "$cohort" \
            --bed-out tmp/cohort.bed --summary-out "tmp/${cohort}.callable.txt"
        bgzip -c tmp/cohort.bed > "tmp/${cohort}.callable.bed.gz"
        tabix -p bed "tmp/${cohort}.callable.bed.gz"
        mv "tmp/${cohort}.callable.txt" "tmp/${cohort}.callable.bed.gz.tbi" "tmp/${cohort}.callable.bed.gz" .
    >>>

    output {
        File callable_bed = "~{cohort_name}.callable.bed.gz"
        File callable_bed_index = "~{cohort_name}.callable.bed.gz.tbi"
        File callable_summary = "~{cohort_name}.callable.txt"
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

task multiqc_report {
    meta {
        description: "One MultiQC HTML report over the cohort's fastp, samtools stats/flagstat, mosdepth, bcftools stats and snpEff reports."
        outputs: {
            report: "MultiQC report, one self-contained HTML file (<cohort>.multiqc.html)",
            data: "MultiQC's parsed values, JSON (multiqc_data.json)"
        }
    }

    parameter_meta {
        reports: "QC files named after their sample, lane or cohort (MultiQC takes the name from the file name): fastp JSON, samtools stats and flagstat, mosdepth dist, bcftools stats, snpEff CSV"
        cohort_name: {
            description: "Cohort name: report title and output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with MultiQC"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] reports
        String cohort_name
        String docker_image = "batchpipes/multiqc:38dea737d058"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(reports, "GiB") * 2) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t f < ~{write_lines(reports)}
        mapfile -t c < ~{write_lines([cohort_name])}
        if [ "${#c[@]}" -ne 1 ]; then echo "ERROR: cohort_name holds a newline: rename it" >&2; exit 1; fi
        cohort=${c[0]}
        # Each report in a folder of its own under its own name (MultiQC takes the sample from the file name).
        mkdir -p in
        for i in "${!f[@]}"; do mkdir -p "in/r$i" && ln -s -- "${f[$i]}" "in/r$i/"; done
        multiqc --quiet --no-ansi --force --title "$cohort" --filename "$cohort.multiqc.html" --outdir tmp \
            --data-format json in
        mv tmp/"$cohort.multiqc_data/multiqc_data.json" multiqc_data.json
        mv tmp/"$cohort.multiqc.html" .
    >>>

    output {
        File report = "~{cohort_name}.multiqc.html"
        File data = "multiqc_data.json"
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
