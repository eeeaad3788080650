"""A small GenBank reader: the record name, its sequence, and CDS spans with gene names."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    kind: str
    start: int  # 0-based, inclusive
    end: int  # 0-based, exclusive
    gene: str


@dataclass(frozen=True)
class Record:
    locus: str
    version: str  # accession.version from the VERSION line ("" when absent)
    sequence: str
    features: list[Feature]


_FEATURE = re.compile(r"^ {5}(\S+)\s+(\S.*)$")
_QUALIFIER = re.compile(r'^ {21}/(\w+)(?:="?([^"]*)"?)?')


def parse(text: str) -> Record:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("LOCUS"):
        raise ValueError("not a GenBank record: the first line does not start with LOCUS")
    locus = lines[0].split()[1]
    version = next((ln.split()[1] for ln in lines if ln.startswith("VERSION") and len(ln.split()) > 1), "")
    features: list[Feature] = []
    seq_parts: list[str] = []
    section = ""
    current: tuple[str, str] | None = None
    gene = ""

    def close() -> None:
        if current is not None:
            numbers = [int(n) for n in re.findall(r"\d+", current[1])]
            if numbers:
                features.append(Feature(current[0], min(numbers) - 1, max(numbers), gene))

    for line in lines[1:]:
        if line.startswith("FEATURES"):
            section = "features"
            continue
        if line.startswith("ORIGIN"):
            close()
            current = None
            section = "origin"
            continue
        if line.startswith("//"):
            break
        if section == "features":
            m = _FEATURE.match(line)
            if m:
                close()
                current, gene = (m[1], m[2]), ""
                continue
            q = _QUALIFIER.match(line)
            if q and q[1] == "gene" and current is not None:
                gene = q[2] or ""
            elif current is not None and line.startswith(" " * 21) and not line.strip().startswith("/") and not gene:
                if not any(c.isalpha() for c in line.strip()[:1]):
                    current = (current[0], current[1] + line.strip())
        elif section == "origin":
            seq_parts.append("".join(ch for ch in line if ch.isalpha()))
    sequence = "".join(seq_parts).upper()
    if not sequence:
        raise ValueError("GenBank record has no ORIGIN sequence")
    return Record(locus=locus, version=version, sequence=sequence, features=features)
