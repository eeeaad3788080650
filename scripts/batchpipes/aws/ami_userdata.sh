#!/bin/bash
# batchpipes: turn an instance of an ECS-optimised Amazon Linux 2 AMI into a host image for
# Cromwell's AWS Batch backend: the GPU variant of that AMI for BP_FLAVOR=gpu, the standard one for
# BP_FLAVOR=cpu. Runs once as EC2 user-data (as root, under cloud-init) from
# `batchpipes aws build-ami --flavor gpu|cpu`, then powers the instance off so that it can be imaged.
#
# What Cromwell's AWS backend needs on the host (its job definitions mount these paths):
#   /usr/local/aws-cli             AWS CLI v2 (glibc build), mounted read-only into every task
#   /usr/local/bin/fetch_and_run.sh  the job entry point, mounted at /var/scratch/fetch_and_run.sh
#   /cromwell_root                 the task working area ("local-disk")
#   /var/lib/cloud/data/instance-id  written by cloud-init on every instance
# Plus, on GPU hosts only: the nvidia runtime as docker's default, and GPU support in the ECS agent.
#
# The result is printed on the serial console, which build-ami reads back:
#   "batchpipes-ami: ready"  or  "batchpipes-ami: FAILED at line N ..."

# The next line is the flavour, gpu or cpu; build-ami rewrites it when it renders this script.
BP_FLAVOR=gpu

set -euo pipefail

SCRATCH_LABEL=bp-scratch
SCRATCH_MOUNT=/scratch
AWSCLI_DIR=/usr/local/aws-cli
FETCH_AND_RUN=/usr/local/bin/fetch_and_run.sh

say() {
    echo "batchpipes-ami: $*"
    { echo "batchpipes-ami: $*" > /dev/console; } 2> /dev/null || true
}

on_error() {
    local rc=$? line=$1
    say "FAILED at line ${line} (exit ${rc}): see /var/log/cloud-init-output.log"
    poweroff
}
trap 'on_error $LINENO' ERR

case "${BP_FLAVOR}" in
    gpu | cpu) ;;
    *) say "FAILED: unknown flavour '${BP_FLAVOR}' (expected gpu or cpu)"; poweroff; exit 1 ;;
esac
say "provisioning started (${BP_FLAVOR} host)"

# -- packages ---------------------------------------------------------------------------------------
yum install -y -q unzip jq xfsprogs curl

# -- AWS CLI v2 in the path Cromwell mounts into task containers -------------------------------------
case "$(uname -m)" in
    x86_64) cli_arch=x86_64 ;;
    aarch64) cli_arch=aarch64 ;;
    *) say "FAILED: unsupported architecture $(uname -m)"; poweroff; exit 1 ;;
esac
work=$(mktemp -d)
curl -fsSL --retry 5 -o "${work}/awscliv2.zip" "https://awscli.amazonaws.com/awscli-exe-linux-${cli_arch}.zip"
unzip -q "${work}/awscliv2.zip" -d "${work}"
"${work}/aws/install" --install-dir "${AWSCLI_DIR}" --bin-dir /usr/local/bin --update
rm -rf "${work}"
"${AWSCLI_DIR}/v2/current/bin/aws" --version

# -- fetch_and_run.sh: download the job script Cromwell staged in S3 and run it ------------------------
cat > "${FETCH_AND_RUN}" << 'SCRIPT'
#!/bin/bash
# Entry point of Cromwell's AWS Batch jobs (mounted read-only at /var/scratch/fetch_and_run.sh):
# fetch the job script named by BATCH_FILE_S3_URL with the host's AWS CLI v2 and run it.
set -euo pipefail
aws=/usr/local/aws-cli/v2/current/bin/aws
if [ "${BATCH_FILE_TYPE:-}" != "script" ]; then
    echo "ERROR: fetch_and_run.sh supports BATCH_FILE_TYPE=script only (got '${BATCH_FILE_TYPE:-}')" >&2
    exit 1
fi
case "${BATCH_FILE_S3_URL:-}" in
    s3://?*) ;;
    *) echo "ERROR: BATCH_FILE_S3_URL must be an s3:// URL (got '${BATCH_FILE_S3_URL:-}')" >&2; exit 1 ;;
esac
script=$(mktemp "${TMPDIR:-/tmp}/batch-script.XXXXXX")
"$aws" s3 cp --only-show-errors "${BATCH_FILE_S3_URL}" "$script"
chmod 0755 "$script"
exec "$script" "$@"
SCRIPT
chmod 0755 "${FETCH_AND_RUN}"

# -- scratch volume: the empty, unformatted extra EBS disk ----------------------------------------------
root_disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
scratch_dev=""
while read -r name type; do
    [ "$type" = disk ] || continue
    [ "$(basename "$name")" = "$root_disk" ] && continue
    [ "$(lsblk -no NAME "$name" | wc -l)" -eq 1 ] || continue   # has partitions
    blkid "$name" > /dev/null 2>&1 && continue                   # has a file system
    scratch_dev=$name
    break
done < <(lsblk -dpno NAME,TYPE)
if [ -z "$scratch_dev" ]; then
    say "FAILED: no empty EBS volume found for scratch (launch with a second block device)"
    poweroff
    exit 1
fi
mkfs.xfs -q -L "${SCRATCH_LABEL}" "$scratch_dev"
mkdir -p "${SCRATCH_MOUNT}" /cromwell_root
echo "LABEL=${SCRATCH_LABEL} ${SCRATCH_MOUNT} xfs defaults,noatime,nofail 0 2" >> /etc/fstab
mount "${SCRATCH_MOUNT}"
mkdir -p "${SCRATCH_MOUNT}/cromwell_root" "${SCRATCH_MOUNT}/docker"
echo "${SCRATCH_MOUNT}/cromwell_root /cromwell_root none bind,nofail,x-systemd.requires-mounts-for=${SCRATCH_MOUNT} 0 0" >> /etc/fstab
mount /cromwell_root

# -- docker: storage on scratch; on GPU hosts nvidia as the default runtime -----------------------------
systemctl stop ecs 2> /dev/null || true
systemctl stop docker
if [ -d /var/lib/docker ]; then
    cp -a /var/lib/docker/. "${SCRATCH_MOUNT}/docker/"
    rm -rf /var/lib/docker
fi
mkdir -p /etc/docker
daemon=/etc/docker/daemon.json
[ -s "$daemon" ] || echo '{}' > "$daemon"
# shellcheck disable=SC2016  # $root is a jq variable, not a shell one
filter='.["data-root"] = $root'
if [ "${BP_FLAVOR}" = gpu ]; then
    if ! grep -q -- '--default-runtime' /etc/sysconfig/docker 2> /dev/null; then
        runtime=$(command -v nvidia-container-runtime || true)
        if [ -z "$runtime" ]; then
            say "FAILED: nvidia-container-runtime not found (is the base the ECS GPU-optimised AMI?)"
            poweroff
            exit 1
        fi
        filter="${filter} | .[\"default-runtime\"] = \"nvidia\" | .runtimes.nvidia = {path: \"${runtime}\", runtimeArgs: []}"
    fi
fi
jq --arg root "${SCRATCH_MOUNT}/docker" "$filter" "$daemon" > "${daemon}.new"
mv "${daemon}.new" "$daemon"
systemctl start docker
docker info --format '{{.DockerRootDir}} {{.DefaultRuntime}}'

# -- ECS agent (AWS Batch appends ECS_CLUSTER itself at launch) -----------------------------------------
set_ecs() {
    touch /etc/ecs/ecs.config
    sed -i "/^$1=/d" /etc/ecs/ecs.config
    echo "$1=$2" >> /etc/ecs/ecs.config
}
mkdir -p /etc/ecs
if [ "${BP_FLAVOR}" = gpu ]; then
    set_ecs ECS_ENABLE_GPU_SUPPORT true
fi
set_ecs ECS_ENABLE_TASK_IAM_ROLE true
set_ecs ECS_ENABLE_SPOT_INSTANCE_DRAINING true
set_ecs ECS_IMAGE_PULL_BEHAVIOR prefer-cached
set_ecs ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION 10m
set_ecs ECS_CONTAINER_STOP_TIMEOUT 60s
set_ecs ECS_DISABLE_PRIVILEGED true

# -- leave no instance state in the image ----------------------------------------------------------------
systemctl stop ecs 2> /dev/null || true
rm -rf /var/lib/ecs/data/*
yum clean all -q
rm -rf /var/cache/yum

say "ready"
poweroff
