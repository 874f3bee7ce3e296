"""Fixtures for the deployment checks: the rendered manifests, the KServe resources, the
parsed Dockerfile, and real ferrite servers started from the manifests' arguments (one per
distinct argument list, kept for the session)."""

from __future__ import annotations

import contextlib

import dockerfile_parse
import ferrite_process
import manifests
import pytest


def variant_names() -> list[str]:
    """Names of every rendering (known without running kubectl, for parametrization)."""
    names = ["base"]
    for overlay in manifests.overlays():
        names.append(overlay.name)
        names += [f"{overlay.name}+{component.name}" for component in manifests.components()]
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", variant_names())


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {name: manifests.documents(text) for name, text in manifests.render_all().items()}


@pytest.fixture
def docs(rendered: dict[str, list[dict]], variant: str) -> list[dict]:
    return rendered[variant]


@pytest.fixture
def deployment(docs: list[dict]) -> dict:
    return manifests.one(docs, "Deployment")


@pytest.fixture
def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c["name"] == "ferrite"]
    assert len(found) == 1, f"the Deployment has no single container named ferrite: {[c['name'] for c in containers]}"
    return found[0]


@pytest.fixture(scope="session")
def runtimes() -> dict[str, dict]:
    """The ClusterServingRuntimes, by name."""
    found = [
        manifests.one(manifests.load(path), "ClusterServingRuntime")
        for path in sorted(manifests.KSERVE.glob("clusterservingruntime*.yaml"))
    ]
    return {runtime["metadata"]["name"]: runtime for runtime in found}


@pytest.fixture(scope="session")
def inference_services() -> dict[str, dict]:
    return {
        path.name: manifests.one(manifests.load(path), "InferenceService")
        for path in sorted(manifests.KSERVE.glob("inferenceservice*.yaml"))
    }


@pytest.fixture(scope="session")
def dockerfile() -> dockerfile_parse.Dockerfile:
    return dockerfile_parse.parse(manifests.DOCKERFILE)


@pytest.fixture(scope="session")
def ferrite(tmp_path_factory):
    """`ferrite(args)`: a running server started from a manifest's ARGS, shared by every
    test that asks for the same arguments; all are stopped (SIGTERM, clean exit required)
    at the end of the session."""
    with contextlib.ExitStack() as stack:
        servers: dict[tuple[str, ...], ferrite_process.Ferrite] = {}

        def start(args: list[str]) -> ferrite_process.Ferrite:
            key = tuple(args)
            if key not in servers:
                workdir = tmp_path_factory.mktemp("ferrite")
                servers[key] = stack.enter_context(ferrite_process.run(list(args), workdir))
            return servers[key]

        yield start
