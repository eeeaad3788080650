version 1.0

# snpEff annotation. Every String and File reaches the shell through a write_lines() file and is used
# only as a quoted variable or a program argument (docs/development.md, "Shell safety"). The contig rule (which
# contigs must carry genes) is in containers/snpeff/snpeff_contigs.py; GenBank is converted to GFF3
# by containers/snpeff/gbk2gff3.py so that tRNA, rRNA and other non-coding genes are kept; the other
# checks and snpEff.config are containers/snpeff/snpeff_tasks.py (snpeff-tasks in the image).

task build_snpeff_db {
    meta {
        description: "Builds a snpEff database from the annotation it is given (GenBank, GFF3 or GTF) and the reference: nothing is downloaded. GenBank keeps every gene (protein-coding, tRNA, rRNA, other RNAs). Fails when no reference contig carries genes of the annotation, or a reference contig is evidently an annotated sequence under another name."
        outputs: {
            database: "Tarball holding snpEff.config, data/<genome>/snpEffectPredictor.bin and data/<genome>/contigs.tsv (genes per contig and biotype)",
            summary: "One line: genes by biotype and the number of reference contigs with genes"
        }
    }

    parameter_meta {
        annotation: "Gene annotation: GenBank (.gbk), GFF3 or GTF 2.2; plain or gzip"
        reference_fasta: "Reference FASTA (its contig names must match the annotation's)"
        reference_fai: "samtools .fai of the reference"
        genome_name: {
            description: "Name of the snpEff genome",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        codon_table: "snpEff codon table for every contig (e.g. Vertebrate_Mitochondrial, Bacterial_and_Plant_Plastid). When absent: a GenBank record's /transl_table, else the standard table. A GenBank /transl_table that disagrees is an error"
        docker_image: "Image with snpEff and snpeff-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB (the Java heap is 1 GiB less)"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File annotation
        File reference_fasta
        File reference_fai
        String genome_name = "custom"
        String? codon_table
        String docker_image = "batchpipes/snpeff:34d263ab0079"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(annotation, "GiB") * 10 + size(reference_fasta, "GiB") * 3) + 10])
    Int heap_gb = if memory_gb > 1 then memory_gb - 1 else 1

    command <<<
        set -euo pipefail
        mapfile -t f < ~{write_lines([annotation, reference_fasta, reference_fai])}
        mapfile -t g < ~{write_lines([genome_name])}
        if [ "${#f[@]}" -ne 3 ]; then
            echo "ERROR: an input path contains a newline: rename the file" >&2; exit 1
        fi
        snpeff-tasks check-name genome_name -- "${g[@]}"
        genome=${g[0]} annotation=${f[0]} fasta=${f[1]} fai=${f[2]}
        name=$(basename -- "$annotation")
        data="$PWD/db/data/$genome"
        # Checks codon_table; writes data/<genome>/genes.gff or genes.gtf (GenBank through gbk2gff3.py, every gene
        # kept); checks in seconds, before snpEff's minutes, that some annotated sequence is a reference contig;
        # writes db/snpEff.config (codon tables: codon_table for every contig, else the records' /transl_table).
        snpeff-tasks prepare --annotation "$annotation" --fai "$fai" --genome "$genome" --label="$name" \
            --codon-table-file ~{write_lines(select_all([codon_table]))} --data "$data" --config db/snpEff.config \
            > prepared.tsv
        IFS=$'\t' read -r format genes < prepared.tsv
        summary=(); if [ -f gbk_summary.tsv ]; then summary=(--summary gbk_summary.tsv); fi
        # Exon sequences and every contig's length come from the reference itself (a contig unknown to
        # snpEff would give ERROR_OUT_OF_CHROMOSOME_RANGE instead of intergenic annotations).
        cp -- "$fasta" "$data/sequences.fa"
        java -Xmx~{heap_gb}g -jar /usr/share/java/snpeff.jar build -noLog -c db/snpEff.config -dataDir "$PWD/db/data" \
            "-${format}" -noCheckCds -noCheckProtein -v "$genome" 2> build.log \
            || { tail -n 20 build.log >&2; echo "ERROR: snpEff could not build a database from '${name}'" >&2; exit 1; }
        if [ ! -s "$data/snpEffectPredictor.bin" ]; then
            tail -n 20 build.log >&2
            echo "ERROR: snpEff wrote no database for '${name}'" >&2; exit 1
        fi
        # The database itself says which contigs carry genes: one line, or one ERROR line.
        snpeff_contigs.py record --db "$data/snpEffectPredictor.bin" --fai "$fai" --out "$data/contigs.tsv" \
            --annotation "$genes" --label "$name" "${summary[@]}" > snpeff_db.summary.txt
        cat snpeff_db.summary.txt >&2
        rm -f "$data"/genes.* "$data"/sequences.fa
        tar -czf snpeff_db.tar.gz.part -C db .
        mv snpeff_db.tar.gz.part snpeff_db.tar.gz
    >>>

    output {
        File database = "snpeff_db.tar.gz"
        String summary = read_string("snpeff_db.summary.txt")
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

task annotate_variants {
    meta {
        description: "Annotates variant calls with snpEff (ANN field) using a database built by build_snpeff_db. Fails before annotating when calls fall on contigs the database has no genes for while it has genes under other names."
        outputs: {
            annotated_vcf: "Annotated VCF, bgzip-compressed",
            annotated_vcf_index: "Tabix index of the annotated VCF",
            summary_html: "snpEff summary report",
            csv_stats: "snpEff summary, CSV (MultiQC reads it)",
            genes: "Per-gene effect counts"
        }
    }

    parameter_meta {
        vcf: "Variant calls (VCF, plain or bgzip)"
        database: "Tarball from build_snpeff_db"
        genome_name: {
            description: "snpEff genome name given to build_snpeff_db",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        sample_name: {
            description: "Output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with snpEff and snpeff-tasks"
        cpu: "Number of CPUs requested"
        memory_gb: "Memory requested, GiB (the Java heap is 1 GiB less)"
        disk_gb: "Scratch disk, GiB; default derived from the inputs"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File vcf
        File database
        String genome_name = "custom"
        String sample_name
        String docker_image = "batchpipes/snpeff:34d263ab0079"
        Int cpu = 1
        Int memory_gb = 4
        Int? disk_gb
        Int max_retries = 0
        Int batch_retries = 2
    }

    Int disk = select_first([disk_gb, ceil(size(vcf, "GiB") * 6 + size(database, "GiB") * 4) + 10])
    Int heap_gb = if memory_gb > 1 then memory_gb - 1 else 1

    command <<<
        set -euo pipefail
        mapfile -t f < ~{write_lines([vcf, database])}
        mapfile -t g < ~{write_lines([genome_name])}
        mapfile -t n < ~{write_lines([sample_name])}
        if [ "${#f[@]}" -ne 2 ]; then
            echo "ERROR: an input path contains a newline: rename the file" >&2; exit 1
        fi
        snpeff-tasks check-name genome_name -- "${g[@]}"
        snpeff-tasks check-name sample_name -- "${n[@]}"
        genome=${g[0]} sample=${n[0]} vcf=${f[0]} database=${f[1]}
        mkdir db
        tar -xzf "$database" -C db \
            || { echo "ERROR: database '$(basename -- "$database")' is not a tarball from build_snpeff_db" >&2; exit 1; }
        snpeff-tasks check-db -- db/data "$genome"
        # Before snpEff runs: every VCF contig with calls must carry genes or be a gene-less reference contig.
        snpeff_contigs.py check --manifest "db/data/$genome/contigs.tsv" --db "db/data/$genome/snpEffectPredictor.bin" --vcf "$vcf"
        java -Xmx~{heap_gb}g -jar /usr/share/java/snpeff.jar ann -noLog -c db/snpEff.config -dataDir "$PWD/db/data" -nodownload \
            -stats "$sample.snpeff.html" -csvStats "$sample.snpeff.csv" \
            "$genome" "$vcf" 2> snpeff.log \
          | bgzip -c > "$sample.ann.vcf.gz.part" \
          || { tail -n 20 snpeff.log >&2; echo "ERROR: snpEff annotation failed" >&2; exit 1; }
        # snpEff could not place a call: never published as if annotated.
        snpeff-tasks unplaced -- "$sample.ann.vcf.gz.part" "$genome" || { rm -f "$sample.ann.vcf.gz.part"; exit 1; }
        mv "$sample.ann.vcf.gz.part" "$sample.ann.vcf.gz"
        tabix -p vcf "$sample.ann.vcf.gz"
        mv "$sample.snpeff.genes.txt" "$sample.snpeff.genes.tsv"
    >>>

    output {
        File annotated_vcf = "~{sample_name}.ann.vcf.gz"
        File annotated_vcf_index = "~{sample_name}.ann.vcf.gz.tbi"
        File summary_html = "~{sample_name}.snpeff.html"
        File csv_stats = "~{sample_name}.snpeff.csv"
        File genes = "~{sample_name}.snpeff.genes.tsv"
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
