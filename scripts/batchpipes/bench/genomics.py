"""Genomics: the workflow under miniwdl vs the same tools as one bare shell script, same containers and data.

Prints both wall times and their ratio (target: workflow <= 1.10 x bare), and how long the two
branches after alignment (QC, and variant calling + annotation) ran at the same time.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from .. import containers, local, settings, workflows

log = logging.getLogger(__name__)
DATA = settings.INPUTS_DIR / "genomics"

BARE_GENOMICS = r"""
set -euo pipefail
cp /in/reference.fa ref.fa
samtools faidx ref.fa
bwa index ref.fa 2>/dev/null
bwa mem -t {cpu} -K 100000000 -Y -R '@RG\tID:S\tSM:S\tPL:ILLUMINA\tLB:S' ref.fa /in/R1.fastq.gz /in/R2.fastq.gz 2>/dev/null \
  | samtools fixmate -m -u - - | samtools sort -u -@ {cpu} -m 768M -T sorttmp - > sorted.bam
samtools markdup -@ {cpu} -s -f markdup.txt sorted.bam S.bam 2>/dev/null
samtools index S.bam
samtools stats --reference ref.fa S.bam > S.stats.txt
samtools flagstat S.bam > S.flagstat.txt
samtools flagstat -O json S.bam > S.flagstat.json
total=$(awk '{{t += $2}} END {{print t}}' ref.fa.fai)
chunk=$(( (total + {shards} - 1) / {shards} ))
awk -v c="$chunk" '{{for (s = 0; s < $2; s += c) {{e = s + c; if (e > $2) e = $2; print $1 "\t" s "\t" e > ("region_" int(s / c) ".bed")}}}}' ref.fa.fai
for r in region_*.bed; do
  bcftools mpileup -f ref.fa -R "$r" -q 20 -Q 13 -a FORMAT/AD,FORMAT/DP -Ou S.bam 2>/dev/null \
    | bcftools call -m -v -Oz -o "$r.vcf.gz"
done
bcftools concat -Ou region_*.bed.vcf.gz 2>/dev/null | bcftools sort -T ./ -Ou 2>/dev/null | bcftools norm -f ref.fa -d exact -Ou 2>/dev/null \
  | bcftools filter -s LowQual -e 'QUAL<20' -Oz -o S.vcf.gz
bcftools index -t S.vcf.gz
bcftools stats -f PASS -F ref.fa S.vcf.gz > S.vcf.stats.txt
"""

BARE_SNPEFF = r"""
set -euo pipefail
mkdir -p db/data/g
gzip -cd /in/annotation.gbk.gz | awk '/^VERSION/ {{print "VERSION     " $2; next}} {{print}}' > db/data/g/genes.gbk
{{ grep -v '^data.dir' /etc/snpeff/snpEff.config; echo "data.dir = ./data/"; echo "g.genome : g";
   cut -f1 ref.fa.fai | while read -r c; do echo "g.$c.codonTable : Vertebrate_Mitochondrial"; done; }} > db/snpEff.config
java -Xmx3g -jar /usr/share/java/snpeff.jar build -c db/snpEff.config -dataDir "$PWD/db/data" -genbank -noCheckCds -noCheckProtein g 2>/dev/null
java -Xmx3g -jar /usr/share/java/snpeff.jar ann -c db/snpEff.config -dataDir "$PWD/db/data" -nodownload -stats S.html g S.vcf.gz 2>/dev/null | bgzip -c > S.ann.vcf.gz
tabix -p vcf S.ann.vcf.gz
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=8,
                   help="replicate the bundled read pairs this many times (renamed) to amortise start-up")
    p.add_argument("--cpu", type=int, default=2, help="threads for alignment in both runs")
    p.add_argument("--shards", type=int, default=4, help="variant-calling shards in both runs")


def _scaled_reads(work: Path, scale: int) -> tuple[Path, Path]:
    out = []
    for mate in (1, 2):
        lines = gzip.open(DATA / f"sample_R{mate}.fastq.gz", "rt").read().splitlines(keepends=True)
        path = work / f"R{mate}.fastq.gz"
        with gzip.open(path, "wt", compresslevel=1) as fh:
            for copy in range(scale):
                for i, line in enumerate(lines):
                    fh.write(f"@c{copy}_{line[1:]}" if i % 4 == 0 else line)
        out.append(path)
    return out[0], out[1]


def _bare(work: Path, cpu: int, shards: int) -> float:
    genomics = containers.build(containers.get("genomics"))
    snpeff = containers.build(containers.get("snpeff"))
    mount = ["-v", f"{work}:/in:ro"]
    out = work / "bare"
    out.mkdir()
    started = time.monotonic()
    for image, script in ((genomics, BARE_GENOMICS), (snpeff, BARE_SNPEFF)):
        text = script.format(cpu=cpu, shards=shards)
        subprocess.run(["podman", "run", "--rm", "--network", "none", *containers.as_invoker(), *mount, "-v", f"{out}:/w", "-w", "/w",
                        image, "bash", "-c", text], check=True)
    return time.monotonic() - started


_EVENT = re.compile(r"^(\S+ \S+) wdl\.w:\S+ NOTICE (ready|finish) :: job: \"call-([a-z_]+)")


def branch_intervals(run_dir: Path) -> dict[str, tuple[float, float]]:
    """(first ready, last finish) per task name, in seconds, from miniwdl's workflow.log."""
    spans: dict[str, list[float]] = {}
    for line in (run_dir / "workflow.log").read_text().splitlines():
        m = _EVENT.match(line)
        if m:
            t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            spans.setdefault(m[3], []).append(t)
    return {k: (min(v), max(v)) for k, v in spans.items()}


def main(args: argparse.Namespace) -> int:
    flow = workflows.get("genomics")
    with tempfile.TemporaryDirectory(prefix="batchpipes-bench-") as tmp:
        work = Path(tmp)
        r1, r2 = _scaled_reads(work, args.scale)
        for name in ("reference.fa", "annotation.gbk.gz"):
            (work / name).write_bytes((DATA / name).read_bytes())
        inputs = local.prepare_inputs(flow, settings.INPUTS_DIR / "genomics.local.json", {
            "genomics.fastq_r1": str(r1), "genomics.fastq_r2": str(r2),
            "genomics.align_cpu": args.cpu, "genomics.scatter_count": args.shards})
        inputs = local.resolve_images(flow, inputs)  # build/push outside the timed region
        log.info("bare script: %d read pairs", 3300 * args.scale)
        bare = _bare(work, args.cpu, args.shards)
        log.info("workflow under miniwdl")
        started = time.monotonic()
        result = local.run(flow, inputs, run_dir=work / "runs", call_cache=False)
        wf = time.monotonic() - started
        spans = branch_intervals(result.run_dir)
        n_tasks = len(list(result.run_dir.glob("call-*")))
    qc = spans["alignment_qc"]
    calling = (min(spans["call_variants"][0], spans["build_snpeff_db"][0]), spans["annotate_variants"][1])
    overlap = max(0.0, min(qc[1], calling[1]) - max(qc[0], calling[0]))
    print(f"read pairs        {3300 * args.scale}")
    print(f"bare script       {bare:7.1f} s  (2 containers, tools in sequence)")
    print(f"workflow          {wf:7.1f} s  (miniwdl, {n_tasks} task containers)")
    print(f"ratio             {wf / bare:7.2f} x  (target <= 1.10)")
    print(f"QC branch         {qc[1] - qc[0]:7.1f} s; calling+annotation branch {calling[1] - calling[0]:.1f} s; "
          f"overlap {overlap:.1f} s")
    print(f"snpEff database built during alignment: "
          f"{spans['build_snpeff_db'][0] < spans['align_reads'][1]}")
    return 0
