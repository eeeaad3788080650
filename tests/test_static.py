"""Static checks over the whole repository: WDL, inputs JSON, image pins, Dockerfiles, shell, CLI help."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
from batchpipes import cli, containers, settings
from batchpipes.images import stale_pins, wdl_pins

REPO = settings.REPO_ROOT


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


# The WDL, the inputs JSON and the pins are checked by `batchpipes check` (tests/test_wdl_lint.py).


def test_every_workflow_has_local_and_aws_inputs() -> None:
    for wdl in sorted(settings.WDL_DIR.glob("*.wdl")):
        for kind in ("local", "aws"):
            assert (settings.INPUTS_DIR / f"{wdl.stem}.{kind}.json").is_file(), f"inputs/{wdl.stem}.{kind}.json"


def test_aws_inputs_use_s3() -> None:
    import json

    for path in settings.INPUTS_DIR.glob("*.aws.json"):
        data = json.loads(path.read_text())
        local_paths = [v for v in data.values() if isinstance(v, str) and v.startswith(("inputs/", "/", "./"))]
        assert not local_paths, f"{rel(path)} names local files: {local_paths}"


def test_image_pins_are_current() -> None:
    assert wdl_pins(), "no pinned images found in wdl/"
    assert stale_pins() == []


def test_pin_detects_a_stale_tag(tmp_path: Path) -> None:
    wdl = tmp_path / "x.wdl"
    wdl.write_text('String genomics_image = "batchpipes/genomics:000000000000"\n')
    ((path, line, name, tag),) = wdl_pins(tmp_path)
    assert (name, tag, line) == ("genomics", "000000000000", 1)
    assert containers.get("genomics").tag != tag


@pytest.mark.parametrize("image", list(containers.discover().values()), ids=lambda i: i.name)
def test_dockerfile_conventions(image: containers.Image) -> None:
    text = (image.context / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M), "Dockerfile must take ARG BASE_IMAGE"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M), "FROM ${BASE_IMAGE} expected"
    for secret in ("PRIVATE KEY", "AWS_SECRET_ACCESS_KEY=", "PASSWORD=", "chpasswd"):
        assert secret not in text, f"secret material in {image.name}/Dockerfile: {secret}"
    for path in image.context_files().values():
        assert b"PRIVATE KEY-----" not in path.read_bytes(), f"private key in {path}"
    copied = set(re.findall(r"^COPY\s+(?:--\S+\s+)*shared/(\S+)", text, re.M))
    assert copied <= set(image.shared), f"{image.name}/Dockerfile copies shared/{sorted(copied - set(image.shared))} " \
        "that its image.toml does not list in 'shared'"


def test_content_hash_follows_the_files(tmp_path: Path) -> None:
    ctx = containers.write_context(containers.get("genomics"), tmp_path / "img")  # its folder + its shared files
    first = containers.content_hash(ctx)
    assert first == containers.get("genomics").tag and re.fullmatch(r"[0-9a-f]{12}", first)
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text() + "\n# change\n")
    assert containers.content_hash(ctx) != first
    (ctx / "Dockerfile").unlink()
    assert containers.content_hash(ctx) != first


def test_content_hash_ignores_what_tools_leave_in_a_working_copy(tmp_path: Path) -> None:
    """A checkout where mypy, ruff, Python or an editor ran must get the tag a fresh clone (CI) computes."""
    ctx = containers.write_context(containers.get("ffmpeg"), tmp_path / "img")
    first = containers.content_hash(ctx)
    for junk in (".mypy_cache/3.11/hevc_tasks.data.json", ".ruff_cache/0.6/123", "__pycache__/x.cpython-311.pyc",
                 "shared/__pycache__/task_common.cpython-311.pyc", "hevc_tasks.pyc", ".hevc_tasks.py.swp"):
        (ctx / junk).parent.mkdir(parents=True, exist_ok=True)
        (ctx / junk).write_bytes(b"junk")
    assert containers.content_hash(ctx) == first
    (ctx / "notes.txt").write_text("a real file is part of the context\n")
    assert containers.content_hash(ctx) != first


def test_shell_scripts_pass_shellcheck() -> None:
    ours = [p for p in REPO.rglob("*.sh") if ".venv" not in p.parts and ".tools" not in p.parts]
    scripts = ours + [REPO / ".ci" / "run"]
    scripts = [p for p in scripts if p.is_file()]
    assert scripts
    proc = subprocess.run(["shellcheck", "-S", "warning", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _all_parsers(parser: argparse.ArgumentParser, prefix: list[str]):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, [*prefix, name])


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    seen = 0
    for words, _ in _all_parsers(cli.build_parser(), []):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*words, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: batchpipes"), words
        seen += 1
    assert seen >= 10


def test_unknown_pipeline_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "proteomics"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown pipeline 'proteomics': choose one of") and "\n" not in err


def test_unknown_image_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["images", "build", "no-such-image"]) == 2
    assert "unknown image 'no-such-image'" in capsys.readouterr().err


def test_builds_hand_the_hosts_ca_bundle_to_downloads_as_a_secret(tmp_path: Path) -> None:
    """A Dockerfile RUN step that downloads over TLS gets the host's CA bundle as the build secret 'host-ca' (mounted
    only while it runs): the options podman gets, and none where the host has no bundle."""
    bundle = tmp_path / "ca.crt"
    assert containers.host_ca_secret(bundle) == []
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert containers.host_ca_secret(bundle) == ["--secret", f"id=host-ca,src={bundle}"]
    dockerfile = (containers.get("ffmpeg").context / "Dockerfile").read_text()
    assert "--mount=type=secret,id=host-ca,required=false" in dockerfile
