"""Reading and writing the project's small files: JSON with one-line errors, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError


def read_json(path: Path, what: str = "inputs file") -> Any:
    """Parse the JSON in ``path``; a missing, non-text or malformed file is a UserError naming ``what``."""
    if not path.is_file():
        raise UserError(f"{what} '{path}' not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} '{path}' is not valid JSON: line {exc.lineno} column {exc.colno}: "
                        f"{exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} '{path}' is not text (UTF-8 JSON expected)") from exc


def read_json_object(path: Path, what: str = "inputs file") -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' must hold a JSON object")
    return data


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file in the same folder and a rename:
    readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
