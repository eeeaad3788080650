version 1.0

# The cohort of wdl/genomics_cohort.wdl, as `batchpipes run genomics --samples sheet.tsv` (scripts/batchpipes/
# samplesheet.py) writes it from a sample sheet: one Sample per sample, its lanes in the sheet's order.

struct Lane {
    String read_group
    String library
    String platform
    File fastq_1
    File? fastq_2
}

struct Sample {
    String name
    Array[Lane] lanes
}
