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
        genotype = "0/1" if rng.random() < 0.3 else "1/1"
        base = reference[pos - 1]
        if kind == "snp":
            alt = rng.choice([b for b in "ACGT" if b != base])
            chosen.append(Variant(pos, base, alt, genotype))
        else:
            length = rng.randint(1, 6)
            if rng.random() < 0.5:  # deletion of the `length` bases after the anchor
                chosen.append(Variant(pos, reference[pos - 1: pos + length], base, genotype))
            else:
                insert = "".join(rng.choice("ACGT") for _ in range(length))
                if _low_complexity(base + insert + reference[pos: pos + 3]):
                    continue
                chosen.append(Variant(pos, base, base + insert, genotype))
        taken.append(pos)
    return sorted(chosen, key=lambda v: v.pos)


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
