version 1.0

import "tasks/reference.wdl" as reference
import "tasks/alignment.wdl" as alignment
import "tasks/variant_calling.wdl" as variant_calling
import "tasks/annotation.wdl" as snpeff
import "tasks/qc.wdl" as qc

workflow genomics {
    meta {
        description: "Genomics secondary analysis of one sample: paired FASTQ -> one checking, trimming and sharding pass (fastp) -> shards aligned in parallel -> merged, duplicate-marked, indexed BAM -> in parallel {sharded variant calling -> snpEff annotation}, {samtools stats/flagstat} and {callable regions}. Exome mode when targets_bed is given. For several samples or lanes, genomics_cohort runs the same tasks."
        author: "batchpipes"
        outputs: {
            bam: "Sorted, duplicate-marked BAM (<sample>.bam)",
            bai: "BAM index (<sample>.bam.bai)",
            markdup_metrics: "samtools markdup statistics",
            read_counts: "Read pairs counted in each mate file and kept by fastp (tab-separated)",
            fastp_report: "fastp report of the reads (trimming, quality), HTML",
            vcf: "Variant calls (FILTER PASS or LowQual), bgzip (<sample>.vcf.gz)",
            vcf_index: "Tabix index of vcf (<sample>.vcf.gz.tbi)",
            vcf_stats: "bcftools stats of the PASS calls",
            annotated_vcf: "Calls with snpEff ANN annotations, bgzip",
            annotated_vcf_index: "Tabix index of annotated_vcf",
            snpeff_summary: "snpEff summary, HTML",
            snpeff_db_summary: "One line: the snpEff database's genes by biotype (e.g. '13 protein_coding, 22 tRNA, 2 rRNA genes on 1 contig(s)')",
            snpeff_genes: "snpEff per-gene counts, text",
            samtools_stats: "samtools stats of all reads",
            flagstat: "samtools flagstat, text",
            flagstat_json: "samtools flagstat, JSON",
            target_stats: "samtools stats inside the (padded) targets: exome mode only",
            callable_bed: "Callable regions: bases with at least min_depth reads of MAPQ >= min_mapq, BED, bgzip (<sample>.callable.bed.gz); within the targets in exome mode",
            callable_bed_index: "Tabix index of callable_bed (<sample>.callable.bed.gz.tbi)",
            callable_summary: "'<sample>: N bp (x%) of the genome|targets not callable (...)', then name<TAB>value totals (<sample>.callable.txt)"
        }
    }

    parameter_meta {
        sample_name: {
            description: "Sample name: read group SM and output prefix",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        fastq_r1: "First mates, FASTQ (plain or gzip)"
        fastq_r2: "Second mates, FASTQ (plain or gzip)"
        reference_fasta: "Reference genome, uncompressed FASTA"
        reference_fai: "samtools .fai of the reference; built when absent"
        aligner_index: "Prebuilt aligner index (bwa: .amb .ann .bwt .pac .sa; minimap2: .mmi); built when absent"
        annotation: "Gene annotation for snpEff: GenBank, GFF3 or GTF, with the reference's contig names"
        snpeff_genome: {
            description: "Name given to the snpEff database built from the annotation",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        codon_table: {
            description: "snpEff codon table for every contig (e.g. Vertebrate_Mitochondrial); when absent, a GenBank record's /transl_table, else the standard table",
            pattern: "^[A-Za-z][A-Za-z0-9_]{0,63}$",
            pattern_help: "it is not a snpEff codon table name (letters, digits and '_', e.g. Vertebrate_Mitochondrial)"
        }
        targets_bed: "Target regions (exome mode), BED (0-based, half-open): calling restricted to them, target QC added; track/browser/# header lines, extra columns, CRLF line ends, any order and overlaps are accepted"
        target_padding: "Bases added on each side of every target"
        reads_per_shard: "Read pairs per alignment job (shard), at most"
        trim_reads: "Trim adapters and filter reads with fastp's defaults; false aligns the reads as they are"
        aligner: {
            description: "Short-read aligner (checked by align_shard)",
            choices: ["bwa", "minimap2"]
        }
        caller: {
            description: "Variant caller (checked once, by split_regions, before the reads are aligned)",
            choices: ["bcftools", "freebayes"]
        }
        scatter_count: "Variant-calling shards (regions of about equal size)"
        ploidy: "Sample ploidy"
        min_qual: "Calls with QUAL below this are marked LowQual"
        min_mapq: "Minimum mapping quality of a read used for calling and counted for callable regions"
        min_depth: "A base is callable with at least this many reads of MAPQ >= min_mapq"
        split_cpu: "Threads for the reads' fastp pass"
        align_cpu: "Threads for each shard's alignment"
        align_memory_gb: "Memory for each shard's alignment, GiB"
        genomics_image: "Image with bwa, minimap2, samtools, bcftools, freebayes, mosdepth, bedtools and genomics-tasks (pinned by content hash)"
        snpeff_image: "Image with snpEff and snpeff-tasks (pinned by content hash)"
    }

    input {
        String sample_name
        File fastq_r1
        File fastq_r2
        File reference_fasta
        File? reference_fai
        Array[File]? aligner_index
        File annotation
        String snpeff_genome = "custom"
        String? codon_table
        File? targets_bed
        Int target_padding = 50
        Int reads_per_shard = 4000000
        Boolean trim_reads = true
        String aligner = "bwa"
        String caller = "bcftools"
        Int scatter_count = 4
        Int ploidy = 2
        Int min_qual = 20
        Int min_mapq = 20
        Int min_depth = 4
        Int split_cpu = 4
        Int align_cpu = 8
        Int align_memory_gb = 14
        String genomics_image = "batchpipes/genomics:8c2aa7663d60"
        String snpeff_image = "batchpipes/snpeff:34d263ab0079"
    }

    if (!defined(reference_fai) || !defined(aligner_index)) {
        call reference.index_reference {
            input:
                reference_fasta = reference_fasta,
                aligner = aligner,
                docker_image = genomics_image
        }
    }
    File fai = select_first([reference_fai, index_reference.fai])
    Array[File] index_files = select_first([aligner_index, index_reference.aligner_index])

    # One pass over the reads: checked (mates in sync, truncation), trimmed, cut into shards. The lane is named
    # after the sample (the sample name rule is stricter than the read group ID rule).
    String lane = sample_name
    call alignment.split_lane {
        input:
            fastq_1 = fastq_r1,
            fastq_2 = fastq_r2,
            lane_id = lane,
            fastq_names = ["fastq_r1", "fastq_r2"],
            reads_per_shard = reads_per_shard,
            trim_reads = trim_reads,
            cpu = split_cpu,
            docker_image = genomics_image
    }

    scatter (shard in transpose([split_lane.shards_1, split_lane.shards_2])) {
        call alignment.align_shard {
            input:
                reads = shard,
                reference_fasta = reference_fasta,
                aligner_index = index_files,
                sample_name = sample_name,
                read_group = sample_name,
                aligner = aligner,
                cpu = align_cpu,
                memory_gb = align_memory_gb,
                docker_image = genomics_image
        }
    }

    call alignment.merge_sample {
        input:
            bams = align_shard.bam,
            sample_name = sample_name,
            docker_image = genomics_image
    }

    # Shards for variant calling: the caller's one check, and the targets', here, before alignment ends.
    call variant_calling.split_regions {
        input:
            reference_fai = fai,
            targets_bed = targets_bed,
            target_padding = target_padding,
            scatter_count = scatter_count,
            caller = caller,
            docker_image = genomics_image
    }

    # Branch 1: alignment QC.
    call qc.alignment_qc {
        input:
            bam = merge_sample.bam,
            bai = merge_sample.bai,
            reference_fasta = reference_fasta,
            targets = if defined(targets_bed) then split_regions.intervals else targets_bed,
            sample_name = sample_name,
            docker_image = genomics_image
    }

    # Branch 1b: where calls can be made (reads of MAPQ >= min_mapq, depth >= min_depth).
    call qc.callable_regions {
        input:
            bam = merge_sample.bam,
            bai = merge_sample.bai,
            reference_fai = fai,
            targets = if defined(targets_bed) then split_regions.intervals else targets_bed,
            target_padding = target_padding,
            sample_name = sample_name,
            min_depth = min_depth,
            min_mapq = min_mapq,
            docker_image = genomics_image
    }

    # Branch 2: sharded variant calling, then annotation; the snpEff database is built while
    # the reads are aligned.
    scatter (region in split_regions.regions) {
        call variant_calling.call_variants {
            input:
                bams = [merge_sample.bam],
                bais = [merge_sample.bai],
                reference_fasta = reference_fasta,
                reference_fai = fai,
                regions_bed = region,
                caller = caller,
                ploidy = ploidy,
                min_mapping_quality = min_mapq,
                docker_image = genomics_image
        }
    }

    call variant_calling.merge_vcfs {
        input:
            vcfs = call_variants.vcf,
            reference_fasta = reference_fasta,
            reference_fai = fai,
            sample_name = sample_name,
            min_qual = min_qual,
            docker_image = genomics_image
    }

    call snpeff.build_snpeff_db {
        input:
            annotation = annotation,
            reference_fasta = reference_fasta,
            reference_fai = fai,
            genome_name = snpeff_genome,
            codon_table = codon_table,
            docker_image = snpeff_image
    }

    call snpeff.annotate_variants {
        input:
            vcf = merge_vcfs.vcf,
            database = build_snpeff_db.database,
            genome_name = snpeff_genome,
            sample_name = sample_name,
            docker_image = snpeff_image
    }

    output {
        File bam = merge_sample.bam
        File bai = merge_sample.bai
        File markdup_metrics = merge_sample.markdup_metrics
        File read_counts = split_lane.read_counts
        File fastp_report = split_lane.fastp_html
        File vcf = merge_vcfs.vcf
        File vcf_index = merge_vcfs.vcf_index
        File vcf_stats = merge_vcfs.vcf_stats
        File annotated_vcf = annotate_variants.annotated_vcf
        File annotated_vcf_index = annotate_variants.annotated_vcf_index
        File snpeff_summary = annotate_variants.summary_html
        File snpeff_genes = annotate_variants.genes
        File samtools_stats = alignment_qc.stats
        File flagstat = alignment_qc.flagstat
        File flagstat_json = alignment_qc.flagstat_json
        File? target_stats = alignment_qc.target_stats
        File callable_bed = callable_regions.callable_bed
        File callable_bed_index = callable_regions.callable_bed_index
        File callable_summary = callable_regions.callable_summary
        String snpeff_db_summary = build_snpeff_db.summary
    }
}
