"""``batchpipes images``: build, list, lock and pin the container images of ``containers/``."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from . import containers, settings
from .errors import UserError

log = logging.getLogger(__name__)

#: A pinned default in WDL: ``String <x>_image = "batchpipes/<name>:<12 hex>"``.
PIN_RE = re.compile(r'"(?P<repo>batchpipes/(?P<name>[a-z0-9][a-z0-9-]*)):(?P<tag>[0-9a-f]{12})"')


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("images", help="build, list and pin container images",
                       description="Build, list and pin the images under containers/.")
    isub = p.add_subparsers(dest="images_command", metavar="ACTION", required=True)

    b = isub.add_parser("build", help="build images (cached by content hash) and push them to "
                        "the registry on 127.0.0.1")
    b.add_argument("names", nargs="*", help="image names (default: every locally buildable image)")
    b.add_argument("--no-push", action="store_true", help="build only; do not start or push to the registry")
    b.set_defaults(func=_build)

    ls = isub.add_parser("list", help="list images with their content-hash tags")
    ls.set_defaults(func=_list)

    c = isub.add_parser("check-pins", help="fail if a WDL default image tag differs from its content hash "
                        "or an image folder lacks its packages.lock")
    c.set_defaults(func=_check_pins)

    lk = isub.add_parser(
        "lock", help="install each image's packages afresh and write containers/<name>/packages.lock",
        description="Build the 'packages' stage of each image without the layer cache, list its Debian "
        "packages with dpkg-query and write containers/<name>/packages.lock (only when it changed). The "
        "Dockerfile fails the build when the installed packages differ from the lock, so the content-hash "
        "tag pins the binaries. Review the diff, then run 'batchpipes images pin'.")
    lk.add_argument("names", nargs="*", help="image names (default: every locally buildable image)")
    lk.add_argument("--build-host", action="store_true",
                    help="this is the build host of images marked local_build = false (GPU images): lock "
                    "them too, from their Dockerfile's own base image, with podman or docker")
    lk.set_defaults(func=_lock)

    pin = isub.add_parser("pin", help="rewrite WDL default image tags to the current content hashes")
    pin.set_defaults(func=_pin)


def _build(args: argparse.Namespace) -> int:
    images = containers.discover()
    names = args.names or [n for n, i in images.items() if i.local_build]
    for name in names:
        image = containers.get(name)
        ref = containers.build(image) if args.no_push else containers.publish_local(image)
        print(ref)
    return 0


def _lock(args: argparse.Namespace) -> int:
    images = containers.discover()
    names = args.names or [n for n, i in images.items() if i.local_build or args.build_host]
    chosen = [containers.get(name) for name in names]  # every name checked before anything is built
    changed = [image.name for image in chosen if containers.write_lock(image, build_host=args.build_host)]
    for image in chosen:
        state = "changed" if image.name in changed else "unchanged"
        print(f"{image.shown}/{containers.LOCK_FILE} {state}")
    if changed:
        log.info("locks changed (%s): review 'git diff containers/', then run 'batchpipes images pin'",
                 ", ".join(changed))
    return 0


def _list(args: argparse.Namespace) -> int:
    for image in containers.discover().values():
        where = "local" if image.local_build else "GPU build host"
        print(f"{image.name:16} {image.pinned:40} {where:15} {image.description}")
    return 0


def wdl_pins(wdl_dir: Path | None = None) -> list[tuple[Path, int, str, str]]:
    """Every pinned image in the WDL: (file, line number, image name, tag)."""
    found = []
    for path in sorted((wdl_dir or settings.WDL_DIR).rglob("*.wdl")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in PIN_RE.finditer(line):
                found.append((path, lineno, m["name"], m["tag"]))
    return found


def stale_pins() -> list[str]:
    """Problems with the images the WDL pins: a tag that is not the folder's content hash, an image
    without a folder, a folder without a (well-formed) packages.lock. One line each."""
    images = containers.discover()
    problems = containers.lock_problems(images)
    for path, lineno, name, tag in wdl_pins():
        rel = path.relative_to(settings.REPO_ROOT) if path.is_relative_to(settings.REPO_ROOT) else path
        if name not in images:
            problems.append(f"{rel}:{lineno}: image '{name}' has no folder under containers/")
        elif images[name].tag != tag:
            problems.append(f"{rel}:{lineno}: {name} pinned at {tag}, containers/{name} hashes to "
                            f"{images[name].tag} (run: batchpipes images pin)")
    return problems


def _check_pins(args: argparse.Namespace) -> int:
    problems = stale_pins()
    if problems:
        raise UserError("; ".join(problems))
    print("all WDL image pins match containers/ and every image has its packages.lock")
    return 0


def _pin(args: argparse.Namespace) -> int:
    images = containers.discover()
    for path in sorted(settings.WDL_DIR.rglob("*.wdl")):
        text = path.read_text()

        def repl(m: re.Match[str]) -> str:
            img = images.get(m["name"])
            return f'"{m["repo"]}:{img.tag}"' if img else m.group(0)

        new = PIN_RE.sub(repl, text)
        if new != text:
            path.write_text(new)
            log.info("re-pinned %s", path.relative_to(settings.REPO_ROOT))
    return 0
