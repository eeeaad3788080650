"""miniwdl's ``[podman] exe`` for local runs as root: ``python -m batchpipes.podman_shim run ...``.

Task containers run as the unprivileged user of the image (``USER 10001:10001``, see
:data:`batchpipes.containers.TASK_USER`). As root, miniwdl calls this shim instead of podman: it adds
podman's ``:U`` option to the task's writable bind mounts (the task folder, stdout.txt, stderr.txt) so that
the image's user owns them, and refuses, with one line, a task whose inputs that user cannot read. As any
other user miniwdl runs the container as that user (``[task_runtime] as_user``) through ``sudo -n podman``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

from .podman import PODMAN_HINT


def task_podman_exe() -> list[str]:
    """miniwdl's ``[podman] exe``: as root, this module's shim; otherwise ``sudo -n podman`` (with ``as_user``)."""
    if os.geteuid() == 0:
        return [sys.executable, "-m", "batchpipes.podman_shim"]
    return ["sudo", "-n", "podman"]


def miniwdl_podman_config() -> str:
    """The ``[podman]`` and ``[task_runtime]`` sections of the miniwdl configuration."""
    as_user = os.geteuid() != 0
    return (f"[podman]\nexe = {json.dumps(task_podman_exe())}\n\n"
            "# as root, tasks run as the image's unprivileged user; otherwise as the invoking user\n"
            f"[task_runtime]\nas_user = {str(as_user).lower()}\n\n")


def task_run_args(args: list[str]) -> list[str]:
    """Rewrite miniwdl's ``podman run`` arguments: every writable ``-v`` bind mount gets ``:U``.

    podman then makes the container's user (the image's ``USER``, or ``--user``) own the mounted
    task folder and log files, so an unprivileged task user can write its outputs. Read-only mounts
    (the inputs, the command) are left alone: podman must not take over the user's files. Anything
    other than ``run`` passes through unchanged.
    """
    if not args or args[0] != "run":
        return list(args)
    out = list(args)
    for i in range(1, len(out) - 1):
        if out[i] in ("-v", "--volume"):
            spec = out[i + 1]
            parts = spec.split(":")
            if len(parts) == 2:
                out[i + 1] = f"{spec}:U"
            elif len(parts) == 3 and not {"ro", "U"} & set(parts[2].split(",")):
                out[i + 1] = f"{spec},U"
            elif len(parts) == 3 and os.path.basename(os.path.dirname(parts[0])) == "write_" \
                    and os.path.isfile(parts[0]):
                # miniwdl's write_lines/write_json files (the task's write_/ folder) are 0600 root
                # temporaries: the unprivileged task user must be able to read them.
                os.chmod(parts[0], 0o644)
    return out


def _mounts(args: list[str]) -> list[tuple[str, str, list[str]]]:
    """(host path, container path, options) of every ``-v`` in ``podman run`` arguments."""
    found = []
    for i in range(1, len(args) - 1):
        if args[i] in ("-v", "--volume"):
            host, _, rest = args[i + 1].partition(":")
            target, _, opts = rest.partition(":")
            found.append((host, target, [o for o in opts.split(",") if o]))
    return found


def _numeric_user(spec: str) -> tuple[int, int | None] | None:
    """``uid[:gid]`` of a numeric ``USER``/``--user`` value; None for root, names and empty."""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", spec)
    if m is None or int(m[1]) == 0:
        return None
    return int(m[1]), int(m[2]) if m[2] else None


def unreadable_inputs(args: list[str], user: tuple[int, int | None]) -> list[str]:
    """Host paths of the read-only mounts in ``podman run`` arguments that ``user`` cannot read."""
    uid, gid = user
    bad = []
    for host, _target, opts in _mounts(args):
        if "ro" not in opts:
            continue
        try:
            st = os.stat(host)
        except OSError:
            continue  # podman reports a missing source itself
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        if st.st_uid == uid:
            need <<= 6
        elif gid is not None and st.st_gid == gid:
            need <<= 3
        if st.st_mode & need != need:
            bad.append(host)
    return bad


def main(argv: list[str]) -> int:
    """Run podman with miniwdl's arguments ``argv``, rewritten by :func:`task_run_args`; refuse a task whose
    read-only inputs its user cannot read, with one ERROR line."""
    exe = shutil.which("podman")
    if exe is None:
        print(f"error: 'podman' is not installed: {PODMAN_HINT}", file=sys.stderr)
        return 127
    args = task_run_args(argv)
    if args and args[0] == "run" and len(args) > 4 and args[-3:-1] == ["/bin/sh", "-c"]:
        given = next((args[i + 1] for i in range(len(args) - 1) if args[i] == "--user"), None)
        spec = given if given is not None else subprocess.run(
            [exe, "image", "inspect", "--format", "{{.Config.User}}", args[-4]],
            capture_output=True, text=True, check=False).stdout.strip()
        user = _numeric_user(spec)
        bad = unreadable_inputs(args, user) if user else []
        if user and bad:
            line = (f"ERROR: input {bad[0]} is not readable by the task user (uid {user[0]}): make it readable "
                    "('chmod a+r', and a+x on folders) or run batchpipes as a non-root user")
            print(line, file=sys.stderr)
            stderr_txt = next((h for h, t, o in _mounts(args) if t.endswith("/stderr.txt") and "ro" not in o), "")
            if stderr_txt:
                with open(stderr_txt, "a") as fh:
                    fh.write(line + "\n")
            return 1
    os.execv(exe, [exe, *args])
    return 127  # not reached


if __name__ == "__main__":  # miniwdl's podman: ``python -m batchpipes.podman_shim run ...``
    sys.exit(main(sys.argv[1:]))
