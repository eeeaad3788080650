version 1.0

task build_snpeff_db {
    meta {
        description: "Builds a snpEff database from the annotation it is given (GenBank, GFF3 or GTF) and the reference: nothing is downloaded."
        outputs: {
            database: "Tarball holding snpEff.config and data/<genome>/snpEffectPredictor.bin"
        }
    }

    parameter_meta {
        annotation: "Gene annotation: GenBank (.gbk), GFF3 or GTF 2.2; plain or gzip"
        reference_fasta: "Reference FASTA (its contig names must match the annotation's)"
        reference_fai: "samtools .fai of the reference"
        genome_name: "Name of the snpEff genome"
        codon_table: "snpEff codon table for every contig (e.g. Vertebrate_Mitochondrial, Bacterial_and_Plant_Plastid); standard table when absent"
        docker_image: "Image with snpEff"
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
        String docker_image = "batchpipes/snpeff:5abc5e190f6c"
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
        genome='~{genome_name}'
        if ! [[ "$genome" =~ ^[A-Za-z0-9._-]+$ ]]; then
            echo "ERROR: genome_name '${genome}' may hold only letters, digits, '.', '_' and '-'" >&2; exit 1
        fi
        data="$PWD/db/data/$genome"
        mkdir -p "$data"
        name=$(basename '~{annotation}')
        head_line=$( (gzip -cdf '~{annotation}' || true) | head -n 1)
        case "$head_line" in
            LOCUS*)
                # snpEff names each sequence after the whole VERSION line ("NC_001807.4  GI:17981852"):
                # keep the name the reference uses, the accession.version or else the LOCUS name.
                format=genbank
                gzip -cdf '~{annotation}' | awk -v fai='~{reference_fai}' '
                    BEGIN { while ((getline line < fai) > 0) { split(line, f, "\t"); contig[f[1]] = 1 } }
                    /^LOCUS/ { locus = $2 }
                    /^VERSION/ { name = ($2 in contig || !(locus in contig)) ? $2 : locus; print "VERSION     " name; next }
                    { print }' > "$data/genes.gbk" ;;
            "##gff-version 3"*) format=gff3; gzip -cdf '~{annotation}' > "$data/genes.gff"; cp '~{reference_fasta}' "$data/sequences.fa" ;;
            *)
                if (gzip -cdf '~{annotation}' || true) | grep -v '^#' | head -n 5 | awk -F '\t' 'NF != 9 || $9 !~ /gene_id/ { bad = 1 } END { exit bad }'; then
                    format=gtf22; gzip -cdf '~{annotation}' > "$data/genes.gtf"; cp '~{reference_fasta}' "$data/sequences.fa"
                else
                    echo "ERROR: annotation '${name}' is not GenBank (LOCUS), GFF3 (##gff-version 3) or GTF (9 columns with gene_id)" >&2; exit 1
                fi ;;
        esac
        {
            grep -v '^data.dir' /etc/snpeff/snpEff.config
            echo "data.dir = ./data/"
            echo "${genome}.genome : ${genome}"
            codon='~{default="" codon_table}'
            if [ -n "$codon" ]; then
                if ! grep -q "^codon.${codon}[[:space:]]*:" /etc/snpeff/snpEff.config; then
                    echo "ERROR: codon_table '${codon}' is not a snpEff codon table (see codon.* in snpEff.config)" >&2; exit 1
                fi
                cut -f1 '~{reference_fai}' | while read -r contig; do echo "${genome}.${contig}.codonTable : ${codon}"; done
            fi
        } > db/snpEff.config
        java -Xmx~{heap_gb}g -jar /usr/share/java/snpeff.jar build -c db/snpEff.config -dataDir "$PWD/db/data" "-${format}" -noCheckCds -noCheckProtein -v "$genome" 2> build.log \
            || { tail -n 20 build.log >&2; echo "ERROR: snpEff could not build a database from '${name}'" >&2; exit 1; }
        if [ ! -s "$data/snpEffectPredictor.bin" ]; then
            tail -n 20 build.log >&2
            echo "ERROR: snpEff wrote no database for '${name}'" >&2; exit 1
        fi
        rm -f "$data"/genes.* "$data"/sequences.fa
        tar -czf snpeff_db.tar.gz -C db .
    >>>

    output {
        File database = "snpeff_db.tar.gz"
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
        description: "Annotates variant calls with snpEff (ANN field) using a database built by build_snpeff_db."
        outputs: {
            annotated_vcf: "Annotated VCF, bgzip-compressed",
            annotated_vcf_index: "Tabix index of the annotated VCF",
            summary_html: "snpEff summary report",
            genes: "Per-gene effect counts"
        }
    }

    parameter_meta {
        vcf: "Variant calls (VCF, plain or bgzip)"
        database: "Tarball from build_snpeff_db"
        genome_name: "snpEff genome name given to build_snpeff_db"
        sample_name: "Output prefix"
        docker_image: "Image with snpEff"
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
        String docker_image = "batchpipes/snpeff:5abc5e190f6c"
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
        mkdir db
        tar -xzf '~{database}' -C db
        if [ ! -d 'db/data/~{genome_name}' ]; then
            echo "ERROR: the snpEff database has no genome '~{genome_name}': give the genome_name used to build it" >&2; exit 1
        fi
        java -Xmx~{heap_gb}g -jar /usr/share/java/snpeff.jar ann -c db/snpEff.config -dataDir "$PWD/db/data" -nodownload \
            -stats '~{sample_name}.snpeff.html' -csvStats '~{sample_name}.snpeff.csv' \
            '~{genome_name}' '~{vcf}' 2> snpeff.log \
          | bgzip -c > '~{sample_name}.ann.vcf.gz' \
          || { tail -n 20 snpeff.log >&2; echo "ERROR: snpEff annotation failed" >&2; exit 1; }
        tabix -p vcf '~{sample_name}.ann.vcf.gz'
        records=$(bgzip -cd '~{sample_name}.ann.vcf.gz' | grep -vc '^#' || true)
        lost=$(bgzip -cd '~{sample_name}.ann.vcf.gz' | grep -v '^#' | grep -c 'ERROR_CHROMOSOME_NOT_FOUND' || true)
        if [ "$records" -gt 0 ] && [ "$lost" -eq "$records" ]; then
            echo "ERROR: no contig of the VCF is in snpEff genome '~{genome_name}': the annotation and the reference name their sequences differently" >&2
            exit 1
        fi
        mv '~{sample_name}.snpeff.genes.txt' '~{sample_name}.snpeff.genes.tsv'
    >>>

    output {
        File annotated_vcf = "~{sample_name}.ann.vcf.gz"
        File annotated_vcf_index = "~{sample_name}.ann.vcf.gz.tbi"
        File summary_html = "~{sample_name}.snpeff.html"
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
