"""containers/shared/gmx_data.py: the force-field folder of GROMACS, found once for ``gromacs-tasks``
(prepare-system) and ``prepare-structure``.

Fast lane: the folder from the real ``gmx --version`` output recorded in the gromacs image
(tests/data/gromacs_scripts/gmx-version.out), GMXDATA first, the fallbacks; ``gmx`` itself is a stand-in on a
private PATH that prints that recorded output (the host has no GROMACS), to check what is run and when. Both
programs use this module (not copies of it), and every image that ships one of them ships it. Container lane: in the
built gromacs image, the real ``gmx`` gives the folder that holds the force fields, and both programs start.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from batchpipes import containers, settings
from scriptload import load_script

SHARED = settings.CONTAINERS_DIR / "shared"
gmx_data = load_script(SHARED / "gmx_data.py")
gt = load_script(SHARED / "gromacs_tasks.py")
ps = load_script(settings.CONTAINERS_DIR / "gromacs" / "prepare_structure.py")
VERSION = (Path(__file__).parent / "data" / "gromacs_scripts" / "gmx-version.out").read_text()
DEBIAN_TOP = Path("/usr/share/gromacs/top")


def stand_in_gmx(folder: Path, version_text: str) -> Path:
    """A ``gmx`` in ``folder`` that prints ``version_text`` and, below it, its LC_ALL; each run leaves a line in
    ``folder/runs``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "version.out").write_text(version_text)
    gmx = folder / "gmx"
    gmx.write_text(f'#!/bin/sh\necho "$*" >> {folder}/runs\nPATH=/usr/bin:/bin cat {folder}/version.out\n'
                   'echo "LC_ALL=$LC_ALL"\n')
    gmx.chmod(0o755)
    return folder / "runs"


def test_folder_from_the_recorded_version_output() -> None:
    assert gmx_data.data_prefix(VERSION) == "/usr"
    assert gmx_data.force_field_dir(VERSION, {}) == DEBIAN_TOP
    assert gmx_data.force_field_dir(VERSION.replace("Data prefix:  /usr", "Data prefix:  /opt/gromacs"), {}) == \
        Path("/opt/gromacs/share/gromacs/top")
    # no "Data prefix" line (a gmx that printed nothing): Debian's folder
    assert gmx_data.data_prefix("") == ""
    assert gmx_data.force_field_dir("", {}) == DEBIAN_TOP == gmx_data.DEFAULT_TOP


def test_gmxdata_comes_first() -> None:
    env = {"GMXDATA": "/opt/gromacs/share/gromacs"}  # as the gromacs-cuda image sets it
    assert gmx_data.force_field_dir(VERSION, env) == Path("/opt/gromacs/share/gromacs/top")
    assert gmx_data.force_field_dir("", env) == Path("/opt/gromacs/share/gromacs/top")
    assert gmx_data.force_field_dir(VERSION, {"GMXDATA": ""}) == DEBIAN_TOP, "an empty GMXDATA is not set"


def test_the_gmx_on_path_is_asked_in_the_c_locale(tmp_path: Path) -> None:
    runs = stand_in_gmx(tmp_path / "bin", VERSION.replace("Data prefix:  /usr", "Data prefix:  /opt/g"))
    env = {"PATH": str(tmp_path / "bin"), "LC_ALL": "de_DE.UTF-8"}
    text = gmx_data.gmx_version(env)
    assert text.startswith(VERSION.replace("Data prefix:  /usr", "Data prefix:  /opt/g"))
    assert text.endswith("LC_ALL=C\n")
    assert runs.read_text() == "--version\n"
    assert gmx_data.gmx_force_field_dir(env) == Path("/opt/g/share/gromacs/top")
    assert runs.read_text() == "--version\n--version\n"


def test_gmxdata_set_means_gmx_is_not_run(tmp_path: Path) -> None:
    runs = stand_in_gmx(tmp_path / "bin", VERSION)
    env = {"PATH": str(tmp_path / "bin"), "GMXDATA": str(tmp_path / "data")}
    assert gmx_data.gmx_force_field_dir(env) == tmp_path / "data" / "top"
    assert not runs.exists()


def test_no_gmx_to_start(tmp_path: Path) -> None:
    """prepare-structure's lookup falls back to Debian's folder (its force field check then names what is missing);
    ``gmx_version`` raises the OSError that gromacs-tasks reports as its one ERROR line."""
    env = {"PATH": str(tmp_path)}
    assert gmx_data.gmx_force_field_dir(env) == DEBIAN_TOP
    with pytest.raises(FileNotFoundError):
        gmx_data.gmx_version(env)


def test_both_programs_use_this_module() -> None:
    assert ps.gmx_force_field_dir is gmx_data.gmx_force_field_dir
    assert gt.force_field_dir is gmx_data.force_field_dir
    assert gt.gmx_version is gmx_data.gmx_version
    for program in (SHARED / "gromacs_tasks.py", settings.CONTAINERS_DIR / "gromacs" / "prepare_structure.py"):
        text = program.read_text()
        assert "Data prefix" not in text and "os.environ.get(\"GMXDATA" not in text, f"{program.name}: own lookup"
        assert '"gmx", "--version"' not in text, f"{program.name} runs gmx --version itself"


def test_every_image_with_a_gromacs_program_ships_gmx_data() -> None:
    """gromacs-tasks and prepare-structure import gmx_data beside them (/usr/local/bin): an image that installs
    either names gmx_data.py in image.toml's ``shared`` and copies it there."""
    with_programs, lacking = [], []
    for name, image in sorted(containers.discover().items()):
        dockerfile = (image.context / "Dockerfile").read_text()
        if not re.search(r"^COPY\s+(?:shared/)?(?:gromacs_tasks|prepare_structure)\.py\s", dockerfile, re.M):
            continue
        with_programs.append(name)
        if "gmx_data.py" not in image.shared:
            lacking.append(f"{name}/image.toml: shared lacks gmx_data.py")
        if "COPY shared/gmx_data.py /usr/local/bin/gmx_data.py\n" not in dockerfile:
            lacking.append(f"{name}/Dockerfile: no COPY shared/gmx_data.py /usr/local/bin/gmx_data.py")
    assert {"gromacs", "gromacs-cuda"} <= set(with_programs)
    assert not lacking, lacking


# -- in the built image ------------------------------------------------------------------------------------------

IN_IMAGE = r"""
set -eu
where() { python3 -c 'import sys; sys.path.insert(0, "/usr/local/bin"); import gmx_data
print(gmx_data.gmx_force_field_dir())'; }
echo "found: $(where)"
echo "gmxdata: $(GMXDATA=/opt/elsewhere where)"
ls "$(where)/oplsaa.ff/forcefield.itp" "$(where)/amber99sb-ildn.ff/forcefield.itp"
gromacs-tasks --help >/dev/null && echo "gromacs-tasks starts"
prepare-structure --help >/dev/null && echo "prepare-structure starts"
"""


@pytest.mark.containers
def test_the_image_finds_its_force_fields(podman_ready: None) -> None:
    ref = containers.build(containers.get("gromacs"))
    proc = subprocess.run(["podman", "run", "--rm", ref, "bash", "-c", IN_IMAGE], capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "found: /usr/share/gromacs/top", "gmxdata: /opt/elsewhere/top",
        "/usr/share/gromacs/top/amber99sb-ildn.ff/forcefield.itp", "/usr/share/gromacs/top/oplsaa.ff/forcefield.itp",
        "gromacs-tasks starts", "prepare-structure starts"]
