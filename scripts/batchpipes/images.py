"""Image pins: the ``batchpipes/<name>:<content hash>`` defaults the WDL names, checked and rewritten.

A WDL ``String <x>_image`` input defaults to a pinned reference ``batchpipes/<name>:<12 hex>``, where the
tag is the content hash of ``containers/<name>/`` (see :mod:`batchpipes.containers`). This module owns
finding those pins (:func:`wdl_pins`), reporting stale ones (:func:`stale_pins`), rewriting them
(:func:`repin`) and resolving a pinned value to its :class:`~batchpipes.containers.Image`
(:func:`resolve_pinned`), for local runs and AWS runs alike.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from . import containers, locks, settings
from .containers import Image
from .errors import UserError

log = logging.getLogger(__name__)

#: A pinned default in WDL: ``String <x>_image = "batchpipes/<name>:<12 hex>"`` (with the quotes).
PIN_RE = re.compile(r'"(?P<repo>batchpipes/(?P<name>[a-z0-9][a-z0-9-]*)):(?P<tag>[0-9a-f]{12})"')


def is_pinned(value: str) -> bool:
    """True when ``value`` (unquoted) is a pinned ``batchpipes/<name>:<tag>`` reference."""
    return PIN_RE.fullmatch(f'"{value}"') is not None


def resolve_pinned(value: str, key: str, images: dict[str, Image] | None = None) -> Image | None:
    """The image a pinned ``batchpipes/<name>:<tag>`` value names, checked against ``containers/``.

    Returns None when ``value`` is not a pinned batchpipes reference (the user's own image). Raises
    :class:`UserError` (naming the input ``key``) when the image has no folder under ``containers/`` or
    the tag is not the folder's current content hash.
    """
    m = PIN_RE.fullmatch(f'"{value}"')
    if m is None:
        return None
    images = containers.discover() if images is None else images
    image = images.get(m["name"])
    if image is None:
        raise UserError(f"{key} names unknown image '{value}': known images are "
                        f"{', '.join(sorted(images)) or 'none'} (folders under containers/)")
    if image.tag != m["tag"]:
        raise UserError(f"{key} is {value} but containers/{image.name} is at {image.tag}: "
                        "run 'batchpipes images pin' or give the current tag")
    return image


def wdl_pins(wdl_dir: Path | None = None) -> list[tuple[Path, int, str, str]]:
    """Every pinned image in the WDL: (file, line number, image name, tag)."""
    found = []
    for path in sorted((wdl_dir or settings.WDL_DIR).rglob("*.wdl")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in PIN_RE.finditer(line):
                found.append((path, lineno, m["name"], m["tag"]))
    return found


def _shown(path: Path) -> Path:
    return path.relative_to(settings.REPO_ROOT) if path.is_relative_to(settings.REPO_ROOT) else path


def stale_pins(wdl_dir: Path | None = None, images: dict[str, Image] | None = None) -> list[str]:
    """Problems with the images the WDL pins: a tag that is not the folder's content hash, an image
    without a folder, a folder without a (well-formed) packages.lock. One line each."""
    images = containers.discover() if images is None else images
    problems = locks.lock_problems(images)
    tags: dict[str, str] = {}
    for name, image in images.items():
        try:
            tags[name] = image.tag
        except UserError as exc:  # e.g. a shared file that is missing
            problems.append(str(exc))
    for path, lineno, name, tag in wdl_pins(wdl_dir):
        if name not in images:
            problems.append(f"{_shown(path)}:{lineno}: image '{name}' has no folder under containers/")
        elif name in tags and tags[name] != tag:
            problems.append(f"{_shown(path)}:{lineno}: {name} pinned at {tag}, containers/{name} hashes to "
                            f"{tags[name]} (run: batchpipes images pin)")
    return problems


def repin_text(text: str, images: dict[str, Image]) -> str:
    """``text`` with every pinned tag of a known image replaced by that image's content hash."""

    def repl(m: re.Match[str]) -> str:
        image = images.get(m["name"])
        return f'"{m["repo"]}:{image.tag}"' if image else m.group(0)

    return PIN_RE.sub(repl, text)


def repin(wdl_dir: Path | None = None, images: dict[str, Image] | None = None) -> list[Path]:
    """Rewrite the pinned tags of every WDL file to the current content hashes; return the files changed."""
    images = containers.discover() if images is None else images
    changed = []
    for path in sorted((wdl_dir or settings.WDL_DIR).rglob("*.wdl")):
        text = path.read_text()
        new = repin_text(text, images)
        if new != text:
            path.write_text(new)
            log.info("re-pinned %s", _shown(path))
            changed.append(path)
    return changed
