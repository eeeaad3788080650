#!/bin/bash
# batchpipes: turn an instance of the ECS-optimised Amazon Linux 2023 AMI (GPU variant for BP_FLAVOR=gpu,
# standard for cpu) into a host image for Cromwell's AWS Batch backend. Runs once as EC2 user-data under
# cloud-init from `batchpipes aws build-ami`, then powers the instance off; the verdict goes to the serial
# console: "batchpipes-ami: ready" or "batchpipes-ami: FAILED ...".
#
# Cromwell's job definitions mount these host paths (fixed in Cromwell's AwsBatchJobDefinition, not aws.conf):
#   /usr/local/aws-cli               AWS CLI v2, the self-contained build (AL2023's awscli-2 rpm needs the
#                                    host's Python, so it cannot run inside a task image)
#   /usr/local/bin/fetch_and_run.sh  the job entry point, mounted at /var/scratch/fetch_and_run.sh
#   /cromwell_root                   the "local-disk" volume, bind-mounted from /scratch; Cromwell's job
#                                    script itself works in /tmp/scratch inside the container, i.e. in
#                                    Docker's storage, whose data-root is /scratch/docker
#   /var/lib/cloud/data/instance-id  written by cloud-init at every boot
# Scratch is not baked into the image: bp-scratch.service (below) prepares /scratch at every boot, and docker
# and ecs require it. The build runs it once on the build instance as a self-test.

# The next line is the flavour, gpu or cpu; build-ami rewrites it when it renders this script.
BP_FLAVOR=gpu

set -euo pipefail

AWSCLI_DIR=/usr/local/aws-cli
FETCH_AND_RUN=/usr/local/bin/fetch_and_run.sh
SCRATCH_SETUP=/usr/local/sbin/bp-scratch
UNITS=/etc/systemd/system

say() {
    echo "batchpipes-ami: $*"
    { echo "batchpipes-ami: $*" > /dev/console; } 2> /dev/null || true
}

fail() {
    say "FAILED: $*"
    poweroff
    exit 1
}

on_error() {
    local rc=$? line=$1
    say "FAILED at line ${line} (exit ${rc}): see /var/log/cloud-init-output.log"
    poweroff
}
trap 'on_error $LINENO' ERR

case "${BP_FLAVOR}" in
    gpu | cpu) ;;
    *) fail "unknown flavour '${BP_FLAVOR}' (expected gpu or cpu)" ;;
esac
if ! grep -q '^VERSION_ID="2023"' /etc/os-release; then
    fail "the base image is not Amazon Linux 2023 (see /etc/os-release)"
fi
say "provisioning started (${BP_FLAVOR} host)"

# -- packages (AL2023: dnf; curl is already there as curl-minimal, which a `dnf install curl` would conflict with)
dnf install -y -q mdadm xfsprogs jq unzip amazon-ec2-utils

# -- AWS CLI v2 in the path Cromwell mounts into task containers
case "$(uname -m)" in
    x86_64) cli_arch=x86_64 ;;
    aarch64) cli_arch=aarch64 ;;
    *) fail "unsupported architecture $(uname -m)" ;;
esac
work=$(mktemp -d)
curl -fsSL --retry 5 -o "${work}/awscliv2.zip" "https://awscli.amazonaws.com/awscli-exe-linux-${cli_arch}.zip"
unzip -q "${work}/awscliv2.zip" -d "${work}"
"${work}/aws/install" --install-dir "${AWSCLI_DIR}" --bin-dir /usr/local/bin --update
rm -rf "${work}"
"${AWSCLI_DIR}/v2/current/bin/aws" --version

# -- fetch_and_run.sh: download the job script Cromwell staged in S3 and run it
cat > "${FETCH_AND_RUN}" << 'FETCH'
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
FETCH
chmod 0755 "${FETCH_AND_RUN}"

# -- scratch: prepared at every boot by bp-scratch.service
cat > "${SCRATCH_SETUP}" << 'SCRATCH'
#!/bin/bash
# bp-scratch, run by bp-scratch.service at every boot before docker and ecs. /scratch goes on the
# instance-store NVMe disks if any (mdadm RAID 0 if several), else on the EBS volume mapped at /dev/xvdb
# (NVMe model and the name in its vendor-specific data, read by ebsnvme-id). Blank: mkfs.xfs; our own
# file system (reboot): mounted again; anything else: fail, so docker and ecs do not start.
# BP_SCRATCH_LIB=1: define the functions only (the tests use fake /sys and /dev trees).
set -euo pipefail

BP_STORE_MODEL="Amazon EC2 NVMe Instance Storage"
BP_EBS_MODEL="Amazon Elastic Block Store"
BP_EBS_NAME=xvdb
BP_LABEL=bp-scratch
BP_MOUNT=${BP_MOUNT:-/scratch}
BP_CROMWELL_ROOT=${BP_CROMWELL_ROOT:-/cromwell_root}
BP_MD=${BP_MD:-/dev/md/bp-scratch}
BP_WAIT=${BP_WAIT:-5}

bp_log() { echo "bp-scratch: $*" >&2; }

# bp_model SYSFS NAME: NVMe model, blanks trimmed
bp_model() {
    local model=""
    if [ -r "$1/block/$2/device/model" ]; then
        read -r model < "$1/block/$2/device/model" || true
    fi
    printf '%s\n' "$model"
}

# partitions of a disk / devices built on it (md, LVM)
bp_partitions() {
    local part
    for part in "$1/block/$2"/*/partition; do
        if [ -e "$part" ]; then basename "$(dirname "$part")"; fi
    done
}
bp_holders() {
    local holder
    for holder in "$1/block/$2/holders"/*; do
        if [ -e "$holder" ] || [ -L "$holder" ]; then basename "$holder"; fi
    done
}

# bp_ebs_name DEVICE: block-device-mapping name from the NVMe vendor-specific data
bp_ebs_name() {
    "${BP_EBSNVME_ID:-/usr/sbin/ebsnvme-id}" -u "$1" 2> /dev/null || true
}

# bp_signature DEVICE: blank, ours (xfs labelled bp-scratch), raid, or what it carries
bp_signature() {
    local line type="" label="" pttype="" out rc=0
    out=$(blkid -p -o export "$1" 2> /dev/null) || rc=$?
    if [ "$rc" -eq 2 ]; then # blkid: nothing found
        echo blank
        return 0
    elif [ "$rc" -ne 0 ]; then # 8: several signatures; 127: no blkid
        echo "unknown:blkid-exit-$rc"
        return 0
    fi
    while IFS= read -r line; do
        case "$line" in
            TYPE=*) type=${line#TYPE=} ;;
            LABEL=*) label=${line#LABEL=} ;;
            PTTYPE=*) pttype=${line#PTTYPE=} ;;
        esac
    done <<< "$out"
    if [ -n "$pttype" ]; then
        echo "partition-table:$pttype"
    elif [ -z "$type" ]; then
        echo "unknown:no-type"
    elif [ "$type" = xfs ] && [ "$label" = "$BP_LABEL" ]; then
        echo ours
    elif [ "$type" = linux_raid_member ]; then
        echo raid
    else
        echo "filesystem:$type${label:+ labelled $label}"
    fi
}

# bp_pick SYSFS DEVDIR: "MODE DEVICE..." (store-new|store-ours|store-md|ebs-new|ebs-ours), or fail
bp_pick() {
    local sys=$1 dev=$2 path name
    local -a stores=()
    for path in "$sys"/block/nvme*n*; do
        name=${path##*/}
        case "$name" in *c*n* | *n*p*) continue ;; esac # multipath paths, partitions
        [ "$(bp_model "$sys" "$name")" = "$BP_STORE_MODEL" ] || continue
        if [ -n "$(bp_partitions "$sys" "$name")" ]; then
            bp_log "instance-store disk $name has partitions"
            return 1
        fi
        stores+=("$name")
    done
    if [ "${#stores[@]}" -gt 0 ]; then
        bp_pick_store "$sys" "$dev" "${stores[@]}"
    else
        bp_pick_ebs "$sys" "$dev"
    fi
}

bp_pick_store() {
    local sys=$1 dev=$2 name holder md="" blank=0 held=0 sig
    shift 2
    for name in "$@"; do
        holder=$(bp_holders "$sys" "$name" | head -n 1)
        if [ -n "$holder" ]; then
            if [ -n "$md" ] && [ "$holder" != "$md" ]; then
                bp_log "instance-store disks belong to different arrays ($md, $holder)"
                return 1
            fi
            md=$holder
            held=$((held + 1))
            continue
        fi
        if [ ! -b "$dev/$name" ] && [ ! -f "$dev/$name" ]; then
            bp_log "no device node $dev/$name"
            return 1
        fi
        sig=$(bp_signature "$dev/$name")
        case "$sig" in
            blank) blank=$((blank + 1)) ;;
            ours)
                if [ "$#" -eq 1 ]; then
                    echo "store-ours $name"
                    return 0
                fi
                bp_log "instance-store disk $name: bp-scratch alone, but $# disks"
                return 1
                ;;
            raid)
                bp_log "instance-store disk $name: md member not assembled"
                return 1
                ;;
            *)
                bp_log "instance-store disk $name carries $sig: not formatting it"
                return 1
                ;;
        esac
    done
    if [ "$held" -eq "$#" ]; then
        sig=$(bp_signature "$dev/$md")
        if [ "$sig" != ours ]; then
            bp_log "array $md carries $sig, not bp-scratch"
            return 1
        fi
        echo "store-md $md"
    elif [ "$blank" -eq "$#" ]; then
        echo "store-new $*"
    else
        bp_log "instance-store disks partly in array $md: $*"
        return 1
    fi
}

bp_pick_ebs() {
    local sys=$1 dev=$2 name="" path target model mapped sig
    if [ -L "$dev/$BP_EBS_NAME" ]; then
        target=$(readlink "$dev/$BP_EBS_NAME")
        name=${target##*/}
    else
        for path in "$sys"/block/nvme*n*; do
            case "${path##*/}" in *c*n* | *n*p*) continue ;; esac
            [ "$(bp_model "$sys" "${path##*/}")" = "$BP_EBS_MODEL" ] || continue
            if [ "$(bp_ebs_name "$dev/${path##*/}")" = "$BP_EBS_NAME" ]; then
                name=${path##*/}
                break
            fi
        done
    fi
    if [ -z "$name" ]; then
        bp_log "no instance-store disk and no EBS volume mapped at /dev/$BP_EBS_NAME"
        return 1
    fi
    if [ ! -d "$sys/block/$name" ]; then
        bp_log "/dev/$BP_EBS_NAME points to $name, which is not a whole disk"
        return 1
    fi
    model=$(bp_model "$sys" "$name")
    if [ "$model" != "$BP_EBS_MODEL" ]; then
        bp_log "/dev/$BP_EBS_NAME is $name with NVMe model '$model', not an EBS volume"
        return 1
    fi
    mapped=$(bp_ebs_name "$dev/$name")
    if [ "$mapped" != "$BP_EBS_NAME" ]; then
        bp_log "EBS volume $name is mapped as '$mapped', not $BP_EBS_NAME"
        return 1
    fi
    if [ -n "$(bp_partitions "$sys" "$name")$(bp_holders "$sys" "$name")" ]; then
        bp_log "EBS volume $name has partitions or holders"
        return 1
    fi
    sig=$(bp_signature "$dev/$name")
    case "$sig" in
        blank) echo "ebs-new $name" ;;
        ours) echo "ebs-ours $name" ;;
        *)
            bp_log "EBS volume $name carries $sig"
            return 1
            ;;
    esac
}

bp_main() {
    local sys=${BP_SYSFS:-/sys} dev=${BP_DEVDIR:-/dev} pick="" mode="" rest="" target try
    local -a names=()
    if mountpoint -q "$BP_MOUNT"; then
        bp_log "$BP_MOUNT is mounted already"
    else
        udevadm settle --timeout=60 || true
        for try in 1 2 3 4 5 6; do
            if pick=$(bp_pick "$sys" "$dev"); then break; fi
            pick=""
            bp_log "attempt $try: no scratch device yet"
            sleep "$BP_WAIT"
        done
        if [ -z "$pick" ]; then
            bp_log "FAILED: no scratch device; docker and ecs stay stopped"
            exit 1
        fi
        read -r mode rest <<< "$pick"
        read -r -a names <<< "$rest"
        case "$mode" in
            store-new)
                if [ "${#names[@]}" -eq 1 ]; then
                    target=$dev/${names[0]}
                else
                    mdadm --create "$BP_MD" --run --level=0 --raid-devices="${#names[@]}" --name="$BP_LABEL" \
                        "${names[@]/#/$dev/}"
                    target=$BP_MD
                fi
                mkfs.xfs -q -K -L "$BP_LABEL" "$target"
                ;;
            ebs-new)
                target=$dev/${names[0]}
                mkfs.xfs -q -K -L "$BP_LABEL" "$target"
                ;;
            *) target=$dev/${names[0]} ;;
        esac
        mkdir -p "$BP_MOUNT"
        mount -o noatime "$target" "$BP_MOUNT"
        bp_log "$mode: ${names[*]} mounted at $BP_MOUNT"
    fi
    mkdir -p "$BP_MOUNT/docker" "$BP_MOUNT/cromwell_root" "$BP_CROMWELL_ROOT"
    mountpoint -q "$BP_CROMWELL_ROOT" || mount --bind "$BP_MOUNT/cromwell_root" "$BP_CROMWELL_ROOT"
    df -h "$BP_MOUNT" >&2
}

if [ "${BP_SCRATCH_LIB:-0}" != 1 ]; then
    bp_main "$@"
fi
SCRATCH
chmod 0755 "${SCRATCH_SETUP}"

cat > "${UNITS}/bp-scratch.service" << 'UNIT'
[Unit]
Description=batchpipes scratch: instance-store NVMe (RAID 0) or the xvdb EBS volume at /scratch
After=systemd-udevd.service local-fs.target
Before=docker.service ecs.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/bp-scratch
TimeoutStartSec=15min
StandardError=journal+console

[Install]
WantedBy=multi-user.target
RequiredBy=docker.service ecs.service
UNIT

for unit in docker ecs; do
    mkdir -p "${UNITS}/${unit}.service.d"
    cat > "${UNITS}/${unit}.service.d/50-bp-scratch.conf" << 'UNIT'
# batchpipes: never start without /scratch (a failed bp-scratch.service fails this unit too)
[Unit]
Requires=bp-scratch.service
After=bp-scratch.service

[Service]
ExecStartPre=/usr/bin/mountpoint -q /scratch
UNIT
done
systemctl daemon-reload
systemctl enable bp-scratch.service

# -- docker: data-root on /scratch; on GPU hosts nvidia as the default runtime
systemctl stop ecs 2> /dev/null || true
systemctl stop docker.socket 2> /dev/null || true
systemctl stop docker
rm -rf /var/lib/docker
mkdir -p /etc/docker
daemon=/etc/docker/daemon.json
[ -s "$daemon" ] || echo '{}' > "$daemon"
# shellcheck disable=SC2016  # $root is a jq variable, not a shell one
filter='.["data-root"] = $root'
if [ "${BP_FLAVOR}" = gpu ]; then
    # The AL2023 GPU AMI registers nvidia via /etc/docker-runtimes.d (dockerd --add-runtime): daemon.json must
    # not define it again (dockerd refuses a setting given both as a flag and in the file).
    if grep -q -- '--default-runtime' /etc/sysconfig/docker 2> /dev/null; then
        say "docker's default runtime is set in /etc/sysconfig/docker already"
    elif [ -x /etc/docker-runtimes.d/nvidia ] || jq -e '.runtimes.nvidia' "$daemon" > /dev/null; then
        filter="${filter} | .[\"default-runtime\"] = \"nvidia\""
    elif command -v nvidia-ctk > /dev/null; then
        nvidia-ctk runtime configure --runtime=docker --set-as-default
    else
        fail "no nvidia runtime for docker (is the base the ECS GPU-optimised AL2023 AMI?)"
    fi
fi
jq --arg root /scratch/docker "$filter" "$daemon" > "${daemon}.new"
mv "${daemon}.new" "$daemon"

# -- ECS agent (AWS Batch appends ECS_CLUSTER itself at launch)
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
set_ecs ECS_IMAGE_CLEANUP_INTERVAL 15m
set_ecs ECS_IMAGE_MINIMUM_CLEANUP_AGE 1h
set_ecs ECS_NUM_IMAGES_DELETE_PER_CYCLE 10
set_ecs ECS_CONTAINER_STOP_TIMEOUT 60s
set_ecs ECS_DISABLE_PRIVILEGED true

# -- self-test on this instance: the unit picks a device, docker starts on it
systemctl start docker || fail "docker did not start: $(journalctl -b -u bp-scratch.service -o cat | tail -n 3 | tr '\n' ' ')"
mountpoint -q /scratch || fail "bp-scratch.service did not mount /scratch"
mountpoint -q /cromwell_root || fail "bp-scratch.service did not mount /cromwell_root"
root_dir=$(docker info --format '{{.DockerRootDir}}')
[ "$root_dir" = /scratch/docker ] || fail "docker's data-root is ${root_dir}, not /scratch/docker"
if [ "${BP_FLAVOR}" = gpu ]; then
    runtime=$(docker info --format '{{.DefaultRuntime}}')
    [ "$runtime" = nvidia ] || fail "docker's default runtime is ${runtime}, not nvidia"
fi
say "scratch self-test: $(journalctl -b -u bp-scratch.service -o cat | grep -m 1 'mounted at' || true)"

# -- leave no instance state in the image (the scratch device is not part of it)
systemctl stop ecs 2> /dev/null || true
systemctl stop docker.socket 2> /dev/null || true
systemctl stop docker
umount /cromwell_root /scratch
if [ -e /dev/md/bp-scratch ]; then mdadm --stop /dev/md/bp-scratch; fi
rm -rf /var/lib/ecs/data/* /var/lib/docker
dnf clean all -q

say "ready"
poweroff
