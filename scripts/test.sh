#!/usr/bin/env bash
# The test suite in two lanes: the fast lane (no containers; spread over the CPUs with pytest-xdist, under 2 min
# on 2 cores) first, so a broken module fails early; then the container lane (real tools in podman,
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
# One worker more than CPUs: many fast tests wait on subprocesses and sockets, and work stealing keeps the
# long ones from finishing last on one worker.
lane fast -m "not containers" -n "$(($(nproc) + 1))" --dist worksteal "$@"
lane containers -m containers "$@"
