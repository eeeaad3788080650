"""batchpipes: WDL pipelines for AWS Batch (Cromwell) and local runs (miniwdl + podman)."""

from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the folder holding wdl/, containers/, inputs/).
REPO_ROOT = Path(__file__).resolve().parents[2]
