version 1.0

task align_reads {
    meta {
        description: "Checks paired FASTQ in one pass (format, truncation, quality length, mates in sync by read name), aligns with bwa mem or minimap2 (read group set), fixes mate information, coordinate-sorts, marks duplicates and indexes the BAM."
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
        sample_name: {
            description: "Sample name (SM of the read group; prefix of the outputs)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        read_group_id: "Read group ID (no tab, backslash or control character); default: the sample name"
        platform: "Sequencing platform (PL of the read group; no tab, backslash or control character)"
        aligner: {
            description: "'bwa' (bwa mem) or 'minimap2' (minimap2 -ax sr)",
            choices: ["bwa", "minimap2"]
        }
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
        String docker_image = "batchpipes/genomics:1141a18e66da"
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
        # Every String and File reaches the shell through a file (see README "Shell safety").
        mapfile -t s < ~{write_lines([sample_name, rg_id, platform, aligner])}
        mapfile -t f < ~{write_lines([fastq_r1, fastq_r2, reference_fasta])}
        mapfile -t idx < ~{write_lines(aligner_index)}
        if [ "${#s[@]}" -ne 4 ] || [ "${#f[@]}" -ne 3 ]; then
            echo "ERROR: an input path or name contains a newline: rename it" >&2; exit 1
        fi
        sample=${s[0]} rg_id=${s[1]} platform=${s[2]} aligner=${s[3]}
        if [[ ! "$sample" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
            echo "ERROR: sample_name '${sample}' may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with . _ -): rename it" >&2; exit 1
        fi
        for v in "$rg_id" "$platform"; do
            if [[ "$v" =~ [[:cntrl:]\\] ]] || [ -z "$v" ]; then
                echo "ERROR: read_group_id/platform '${v}' is empty or holds a tab, backslash or control character: give plain text" >&2; exit 1
            fi
        done
        case "$aligner" in
            bwa|minimap2) ;;
            *) echo "ERROR: unknown aligner '${aligner}': choose bwa or minimap2" >&2; exit 1 ;;
        esac
        r1=${f[0]} r2=${f[1]}
        n1name=$(basename -- "$r1") n2name=$(basename -- "$r2")

        # Reference and index side by side under fixed names, whatever folders they were localized to.
        mkdir -p ref tmp fq
        ln -s -- "${f[2]}" ref/genome.fa
        for i in "${idx[@]}"; do
            case "$i" in
                *.mmi) ln -sf -- "$i" ref/genome.mmi ;;
                *.fai) ;;
                *) ln -sf -- "$i" "ref/genome.fa.${i##*.}" ;;
            esac
        done

        # FASTQ checks in one pass over both mates (each decompressed in its own process): FASTA given by
        # mistake, format, truncation, quality as long as the sequence, the same reads in the same order
        # (names compared without /1 /2 and comments), equal record counts.
        for m in 1 2; do
            file=${f[$((m - 1))]}
            shown=$(basename -- "$file")
            if [ ! -s "$file" ]; then
                echo "ERROR: fastq_r${m} '${shown}' is empty: give the reads of the sample" >&2; exit 1
            fi
            first=$( (gzip -cdf -- "$file" 2>/dev/null || true) | head -c 1)
            if [ "$first" = ">" ]; then
                echo "ERROR: fastq_r${m} '${shown}' is FASTA, not FASTQ (starts with '>'): give sequencing reads with qualities" >&2; exit 1
            fi
        done
        mkfifo fq/r1 fq/r2
        gzip -cdf -- "$r1" > fq/r1 2> fq/r1.err & w1=$!
        gzip -cdf -- "$r2" > fq/r2 2> fq/r2.err & w2=$!
        check=0
        N1="$n1name" N2="$n2name" LC_ALL=C awk '
            function fail(msg) { printf "ERROR: %s\n", msg > "/dev/stderr"; bad = 1; exit 1 }
            function name(h,   n) { n = substr(h, 2); sub(/[ \t].*$/, "", n); sub(/\/[12]$/, "", n); return n }
            function short(x) { return length(x) > 60 ? substr(x, 1, 57) "..." : x }
            BEGIN { f2 = "fq/r2"; n1 = "fastq_r1 \047" ENVIRON["N1"] "\047"; n2 = "fastq_r2 \047" ENVIRON["N2"] "\047" }
            short2 { next }
            {
                k = NR % 4
                if ((getline b < f2) <= 0) {
                    if (k == 1) { short2 = 1; c2 = NR - 1; next }
                    fail(n2 " is truncated: it ends inside record " int((NR + 3) / 4) " (line " NR - 1 "): copy or download it again")
                }
                if (NR == 1) {
                    if ($0 ~ /\r$/) fail(n1 " has Windows line ends (CRLF): convert it first (dos2unix, or tr -d \047\\r\047)")
                    if (b ~ /\r$/) fail(n2 " has Windows line ends (CRLF): convert it first (dos2unix, or tr -d \047\\r\047)")
                }
                if (k == 1) {
                    if (substr($0, 1, 1) != "@") fail(n1 " is not FASTQ: line " NR ": record header expected (line starting with @)")
                    if (substr(b, 1, 1) != "@") fail(n2 " is not FASTQ: line " NR ": record header expected (line starting with @)")
                    h1 = $0; h2 = b
                    if (name(h1) != name(h2)) fail("fastq_r1 and fastq_r2 are out of sync at read " (NR + 3) / 4 ": \047" short(name(h1)) "\047 in fastq_r1 but \047" short(name(h2)) "\047 in fastq_r2: give both mates of every pair in the same order (the two files of one paired run)")
                } else if (k == 2) {
                    s1 = $0; s2 = b
                } else if (k == 3) {
                    if (substr($0, 1, 1) != "+") fail(n1 " is not FASTQ: line " NR ": separator line starting with + expected")
                    if (substr(b, 1, 1) != "+") fail(n2 " is not FASTQ: line " NR ": separator line starting with + expected")
                } else {
                    if (length($0) != length(s1)) fail(n1 " read " NR / 4 " (line " NR "): the quality has " length($0) " characters but the sequence " length(s1) ": the file is damaged, copy or export it again")
                    if (length(b) != length(s2)) fail(n2 " read " NR / 4 " (line " NR "): the quality has " length(b) " characters but the sequence " length(s2) ": the file is damaged, copy or export it again")
                    if (NR == 4 && h1 == h2 && s1 == s2) fail("fastq_r1 and fastq_r2 hold the same reads (read 1 is identical in both): give the second mates as fastq_r2")
                }
            }
            END {
                if (bad) exit 1
                c1 = NR
                if (!short2) { c2 = NR; while ((getline b < f2) > 0) c2++ }
                if (c1 == 0) fail(n1 " holds no reads: give the reads of the sample")
                if (c1 % 4) fail(n1 " is truncated: " c1 " lines is not a whole number of 4-line records: copy or download it again")
                if (c2 % 4) fail(n2 " is truncated: " c2 " lines is not a whole number of 4-line records: copy or download it again")
                if (c1 != c2) fail("mates differ in length: fastq_r1 has " c1 / 4 " reads, fastq_r2 has " c2 / 4 "; give the two files of one paired run")
                printf "fastq_r1\t%d\nfastq_r2\t%d\n", c1 / 4, c2 / 4 > "fq/counts.tsv"
            }' fq/r1 || check=$?
        # Writers whose reader stopped early are ended (one may still be blocked opening its pipe).
        if [ "$check" -ne 0 ]; then kill "$w1" "$w2" 2>/dev/null || true; fi
        rc1=0; wait "$w1" || rc1=$?
        rc2=0; wait "$w2" || rc2=$?
        for m in 1 2; do
            rc=$rc1; [ "$m" = 2 ] && rc=$rc2
            case "$rc" in 0|141|143) continue ;; esac
            shown=$(basename -- "${f[$((m - 1))]}")
            echo "ERROR: fastq_r${m} '${shown}' is not a valid gzip file ($(head -n 1 "fq/r${m}.err" | sed 's/^gzip: //; s/^.*: //')): copy or download it again" >&2
            exit 1
        done
        if [ "$check" -ne 0 ]; then exit 1; fi
        mv fq/counts.tsv read_counts.tsv

        rg="@RG\\tID:${rg_id}\\tSM:${sample}\\tPL:${platform}\\tLB:${sample}"
        case "$aligner" in
            bwa)
                for ext in amb ann bwt pac sa; do
                    [ -e "ref/genome.fa.$ext" ] || { echo "ERROR: bwa index file .$ext is missing from aligner_index: give all of .amb .ann .bwt .pac .sa, or leave aligner_index out to build it" >&2; exit 1; }
                done
                align() { bwa mem -t ~{cpu} -K 100000000 -Y -R "$rg" ref/genome.fa "$r1" "$r2"; } ;;
            minimap2)
                target=ref/genome.fa; [ -e ref/genome.mmi ] && target=ref/genome.mmi
                align() { minimap2 -ax sr -t ~{cpu} -Y -R "$rg" "$target" "$r1" "$r2"; } ;;
        esac

        # A reference with a repeated contig name (given with a prebuilt index) makes a SAM header htslib refuses.
        if ! align | samtools fixmate -m -u - - 2> fixmate.err \
              | samtools sort -u -@ ~{cpu} -m ~{sort_memory_mb}M -T tmp/sort - > sorted.bam; then
            cat fixmate.err >&2
            if dup=$(grep -m1 -o 'Duplicate entry "[^"]*" in sam header' fixmate.err); then
                dup=${dup#Duplicate entry \"}
                echo "ERROR: reference_fasta names contig '${dup%%\"*}' more than once: give every sequence a unique name and rebuild the index" >&2
            fi
            exit 1
        fi
        cat fixmate.err >&2
        if [ ~{true="true" false="false" mark_duplicates} = true ]; then
            samtools markdup -@ ~{cpu} -s -f markdup.txt sorted.bam "tmp/${sample}.bam"
            rm sorted.bam
        else
            mv sorted.bam "tmp/${sample}.bam"
            echo "duplicate marking disabled" > markdup.txt
        fi
        samtools index -@ ~{cpu} "tmp/${sample}.bam"
        mv "tmp/${sample}.bam.bai" "${sample}.bam.bai"
        mv "tmp/${sample}.bam" "${sample}.bam"
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
