"""The programs under containers/ run inside the images; tests load them as modules and call them directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SHARED = Path(__file__).resolve().parents[1] / "containers" / "shared"


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """Import the script at ``path`` as module ``name`` (default: the file's stem), registered in sys.modules
    (dataclasses and pickling look modules up there). As in the image, where the scripts sit side by side on
    PATH, it can import its neighbours and the files of containers/shared/."""
    name = name or path.stem
    for where in (SHARED, path.parent):
        if str(where) not in sys.path:
            sys.path.insert(0, str(where))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
