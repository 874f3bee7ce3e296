"""Checks of deploy/Dockerfile (read as text; no image is built here): pinned base images,
the two runtime stages agreeing with each other, the ONNX Runtime version and path, the
exposed ports, volume and user agreeing with ferrite's flags, and the HEALTHCHECK command,
run as written against the real binary started with the image's ENTRYPOINT and CMD."""

from __future__ import annotations

import fnmatch
import pathlib
import re
import shutil
import socket
import subprocess
import urllib.parse

import manifests
import pytest
from dockerfile_parse import Stage, healthcheck
from ferrite_process import declared_ports, flag_values

RUNTIME_STAGES = ("runtime", "runtime-cuda")
PINNED_TAG = re.compile(r"^[\w./-]+:[\w.-]*\d[\w.-]*$")


def pin(requirements: pathlib.Path, package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", requirements.read_text(), re.MULTILINE)
    assert match, f"{requirements} pins no {package}"
    return match.group(1)


def test_stages(dockerfile):
    assert [s.name for s in dockerfile.stages] == ["build", "onnxruntime", "runtime-cuda", "runtime"]
    # The CPU image is the last stage, so that a plain `docker build` produces it.
    assert dockerfile.stages[-1].name == "runtime"
    assert dockerfile.stage("build").image.startswith("rust:") and "bookworm" in dockerfile.stage("build").image
    assert dockerfile.stage("runtime").image.startswith("debian:") and dockerfile.stage("runtime").image.endswith(
        "-slim"
    )
    assert dockerfile.stage("runtime-cuda").image.startswith("nvidia/cuda:12.")
    assert "-runtime-" in dockerfile.stage("runtime-cuda").image


def test_base_images_are_pinned(dockerfile):
    for stage in dockerfile.stages:
        assert PINNED_TAG.match(stage.image), f"stage {stage.name}: {stage.image} has no version tag"
        assert not stage.image.endswith(":latest")


def test_build_compiles_the_release_binary(dockerfile):
    run = " ".join(i.arguments for i in dockerfile.stage("build").all("RUN"))
    assert "cargo build --release --locked -p ferrite-server --bin ferrite" in run
    for name in RUNTIME_STAGES:
        copies = [i.arguments for i in dockerfile.stage(name).all("COPY")]
        assert "--from=build /out/ferrite /usr/local/bin/ferrite" in copies


@pytest.mark.parametrize("keyword", ["USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "ENV", "COPY"])
def test_runtime_stages_agree(dockerfile, keyword):
    cpu, cuda = (dockerfile.stage(name) for name in RUNTIME_STAGES)
    assert [i.arguments for i in cpu.all(keyword)] == [i.arguments for i in cuda.all(keyword)]


def test_onnxruntime_version_and_path(dockerfile):
    """The image ships the ONNX Runtime the tests run with, at ORT_DYLIB_PATH."""
    version = dockerfile.global_args["ORT_VERSION"]
    assert pin(manifests.DEPLOY / "requirements-onnxruntime.txt", "onnxruntime") == version
    assert pin(manifests.ROOT / "ci" / "requirements.txt", "onnxruntime") == version
    hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", (manifests.DEPLOY / "requirements-onnxruntime.txt").read_text())
    assert len(hashes) >= 1
    # The library's place inside the wheel, as the onnxruntime stage reads it.
    import onnxruntime

    assert onnxruntime.__version__ == version
    wheel_lib = pathlib.Path(onnxruntime.__file__).parent / "capi" / f"libonnxruntime.so.{version}"
    assert wheel_lib.is_file()
    extract = " ".join(i.arguments for i in dockerfile.stage("onnxruntime").all("RUN"))
    assert "--require-hashes" in extract
    assert "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" in extract
    assert "/out/libonnxruntime.so.${ORT_VERSION}" in extract
    for name in RUNTIME_STAGES:
        stage = dockerfile.stage(name)
        path = pathlib.PurePosixPath(stage.env()["ORT_DYLIB_PATH"])
        assert path.name == f"libonnxruntime.so.{version}"
        copies = [i.arguments for i in stage.all("COPY")]
        assert f"--from=onnxruntime /out/ {path.parent}/" in copies


def test_entrypoint_and_defaults(dockerfile):
    stage = dockerfile.stage("runtime")
    assert stage.exec_form("ENTRYPOINT") == ["/usr/local/bin/ferrite"]
    cmd = stage.exec_form("CMD")
    assert flag_values(cmd, "--model-repository") == ["/models"]
    assert declared_ports(cmd) == {8000: "http", 8001: "grpc", 8002: "metrics"}


def test_exposed_ports_are_the_flags(dockerfile):
    stage = dockerfile.stage("runtime")
    exposed = {int(port.split("/")[0]) for port in stage.last("EXPOSE").arguments.split()}
    assert exposed == set(declared_ports(stage.exec_form("CMD")))


def test_volume_is_the_model_repository(dockerfile):
    stage = dockerfile.stage("runtime")
    assert stage.exec_form("VOLUME") == flag_values(stage.exec_form("CMD"), "--model-repository")


def test_user_is_not_root(dockerfile):
    user, _, group = dockerfile.stage("runtime").last("USER").arguments.partition(":")
    assert user.isdigit() and group.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    assert int(user) != 0 and int(group) != 0


def test_hadolint_ignores_are_justified(dockerfile):
    """Each `# hadolint ignore=RULE` sits under a comment that names RULE and says why."""
    assert dockerfile.ignore_directives, "expected the DL3008 directives"
    for line, rules, comment in dockerfile.ignore_directives:
        text = " ".join(comment)
        for rule in rules:
            assert rule in text, f"line {line}: {rule} is ignored without a comment naming it"
        assert len(text.split()) >= 8, f"line {line}: the comment above does not say why"


def test_dockerignore_keeps_build_inputs():
    patterns = [
        line.strip()
        for line in (manifests.ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {"target", ".venv", ".git"} <= set(patterns)
    needed = ["Cargo.toml", "Cargo.lock", "deploy/requirements-onnxruntime.txt", "server/src/main.rs", "proto"]
    for path in needed:
        for pattern in patterns:
            assert not fnmatch.fnmatch(path, pattern) and not path.startswith(pattern + "/"), (path, pattern)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck_command(stage: Stage, address: str, path: str | None = None) -> list[str]:
    """The HEALTHCHECK command with its URL pointed at ADDRESS (host:port), and at PATH
    if given."""
    _, command = healthcheck(stage)
    urls = [arg for arg in command if arg.startswith("http://")]
    assert len(urls) == 1, command
    url = urllib.parse.urlparse(urls[0])._replace(netloc=address)
    if path is not None:
        url = url._replace(path=path)
    return [url.geturl() if arg == urls[0] else arg for arg in command]


def test_healthcheck_probes_readiness(dockerfile, ferrite):
    """The HEALTHCHECK asks /v2/health/ready on the HTTP port, succeeds against the server
    started with the image's arguments, and fails where nothing answers."""
    stage = dockerfile.stage("runtime")
    options, command = healthcheck(stage)
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed (.ci/run installs it)", pytrace=False)
    url = urllib.parse.urlparse(next(arg for arg in command if arg.startswith("http://")))
    assert url.path == "/v2/health/ready"
    assert url.hostname == "127.0.0.1"
    cmd = stage.exec_form("CMD")
    assert declared_ports(cmd).get(url.port) == "http"

    server = ferrite(cmd)
    ok = subprocess.run(
        healthcheck_command(stage, server.address(url.port)), check=False, capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(
        healthcheck_command(stage, f"127.0.0.1:{free_port()}"), check=False, capture_output=True, timeout=30
    )
    assert down.returncode != 0
    # An answer that is not 2xx fails it too (curl -f): the same command, asking for the
    # readiness of a model that does not exist.
    missing = healthcheck_command(stage, server.address(url.port), "/v2/models/no_such_model/ready")
    not_ok = subprocess.run(missing, check=False, capture_output=True, timeout=30)
    assert not_ok.returncode != 0
