version 1.0

import "tasks/structs.wdl"
import "tasks/cohort.wdl" as cohort
import "tasks/reference.wdl" as reference
import "tasks/alignment.wdl" as alignment
import "tasks/variant_calling.wdl" as variant_calling
import "tasks/annotation.wdl" as snpeff
import "tasks/qc.wdl" as qc

workflow genomics_cohort {
    meta {
        description: "Genomics of a cohort (a sample sheet: several samples, several lanes each): every lane checked, trimmed and sharded in one pass (fastp), shards aligned as separate jobs, merged per sample (read groups kept) with duplicates marked per library; then joint genotyping of all samples by region shards -> one cohort VCF (per-sample GT, AD, DP) -> snpEff; per sample: samtools stats/flagstat, mosdepth and callable regions; the cohort's callable regions and one MultiQC report. Exome mode when targets_bed is given."
        author: "batchpipes"
        outputs: {
            sample_names: "The samples, in the order of the per-sample outputs",
            bams: "Per sample: sorted, duplicate-marked BAM with one read group per lane (<sample>.bam)",
            bais: "Per sample: BAM index (<sample>.bam.bai)",
            markdup_metrics: "Per sample: samtools markdup statistics",
            read_counts: "Per sample, per lane: reads counted in each FASTQ and kept by fastp",
            fastp_reports: "Per sample, per lane: fastp report, HTML",
            samtools_stats: "Per sample: samtools stats",
            flagstats: "Per sample: samtools flagstat, text",
            target_stats: "Per sample: samtools stats inside the (padded) targets (exome mode only)",
            callable_beds: "Per sample: callable regions, BED, bgzip (<sample>.callable.bed.gz)",
            callable_bed_indexes: "Per sample: tabix index of the callable BED",
            callable_summaries: "Per sample: '<sample>: N bp (x%) ... not callable', then name<TAB>value totals",
            mosdepth_dists: "Per sample: mosdepth's cumulative coverage distribution",
            sample_vcfs: "Per sample (when per_sample_vcfs): the sample's calls taken from the cohort VCF",
            sample_vcf_indexes: "Per sample (when per_sample_vcfs): tabix index of the sample's VCF",
            vcf: "Joint calls of the cohort: one record per site, every sample's GT, AD and DP; FILTER PASS or LowQual (<cohort>.vcf.gz)",
            vcf_index: "Tabix index of vcf",
            vcf_stats: "bcftools stats of the cohort's PASS calls",
            annotated_vcf: "Cohort calls with snpEff ANN annotations, bgzip (<cohort>.ann.vcf.gz)",
            annotated_vcf_index: "Tabix index of annotated_vcf",
            snpeff_summary: "snpEff summary of the cohort calls, HTML",
            snpeff_genes: "snpEff per-gene counts, text",
            snpeff_db_summary: "One line: the snpEff database's genes by biotype",
            cohort_callable_bed: "Bases callable in every sample, BED, bgzip (<cohort>.callable.bed.gz)",
            cohort_callable_bed_index: "Tabix index of cohort_callable_bed",
            cohort_callable_summary: "'<cohort>: N bp callable in all K samples ...', then each sample's callable bp",
            multiqc_report: "MultiQC report of the cohort, one HTML file (<cohort>.multiqc.html)",
            multiqc_data: "MultiQC's parsed values, JSON",
            samples_summary: "One line: 'N samples, M lanes (P paired, S single-end)'"
        }
    }

    parameter_meta {
        samples: "The cohort: for each sample its name (SM, results/<name>/) and its lanes (read group ID, library, platform, fastq_1, fastq_2 absent for single-end); written from a sample sheet by `batchpipes run genomics --samples sheet.tsv`"
        cohort_name: {
            description: "Cohort name: prefix of the cohort outputs (VCF, MultiQC report)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
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
        targets_bed: "Target regions (exome mode), BED (0-based, half-open): calling restricted to them, target QC added"
        target_padding: "Bases added on each side of every target"
        reads_per_shard: "Read pairs per alignment job (shard), at most"
        trim_reads: "Trim adapters and filter reads with fastp's defaults; false aligns the reads as they are"
        aligner: {
            description: "Short-read aligner (checked by align_shard)",
            choices: ["bwa", "minimap2"]
        }
        caller: {
            description: "Variant caller, run on all samples together (checked once, by split_regions, before the reads are aligned)",
            choices: ["bcftools", "freebayes"]
        }
        scatter_count: "Joint-calling shards (regions of about equal size)"
        ploidy: "Sample ploidy"
        min_qual: "Calls with QUAL below this are marked LowQual"
        min_mapq: "Minimum mapping quality of a read used for calling and counted for callable regions"
        min_depth: "A base is callable with at least this many reads of MAPQ >= min_mapq"
        per_sample_vcfs: "Also write each sample's calls as a VCF of its own (taken from the cohort VCF)"
        split_cpu: "Threads for each lane's fastp pass"
        align_cpu: "Threads for each shard's alignment"
        align_memory_gb: "Memory for each shard's alignment, GiB"
        genomics_image: "Image with bwa, minimap2, samtools, bcftools, freebayes, fastp, mosdepth, bedtools and genomics-tasks (pinned by content hash)"
        snpeff_image: "Image with snpEff and snpeff-tasks (pinned by content hash)"
        multiqc_image: "Image with MultiQC (pinned by content hash)"
    }

    input {
        Array[Sample] samples
        String cohort_name = "cohort"
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
        Boolean per_sample_vcfs = false
        Int split_cpu = 4
        Int align_cpu = 8
        Int align_memory_gb = 14
        String genomics_image = "batchpipes/genomics:8c2aa7663d60"
        String snpeff_image = "batchpipes/snpeff:34d263ab0079"
        String multiqc_image = "batchpipes/multiqc:38dea737d058"
    }

    # The cohort as rows for its check (Strings: nothing is localized for it).
    scatter (s in samples) {
        scatter (lane in s.lanes) {
            Array[String] row = [s.name, lane.read_group, lane.library, lane.platform, lane.fastq_1,
                                 if defined(lane.fastq_2) then "~{lane.fastq_2}" else ""]
        }
    }

    call cohort.check_samples {
        input:
            lanes = flatten(row),
            sample_count = length(samples),
            docker_image = genomics_image
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

    # Shards for joint calling: the caller's one check, and the targets', before any read is aligned.
    call variant_calling.split_regions {
        input:
            reference_fai = fai,
            targets_bed = targets_bed,
            target_padding = target_padding,
            scatter_count = scatter_count,
            caller = caller,
            docker_image = genomics_image
    }
    File? intervals = if defined(targets_bed) then split_regions.intervals else targets_bed

    # Per sample (after the check): lanes split in one pass, shards aligned, merged, QC. A sample's jobs depend
    # only on its own inputs, so with call caching an added sample reruns only its own alignment.
    scatter (i in check_samples.sample_indexes) {
        Sample sample = samples[i]
        scatter (lane in sample.lanes) {
            call alignment.split_lane {
                input:
                    fastq_1 = lane.fastq_1,
                    lane_id = lane.read_group,
                    fastq_2 = lane.fastq_2,
                    reads_per_shard = reads_per_shard,
                    trim_reads = trim_reads,
                    cpu = split_cpu,
                    docker_image = genomics_image
            }
            Array[Array[File]] shards = if defined(lane.fastq_2)
                then transpose([split_lane.shards_1, split_lane.shards_2])
                else transpose([split_lane.shards_1])
            scatter (shard in shards) {
                call alignment.align_shard {
                    input:
                        reads = shard,
                        reference_fasta = reference_fasta,
                        aligner_index = index_files,
                        sample_name = sample.name,
                        read_group = lane.read_group,
                        library = lane.library,
                        platform = lane.platform,
                        aligner = aligner,
                        cpu = align_cpu,
                        memory_gb = align_memory_gb,
                        docker_image = genomics_image
                }
            }
        }

        call alignment.merge_sample {
            input:
                bams = flatten(align_shard.bam),
                sample_name = sample.name,
                docker_image = genomics_image
        }

        call qc.alignment_qc {
            input:
                bam = merge_sample.bam,
                bai = merge_sample.bai,
                reference_fasta = reference_fasta,
                targets = intervals,
                sample_name = sample.name,
                docker_image = genomics_image
        }

        call qc.callable_regions {
            input:
                bam = merge_sample.bam,
                bai = merge_sample.bai,
                reference_fai = fai,
                targets = intervals,
                target_padding = target_padding,
                sample_name = sample.name,
                min_depth = min_depth,
                min_mapq = min_mapq,
                docker_image = genomics_image
        }
        String name = sample.name
    }

    # Joint genotyping: every sample's BAM in each region shard.
    scatter (region in split_regions.regions) {
        call variant_calling.call_variants {
            input:
                bams = merge_sample.bam,
                bais = merge_sample.bai,
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
            sample_name = cohort_name,
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
            sample_name = cohort_name,
            docker_image = snpeff_image
    }

    if (per_sample_vcfs) {
        scatter (one in name) {
            call cohort.sample_vcf {
                input:
                    cohort_vcf = merge_vcfs.vcf,
                    cohort_vcf_index = merge_vcfs.vcf_index,
                    sample_name = one,
                    docker_image = genomics_image
            }
        }
    }

    call qc.cohort_callable {
        input:
            callable_beds = callable_regions.callable_bed,
            callable_summaries = callable_regions.callable_summary,
            sample_names = name,
            cohort_name = cohort_name,
            docker_image = genomics_image
    }

    call qc.multiqc_report as multiqc {
        input:
            reports = flatten([flatten(split_lane.fastp_json), alignment_qc.stats, alignment_qc.flagstat,
                               callable_regions.mosdepth_dist, [merge_vcfs.vcf_stats, annotate_variants.csv_stats]]),
            cohort_name = cohort_name,
            docker_image = multiqc_image
    }

    output {
        Array[String] sample_names = name
        Array[File] bams = merge_sample.bam
        Array[File] bais = merge_sample.bai
        Array[File] markdup_metrics = merge_sample.markdup_metrics
        Array[Array[File]] read_counts = split_lane.read_counts
        Array[Array[File]] fastp_reports = split_lane.fastp_html
        Array[File] samtools_stats = alignment_qc.stats
        Array[File] flagstats = alignment_qc.flagstat
        Array[File?] target_stats = alignment_qc.target_stats
        Array[File] callable_beds = callable_regions.callable_bed
        Array[File] callable_bed_indexes = callable_regions.callable_bed_index
        Array[File] callable_summaries = callable_regions.callable_summary
        Array[File] mosdepth_dists = callable_regions.mosdepth_dist
        Array[File]? sample_vcfs = sample_vcf.vcf
        Array[File]? sample_vcf_indexes = sample_vcf.vcf_index
        File vcf = merge_vcfs.vcf
        File vcf_index = merge_vcfs.vcf_index
        File vcf_stats = merge_vcfs.vcf_stats
        File annotated_vcf = annotate_variants.annotated_vcf
        File annotated_vcf_index = annotate_variants.annotated_vcf_index
        File snpeff_summary = annotate_variants.summary_html
        File snpeff_genes = annotate_variants.genes
        String snpeff_db_summary = build_snpeff_db.summary
        File cohort_callable_bed = cohort_callable.callable_bed
        File cohort_callable_bed_index = cohort_callable.callable_bed_index
        File cohort_callable_summary = cohort_callable.callable_summary
        File multiqc_report = multiqc.report
        File multiqc_data = multiqc.data
        String samples_summary = check_samples.summary
    }
}
