version 1.0

task split_regions {
    meta {
        description: "Checks the caller name and the targets BED, then cuts the genome (or the padded, merged targets: exome mode) into scatter_count BED files of about equal size."
        outputs: {
            regions: "One BED file per variant-calling shard",
            intervals: "All intervals called, BED (0-based), merged, in reference order: the padded targets in exome mode, whole contigs otherwise"
        }
    }

    parameter_meta {
        reference_fai: "samtools .fai of the reference (contig names and lengths)"
        targets_bed: "Target regions (exome mode), BED (0-based, half-open); whole genome when absent. Header lines (track, browser, #), extra columns, CRLF line ends, any order and overlaps are accepted"
        target_padding: "Bases added on each side of every target"
        scatter_count: "Number of shards"
        caller: {
            description: "Variant caller the shards are for (checked here, once, before any read is aligned)",
            choices: ["bcftools", "freebayes"]
        }
        docker_image: "Image with genomics-tasks (python3)"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File reference_fai
        File? targets_bed
        Int target_padding = 50
        Int scatter_count = 4
        String caller = "bcftools"
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 1
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t v < ~{write_lines([reference_fai, caller])}
        mapfile -t t < ~{write_lines(select_all([targets_bed]))}
        [ -n "${t[*]}" ] || t=()  # no targets: Cromwell writes an empty list as one empty line
        if [ "${#v[@]}" -ne 2 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        # The caller's one check: here, before any read is aligned (call_variants relies on it).
        genomics-tasks choice caller -- "${v[1]}"
        # Checks the .fai and the targets BED (as found in the wild: track/browser/# lines, CRLF, extra columns,
        # any order, overlaps), pads, clips, merges, and cuts the intervals into shards of about equal size.
        genomics-tasks split-regions --fai "${v[0]}" ${t[0]+--targets "${t[0]}"} --padding ~{target_padding} \
            --count ~{scatter_count} --out-dir regions --intervals intervals.bed
    >>>

    output {
        Array[File] regions = glob("regions/region_*.bed")
        File intervals = "intervals.bed"
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

task call_variants {
    meta {
        description: "Calls SNPs and indels in one shard of the genome over all samples' BAMs together (joint calling: one record per site, every sample's genotype with AD and DP) with bcftools (mpileup + call -m) or freebayes."
        outputs: {
            vcf: "Variant calls of this shard (bgzip-compressed, unfiltered)"
        }
    }

    parameter_meta {
        bams: "Coordinate-sorted BAMs, one per sample (read group SM)"
        bais: "Their indexes, in the same order"
        reference_fasta: "Reference FASTA"
        reference_fai: "samtools .fai of the reference"
        regions_bed: "The shard: BED of the intervals to call"
        caller: {
            description: "Variant caller (checked by split_regions)",
            choices: ["bcftools", "freebayes"]
        }
        ploidy: "Sample ploidy"
        min_mapping_quality: "Skip alignments with a lower mapping quality"
        min_base_quality: "Skip bases with a lower base quality"
        docker_image: "Image with bcftools and freebayes"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] bams
        Array[File] bais
        File reference_fasta
        File reference_fai
        File regions_bed
        String caller = "bcftools"
        Int ploidy = 2
        Int min_mapping_quality = 20
        Int min_base_quality = 13
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bams, "GiB") + size(reference_fasta, "GiB")) + 10])
    String shard = basename(regions_bed, ".bed")

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t v < ~{write_lines([reference_fasta, reference_fai, regions_bed, caller, shard])}
        mapfile -t b < ~{write_lines(bams)}
        mapfile -t x < ~{write_lines(bais)}
        if [ "${#v[@]}" -ne 5 ] || [ "${#b[@]}" -ne "${#x[@]}" ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        mkdir -p in
        ln -s -- "${v[0]}" in/ref.fa
        ln -s -- "${v[1]}" in/ref.fa.fai
        ln -s -- "${v[2]}" in/regions.bed
        # Each BAM beside its index under one name (wherever they were localized); the list in sample order.
        for i in "${!b[@]}"; do
            ln -s -- "${b[$i]}" "in/s$i.bam"
            ln -s -- "${x[$i]}" "in/s$i.bam.bai"
            echo "in/s$i.bam"
        done > in/bams.txt
        caller=${v[3]} out="${v[4]}.vcf.gz"
        # The caller was checked once, by split_regions (these shards are its output).
        case "$caller" in
            bcftools)
                ploidy_opt=()
                if [ ~{ploidy} -eq 1 ]; then ploidy_opt=(--ploidy 1); fi
                # in/regions.bed: the .bed name tells bcftools the file is 0-based BED
                bcftools mpileup -f in/ref.fa -R in/regions.bed -q ~{min_mapping_quality} -Q ~{min_base_quality} \
                    -a FORMAT/AD,FORMAT/DP -Ou -b in/bams.txt \
                  | bcftools call -m -v "${ploidy_opt[@]}" -Oz -o "tmp.$out"
                ;;
            freebayes)
                freebayes -f in/ref.fa -t in/regions.bed -p ~{ploidy} \
                    --min-mapping-quality ~{min_mapping_quality} --min-base-quality ~{min_base_quality} -L in/bams.txt \
                  | bgzip -c > "tmp.$out" ;;
        esac
        mv "tmp.$out" "$out"
    >>>

    output {
        File vcf = "~{shard}.vcf.gz"
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

task merge_vcfs {
    meta {
        description: "Concatenates the shards, sorts, left-aligns and de-duplicates the calls, marks calls below min_qual LowQual, and indexes the result (one sample or a cohort)."
        outputs: {
            vcf: "All calls of the sample or cohort, bgzip-compressed, FILTER set (PASS or LowQual)",
            vcf_index: "Tabix index of the VCF",
            vcf_stats: "bcftools stats of the PASS calls"
        }
    }

    parameter_meta {
        vcfs: "Per-shard VCFs"
        reference_fasta: "Reference FASTA (for left-alignment)"
        reference_fai: "samtools .fai of the reference"
        sample_name: {
            description: "Sample or cohort name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        min_qual: "Calls with QUAL below this are marked LowQual"
        docker_image: "Image with bcftools and genomics-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        Array[File] vcfs
        File reference_fasta
        File reference_fai
        String sample_name
        Int min_qual = 20
        String docker_image = "batchpipes/genomics:8c2aa7663d60"
        Int cpu = 1
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(vcfs, "GiB") * 3 + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see docs/development.md, "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([reference_fasta, reference_fai])}
        mapfile -t vcfs < ~{write_lines(vcfs)}
        genomics-tasks check-name sample_name -- "${s[@]}"
        if [ "${#v[@]}" -ne 2 ]; then echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1; fi
        sample=${s[0]}
        mkdir -p in tmp
        ln -s -- "${v[0]}" in/ref.fa
        ln -s -- "${v[1]}" in/ref.fa.fai
        bcftools concat -Ou "${vcfs[@]}" \
          | bcftools sort -T tmp/ -Ou \
          | bcftools norm -f in/ref.fa -d exact -Ou \
          | bcftools filter -s LowQual -e 'QUAL<~{min_qual}' -Oz -o "tmp/${sample}.vcf.gz"
        bcftools index -t "tmp/${sample}.vcf.gz"
        bcftools stats -f PASS -F in/ref.fa "tmp/${sample}.vcf.gz" > "${sample}.vcf.stats.txt"
        mv "tmp/${sample}.vcf.gz.tbi" "${sample}.vcf.gz.tbi"
        mv "tmp/${sample}.vcf.gz" "${sample}.vcf.gz"
    >>>

    output {
        File vcf = "~{sample_name}.vcf.gz"
        File vcf_index = "~{sample_name}.vcf.gz.tbi"
        File vcf_stats = "~{sample_name}.vcf.stats.txt"
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
