"""What ``batchpipes aws cromwell-command`` writes and prints: the ``--imports`` zip of a workflow and the
``java -jar cromwell.jar run`` line."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import WDL

from .. import workflows
from ..errors import UserError
from ..files import read_json_object


def import_closure(top: Path) -> dict[str, Path]:
    """Every file ``top`` imports, directly or not: zip member name (relative to top's folder) -> path."""
    root = top.parent.resolve()
    found: dict[str, Path] = {}

    def visit(doc: WDL.Document) -> None:
        for imp in doc.imports:
            assert imp.doc is not None
            path = Path(imp.doc.pos.abspath).resolve()
            if not path.is_relative_to(root):
                raise UserError(f"{top.name} imports {imp.uri}, which is outside {root}: "
                                "keep imported WDL under the workflow's folder")
            arc = path.relative_to(root).as_posix()
            if arc not in found:
                found[arc] = path
                visit(imp.doc)

    visit(workflows.load(top))
    return found


def build_imports_zip(top: Path, dest: Path) -> Path:
    """Write the ``--imports`` zip of ``top`` (reproducible: fixed timestamps, sorted members)."""
    members = import_closure(top)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(members):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[arc].read_bytes())
    os.replace(tmp, dest)
    return dest


def java_command(config: Path, workflow: Path, inputs: Path, imports: Path, options: Path | None,
                 jar: str, region: str | None = None) -> list[str]:
    """The ``java ... cromwell.jar run`` line; ``region`` (AWS runs) becomes ``-Daws.region``.

    Cromwell's ECR digest lookup (call caching) builds its client with ``EcrClient.create()``
    (dockerHashing/.../flows/aws/AmazonEcr.scala), i.e. the AWS SDK's default region chain -- the ``aws.region``
    system property first -- and not the configuration's ``aws.region``: the property pins it to the Batch region,
    whose registry holds the images.
    """
    region_flag = [f"-Daws.region={region}"] if region else []
    cmd = ["java", f"-Dconfig.file={_shown(config)}", *region_flag, "-jar", jar, "run", _shown(workflow),
           "--inputs", _shown(inputs), "--imports", _shown(imports)]
    if options is not None:
        cmd += ["--options", _shown(options)]
    return cmd


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it, else absolute."""
    path = path.resolve()
    cwd = Path.cwd().resolve()
    return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else str(path)


def read_options(path: Path) -> None:
    """Check that a workflow options file holds a JSON object (Cromwell reads it itself)."""
    read_json_object(path, "workflow options file")
