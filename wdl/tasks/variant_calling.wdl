version 1.0

task split_regions {
    meta {
        description: "Checks the caller name and the targets BED, then cuts the genome (or the padded, merged targets: exome mode) into scatter_count BED files of about equal size."
        outputs: {
            regions: "One BED file per variant-calling shard",
            intervals: "All intervals called, merged (the padded targets in exome mode, whole contigs otherwise)"
        }
    }

    parameter_meta {
        reference_fai: "samtools .fai of the reference (contig names and lengths)"
        targets_bed: "Target regions (exome mode); whole genome when absent"
        target_padding: "Bases added on each side of every target"
        scatter_count: "Number of shards"
        caller: "Variant caller the shards are for: 'bcftools' or 'freebayes' (checked here, before any calling)"
        docker_image: "Image with gawk and coreutils"
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
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
        Int cpu = 1
        Int memory_gb = 1
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        caller='~{caller}'
        case "$caller" in
            bcftools|freebayes) ;;
            *) echo "ERROR: unknown caller '${caller}': choose bcftools or freebayes" >&2; exit 1 ;;
        esac
        if [ ~{scatter_count} -lt 1 ]; then
            echo "ERROR: scatter_count must be at least 1, got ~{scatter_count}" >&2; exit 1
        fi
        targets='~{default="" targets_bed}'
        if [ -n "$targets" ]; then
            # Check every line, pad, clip to the contig, order by the reference, merge overlaps.
            awk -v fai='~{reference_fai}' -v pad=~{target_padding} -v name="$(basename "$targets")" '
                BEGIN { FS = "\t"; while ((getline line < fai) > 0) { split(line, f, "\t"); len[f[1]] = f[2]; rank[f[1]] = ++n } }
                /^(#|track|browser)/ || NF == 0 { next }
                {
                    if (NF < 3 || $2 !~ /^[0-9]+$/ || $3 !~ /^[0-9]+$/ || $2 + 0 >= $3 + 0) {
                        printf "ERROR: targets_bed %s line %d is not chrom<TAB>start<TAB>end with start < end\n", name, NR > "/dev/stderr"; exit 1
                    }
                    if (!($1 in len)) {
                        printf "ERROR: targets_bed %s line %d names contig %s, which is not in the reference\n", name, NR, $1 > "/dev/stderr"; exit 1
                    }
                    s = $2 - pad; if (s < 0) s = 0
                    e = $3 + pad; if (e > len[$1]) e = len[$1]
                    print rank[$1] "\t" $1 "\t" s "\t" e
                }' "$targets" \
              | sort -k1,1n -k3,3n \
              | awk 'BEGIN { OFS = "\t" }
                     $2 == c && $3 <= e { if ($4 > e) e = $4; next }
                     { if (c != "") print c, s, e; c = $2; s = $3; e = $4 }
                     END { if (c != "") print c, s, e }' > intervals.bed
            if [ ! -s intervals.bed ]; then
                echo "ERROR: targets_bed $(basename "$targets") has no intervals" >&2; exit 1
            fi
        else
            awk 'BEGIN { OFS = "\t" } { print $1, 0, $2 }' '~{reference_fai}' > intervals.bed
        fi
        mkdir regions
        awk -v n=~{scatter_count} '
            NR == FNR { total += $3 - $2; next }
            FNR == 1 { chunk = int((total + n - 1) / n); i = 1; used = 0 }
            {
                s = $2
                while (s < $3) {
                    take = $3 - s; if (take > chunk - used) take = chunk - used
                    printf "%s\t%d\t%d\n", $1, s, s + take > sprintf("regions/region_%04d.bed", i)
                    used += take; s += take
                    if (used >= chunk && i < n) { close(sprintf("regions/region_%04d.bed", i)); i++; used = 0 }
                }
            }' intervals.bed intervals.bed
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
        description: "Calls SNPs and indels in one shard of the genome with bcftools (mpileup + call -m) or freebayes."
        outputs: {
            vcf: "Variant calls of this shard (bgzip-compressed, unfiltered)"
        }
    }

    parameter_meta {
        bam: "Coordinate-sorted BAM"
        bai: "Index of the BAM"
        reference_fasta: "Reference FASTA"
        reference_fai: "samtools .fai of the reference"
        regions_bed: "The shard: BED of the intervals to call"
        caller: "'bcftools' or 'freebayes'"
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
        File bam
        File bai
        File reference_fasta
        File reference_fai
        File regions_bed
        String caller = "bcftools"
        Int ploidy = 2
        Int min_mapping_quality = 20
        Int min_base_quality = 13
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(bam, "GiB") + size(reference_fasta, "GiB")) + 10])
    String shard = basename(regions_bed, ".bed")

    command <<<
        set -euo pipefail
        mkdir -p in
        ln -s '~{reference_fasta}' in/ref.fa
        ln -s '~{reference_fai}' in/ref.fa.fai
        ln -s '~{bam}' in/sample.bam
        ln -s '~{bai}' in/sample.bam.bai
        caller='~{caller}'
        case "$caller" in
            bcftools)
                ploidy_opt=""
                if [ ~{ploidy} -eq 1 ]; then ploidy_opt="--ploidy 1"; fi
                # shellcheck disable=SC2086
                bcftools mpileup -f in/ref.fa -R '~{regions_bed}' -q ~{min_mapping_quality} -Q ~{min_base_quality} \
                    -a FORMAT/AD,FORMAT/DP -Ou in/sample.bam \
                  | bcftools call -m -v $ploidy_opt -Oz -o '~{shard}.vcf.gz' ;;
            freebayes)
                freebayes -f in/ref.fa -t '~{regions_bed}' -p ~{ploidy} \
                    --min-mapping-quality ~{min_mapping_quality} --min-base-quality ~{min_base_quality} in/sample.bam \
                  | bgzip -c > '~{shard}.vcf.gz' ;;
            *) echo "ERROR: unknown caller '${caller}': choose bcftools or freebayes" >&2; exit 1 ;;
        esac
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
        description: "Concatenates the shards, sorts, left-aligns and de-duplicates the calls, marks calls below min_qual LowQual, and indexes the result."
        outputs: {
            vcf: "All calls of the sample, bgzip-compressed, FILTER set (PASS or LowQual)",
            vcf_index: "Tabix index of the VCF",
            vcf_stats: "bcftools stats of the PASS calls"
        }
    }

    parameter_meta {
        vcfs: "Per-shard VCFs"
        reference_fasta: "Reference FASTA (for left-alignment)"
        reference_fai: "samtools .fai of the reference"
        sample_name: "Output prefix"
        min_qual: "Calls with QUAL below this are marked LowQual"
        docker_image: "Image with bcftools"
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
        String docker_image = "batchpipes/genomics:7b0a89cb6613"
        Int cpu = 1
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(vcfs, "GiB") * 3 + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        mkdir -p in tmp
        ln -s '~{reference_fasta}' in/ref.fa
        ln -s '~{reference_fai}' in/ref.fa.fai
        bcftools concat -Ou ~{sep=" " vcfs} \
          | bcftools sort -T tmp/ -Ou \
          | bcftools norm -f in/ref.fa -d exact -Ou \
          | bcftools filter -s LowQual -e 'QUAL<~{min_qual}' -Oz -o '~{sample_name}.vcf.gz'
        bcftools index -t '~{sample_name}.vcf.gz'
        bcftools stats -f PASS -F in/ref.fa '~{sample_name}.vcf.gz' > '~{sample_name}.vcf.stats.txt'
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
