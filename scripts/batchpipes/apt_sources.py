"""The Debian mirror to build from, read from this machine's apt sources as apt reads them.

apt reads ``/etc/apt/sources.list`` (one-line format: ``deb [options] URI suite components...``) and then
the files of ``/etc/apt/sources.list.d/`` in name order: ``*.list`` in the one-line format, ``*.sources`` in
the deb822 format (stanzas of ``Types:``, ``URIs:``, ``Suites:`` ... fields). The mirror of a suite is the
first URI of the first ``deb`` entry that names that suite. ``BATCHPIPES_DEBIAN_MIRROR`` and
``BATCHPIPES_DEBIAN_SECURITY_MIRROR`` override what the sources say; deb.debian.org is used only when
neither they nor the sources name a mirror.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The Debian release every image is built on (``debian:bookworm-slim``).
SUITE = "bookworm"
#: Used only when neither the environment nor the apt sources name a mirror.
FALLBACK_MIRROR = "http://deb.debian.org/debian"
FALLBACK_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
#: URI schemes debootstrap and apt inside a build can fetch from.
_USABLE = re.compile(r"(https?|ftp)://\S+|file:/\S*")


@dataclass(frozen=True)
class Source:
    """One apt source entry: its type (``deb``/``deb-src``), URIs and suites."""

    type: str
    uris: tuple[str, ...]
    suites: tuple[str, ...]


def parse_one_line(text: str) -> list[Source]:
    """Entries of a ``sources.list`` file: ``deb [options] URI suite [components]``, ``#`` comments."""
    found = []
    for line in text.splitlines():
        line = re.sub(r"^(\s*deb(?:-src)?\s+)\[[^\]]*\]", r"\1", line.split("#", 1)[0])  # [option=value ...]
        words = line.split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src"):
            found.append(Source(words[0], (words[1],), (words[2],)))
    return found


def parse_deb822(text: str) -> list[Source]:
    """Entries of a ``*.sources`` file (deb822 stanzas); stanzas with ``Enabled: no`` are left out."""
    found = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:  # a continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        uris, suites = tuple(fields.get("uris", "").split()), tuple(fields.get("suites", "").split())
        for kind in fields.get("types", "").split():
            if uris and suites:
                found.append(Source(kind, uris, suites))
    return found


def read_sources(etc_apt: Path = Path("/etc/apt")) -> Iterator[Source]:
    """Every entry of the machine's apt sources, in the order apt reads them; unreadable files are skipped."""
    parts = etc_apt / "sources.list.d"
    files = [etc_apt / "sources.list"] + (sorted(parts.iterdir()) if parts.is_dir() else [])
    for path in files:
        if path.suffix not in (".list", ".sources") or not path.is_file():
            continue
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        yield from (parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text))


def mirror_of(suite: str, sources: Iterator[Source] | list[Source]) -> str | None:
    """The first usable URI of the first ``deb`` entry naming ``suite``, without its trailing slash."""
    for source in sources:
        if source.type != "deb" or suite not in source.suites:
            continue
        usable = [u for u in source.uris if _USABLE.fullmatch(u)]
        if usable:
            return usable[0].rstrip("/")
    return None


def debian_mirror(etc_apt: Path = Path("/etc/apt"), env: Mapping[str, str] = os.environ) -> str:
    """The Debian archive to debootstrap and build from: the environment, else the apt sources, else deb.debian.org."""
    return (env.get("BATCHPIPES_DEBIAN_MIRROR") or mirror_of(SUITE, read_sources(etc_apt))
            or FALLBACK_MIRROR).rstrip("/")


def security_mirror(etc_apt: Path = Path("/etc/apt"), env: Mapping[str, str] = os.environ) -> str:
    """The Debian security archive: ``BATCHPIPES_DEBIAN_SECURITY_MIRROR``, else ``debian-security`` beside a
    ``.../debian`` mirror given by ``BATCHPIPES_DEBIAN_MIRROR``, else the apt sources' ``bookworm-security``
    entry, else ``debian-security`` beside the main mirror, else deb.debian.org."""
    main = debian_mirror(etc_apt, env)
    beside = main[: -len("/debian")] + "/debian-security" if main.endswith("/debian") else None
    given = env.get("BATCHPIPES_DEBIAN_SECURITY_MIRROR") or (env.get("BATCHPIPES_DEBIAN_MIRROR") and beside) \
        or mirror_of(f"{SUITE}-security", read_sources(etc_apt)) or beside or FALLBACK_SECURITY_MIRROR
    return given.rstrip("/")
