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
            description: "Variant caller the shards are for (checked here, before any calling)",
            choices: ["bcftools", "freebayes"]
        }
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
        String docker_image = "batchpipes/genomics:1141a18e66da"
        Int cpu = 1
        Int memory_gb = 1
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t v < ~{write_lines([reference_fai, caller])}
        mapfile -t t < ~{write_lines(select_all([targets_bed]))}
        if [ "${#v[@]}" -ne 2 ] || [ "${#t[@]}" -gt 1 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        fai=${v[0]} caller=${v[1]}
        case "$caller" in
            bcftools|freebayes) ;;
            *) echo "ERROR: unknown caller '${caller}': choose bcftools or freebayes" >&2; exit 1 ;;
        esac
        if [ ~{scatter_count} -lt 1 ]; then
            echo "ERROR: scatter_count must be at least 1, got ~{scatter_count}" >&2; exit 1
        fi
        if [ ~{target_padding} -lt 0 ]; then
            echo "ERROR: target_padding must be 0 or more, got ~{target_padding}" >&2; exit 1
        fi
        LC_ALL=C awk -F'\t' '
            NF < 2 || $2 !~ /^[0-9]+$/ { printf "ERROR: reference_fai line %d is not a samtools .fai line (name<TAB>length...): rebuild it with samtools faidx\n", NR > "/dev/stderr"; exit 1 }
            $1 in seen { printf "ERROR: reference_fai names contig %s twice (lines %d and %d): give every reference sequence a unique name and rebuild the index\n", $1, seen[$1], NR > "/dev/stderr"; exit 1 }
            { seen[$1] = NR }' "$fai"
        if [ "${#t[@]}" -eq 1 ]; then
            # BED is 0-based, half-open. Accepted as found in the wild: track/browser/# header lines, blank
            # lines, CRLF line ends, tab- or space-separated columns, extra columns (name, score, strand, ...),
            # any order, overlaps. Every interval is checked against the reference, padded, clipped to its
            # contig, ordered as the reference and merged with the intervals it overlaps or touches.
            bed=${t[0]}
            bedname=$(basename -- "$bed")
            FAI="$fai" NAME="$bedname" LC_ALL=C awk -v pad=~{target_padding} '
                function fail(msg) { printf "ERROR: targets_bed \047%s\047 line %d %s\n", ENVIRON["NAME"], NR, msg > "/dev/stderr"; bad = 1; exit 1 }
                BEGIN {
                    while ((getline line < ENVIRON["FAI"]) > 0) {
                        split(line, f, "\t"); len[f[1]] = f[2]; rank[f[1]] = ++n
                        if (n <= 3) some = some (n > 1 ? ", " : "") f[1]
                    }
                    if (n > 3) some = some ", ..."
                }
                { sub(/\r$/, "") }
                /^[ \t]*$/ || /^#/ || /^(track|browser)([ \t]|$)/ { next }
                {
                    nf = split($0, c, /[ \t]+/)
                    if (nf < 3 || c[2] !~ /^[0-9]+$/ || c[3] !~ /^[0-9]+$/)
                        fail("is not a BED interval (chrom, start, end; whole numbers): remove it or start it with #")
                    chrom = c[1]; start = c[2] + 0; end = c[3] + 0
                    if (start > end) fail("has start " start " after end " end ": fix or remove the line")
                    if (start == end) fail("is an empty interval (start = end = " end "): BED is 0-based, half-open; give end = start + length")
                    if (!(chrom in len)) {
                        if (chrom ~ /^chr/ && substr(chrom, 4) in len)
                            fail("names contig " chrom ", but the reference names it " substr(chrom, 4) ": remove the chr prefix (e.g. sed \"s/^chr//\")")
                        if (("chr" chrom) in len)
                            fail("names contig " chrom ", but the reference names it chr" chrom ": add the chr prefix (e.g. sed \"s/^/chr/\")")
                        if (chrom == "chrM" && "MT" in len) fail("names contig chrM, but the reference names it MT: rename it")
                        if (chrom == "MT" && "chrM" in len) fail("names contig MT, but the reference names it chrM: rename it")
                        fail("names contig " chrom ", which is not in the reference (" some "): use the reference\047s contig names")
                    }
                    if (end > len[chrom]) fail("ends at " end ", past the end of " chrom " (" len[chrom] " bp): is the BED for another reference build?")
                    s = start - pad; if (s < 0) s = 0
                    e = end + pad; if (e > len[chrom]) e = len[chrom]
                    print rank[chrom] "\t" chrom "\t" s "\t" e
                    kept++
                }
                END {
                    if (bad) exit 1
                    if (!kept) { printf "ERROR: targets_bed \047%s\047 has no intervals: give at least one chrom<TAB>start<TAB>end line\n", ENVIRON["NAME"] > "/dev/stderr"; exit 1 }
                }' < "$bed" > padded.tsv
            sort -t "$(printf '\t')" -k1,1n -k3,3n -k4,4n padded.tsv \
              | awk 'BEGIN { OFS = "\t" }
                     $2 == c && $3 <= e { if ($4 > e) e = $4; next }
                     { if (c != "") print c, s, e; c = $2; s = $3; e = $4 }
                     END { if (c != "") print c, s, e }' > intervals.tmp
            rm padded.tsv
        else
            awk 'BEGIN { OFS = "\t" } { print $1, 0, $2 }' "$fai" > intervals.tmp
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
            }' intervals.tmp intervals.tmp
        mv intervals.tmp intervals.bed
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
        caller: {
            description: "Variant caller",
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
        File bam
        File bai
        File reference_fasta
        File reference_fai
        File regions_bed
        String caller = "bcftools"
        Int ploidy = 2
        Int min_mapping_quality = 20
        Int min_base_quality = 13
        String docker_image = "batchpipes/genomics:1141a18e66da"
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
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t v < ~{write_lines([reference_fasta, reference_fai, bam, bai, regions_bed, caller, shard])}
        if [ "${#v[@]}" -ne 7 ]; then echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1; fi
        mkdir -p in
        ln -s -- "${v[0]}" in/ref.fa
        ln -s -- "${v[1]}" in/ref.fa.fai
        ln -s -- "${v[2]}" in/sample.bam
        ln -s -- "${v[3]}" in/sample.bam.bai
        ln -s -- "${v[4]}" in/regions.bed
        caller=${v[5]} out="${v[6]}.vcf.gz"
        case "$caller" in
            bcftools)
                ploidy_opt=()
                if [ ~{ploidy} -eq 1 ]; then ploidy_opt=(--ploidy 1); fi
                # in/regions.bed: the .bed name tells bcftools the file is 0-based BED
                bcftools mpileup -f in/ref.fa -R in/regions.bed -q ~{min_mapping_quality} -Q ~{min_base_quality} \
                    -a FORMAT/AD,FORMAT/DP -Ou in/sample.bam \
                  | bcftools call -m -v "${ploidy_opt[@]}" -Oz -o "tmp.$out"
                ;;
            freebayes)
                freebayes -f in/ref.fa -t in/regions.bed -p ~{ploidy} \
                    --min-mapping-quality ~{min_mapping_quality} --min-base-quality ~{min_base_quality} in/sample.bam \
                  | bgzip -c > "tmp.$out" ;;
            *) echo "ERROR: unknown caller '${caller}': choose bcftools or freebayes" >&2; exit 1 ;;
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
        sample_name: {
            description: "Sample name: output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
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
        String docker_image = "batchpipes/genomics:1141a18e66da"
        Int cpu = 1
        Int memory_gb = 2
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(vcfs, "GiB") * 3 + size(reference_fasta, "GiB")) + 10])

    command <<<
        set -euo pipefail
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t s < ~{write_lines([sample_name])}
        mapfile -t v < ~{write_lines([reference_fasta, reference_fai])}
        mapfile -t vcfs < ~{write_lines(vcfs)}
        if [ "${#s[@]}" -ne 1 ] || [ "${#v[@]}" -ne 2 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]}
        if [[ ! "$sample" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
            echo "ERROR: sample_name '${sample}' may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it" >&2; exit 1
        fi
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
