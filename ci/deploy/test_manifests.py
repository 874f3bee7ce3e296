"""Checks of the Kubernetes manifests (every rendering of deploy/k8s), the prometheus-adapter
rule and the KServe resources (deploy/kserve): required fields, that the pieces refer to
each other correctly, and, against the real ferrite binary started with the manifests'
own arguments, that every probe, port and scrape path they name is served."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
import urllib.request

import ferrite_process
import grpc
import manifests
import pytest
import tritonclient.grpc as grpcclient
import yaml
from ferrite_process import declared_ports, exit_timeout, flag_values, split_flags

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
PROBE_PATHS = {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}
BASE_KINDS = {"Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"}
METRIC_NAME = re.compile(r"\bnv_[a-z_]+\b")
# A serialized grpc.health.v1.HealthCheckResponse{status: SERVING}.
SERVING = b"\x08\x01"


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def container_port(container: dict, port: int | str) -> int:
    """A probe's or Service's port (number or name) as the container port number."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"port name {port!r} is not one of the container's ports {named}"
    return named[port]


def service_container_port(service: dict, name: str, container: dict) -> int:
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert name in ports, f"the Service has no port named {name!r} (ports: {sorted(ports)})"
    return container_port(container, ports[name]["targetPort"])


def adapter_rules() -> list[dict]:
    return yaml.safe_load((manifests.ADAPTER / "values.yaml").read_text())["rules"]["custom"]


def scrape(server: ferrite_process.Ferrite, port: int, path: str) -> str:
    status, body = server.get(port, path)
    assert status == 200, f"GET {path} on port {port}: {status}"
    return body.decode()


def counter(text: str, name: str, model: str) -> float:
    pattern = re.compile(rf'^{name}\{{(?=[^}}]*model="{re.escape(model)}")[^}}]*\}} (\S+)$', re.MULTILINE)
    values = [float(v) for v in pattern.findall(text)]
    assert values, f"no {name} series for model {model}"
    return sum(values)


# ---- every rendering: resources and their references ----------------------------------


def test_renders_expected_kinds(docs, variant):
    kinds = [doc["kind"] for doc in docs]
    expected = BASE_KINDS if "model-sync" in variant else BASE_KINDS | {"PersistentVolumeClaim"}
    assert sorted(kinds) == sorted(expected)


def test_selectors_match_the_pods(docs, deployment):
    labels = pod_labels(deployment)
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    service = manifests.one(docs, "Service")
    assert selects(service["spec"]["selector"], labels), "the Service selects none of the pods"
    pdb = manifests.one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels), "the PodDisruptionBudget covers none of the pods"
    for constraint in pod_spec(deployment).get("topologySpreadConstraints", []):
        assert selects(constraint["labelSelector"]["matchLabels"], labels)
    monitor = manifests.one(docs, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    target = manifests.one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}


def test_overlays_can_share_a_namespace(rendered):
    """No name is used twice, and no overlay's Service, PDB or ServiceMonitor selects
    another overlay's pods."""
    names = [overlay.name for overlay in manifests.overlays()]
    assert len(names) >= 2
    seen: dict[tuple[str, str], str] = {}
    for name in names:
        for doc in rendered[name]:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, f"{key} is in both {seen.get(key)} and {name}"
            seen[key] = name
    for mine in names:
        service = manifests.one(rendered[mine], "Service")
        pdb = manifests.one(rendered[mine], "PodDisruptionBudget")
        monitor = manifests.one(rendered[mine], "ServiceMonitor")
        for other in names:
            if other == mine:
                continue
            labels = pod_labels(manifests.one(rendered[other], "Deployment"))
            assert not selects(service["spec"]["selector"], labels), f"{mine}'s Service selects {other}'s pods"
            assert not selects(pdb["spec"]["selector"]["matchLabels"], labels)
            other_service = manifests.one(rendered[other], "Service")["metadata"]["labels"]
            assert not selects(monitor["spec"]["selector"]["matchLabels"], other_service)


def test_container_ports_are_the_flags(container):
    """Each named container port is the value of ferrite's flag of that name."""
    args = container["args"]
    split_flags(args)
    by_number = declared_ports(args)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert sorted(named) == ["grpc", "http", "metrics"]
    for name, number in named.items():
        assert by_number.get(number) == name, f"container port {name}={number}, but the flags give {by_number}"


def test_grace_period_covers_shutdown(deployment, container):
    """The pod's grace period outlasts the preStop hook plus ferrite's own shutdown."""
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    pre_stop = int(command[1])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + exit_timeout(container["args"]) + 5


def test_model_repository_is_mounted(docs, deployment, container):
    spec = pod_spec(deployment)
    repositories = flag_values(container["args"], "--model-repository")
    assert len(repositories) == 1
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert repositories[0] in mounts, f"--model-repository={repositories[0]} is not mounted"
    mount = mounts[repositories[0]]
    assert mount.get("readOnly") is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    if "persistentVolumeClaim" in volume:
        claims = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
        assert volume["persistentVolumeClaim"]["claimName"] in claims
    else:
        assert "emptyDir" in volume, f"model volume {volume} is neither a claim nor an emptyDir"
        fillers = [
            init
            for init in spec.get("initContainers", [])
            if any(m["name"] == volume["name"] and not m.get("readOnly") for m in init.get("volumeMounts", []))
        ]
        assert fillers, "the emptyDir model volume has no init container that fills it"


def test_runs_as_the_image_user(deployment, container, dockerfile):
    user, _, group = dockerfile.stage("runtime").last("USER").arguments.partition(":")
    security = pod_spec(deployment)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user), int(group))
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_image_and_accelerator(variant, container):
    version = manifests.workspace_version()
    limits = container["resources"]["limits"]
    if variant.startswith("gpu"):
        assert container["image"] == f"ferrite:{version}-cuda"
        assert int(limits["nvidia.com/gpu"]) >= 1
    else:
        assert container["image"] == f"ferrite:{version}"
        assert "nvidia.com/gpu" not in limits


def test_args_agree_with_the_image_defaults(container, dockerfile):
    """The manifests and the image's CMD use the same ports and repository."""
    cmd = dockerfile.stage("runtime").exec_form("CMD")
    assert declared_ports(container["args"]) == declared_ports(cmd)
    assert flag_values(container["args"], "--model-repository") == flag_values(cmd, "--model-repository")


# ---- custom resources: required fields -------------------------------------------------


def test_servicemonitor_fields(docs):
    monitor = manifests.one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    assert monitor["spec"]["selector"]["matchLabels"]
    service_ports = {p["name"] for p in manifests.one(docs, "Service")["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["path"].startswith("/")


def test_hpa_scales_on_the_adapter_metric(docs):
    hpa = manifests.one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    served = {rule["name"]["as"] for rule in adapter_rules()}
    metrics = hpa["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Pods"]
    assert metrics[0]["pods"]["metric"]["name"] in served
    assert metrics[0]["pods"]["target"]["type"] == "AverageValue"


def test_adapter_configmap_equals_helm_values():
    configmap = manifests.one(manifests.load(manifests.ADAPTER / "adapter-config.yaml"), "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"])["rules"] == adapter_rules()


def test_adapter_rules_are_well_formed():
    for rule in adapter_rules():
        series = METRIC_NAME.findall(rule["seriesQuery"])
        assert len(series) == 1
        assert re.fullmatch(rule["name"]["matches"], series[0])
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        for placeholder in ("<<.GroupBy>>", "<<.LabelMatchers>>"):
            assert placeholder in rule["metricsQuery"]


# ---- against the real binary -----------------------------------------------------------


def test_probes_are_served(container, ferrite):
    server = ferrite(container["args"])
    for kind in PROBES:
        probe = container[kind]["httpGet"]
        if kind in PROBE_PATHS:
            assert probe["path"] == PROBE_PATHS[kind]
        status, _ = server.get(container_port(container, probe["port"]), probe["path"])
        assert status == 200, f"{kind} GET {probe['path']} answered {status}"


def test_service_ports_reach_ferrite(docs, container, ferrite):
    """Each Service port reaches the container port of the same name, and that port
    speaks what the Service says: KServe v2 HTTP, gRPC, Prometheus metrics."""
    server = ferrite(container["args"])
    service = manifests.one(docs, "Service")
    for port in service["spec"]["ports"]:
        number = service_container_port(service, port["name"], container)
        assert port["targetPort"] == port["name"]
        assert port["port"] == number, "Service ports keep tritonserver's port numbers"
        if port["name"] == "http":
            assert json.loads(scrape(server, number, "/v2"))["name"]
        elif port["name"] == "grpc":
            assert port["appProtocol"] == "grpc"
            assert grpc_health(server.address(number)) == SERVING
            client = grpcclient.InferenceServerClient(url=server.address(number))
            try:
                assert client.is_server_live() and client.is_server_ready()
            finally:
                client.close()
        else:
            assert port["name"] == "metrics"
            assert "# TYPE nv_inference_request_success counter" in scrape(server, number, "/metrics")


def test_servicemonitor_scrapes_metrics(docs, container, ferrite):
    server = ferrite(container["args"])
    service = manifests.one(docs, "Service")
    for endpoint in manifests.one(docs, "ServiceMonitor")["spec"]["endpoints"]:
        text = scrape(server, service_container_port(service, endpoint["port"], container), endpoint["path"])
        assert "# TYPE nv_inference_queue_duration_us counter" in text


def test_adapter_rule_counters_are_exported(rendered, ferrite):
    """The counters the adapter's queries read exist, carry the model label, and move
    with a request: after one inference the success count is one higher."""
    deployment = manifests.one(rendered["base"], "Deployment")
    container = pod_spec(deployment)["containers"][0]
    server = ferrite(container["args"])
    metrics_port = container_port(container, "metrics")
    before = scrape(server, metrics_port, "/metrics")
    names = set()
    for rule in adapter_rules():
        names |= set(METRIC_NAME.findall(rule["seriesQuery"] + rule["metricsQuery"]))
    assert names >= {"nv_inference_queue_duration_us", "nv_inference_request_success"}
    for name in names:
        assert f"# TYPE {name} counter" in before

    body = json.dumps(
        {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": list(range(16))}]}
    ).encode()
    url = f"http://{server.address(container_port(container, 'http'))}/v2/models/identity_fp32/infer"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    after = scrape(server, metrics_port, "/metrics")
    success = "nv_inference_request_success"
    assert counter(after, success, "identity_fp32") == counter(before, success, "identity_fp32") + 1
    queue = "nv_inference_queue_duration_us"
    assert counter(after, queue, "identity_fp32") >= counter(before, queue, "identity_fp32")


# ---- KServe ----------------------------------------------------------------------------

# The one serving port of each protocol: Knative's port name and the ferrite port behind it.
KSERVE_PORTS = {"v2": ("http1", "http"), "grpc-v2": ("h2c", "grpc")}


def grpc_health(address: str) -> bytes:
    """grpc.health.v1.Health/Check for the server as a whole (service ""), the call a
    Kubernetes gRPC probe makes; returns the serialized HealthCheckResponse."""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        return check(b"", timeout=10)


def test_cluster_serving_runtimes_fields(runtimes):
    assert set(runtimes) == {"ferrite", "ferrite-grpc"}
    served = set()
    for name, runtime in runtimes.items():
        assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1", name
        spec = runtime["spec"]
        formats = {f["name"]: f for f in spec["supportedModelFormats"]}
        assert {"onnx", "triton"} <= set(formats), name
        for entry in formats.values():
            assert isinstance(entry["version"], str) and entry["version"]
        protocols = spec["protocolVersions"]
        assert len(protocols) == 1 and protocols[0] in KSERVE_PORTS, name
        served |= set(protocols)
        container = spec["containers"][0]
        assert container["name"] == "kserve-container"
        assert container["image"] == f"ferrite:{manifests.workspace_version()}"
        # KServe's storage initializer mounts the model at /mnt/models.
        assert flag_values(container["args"], "--model-repository") == ["/mnt/models"]
        # Knative allows one port, named for its protocol; it is ferrite's port for it.
        port_name, ferrite_port = KSERVE_PORTS[protocols[0]]
        assert [p["name"] for p in container["ports"]] == [port_name], name
        assert declared_ports(container["args"]).get(container["ports"][0]["containerPort"]) == ferrite_port
        # KServe's conventions: HTTP on 8080, gRPC on 9000.
        assert declared_ports(container["args"]) == {8080: "http", 9000: "grpc", 8002: "metrics"}
    assert served == {"v2", "grpc-v2"}


@pytest.mark.parametrize("name", ["ferrite", "ferrite-grpc"])
def test_runtime_ports_and_probes_are_served(runtimes, name, ferrite):
    container = runtimes[name]["spec"]["containers"][0]
    server = ferrite(container["args"])
    port = container["ports"][0]["containerPort"]
    if declared_ports(container["args"])[port] == "http":
        assert server.get(port, "/v2/health/ready")[0] == 200
    else:
        assert grpc_health(server.address(port)) == SERVING
        client = grpcclient.InferenceServerClient(url=server.address(port))
        try:
            assert client.is_server_ready()
        finally:
            client.close()
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]
        if "httpGet" in probe:
            assert probe["httpGet"]["path"] == PROBE_PATHS[kind]
            assert server.get(probe["httpGet"]["port"], probe["httpGet"]["path"])[0] == 200
        else:
            # Knative allows probes on the serving port only.
            assert probe["tcpSocket"]["port"] == port
            host, _, number = server.address(port).rpartition(":")
            socket.create_connection((host, int(number)), timeout=10).close()
    annotations = runtimes[name]["spec"]["annotations"]
    metrics_port = int(annotations["prometheus.kserve.io/port"])
    assert declared_ports(container["args"]).get(metrics_port) == "metrics"
    assert "nv_inference_request_success" in scrape(server, metrics_port, annotations["prometheus.kserve.io/path"])


def test_inference_services_use_the_runtimes(runtimes, inference_services):
    assert {"inferenceservice.yaml", "inferenceservice-grpc.yaml"} <= set(inference_services)
    protocols = set()
    for name, isvc in inference_services.items():
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1", name
        assert isvc["metadata"]["name"]
        model = isvc["spec"]["predictor"]["model"]
        assert model["runtime"] in runtimes, name
        runtime = runtimes[model["runtime"]]["spec"]
        assert model["modelFormat"]["name"] in {f["name"] for f in runtime["supportedModelFormats"]}
        assert model["protocolVersion"] in runtime["protocolVersions"]
        protocols.add(model["protocolVersion"])
        uri = urllib.parse.urlparse(model["storageUri"])
        assert uri.scheme in {"pvc", "s3", "gs", "https", "hf", "azure"} and uri.netloc, model["storageUri"]
        # Ports come from the runtime: Knative would refuse a second one.
        assert "ports" not in model
    assert protocols == {"v2", "grpc-v2"}


@pytest.mark.parametrize("path", sorted(manifests.KSERVE.glob("*.yaml")), ids=lambda p: p.name)
def test_kserve_files_hold_one_resource(path):
    assert len(manifests.load(path)) == 1
