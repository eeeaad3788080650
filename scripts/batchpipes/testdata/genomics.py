"""Generate ``inputs/genomics/``: a real reference and annotation, a spiked truth set, simulated reads.

* Reference and annotation: the human mitochondrial genome (NC_001807.4, 16,571 bp, 13 CDS), a
  GenBank file shipped by Debian's ``cct-examples`` package.
* Truth set: SNPs and short indels placed by a seeded random generator in unique sequence,
  homozygous or heterozygous, normalised with ``bcftools norm``.
* Reads: 2x150 bp pairs simulated from the two haplotypes with ART (Debian's
  ``art-nextgen-simulation-tools``, HiSeq 2500 error profile) in the ``readsim`` container.

The output is deterministic for a given seed, package version and ART version.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import containers, podman
from ..errors import UserError
from ..proc import run
from . import genbank

log = logging.getLogger(__name__)

DEB_PACKAGE = "cct-examples"
DEB_MEMBER = "usr/share/doc/cct/examples/sample_projects/sample_project_5/comparison_genomes/Human_mito.gbk.gz"
CODON_TABLE = "Vertebrate_Mitochondrial"
SEED = 20261124
N_SNPS = 40
N_INDELS = 12
END_MARGIN = 400  # reads do not wrap the circular genome: keep variants away from the ends
MIN_SPACING = 100
COVERAGE_PER_HAPLOTYPE = 30
READ_LENGTH = 150
FRAGMENT_MEAN, FRAGMENT_SD = 400, 40


@dataclass(frozen=True)
class Variant:
    pos: int  # 1-based position of REF's first base
    ref: str
    alt: str
    genotype: str  # "1/1" or "0/1"


def fetch_annotation(work: Path) -> tuple[bytes, str]:
    """Download the Debian package and return (GenBank gz bytes, package version)."""
    run(["apt-get", "download", DEB_PACKAGE], what=f"apt-get download {DEB_PACKAGE}", cwd=work, capture=True)
    debs = sorted(work.glob(f"{DEB_PACKAGE}_*.deb"))
    if not debs:
        raise UserError(f"apt-get download {DEB_PACKAGE} produced no .deb: run 'apt-get update' first")
    deb = debs[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    run(["dpkg-deb", "-x", deb, work / "deb"], what="unpacking the Debian package")
    return (work / "deb" / DEB_MEMBER).read_bytes(), version


def _low_complexity(seq: str) -> bool:
    return any(b * 5 in seq for b in "ACGT") or "N" in seq


def spike_variants(reference: str, rng: random.Random) -> list[Variant]:
    """Choose SNPs and indels in unique, non-homopolymer sequence, spaced apart."""
    kinds = ["snp"] * N_SNPS + ["indel"] * N_INDELS
    rng.shuffle(kinds)
    return sorted(place_variants(reference, kinds, rng, lambda: "0/1" if rng.random() < 0.3 else "1/1"),
                  key=lambda v: v.pos)


def place_variants(reference: str, kinds: list[str], rng: random.Random,
                   genotype: Callable[[], str]) -> list[Variant]:
    """One variant per entry of ``kinds`` ("snp" or "indel", 1-6 bp), in that order, each at least
    MIN_SPACING from the others, END_MARGIN from the ends, outside low-complexity sequence."""
    chosen: list[Variant] = []
    taken: list[int] = []
    attempts = 0
    while len(chosen) < len(kinds):
        attempts += 1
        if attempts > 100_000:
            raise RuntimeError("could not place the truth variants; lower their number or spacing")
        pos = rng.randrange(END_MARGIN, len(reference) - END_MARGIN)  # 1-based position of the anchor
        if any(abs(pos - t) < MIN_SPACING for t in taken):
            continue
        context = reference[pos - 5: pos + 10]
        if _low_complexity(context):
            continue
        kind = kinds[len(chosen)]
        gt = genotype()
        base = reference[pos - 1]
        if kind == "snp":
            alt = rng.choice([b for b in "ACGT" if b != base])
            chosen.append(Variant(pos, base, alt, gt))
        else:
            length = rng.randint(1, 6)
            if rng.random() < 0.5:  # deletion of the `length` bases after the anchor
                chosen.append(Variant(pos, reference[pos - 1: pos + length], base, gt))
            else:
                insert = "".join(rng.choice("ACGT") for _ in range(length))
                if _low_complexity(base + insert + reference[pos: pos + 3]):
                    continue
                chosen.append(Variant(pos, base, base + insert, gt))
        taken.append(pos)
    return chosen


def apply_variants(reference: str, variants: list[Variant]) -> str:
    out, cursor = [], 0
    for v in variants:
        start = v.pos - 1
        assert reference[start: start + len(v.ref)] == v.ref
        out.append(reference[cursor:start])
        out.append(v.alt)
        cursor = start + len(v.ref)
    out.append(reference[cursor:])
    return "".join(out)


def write_fasta(path: Path, name: str, seq: str) -> None:
    lines = [seq[i: i + 70] for i in range(0, len(seq), 70)]
    path.write_text(f">{name}\n" + "\n".join(lines) + "\n")


def write_truth_vcf(path: Path, contig: str, length: int, variants: list[Variant], sample: str) -> None:
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={contig},length={length}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##INFO=<ID=SPIKED,Number=0,Type=Flag,Description="Variant spiked into the simulated sample">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]),
    ]
    rows = [f"{contig}\t{v.pos}\ttruth{i + 1}\t{v.ref}\t{v.alt}\t.\tPASS\tSPIKED\tGT\t{v.genotype}"
            for i, v in enumerate(variants)]
    path.write_text("\n".join(header + rows) + "\n")


def _rename_reads(fastq: Path, prefix: str, mate: int) -> list[str]:
    out = []
    with fastq.open() as fh:
        for i, line in enumerate(fh):
            if i % 4 == 0:
                out.append(f"@{prefix}_{i // 4 + 1}/{mate}\n")
            elif i % 4 == 2:
                out.append("+\n")
            else:
                out.append(line)
    return out


def _write_gz(path: Path, lines: list[str]) -> None:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write("".join(lines).encode())


def in_container(image_ref: str, workdir: Path, *cmd: str) -> None:
    run(["podman", "run", "--rm", "--network", "none", *podman.as_invoker(), "-v", f"{workdir}:/data",
         "-w", "/data", image_ref, *cmd], what=f"{cmd[0]} in container", capture=True)


def generate(out_dir: Path, sample: str = "SIM001") -> dict[str, str]:
    """Write the test data set into ``out_dir``; return the provenance record."""
    readsim = containers.build(containers.get("readsim"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="batchpipes-testdata-") as tmp:
        work = Path(tmp)
        gbk_gz, deb_version = fetch_annotation(work)
        record = genbank.parse(gzip.decompress(gbk_gz).decode())
        contig, ref = record.version or record.locus, record.sequence
        variants = spike_variants(ref, rng)
        hap_all = apply_variants(ref, variants)
        hap_hom = apply_variants(ref, [v for v in variants if v.genotype == "1/1"])

        (out_dir / "annotation.gbk.gz").write_bytes(gbk_gz)
        write_fasta(out_dir / "reference.fa", contig, ref)
        cds = sorted({(f.start, f.end, f.gene) for f in record.features if f.kind == "CDS"})
        (out_dir / "targets.bed").write_text("".join(f"{contig}\t{s}\t{e}\t{g}\n" for s, e, g in cds))

        write_fasta(work / "hap1.fa", contig, hap_all)
        write_fasta(work / "hap2.fa", contig, hap_hom)
        shutil.copy(out_dir / "reference.fa", work / "reference.fa")
        write_truth_vcf(work / "truth.vcf", contig, len(ref), variants, sample)
        mates: dict[int, list[str]] = {1: [], 2: []}
        for hap, seed in (("hap1", SEED + 1), ("hap2", SEED + 2)):
            in_container(readsim, work, "art_illumina", "-ss", "HS25", "-i", f"{hap}.fa", "-p",
                         "-l", str(READ_LENGTH), "-f", str(COVERAGE_PER_HAPLOTYPE),
                         "-m", str(FRAGMENT_MEAN), "-s", str(FRAGMENT_SD), "-rs", str(seed), "-na",
                         "-o", f"{hap}_")
            for mate in (1, 2):
                mates[mate] += _rename_reads(work / f"{hap}_{mate}.fq", hap, mate)
        for mate in (1, 2):
            _write_gz(out_dir / f"sample_R{mate}.fastq.gz", mates[mate])
        in_container(readsim, work, "bash", "-c",
                     "bcftools norm -f reference.fa truth.vcf -Oz -o truth.vcf.gz && bcftools index -t truth.vcf.gz")
        shutil.copy(work / "truth.vcf.gz", out_dir / "truth.vcf.gz")
        shutil.copy(work / "truth.vcf.gz.tbi", out_dir / "truth.vcf.gz.tbi")
        query = "dpkg-query -W -f='${Version}' art-nextgen-simulation-tools"
        art_version = subprocess.run(["podman", "run", "--rm", readsim, "bash", "-c", query],
                                     capture_output=True, text=True, check=False).stdout.strip()

    provenance = {
        "reference": f"{contig} (Homo sapiens mitochondrion), {len(ref)} bp",
        "source_package": f"Debian {DEB_PACKAGE} {deb_version}",
        "source_path": "/" + DEB_MEMBER,
        "source_sha256": hashlib.sha256(gbk_gz).hexdigest(),
        "codon_table": CODON_TABLE,
        "cds_targets": str(len(cds)),
        "truth": f"{N_SNPS} SNPs and {N_INDELS} indels (1-6 bp), seed {SEED}, "
                 f"{sum(v.genotype == '0/1' for v in variants)} heterozygous",
        "simulator": f"ART art_illumina (Debian art-nextgen-simulation-tools {art_version}), HS25 profile, "
                     f"2x{READ_LENGTH} bp, fragment {FRAGMENT_MEAN}+-{FRAGMENT_SD}, "
                     f"{COVERAGE_PER_HAPLOTYPE}x per haplotype",
        "read_pairs": str(len(mates[1]) // 4),
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


# --- the cohort (inputs/genomics/cohort/) -----------------------------------------------------------------------
#
# Three samples on the bundled reference: SHARED sites (every sample but, for a few, one sample 0/0), PRIVATE sites
# (one sample), genotypes drawn per sample; reads from each sample's two haplotypes with ART, renamed to Illumina
# (CASAVA 1.8) names and split into lanes as a sequencer's demultiplexer would write them.

COHORT_SEED = 20261202
COHORT_SAMPLES = ("COH1", "COH2", "COH3")
N_SHARED_SNPS, N_SHARED_INDELS = 20, 10
N_PRIVATE_SNPS, N_PRIVATE_INDELS = 7, 3  # per sample
ABSENT_PER_SAMPLE = 2  # shared sites where this sample alone is 0/0
HET_FRACTION = 0.4
COHORT_COVERAGE_PER_HAPLOTYPE = 25
INSTRUMENT = "SIM"
PLATFORM = "ILLUMINA"
TILES = tuple(s * 1000 + side * 100 + t for s in (1, 2) for side in (1, 2) for t in range(1, 17))  # HiSeq 2500


@dataclass(frozen=True)
class LaneSpec:
    sample: str
    lane: str  # the sample sheet's lane column
    run: int
    flowcell: str
    flowcell_lane: int
    barcode: str
    share: float  # fraction of the sample's read pairs

    @property
    def library(self) -> str:
        return f"{self.sample}-lib1"

    def fastq(self, mate: int) -> str:
        return f"{self.sample}_{self.lane}_R{mate}.fastq.gz"


COHORT_LANES = (  # COH2 in two lanes of one library; COH3 alone on another flowcell (another platform unit)
    LaneSpec("COH1", "L001", 1, "HCOHAADXX", 1, "ATCACG", 1.0),
    LaneSpec("COH2", "L001", 1, "HCOHAADXX", 1, "CGATGT", 0.55),
    LaneSpec("COH2", "L002", 1, "HCOHAADXX", 2, "CGATGT", 0.45),
    LaneSpec("COH3", "L001", 2, "HCOHBADXX", 1, "TTAGGC", 1.0),
)
SHEET_COLUMNS = ("sample", "lane", "fastq_1", "fastq_2", "library", "platform")


@dataclass(frozen=True)
class CohortSite:
    variant: Variant  # its genotype field is unused: see genotypes
    genotypes: dict[str, str]  # sample -> "0/0", "0/1" or "1/1"

    @property
    def carriers(self) -> list[str]:
        return [s for s, gt in self.genotypes.items() if gt != "0/0"]

    @property
    def group(self) -> str:
        n = len(self.carriers)
        return "shared" if n == len(self.genotypes) else "private" if n == 1 else "partial"


def cohort_sites(reference: str, rng: random.Random, samples: tuple[str, ...] = COHORT_SAMPLES) -> list[CohortSite]:
    """Shared and private sites with per-sample genotypes, sorted by position."""
    labels = [("", "snp")] * N_SHARED_SNPS + [("", "indel")] * N_SHARED_INDELS
    for s in samples:
        labels += [(s, "snp")] * N_PRIVATE_SNPS + [(s, "indel")] * N_PRIVATE_INDELS
    rng.shuffle(labels)
    variants = place_variants(reference, [kind for _, kind in labels], rng, lambda: "")

    def draw() -> str:
        return "0/1" if rng.random() < HET_FRACTION else "1/1"

    sites = [CohortSite(v, {s: draw() if owner in ("", s) else "0/0" for s in samples})
             for (owner, _), v in zip(labels, variants, strict=True)]
    shared = [i for i, (owner, _) in enumerate(labels) if not owner]
    for j, i in enumerate(rng.sample(shared, ABSENT_PER_SAMPLE * len(samples))):
        sites[i].genotypes[samples[j % len(samples)]] = "0/0"
    if not any(len({gt for gt in site.genotypes.values()}) > 1 for site in sites if site.group == "shared"):
        raise RuntimeError("no shared site has genotypes that differ between samples; change COHORT_SEED")
    return sorted(sites, key=lambda site: site.variant.pos)


def write_cohort_vcf(path: Path, contig: str, length: int, sites: list[CohortSite], samples: list[str]) -> None:
    """A truth VCF of ``samples``: every site where one of them is non-reference, with each one's GT."""
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={contig},length={length}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##INFO=<ID=SET,Number=1,Type=String,Description="shared: in every sample of the cohort; partial: in all '
        'but one; private: in one sample only">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    rows = [f"{contig}\t{site.variant.pos}\tcoh{i + 1}\t{site.variant.ref}\t{site.variant.alt}\t.\tPASS\t"
            f"SET={site.group}\tGT\t" + "\t".join(site.genotypes[s] for s in samples)
            for i, site in enumerate(sites) if any(site.genotypes[s] != "0/0" for s in samples)]
    path.write_text("\n".join(header + rows) + "\n")


def read_fasta(path: Path) -> tuple[str, str]:
    """(name, sequence) of a one-record FASTA file."""
    names, seq = [], []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            names.append(line[1:].split()[0])
        else:
            seq.append(line.strip().upper())
    if len(names) != 1:
        raise UserError(f"{path}: {len(names)} FASTA records, the cohort is simulated on one: give the bundled "
                        "inputs/genomics/reference.fa")
    return names[0], "".join(seq)


def _read_fastq(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    return [(lines[i + 1], lines[i + 3]) for i in range(0, len(lines) - 3, 4)]


def _art_version(image_ref: str) -> str:
    query = "dpkg-query -W -f='${Version}' art-nextgen-simulation-tools"
    return subprocess.run(["podman", "run", "--rm", image_ref, "bash", "-c", query],
                          capture_output=True, text=True, check=False).stdout.strip()


Pair = tuple[str, str, str, str]  # R1 sequence, R1 qualities, R2 sequence, R2 qualities


def _lane_reads(pairs: list[Pair], lane: LaneSpec, rng: random.Random,
                used: dict[tuple[int, str, int], set[tuple[int, int, int]]]) -> dict[int, list[str]]:
    """FASTQ lines of R1 and R2 with Illumina names unique on their flowcell lane, in tile order."""
    spot = used.setdefault((lane.run, lane.flowcell, lane.flowcell_lane), set())
    placed = []
    for pair in pairs:
        while True:
            xy = (rng.choice(TILES), rng.randint(1000, 21000), rng.randint(1000, 100000))
            if xy not in spot:
                spot.add(xy)
                break
        placed.append((xy, pair))
    placed.sort(key=lambda p: (p[0][0], p[0][2], p[0][1]))
    out: dict[int, list[str]] = {1: [], 2: []}
    for (tile, x, y), (s1, q1, s2, q2) in placed:
        name = f"@{INSTRUMENT}:{lane.run}:{lane.flowcell}:{lane.flowcell_lane}:{tile}:{x}:{y}"
        out[1].append(f"{name} 1:N:0:{lane.barcode}\n{s1}\n+\n{q1}\n")
        out[2].append(f"{name} 2:N:0:{lane.barcode}\n{s2}\n+\n{q2}\n")
    return out


def generate_cohort(out_dir: Path, reference_fa: Path) -> dict[str, object]:
    """Write the simulated cohort into ``out_dir`` (reads, truth VCFs, sample sheet); return the provenance."""
    if not reference_fa.is_file():
        raise UserError(f"reference '{reference_fa}' not found: run 'batchpipes testdata genomics' first or "
                        "give --reference")
    readsim = containers.build(containers.get("readsim"))
    contig, ref = read_fasta(reference_fa)
    rng = random.Random(COHORT_SEED)
    sites = cohort_sites(ref, rng)
    samples = list(COHORT_SAMPLES)
    out_dir.mkdir(parents=True, exist_ok=True)
    lanes_info: list[dict[str, object]] = []
    samples_info: dict[str, object] = {}
    used: dict[tuple[int, str, int], set[tuple[int, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="batchpipes-cohort-") as tmp:
        work = Path(tmp)
        shutil.copy(reference_fa, work / "reference.fa")
        for i, sample in enumerate(samples):
            carried = [site.variant for site in sites if site.genotypes[sample] != "0/0"]
            hom = [site.variant for site in sites if site.genotypes[sample] == "1/1"]
            pairs: list[Pair] = []
            for h, variants in ((1, carried), (2, hom)):
                prefix = f"{sample}_hap{h}"
                write_fasta(work / f"{prefix}.fa", contig, apply_variants(ref, variants))
                in_container(readsim, work, "art_illumina", "-ss", "HS25", "-i", f"{prefix}.fa", "-p",
                             "-l", str(READ_LENGTH), "-f", str(COHORT_COVERAGE_PER_HAPLOTYPE),
                             "-m", str(FRAGMENT_MEAN), "-s", str(FRAGMENT_SD), "-rs", str(COHORT_SEED + 10 * i + h),
                             "-na", "-o", f"{prefix}_")
                r1, r2 = _read_fastq(work / f"{prefix}_1.fq"), _read_fastq(work / f"{prefix}_2.fq")
                if len(r1) != len(r2):
                    raise RuntimeError(f"ART wrote {len(r1)} R1 and {len(r2)} R2 reads for {prefix}")
                pairs += [(a[0], a[1], b[0], b[1]) for a, b in zip(r1, r2, strict=True)]
            random.Random(COHORT_SEED + 100 * (i + 1)).shuffle(pairs)  # a sequencer's order, not the genome's
            lanes = [lane for lane in COHORT_LANES if lane.sample == sample]
            start = 0
            for k, lane in enumerate(lanes):
                end = len(pairs) if k == len(lanes) - 1 else start + round(lane.share * len(pairs))
                reads = _lane_reads(pairs[start:end], lane, rng, used)
                for mate in (1, 2):
                    _write_gz(out_dir / lane.fastq(mate), reads[mate])
                lanes_info.append({"sample": sample, "lane": lane.lane, "read_pairs": end - start,
                                   "flowcell": lane.flowcell, "flowcell_lane": lane.flowcell_lane,
                                   "run": lane.run, "barcode": lane.barcode, "library": lane.library})
                start = end
            samples_info[sample] = {
                "variants": len(carried), "heterozygous": sum(s.genotypes[sample] == "0/1" for s in sites),
                "indels": sum(len(v.ref) != len(v.alt) for v in carried),
                "private": sum(s.group == "private" and s.genotypes[sample] != "0/0" for s in sites),
                "absent_shared": sum(s.group == "partial" and s.genotypes[sample] == "0/0" for s in sites),
                "read_pairs": len(pairs)}
            write_cohort_vcf(work / f"truth_{sample}.vcf", contig, len(ref), sites, [sample])
        write_cohort_vcf(work / "truth_cohort.vcf", contig, len(ref), sites, samples)
        names = " ".join(f"truth_{s}" for s in [*samples, "cohort"])
        in_container(readsim, work, "bash", "-c",
                     f"for f in {names}; do bcftools norm --no-version -f reference.fa $f.vcf -Oz -o $f.vcf.gz "
                     "&& bcftools index -t $f.vcf.gz || exit 1; done")
        for name in names.split():
            for suffix in (".vcf.gz", ".vcf.gz.tbi"):
                shutil.copy(work / f"{name}{suffix}", out_dir / f"{name}{suffix}")
    sheet = ["\t".join(SHEET_COLUMNS)] + ["\t".join((lane.sample, lane.lane, lane.fastq(1), lane.fastq(2),
                                                      lane.library, PLATFORM)) for lane in COHORT_LANES]
    (out_dir / "samples.tsv").write_text("\n".join(sheet) + "\n")
    groups = [site.group for site in sites]
    provenance: dict[str, object] = {
        "reference": f"{contig}, {len(ref)} bp: {reference_fa.name} of inputs/genomics "
                     f"(sha256 {hashlib.sha256(reference_fa.read_bytes()).hexdigest()})",
        "truth": f"{len(sites)} sites, seed {COHORT_SEED}: {groups.count('shared')} shared by all samples, "
                 f"{groups.count('partial')} shared but 0/0 in one sample, {groups.count('private')} private; "
                 f"{sum(len(s.variant.ref) != len(s.variant.alt) for s in sites)} indels (1-6 bp); genotypes "
                 f"drawn per sample ({HET_FRACTION:.0%} heterozygous); normalised with bcftools norm",
        "simulator": f"ART art_illumina (Debian art-nextgen-simulation-tools {_art_version(readsim)}), HS25 "
                     f"profile, 2x{READ_LENGTH} bp, fragment {FRAGMENT_MEAN}+-{FRAGMENT_SD}, "
                     f"{COHORT_COVERAGE_PER_HAPLOTYPE}x per haplotype",
        "read_names": f"Illumina CASAVA 1.8: @{INSTRUMENT}:<run>:<flowcell>:<lane>:<tile>:<x>:<y> "
                      "<mate>:N:0:<barcode>, unique across the cohort",
        "samples": samples_info,
        "lanes": lanes_info,
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance
