#!/usr/bin/env bash
# Sets up a Debian 12 machine (or CI runner) for batchpipes: system packages for local
# containers (podman + runc, debootstrap, a registry on 127.0.0.1), their configuration,
# and the Python virtual environment in .venv. Safe to run again: every step is idempotent.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  die "run as root or install sudo: system packages (podman, runc, debootstrap) must be installed"
fi

packages=(podman runc debootstrap sudo docker-registry shellcheck uidmap slirp4netns
          fuse-overlayfs python3-venv python3-pip ca-certificates curl jq systemd openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman: runc (crun fails on hybrid cgroups here) and ulimits below the hard limits,
# because root may lack CAP_SYS_RESOURCE inside CI sandboxes.
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=1048576
nofile=$(( nofile < 65536 ? nofile : 65536 ))
nproc=$(( nproc < 16384 ? nproc : 16384 ))
$SUDO mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
$SUDO tee /etc/containers/containers.conf.d/50-batchpipes.conf >/dev/null <<CONF
# written by batchpipes scripts/bootstrap.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
CONF
$SUDO tee /etc/containers/registries.conf.d/50-batchpipes.conf >/dev/null <<'CONF'
# written by batchpipes scripts/bootstrap.sh: the local registry that serves built images to miniwdl
[[registry]]
location = "127.0.0.1:5000"
insecure = true
CONF

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.batchpipes-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi
# checkov (scans the CloudFormation template in the tests) pins an older boto3 than ours: its own venv.
checkov_version=3.3.30
if [ ! -x .tools/checkov/bin/checkov ] \
   || [ "$(.tools/checkov/bin/pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" != "$checkov_version" ]; then
  log "installing checkov $checkov_version into .tools/checkov"
  python3 -m venv .tools/checkov
  .tools/checkov/bin/pip install -q "checkov==$checkov_version"
fi
# openwdl's ANTLR grammar for WDL 1.0 (a parser independent of miniwdl, in the tests) pins antlr4 runtime 4.8;
# moto in .venv needs 4.13: its own venv too.
wdl_parsers_version=0.2.0
if [ ! -x .tools/wdl-parsers/bin/python ] \
   || [ "$(.tools/wdl-parsers/bin/pip show wdl-parsers 2>/dev/null | sed -n 's/^Version: //p')" != "$wdl_parsers_version" ]; then
  log "installing wdl-parsers $wdl_parsers_version into .tools/wdl-parsers"
  python3 -m venv .tools/wdl-parsers
  .tools/wdl-parsers/bin/pip install -q "wdl-parsers==$wdl_parsers_version"
fi
log "ready: .venv/bin/batchpipes --help"
