"""Where GROMACS keeps its data: the force-field folder (``share/gromacs/top``) of the ``gmx`` on PATH, for
``gromacs-tasks`` (prepare-system) and ``prepare-structure`` (Python 3.10+ standard library only).

The folder is ``$GMXDATA/top`` when GMXDATA is set (as GROMACS itself reads it; the gromacs-cuda image sets it),
else ``share/gromacs/top`` under the "Data prefix" line of ``gmx --version``, else Debian's
``/usr/share/gromacs/top`` (no such line, or no ``gmx`` to ask).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

DEFAULT_PREFIX = Path("/usr")
DEFAULT_TOP = DEFAULT_PREFIX / "share" / "gromacs" / "top"


def gmx_version(env: Mapping[str, str] | None = None) -> str:
    """The standard output of ``gmx --version`` (in the C locale); an OSError when ``gmx`` cannot be started."""
    return subprocess.run(["gmx", "--version"], capture_output=True, text=True, check=False,
                          env={**(os.environ if env is None else env), "LC_ALL": "C"}).stdout


def data_prefix(version_text: str) -> str:
    """The value of the "Data prefix:" line of ``gmx --version`` output, "" without one."""
    return next((line.split(":", 1)[1].strip() for line in version_text.splitlines()
                 if line.startswith("Data prefix")), "")


def force_field_dir(version_text: str, env: Mapping[str, str] | None = None) -> Path:
    """The force-field folder: ``$GMXDATA/top`` when GMXDATA is set (in ``env``, default os.environ) and not empty,
    else ``share/gromacs/top`` under the data prefix of ``version_text`` (``gmx --version`` output; /usr without
    one)."""
    gmxdata = (os.environ if env is None else env).get("GMXDATA", "")
    if gmxdata:
        return Path(gmxdata) / "top"
    return Path(data_prefix(version_text) or DEFAULT_PREFIX) / "share" / "gromacs" / "top"


def gmx_force_field_dir(env: Mapping[str, str] | None = None) -> Path:
    """The force-field folder of the ``gmx`` on PATH (:func:`force_field_dir`); ``gmx --version`` runs only when
    GMXDATA is not set, and a ``gmx`` that cannot be started gives the default folder."""
    environ = os.environ if env is None else env
    if environ.get("GMXDATA"):
        return force_field_dir("", environ)
    try:
        text = gmx_version(environ)
    except OSError:
        return DEFAULT_TOP
    return force_field_dir(text, environ)
