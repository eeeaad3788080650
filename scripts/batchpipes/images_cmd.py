"""``batchpipes images``: build, list, lock and pin the container images of ``containers/``."""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from . import containers, images, locks
from .errors import UserError

log = logging.getLogger(__name__)


CONTEXT_HELP = (
    "Write the build context of image NAME into DIR (new or empty): the files of containers/NAME/ plus the files "
    "its image.toml lists in 'shared = [...]', copied from containers/shared/ to DIR/shared/. 'batchpipes images "
    "build' and 'lock' build from the same context. To build with plain docker (e.g. on the GPU build host): "
    "'batchpipes images context NAME DIR' prints the command to run, 'docker build --build-arg "
    "DEBIAN_MIRROR=<this machine's Debian mirror> -t batchpipes/NAME:<content hash> DIR'.")


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

    ctx = isub.add_parser("context", help="write an image's build context to a folder, for a plain "
                          "'docker build'", description=CONTEXT_HELP)
    ctx.add_argument("name", help="image name (a folder under containers/)")
    ctx.add_argument("dir", type=Path, help="new or empty folder to write the context to")
    ctx.set_defaults(func=_context)

    pin = isub.add_parser("pin", help="rewrite WDL default image tags to the current content hashes")
    pin.set_defaults(func=_pin)


def _build(args: argparse.Namespace) -> int:
    found = containers.discover()
    names = args.names or [n for n, i in found.items() if i.local_build]
    for name in names:
        image = containers.get(name)
        ref = containers.build(image) if args.no_push else containers.publish_local(image)
        print(ref)
    return 0


def _lock(args: argparse.Namespace) -> int:
    found = containers.discover()
    names = args.names or [n for n, i in found.items() if i.local_build or args.build_host]
    chosen = [containers.get(name) for name in names]  # every name checked before anything is built
    changed = [image.name for image in chosen if locks.write_lock(image, build_host=args.build_host)]
    for image in chosen:
        state = "changed" if image.name in changed else "unchanged"
        print(f"{image.shown}/{containers.LOCK_FILE} {state}")
    if changed:
        log.info("locks changed (%s): review 'git diff containers/', then run 'batchpipes images pin'",
                 ", ".join(changed))
    return 0


def _context(args: argparse.Namespace) -> int:
    image = containers.get(args.name)
    containers.write_context(image, args.dir)
    print(shlex.join(["docker", "build", *containers.build_args(None), "-t", image.pinned, str(args.dir)]))
    return 0


def _list(args: argparse.Namespace) -> int:
    for image in containers.discover().values():
        where = "local" if image.local_build else "GPU build host"
        print(f"{image.name:16} {image.pinned:40} {where:15} {image.description}")
    return 0


def _check_pins(args: argparse.Namespace) -> int:
    problems = images.stale_pins()
    if problems:
        raise UserError("; ".join(problems))
    print("all WDL image pins match containers/ and every image has its packages.lock")
    return 0


def _pin(args: argparse.Namespace) -> int:
    images.repin()
    return 0
