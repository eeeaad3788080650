#!/usr/bin/env bash
# The test suite in two lanes: the fast lane (no containers; spread over the CPUs with pytest-xdist, under two
# minutes on 2 cores) first, so a broken module fails early; then the container lane (real tools in podman,
# one test at a time; builds images on first use). Extra arguments go to both pytest runs (e.g. -x). Each lane's
# wall time is printed at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
lane() {
    local name=$1
    shift
    local start=$SECONDS
    .venv/bin/pytest -q "$@" tests
    echo "lane '$name' passed in $((SECONDS - start)) s"
}
lane fast -m "not containers" -n auto "$@"
lane containers -m containers "$@"
