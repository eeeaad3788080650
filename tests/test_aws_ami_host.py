"""The Amazon Linux 2023 host that ``ami_userdata.sh`` builds, without AWS: the script and the files it installs
(fetch_and_run.sh, bp-scratch, the systemd units) pass ``bash -n`` and shellcheck; the rendering stays under
EC2's 16 KiB user-data limit and keeps line numbers; the script uses dnf (no yum, no amazon-linux-extras);
bp-scratch's device selection runs, as the real shell functions, against fake /sys and /dev trees shaped like
g4dn, c6i and i4i hosts (EBS root, instance store, the xvdb EBS volume, stray volumes, partitions, foreign file
systems, a reboot); its main flow runs with stub mdadm/mkfs/mount; the units order docker and ecs after it."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from batchpipes.aws import ami

DATA = Path(__file__).parent / "data" / "ami"
XFS_SUPERBLOCK = DATA / "xfs-bp-scratch.superblock"  # first 4 KiB of `mkfs.xfs -L bp-scratch` (xfsprogs 6.1)
EBS = "Amazon Elastic Block Store"
STORE = "Amazon EC2 NVMe Instance Storage"
_HEREDOC_RE = re.compile(r'^[ \t]*cat > "([^"]+)" << \'(\w+)\'\n(.*?)\n\2$', re.M | re.S)
_ASSIGN_RE = re.compile(r"^([A-Z_]+)=(/\S+)$", re.M)


def _installed_files(text: str | None = None) -> dict[str, str]:
    """What the user-data writes with ``cat > PATH << 'TAG'``: path (variables expanded) -> content."""
    text = ami.USERDATA.read_text() if text is None else text
    variables = dict(_ASSIGN_RE.findall(text))
    files: dict[str, str] = {}
    for target, _tag, body in _HEREDOC_RE.findall(text):
        path = re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m[1], m[0]), target)
        if "${unit}" in path:
            loop = re.search(r"^for unit in ([\w ]+); do$", text, re.M)
            assert loop, "the drop-in loop is gone"
            for unit in loop[1].split():
                files[path.replace("${unit}", unit)] = body + "\n"
        else:
            files[path] = body + "\n"
    return files


FILES = _installed_files()
SCRATCH = FILES["/usr/local/sbin/bp-scratch"]
FETCH = FILES["/usr/local/bin/fetch_and_run.sh"]


def _code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# -- the scripts -------------------------------------------------------------------------------------------------


def test_installs_the_expected_files() -> None:
    assert set(FILES) == {"/usr/local/bin/fetch_and_run.sh", "/usr/local/sbin/bp-scratch",
                          "/etc/systemd/system/bp-scratch.service",
                          "/etc/systemd/system/docker.service.d/50-bp-scratch.conf",
                          "/etc/systemd/system/ecs.service.d/50-bp-scratch.conf"}


def test_every_script_passes_bash_n_and_shellcheck(tmp_path: Path) -> None:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (scripts/bootstrap.sh installs it)"
    paths = [ami.USERDATA]
    for name, text in [("fetch_and_run.sh", FETCH), ("bp-scratch", SCRATCH),
                       *((f"userdata-{f}.sh", ami.render_userdata(f)) for f in ami.FLAVORS)]:
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    for path in paths:
        assert path.read_text().startswith("#!/bin/bash\n"), path.name
        syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert syntax.returncode == 0, (path.name, syntax.stderr)
        lint = subprocess.run([exe, "--shell=bash", str(path)], capture_output=True, text=True, check=False)
        assert lint.returncode == 0, (path.name, lint.stdout)


def test_rendering_keeps_line_numbers_and_code_and_fits_ec2s_limit() -> None:
    original = ami.USERDATA.read_text().splitlines()
    for flavor in ami.FLAVORS:
        text = ami.render_userdata(flavor)
        assert len(text.encode()) < 16 * 1024 == ami.USERDATA_LIMIT  # EC2 rejects larger user-data
        rendered = text.splitlines()
        assert len(rendered) == len(original)  # "FAILED at line N" on the console points into the file
        blanked = 0
        for before, after in zip(original, rendered, strict=True):
            if before.startswith("BP_FLAVOR="):
                assert after == f"BP_FLAVOR={flavor}"
            elif after != before:
                assert after == "" and before.lstrip().startswith("#") and not before.startswith("#!"), before
                assert "shellcheck " not in before
                blanked += 1
        assert blanked > 20
        # the files it installs keep their comments: what lands on the host is the file's text
        assert _installed_files(text) == FILES
        # the flavour is set before anything runs
        index = rendered.index(f"BP_FLAVOR={flavor}")
        assert _code_lines("\n".join(rendered[1:index])) == []
    # keep 1 KiB of headroom: a script that grows past this needs trimming before it hits EC2's limit
    assert len(ami.render_userdata("gpu").encode()) < 15 * 1024


def test_rendering_refuses_a_script_above_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "ami_userdata.sh"
    big.write_text("#!/bin/bash\nBP_FLAVOR=gpu\n" + "echo 0123456789abcdef\n" * 1000)
    monkeypatch.setattr(ami, "USERDATA", big)
    with pytest.raises(RuntimeError, match="above EC2's user-data limit 16384"):
        ami.render_userdata("cpu")


def test_userdata_is_for_amazon_linux_2023() -> None:
    code = _code_lines(ami.render_userdata("gpu"))
    joined = "\n".join(code)
    for al2_only in ("yum", "amazon-linux-extras", "/etc/sysconfig/docker-storage", "nofail", "/etc/fstab"):
        assert al2_only not in joined, al2_only
    [install] = [line for line in code if line.startswith("dnf install")]
    packages = install.split()[2:]
    assert {"mdadm", "xfsprogs", "jq", "amazon-ec2-utils"} <= set(packages)
    # AL2023 ships curl-minimal; installing "curl" conflicts with it
    assert "curl" not in packages
    assert 'VERSION_ID="2023"' in joined  # refuses to run on anything else
    # the AWS CLI is the self-contained v2 build in the path Cromwell mounts, not AL2023's awscli-2 rpm
    assert '--install-dir "${AWSCLI_DIR}"' in joined and "AWSCLI_DIR=/usr/local/aws-cli" in joined
    assert "awscli-2" not in joined
    assert "/usr/local/aws-cli/v2/current/bin/aws" in FETCH


_GPU_GUARD = 'if [ "${BP_FLAVOR}" = gpu ]; then'


def _gpu_guarded_lines(lines: list[str]) -> set[int]:
    """Indices of the lines inside ``if [ "${BP_FLAVOR}" = gpu ]; then ... fi`` blocks."""
    guarded: set[int] = set()
    depth = 0
    for i, line in enumerate(lines):
        word = line.strip()
        if depth == 0:
            if word == _GPU_GUARD:
                depth = 1
            continue
        if word.startswith("if ") and word.endswith("; then"):
            depth += 1
        elif word == "fi":
            depth -= 1
        if depth:
            guarded.add(i)
    assert depth == 0, "unterminated gpu block"
    return guarded


def test_gpu_parts_run_only_on_the_gpu_flavor() -> None:
    lines = ami.USERDATA.read_text().splitlines()
    guarded = _gpu_guarded_lines(lines)
    code = [(i, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    gpu_code = [line for i, line in code if re.search(r"nvidia|GPU", line)]
    assert any("nvidia-ctk runtime configure --runtime=docker --set-as-default" in line for line in gpu_code)
    assert any('default-runtime\\"] = \\"nvidia' in line for line in gpu_code)
    assert any("/etc/docker-runtimes.d/nvidia" in line for line in gpu_code)
    assert any("set_ecs ECS_ENABLE_GPU_SUPPORT true" in line for line in gpu_code)
    assert any('[ "$runtime" = nvidia ] || fail' in line for line in gpu_code)
    for i, line in code:
        if re.search(r"nvidia|GPU", line):
            assert i in guarded, f"line {i + 1} is GPU-specific but runs on cpu hosts too: {line.strip()}"
    inside = "\n".join(lines[i] for i in sorted(guarded))
    for shared in ("aws-cli", "fetch_and_run", "jq --arg", "data-root", "set_ecs ECS_ENABLE_TASK_IAM_ROLE",
                   "bp-scratch", "ECS_IMAGE_PULL_BEHAVIOR", "ECS_ENABLE_SPOT_INSTANCE_DRAINING", 'say "ready"'):
        assert shared not in inside, shared


def test_userdata_provides_what_cromwell_mounts_and_configures_ecs() -> None:
    for flavor in ami.FLAVORS:
        text = ami.render_userdata(flavor)
        for needed in ("/usr/local/bin/fetch_and_run.sh", "jq --arg root /scratch/docker",
                       "set_ecs ECS_ENABLE_TASK_IAM_ROLE true", "set_ecs ECS_ENABLE_SPOT_INSTANCE_DRAINING true",
                       "set_ecs ECS_IMAGE_CLEANUP_INTERVAL", "set_ecs ECS_DISABLE_PRIVILEGED true",
                       "systemctl enable bp-scratch.service", "rm -rf /var/lib/ecs/data/* /var/lib/docker",
                       'say "ready"', "poweroff", "trap 'on_error $LINENO' ERR", "gpu | cpu) ;;"):
            assert needed in text, (flavor, needed)
        assert not re.search(r"set_ecs ECS_CLUSTER|^ECS_CLUSTER=", text, re.M)  # AWS Batch sets it at launch
    # /cromwell_root ("local-disk" in Cromwell's job definitions) lives on /scratch
    assert 'BP_CROMWELL_ROOT=${BP_CROMWELL_ROOT:-/cromwell_root}' in SCRATCH
    assert 'mount --bind "$BP_MOUNT/cromwell_root" "$BP_CROMWELL_ROOT"' in SCRATCH


def test_self_test_checks_docker_on_scratch_before_imaging() -> None:
    code = _code_lines(ami.USERDATA.read_text())
    start = code.index("systemctl start docker || fail \"docker did not start: $(journalctl -b -u "
                       "bp-scratch.service -o cat | tail -n 3 | tr '\\n' ' ')\"")
    ready = code.index('say "ready"')
    after = "\n".join(code[start:ready])
    assert "mountpoint -q /scratch || fail" in after and "[ \"$root_dir\" = /scratch/docker ]" in after
    # the build's scratch is unmounted before the image is taken
    assert after.index("umount /cromwell_root /scratch") > after.index("systemctl stop docker")


@pytest.mark.parametrize("env, message", [
    ({}, "BATCH_FILE_TYPE=script only"),
    ({"BATCH_FILE_TYPE": "zip", "BATCH_FILE_S3_URL": "s3://b/k"}, "got 'zip'"),
    ({"BATCH_FILE_TYPE": "script", "BATCH_FILE_S3_URL": "https://b/k"}, "must be an s3:// URL"),
])
def test_fetch_and_run_rejects_bad_environment(tmp_path: Path, env: dict[str, str], message: str) -> None:
    fetch = tmp_path / "fetch_and_run.sh"
    fetch.write_text(FETCH)
    proc = subprocess.run(["bash", str(fetch)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and message in proc.stderr


# -- the systemd units --------------------------------------------------------------------------------------------


def _unit(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(FILES[path])
    return parser


def test_scratch_unit_runs_once_before_docker_and_ecs() -> None:
    unit = _unit("/etc/systemd/system/bp-scratch.service")
    assert unit["Service"]["Type"] == "oneshot" and unit["Service"]["RemainAfterExit"] == "yes"
    assert unit["Service"]["ExecStart"] == "/usr/local/sbin/bp-scratch"
    assert set(unit["Unit"]["Before"].split()) == {"docker.service", "ecs.service"}
    assert set(unit["Install"]["RequiredBy"].split()) == {"docker.service", "ecs.service"}
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # ordering before docker.socket would make a cycle (sockets.target < basic.target < this service)
    assert "docker.socket" not in FILES["/etc/systemd/system/bp-scratch.service"]
    assert "DefaultDependencies" not in unit["Unit"]


@pytest.mark.parametrize("service", ["docker", "ecs"])
def test_docker_and_ecs_require_the_scratch_unit(service: str) -> None:
    dropin = _unit(f"/etc/systemd/system/{service}.service.d/50-bp-scratch.conf")
    assert dropin["Unit"]["Requires"] == "bp-scratch.service"  # a failed scratch unit fails this one
    assert dropin["Unit"]["After"] == "bp-scratch.service"  # and it only starts once /scratch is mounted
    assert dropin["Service"]["ExecStartPre"] == "/usr/bin/mountpoint -q /scratch"


def _systemd_verify(tmp_path: Path, files: dict[str, str]) -> tuple[int, list[str], str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is not installed (apt-get install systemd)"
    units = tmp_path / "units"
    sbin = tmp_path / "sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    (sbin / "bp-scratch").write_text(SCRATCH)
    (sbin / "bp-scratch").chmod(0o755)
    for path, text in files.items():
        if path.startswith("/etc/systemd/system/"):
            target = units / path.removeprefix("/etc/systemd/system/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text.replace("/usr/local/sbin/bp-scratch", str(sbin / "bp-scratch")))
    for name in ("docker", "ecs"):
        (units / f"{name}.service").write_text(f"[Unit]\nDescription=stand-in for {name}\n\n[Service]\n"
                                               f"ExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_LEVEL": "notice"}
    proc = subprocess.run([exe, "verify", "--man=no", str(units / "bp-scratch.service"),
                           str(units / "docker.service"), str(units / "ecs.service")],
                          capture_output=True, text=True, env=env, check=False)
    output = proc.stdout + proc.stderr
    return proc.returncode, [line for line in output.splitlines() if "bp-scratch" in line], output


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own parser (with stand-ins for docker.service and ecs.service) has nothing to say about our
    unit and drop-ins: no unknown key, no bad value, the executable exists; and it would say so."""
    rc, problems, output = _systemd_verify(tmp_path / "good", FILES)
    assert rc == 0 and not problems, output
    typo = {**FILES, "/etc/systemd/system/docker.service.d/50-bp-scratch.conf":
            FILES["/etc/systemd/system/docker.service.d/50-bp-scratch.conf"].replace("Requires=", "Require=")}
    _, problems, output = _systemd_verify(tmp_path / "typo", typo)
    assert any("Unknown key 'Require'" in line for line in problems), output


# -- bp-scratch's device selection against fake /sys and /dev trees ----------------------------------------------


@dataclass
class Host:
    """A fake /sys and /dev: NVMe disks with their model, partitions, holders, the signature on the device and
    the block-device-mapping name EBS keeps in the NVMe vendor-specific data (read by a stand-in ebsnvme-id)."""

    root: Path

    @property
    def sys(self) -> Path:
        return self.root / "sys"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    def disk(self, name: str, model: str, *, mapped: str | None = None, partitions: int = 0,
             holders: tuple[str, ...] = (), content: str = "blank", symlink: bool | None = None) -> Host:
        controller = self.sys / "class" / "nvme" / name.split("n1")[0]
        controller.mkdir(parents=True, exist_ok=True)
        (controller / "model").write_text(model.ljust(40) + "\n")  # sysfs pads the model with blanks
        block = self.sys / "block" / name
        block.mkdir(parents=True)
        (block / "device").symlink_to(os.path.relpath(controller, block))
        (block / "holders").mkdir()
        for holder in holders:  # md127 or dm-0 appear in /sys/block too, and holders/ links to them
            (self.sys / "block" / holder).mkdir(exist_ok=True)
            (block / "holders" / holder).symlink_to(f"../../{holder}")
        self.dev.mkdir(exist_ok=True)
        for number in range(1, partitions + 1):
            part = block / f"{name}p{number}"
            part.mkdir()
            (part / "partition").write_text(f"{number}\n")
            (self.dev / f"{name}p{number}").touch()
        self.device(name, content)
        if mapped is not None:
            (self.dev / f"{name}.ebs-bdev").write_text(mapped)
            if symlink if symlink is not None else model == EBS:  # AL2023's udev rule: /dev/xvdb -> nvme2n1
                link = self.dev / mapped.removeprefix("/dev/")
                if not link.exists():
                    link.symlink_to(name)
        return self

    def device(self, name: str, content: str) -> None:
        """A 16 MiB sparse file standing in for the block device, with a real on-disk signature."""
        path = self.dev / name
        with path.open("wb") as f:
            f.truncate(16 << 20)
        if content == "ours":
            with path.open("r+b") as f:
                f.write(XFS_SUPERBLOCK.read_bytes())
        elif content.startswith("ext4"):
            subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", str(path)], check=True)
        elif content == "ambivalent":  # ext4, then an xfs superblock written over its start
            subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", str(path)], check=True)
            with path.open("r+b") as f:
                f.write(XFS_SUPERBLOCK.read_bytes()[:512])
        elif content == "dos":  # an MBR partition table with one Linux partition
            with path.open("r+b") as f:
                f.seek(446)
                f.write(bytes([0, 0x20, 0x21, 0, 0x83, 0xFE, 0xFF, 0xFF]) + (2048).to_bytes(4, "little")
                        + (16384).to_bytes(4, "little"))
                f.seek(510)
                f.write(b"\x55\xaa")
        else:
            assert content == "blank", content

    def root_ebs(self) -> Host:
        """The AL2023 root volume: EBS, /dev/xvda, GPT with the EFI and BIOS-boot partitions."""
        return self.disk("nvme0n1", EBS, mapped="/dev/xvda", partitions=3)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def ebsnvme_id(tmp_path: Path) -> Path:
    """Stands in for amazon-ec2-utils' ebsnvme-id: ``-u DEVICE`` prints the mapping name without /dev/, and
    fails for devices that are not EBS volumes, as the real one does."""
    fake = tmp_path / "ebsnvme-id"
    fake.write_text(textwrap.dedent("""\
        #!/bin/bash
        [ "$1" = -u ] || exit 2
        if [ ! -f "$2.ebs-bdev" ]; then echo "[ERROR] Not an EBS device: '$2'" >&2; exit 1; fi
        name=$(cat "$2.ebs-bdev")
        echo "${name#/dev/}"
        """))
    fake.chmod(0o755)
    return fake


def test_fake_devices_need_blkid_and_mke2fs() -> None:
    for tool, package in (("blkid", "util-linux"), ("mke2fs", "e2fsprogs")):
        found = shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()
        assert found, f"{tool} is missing (apt-get install {package})"


def _pick(host: Host, ebsnvme_id: Path, path: str | None = None) -> tuple[int, str, str]:
    script = host.root / "bp-scratch"
    script.write_text(SCRATCH)
    proc = subprocess.run(["bash", "-c", 'BP_SCRATCH_LIB=1 source "$1" && bp_pick "$2" "$3"', "_", str(script),
                           str(host.sys), str(host.dev)],
                          env={"PATH": path or os.environ["PATH"], "BP_EBSNVME_ID": str(ebsnvme_id)},
                          capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def test_without_blkid_nothing_counts_as_blank(host: Host, ebsnvme_id: Path, tmp_path: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="xvdb")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "basename", "dirname", "head", "readlink", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    rc, out, err = _pick(host, ebsnvme_id, path=str(bin_dir))
    assert (rc, out) == (1, "") and "EBS volume nvme1n1 carries unknown:blkid-exit-127" in err


def test_g4dn_uses_the_instance_store_not_the_ebs_volume(host: Host, ebsnvme_id: Path) -> None:
    # g4dn.xlarge: one 125 GB instance-store disk, enumerated between the root and the xvdb volume
    host.root_ebs().disk("nvme1n1", STORE).disk("nvme2n1", EBS, mapped="/dev/xvdb")
    assert _pick(host, ebsnvme_id) == (0, "store-new nvme1n1", "")


def test_several_instance_store_disks_are_striped(host: Host, ebsnvme_id: Path) -> None:
    # g4dn.12xlarge / i4i-like: several instance-store disks; the xvdb EBS volume is attached but unused
    host.root_ebs().disk("nvme1n1", EBS, mapped="xvdb").disk("nvme2n1", STORE).disk("nvme3n1", STORE)
    host.disk("nvme4n1", STORE)
    assert _pick(host, ebsnvme_id) == (0, "store-new nvme2n1 nvme3n1 nvme4n1", "")


def test_hidden_multipath_nodes_are_not_disks(host: Host, ebsnvme_id: Path) -> None:
    # with native NVMe multipath, per-path nodes such as nvme1c1n1 sit next to the disks in sysfs
    host.root_ebs().disk("nvme1n1", STORE).disk("nvme2n1", EBS, mapped="xvdb")
    (host.sys / "block" / "nvme1c1n1" / "device").mkdir(parents=True)
    (host.sys / "block" / "nvme1c1n1" / "device" / "model").write_text(STORE + "\n")
    assert _pick(host, ebsnvme_id) == (0, "store-new nvme1n1", "")


def test_ebs_only_host_uses_the_xvdb_volume(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="/dev/xvdb")  # c6i.xlarge with the launch template's volume
    assert _pick(host, ebsnvme_id) == (0, "ebs-new nvme1n1", "")


def test_a_stray_empty_volume_is_not_taken_for_scratch(host: Host, ebsnvme_id: Path) -> None:
    # an empty EBS volume at /dev/sdf enumerates first: "the first empty disk" would have formatted it
    host.root_ebs().disk("nvme1n1", EBS, mapped="sdf").disk("nvme2n1", EBS, mapped="/dev/xvdb")
    assert _pick(host, ebsnvme_id) == (0, "ebs-new nvme2n1", "")


def test_without_the_udev_symlink_the_vendor_data_decides(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="sdf", symlink=False)
    host.disk("nvme2n1", EBS, mapped="/dev/xvdb", symlink=False)
    assert not (host.dev / "xvdb").exists()
    assert _pick(host, ebsnvme_id) == (0, "ebs-new nvme2n1", "")


def test_after_a_reboot_our_file_system_is_mounted_again(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", content="ours")
    assert _pick(host, ebsnvme_id) == (0, "ebs-ours nvme1n1", "")


def test_after_a_reboot_the_assembled_array_is_used(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", STORE, holders=("md127",)).disk("nvme2n1", STORE, holders=("md127",))
    host.device("md127", "ours")
    assert _pick(host, ebsnvme_id) == (0, "store-md md127", "")
    host.device("md127", "blank")
    rc, out, err = _pick(host, ebsnvme_id)
    assert (rc, out) == (1, "") and "array md127 carries blank, not bp-scratch" in err


def test_a_single_instance_store_disk_is_reused_after_a_reboot(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", STORE, content="ours").disk("nvme2n1", EBS, mapped="xvdb")
    assert _pick(host, ebsnvme_id) == (0, "store-ours nvme1n1", "")


@pytest.mark.parametrize("build, message", [
    (lambda h: h.root_ebs(), "no instance-store disk and no EBS volume mapped at /dev/xvdb"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="sdf"),
     "no instance-store disk and no EBS volume mapped at /dev/xvdb"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", content="ext4"),
     "EBS volume nvme1n1 carries filesystem:ext4 labelled data"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", content="dos"),
     "EBS volume nvme1n1 carries partition-table:dos"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", content="ambivalent"),
     "EBS volume nvme1n1 carries unknown:blkid-exit-8"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", partitions=1),
     "EBS volume nvme1n1 has partitions or holders"),
    (lambda h: h.root_ebs().disk("nvme1n1", EBS, mapped="xvdb", holders=("dm-0",)),
     "EBS volume nvme1n1 has partitions or holders"),
    (lambda h: h.root_ebs().disk("nvme1n1", STORE, content="ext4"),
     "instance-store disk nvme1n1 carries filesystem:ext4"),
    (lambda h: h.root_ebs().disk("nvme1n1", STORE, partitions=1), "instance-store disk nvme1n1 has partitions"),
    (lambda h: h.root_ebs().disk("nvme1n1", STORE).disk("nvme2n1", STORE, holders=("md127",)),
     "instance-store disks partly in array md127"),
], ids=["root-only", "stray-volume-only", "foreign-fs", "partition-table", "two-signatures", "partition", "lvm",
        "store-with-fs", "store-partitioned", "store-half-array"])
def test_refusals_name_the_problem(host: Host, ebsnvme_id: Path, build, message: str) -> None:
    build(host)
    rc, out, err = _pick(host, ebsnvme_id)
    assert (rc, out) == (1, "")
    assert message in err


def test_the_xvdb_symlink_is_checked_not_trusted(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs()
    (host.dev / "xvdb").symlink_to("nvme0n1p1")  # a stale link to the root's partition
    rc, _, err = _pick(host, ebsnvme_id)
    assert rc == 1 and "/dev/xvdb points to nvme0n1p1, which is not a whole disk" in err
    (host.dev / "xvdb").unlink()
    host.disk("nvme1n1", EBS, mapped="sdf", symlink=False)
    (host.dev / "xvdb").symlink_to("nvme1n1")  # the link disagrees with the volume's own vendor data
    rc, _, err = _pick(host, ebsnvme_id)
    assert rc == 1 and "EBS volume nvme1n1 is mapped as 'sdf', not xvdb" in err


# -- bp-scratch's main flow with stub commands --------------------------------------------------------------------


def _run_main(host: Host, ebsnvme_id: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    stubs = host.root / "stubs"
    stubs.mkdir(exist_ok=True)
    log = host.root / "calls.log"
    for command in ("mdadm", "mkfs.xfs", "mount", "mountpoint", "udevadm", "df"):
        status = 1 if command == "mountpoint" else 0  # nothing is mounted yet
        (stubs / command).write_text(f'#!/bin/bash\necho "{command} $*" >> "{log}"\nexit {status}\n')
        (stubs / command).chmod(0o755)
    script = host.root / "bp-scratch"
    script.write_text(SCRATCH)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "BP_EBSNVME_ID": str(ebsnvme_id), "BP_SYSFS": str(host.sys),
           "BP_DEVDIR": str(host.dev), "BP_MOUNT": str(host.root / "scratch"),
           "BP_CROMWELL_ROOT": str(host.root / "cromwell_root"), "BP_MD": "/dev/md/bp-scratch", "BP_WAIT": "0"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, [c.replace(str(host.root), "ROOT") for c in calls]


def test_main_stripes_instance_store_and_mounts_everything(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", STORE).disk("nvme2n1", STORE).disk("nvme3n1", EBS, mapped="xvdb")
    proc, calls = _run_main(host, ebsnvme_id)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "mountpoint -q ROOT/scratch",
        "udevadm settle --timeout=60",
        "mdadm --create /dev/md/bp-scratch --run --level=0 --raid-devices=2 --name=bp-scratch "
        "ROOT/dev/nvme1n1 ROOT/dev/nvme2n1",
        "mkfs.xfs -q -K -L bp-scratch /dev/md/bp-scratch",
        "mount -o noatime /dev/md/bp-scratch ROOT/scratch",
        "mountpoint -q ROOT/cromwell_root",
        "mount --bind ROOT/scratch/cromwell_root ROOT/cromwell_root",
        "df -h ROOT/scratch",
    ]
    assert (host.root / "scratch" / "docker").is_dir() and (host.root / "scratch" / "cromwell_root").is_dir()
    assert "store-new: nvme1n1 nvme2n1 mounted at" in proc.stderr


def test_main_formats_only_a_blank_xvdb_and_remounts_ours(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="sdf").disk("nvme2n1", EBS, mapped="xvdb")
    proc, calls = _run_main(host, ebsnvme_id)
    assert proc.returncode == 0, proc.stderr
    assert "mkfs.xfs -q -K -L bp-scratch ROOT/dev/nvme2n1" in calls
    assert "mount -o noatime ROOT/dev/nvme2n1 ROOT/scratch" in calls
    host.device("nvme2n1", "ours")
    (host.root / "calls.log").unlink()
    proc, calls = _run_main(host, ebsnvme_id)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c.startswith(("mkfs", "mdadm"))]
    assert "mount -o noatime ROOT/dev/nvme2n1 ROOT/scratch" in calls


def test_main_fails_loudly_and_touches_nothing_without_a_scratch_device(host: Host, ebsnvme_id: Path) -> None:
    host.root_ebs().disk("nvme1n1", EBS, mapped="sdf")  # only a stray volume: the template's xvdb is missing
    proc, calls = _run_main(host, ebsnvme_id)
    assert proc.returncode == 1
    assert "FAILED: no scratch device; docker and ecs stay stopped" in proc.stderr
    assert proc.stderr.count("no EBS volume mapped at /dev/xvdb") == 6  # it waited for udev before giving up
    assert not [c for c in calls if c.startswith(("mkfs", "mdadm", "mount "))]
    assert not (host.root / "scratch").exists()


# -- the whole user-data, run with stub system commands under a fake root ---------------------------------------

_STUBS = {
    # package manager and downloads
    "dnf": 'echo "dnf $*" >> "$CALLS"',
    "curl": 'echo "curl $*" >> "$CALLS"; while [ "$#" -gt 0 ]; do if [ "$1" = -o ]; then : > "$2"; fi; shift; done',
    "unzip": '''echo "unzip $*" >> "$CALLS"
mkdir -p "${@: -1}/aws"
cat > "${@: -1}/aws/install" << 'EOF'
#!/bin/bash
echo "aws-install $*" >> "$CALLS"
mkdir -p "$2/v2/current/bin"
printf '#!/bin/bash\\necho aws-cli/2.99.0\\n' > "$2/v2/current/bin/aws"
chmod 0755 "$2/v2/current/bin/aws"
EOF
chmod 0755 "${@: -1}/aws/install"''',
    # services and devices
    "systemctl": 'echo "systemctl $*" >> "$CALLS"',
    "journalctl": 'echo "bp-scratch: ebs-new: nvme1n1 mounted at /scratch"',
    "mountpoint": 'echo "mountpoint $*" >> "$CALLS"',
    "umount": 'echo "umount $*" >> "$CALLS"',
    "mdadm": 'echo "mdadm $*" >> "$CALLS"',
    "poweroff": 'echo "poweroff" >> "$CALLS"',
    # docker answers from the daemon.json the script wrote, as dockerd would
    "docker": '''daemon="$FAKE_ROOT/etc/docker/daemon.json"
case "$*" in
    "info --format {{.DockerRootDir}}") jq -r '."data-root" // "/var/lib/docker"' "$daemon" ;;
    "info --format {{.DefaultRuntime}}") jq -r '."default-runtime" // "runc"' "$daemon" ;;
    *) echo "docker $*" >> "$CALLS" ;;
esac''',
}
_NVIDIA_CTK = '''echo "nvidia-ctk $*" >> "$CALLS"
daemon="$FAKE_ROOT/etc/docker/daemon.json"
jq '.runtimes.nvidia = {path: "nvidia-container-runtime", args: []} | ."default-runtime" = "nvidia"' "$daemon" \\
    > "$daemon.tmp" && mv "$daemon.tmp" "$daemon"'''
AL2023_OS_RELEASE = 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n'
AL2_OS_RELEASE = 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    calls: list[str]
    root: Path

    def file(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()


def _run_userdata(tmp_path: Path, flavor: str, *, os_release: str = AL2023_OS_RELEASE,
                  gpu_registration: str = "docker-runtimes.d", stubs_override: dict[str, str] | None = None) -> Run:
    """Run the rendered user-data with /etc, /usr/local and /var/lib moved under a fake root and the system
    commands stubbed (no yum, no amazon-linux-extras: calling them fails the script)."""
    assert shutil.which("jq"), "jq is not installed (apt-get install jq): the user-data edits daemon.json with it"
    root = tmp_path / "root"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (root / "etc" / "ecs").mkdir(parents=True)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release)
    (root / "var" / "lib" / "docker" / "overlay2").mkdir(parents=True)  # what the base image's first boot left
    (root / "var" / "lib" / "ecs" / "data").mkdir(parents=True)
    (root / "var" / "lib" / "ecs" / "data" / "agent.db").write_text("state of the build instance")
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    (root / "usr" / "local" / "sbin").mkdir(parents=True)
    stubs_text = {**_STUBS, **(stubs_override or {})}
    if gpu_registration == "docker-runtimes.d":  # how the AL2023 GPU ECS AMI registers the nvidia runtime
        (root / "etc" / "docker-runtimes.d").mkdir()
        (root / "etc" / "docker-runtimes.d" / "nvidia").write_text("#!/bin/sh\nexec nvidia-container-runtime \"$@\"\n")
        (root / "etc" / "docker-runtimes.d" / "nvidia").chmod(0o755)
    elif gpu_registration == "nvidia-ctk":
        stubs_text["nvidia-ctk"] = _NVIDIA_CTK
    for name, body in stubs_text.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    text = ami.render_userdata(flavor)
    for prefix in ("/etc/", "/usr/local/", "/var/lib/"):
        text = text.replace(prefix, f"{root}{prefix}")
    text = text.replace("/dev/console", f"{root}/console")
    script = tmp_path / "userdata.sh"
    script.write_text(text)
    calls = tmp_path / "calls.log"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CALLS": str(calls), "FAKE_ROOT": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=False, timeout=60)
    return Run(proc, calls.read_text().splitlines() if calls.exists() else [], root)


@pytest.mark.parametrize("flavor", ["gpu", "cpu"])
def test_userdata_runs_through_on_amazon_linux_2023(tmp_path: Path, flavor: str) -> None:
    run = _run_userdata(tmp_path, flavor)
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.proc.stdout.splitlines()[-1] == "batchpipes-ami: ready"
    assert "batchpipes-ami: scratch self-test: bp-scratch: ebs-new: nvme1n1 mounted at /scratch" in run.proc.stdout
    calls = run.calls
    assert calls[0] == "dnf install -y -q mdadm xfsprogs jq unzip amazon-ec2-utils"
    assert calls[-1] == "poweroff"
    # the unit is installed and enabled before docker is started for the self-test, and scratch unmounted after
    order = [c for c in calls if c.startswith(("systemctl", "umount", "mountpoint"))]
    assert order.index("systemctl daemon-reload") < order.index("systemctl enable bp-scratch.service") \
        < order.index("systemctl start docker") < order.index("mountpoint -q /scratch") \
        < order.index("umount /cromwell_root /scratch")
    assert order.index("systemctl stop docker") < order.index("systemctl start docker")
    assert run.file("/usr/local/aws-cli/v2/current/bin/aws")  # the installer's target is what Cromwell mounts
    assert (f"aws-install --install-dir {run.root}/usr/local/aws-cli --bin-dir {run.root}/usr/local/bin --update"
            in calls)
    # files as installed
    assert run.file("/usr/local/sbin/bp-scratch") == SCRATCH.replace("/etc/", f"{run.root}/etc/").replace(
        "/usr/local/", f"{run.root}/usr/local/").replace("/var/lib/", f"{run.root}/var/lib/")
    assert (run.root / "usr/local/sbin/bp-scratch").stat().st_mode & 0o111
    assert (run.root / "usr/local/bin/fetch_and_run.sh").stat().st_mode & 0o111
    for unit in ("bp-scratch.service", "docker.service.d/50-bp-scratch.conf", "ecs.service.d/50-bp-scratch.conf"):
        assert (run.root / "etc/systemd/system" / unit).is_file(), unit
    daemon = json.loads(run.file("/etc/docker/daemon.json"))
    # gpu: only the default runtime is added; the runtime itself stays registered by /etc/docker-runtimes.d
    assert daemon == ({"data-root": "/scratch/docker", "default-runtime": "nvidia"} if flavor == "gpu"
                      else {"data-root": "/scratch/docker"})
    ecs = dict(line.split("=", 1) for line in run.file("/etc/ecs/ecs.config").splitlines())
    assert ecs["ECS_ENABLE_SPOT_INSTANCE_DRAINING"] == "true" and ecs["ECS_IMAGE_CLEANUP_INTERVAL"] == "15m"
    assert ("ECS_ENABLE_GPU_SUPPORT" in ecs) == (flavor == "gpu") and "ECS_CLUSTER" not in ecs
    # no state of the build instance in the image
    assert not (run.root / "var/lib/docker").exists()
    assert list((run.root / "var/lib/ecs/data").iterdir()) == []


def test_gpu_userdata_uses_nvidia_ctk_when_the_runtime_is_not_registered(tmp_path: Path) -> None:
    run = _run_userdata(tmp_path, "gpu", gpu_registration="nvidia-ctk")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in run.calls
    daemon = json.loads(run.file("/etc/docker/daemon.json"))
    assert daemon["default-runtime"] == "nvidia" and daemon["data-root"] == "/scratch/docker"


def test_gpu_userdata_fails_without_an_nvidia_runtime(tmp_path: Path) -> None:
    run = _run_userdata(tmp_path, "gpu", gpu_registration="none")
    assert run.proc.returncode != 0
    assert "batchpipes-ami: FAILED: no nvidia runtime for docker" in run.proc.stdout
    assert "poweroff" in run.calls and "systemctl start docker" not in run.calls
    assert ami.provisioning_verdict(run.proc.stdout) == (
        "batchpipes-ami: FAILED: no nvidia runtime for docker (is the base the ECS GPU-optimised AL2023 AMI?)")


def test_userdata_refuses_amazon_linux_2(tmp_path: Path) -> None:
    run = _run_userdata(tmp_path, "cpu", os_release=AL2_OS_RELEASE)
    assert run.proc.returncode != 0
    assert "batchpipes-ami: FAILED: the base image is not Amazon Linux 2023" in run.proc.stdout
    assert run.calls == ["poweroff"]  # nothing installed


def test_a_failing_step_reports_its_line(tmp_path: Path) -> None:
    """A command that fails (here: the CLI download) is reported with the line of the file, as build-ami reads it."""
    run = _run_userdata(tmp_path, "cpu", stubs_override={"curl": 'echo "curl $*" >> "$CALLS"; exit 6'})
    line = next(i for i, text in enumerate(ami.USERDATA.read_text().splitlines(), 1) if text.startswith("curl -fsSL"))
    assert f"batchpipes-ami: FAILED at line {line} (exit 6)" in run.proc.stdout
    assert run.calls[-1] == "poweroff"
