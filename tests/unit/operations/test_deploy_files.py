"""deploy/compose.yaml, deploy/k8s/ and deploy/Dockerfile agree with the services they run.

Images, ports, environment variable names and probe paths are checked against the services'
settings classes (field names are the variables, defaults give the ports), their entry points,
consumer groups and topics (from create_app, which builds no client), and their apps' routes.
The console is checked like the four services where that applies, and for what is its own: one
replica, no Kafka or MongoDB settings, API URLs that name the services, its npm assets in the image.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import sys
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.unit.operations import opsfiles as ops

KEDA_TOPICS = {
    "intake": {"ehr.events.v1"},
    "measures": {"clinic.care.v1"},
    "alerts": {"clinic.measures.v1"},
    "reporting": {"clinic.care.v1", "clinic.measures.v1", "clinic.alerts.v1"},
}
SECRET_VARS = {"ATTUNE_PSEUDONYM_KEY", "KAFKA_SASL_PASSWORD", "MONGODB_URI"}
# What the console must never be given: it uses neither (a KAFKA_SASL_MECHANISM without its
# password even stops it at start in production).
INFRA_PREFIXES = ("KAFKA_", "MONGODB_")


# Read in a separate process: importing the console's app here would add its metrics to this
# process's registry, which test_prometheus_files checks as the four services' metrics.
_CONSOLE_FACTS = """
import importlib, json, sys
from attune_console.app import VENDOR, create_app
module, func = sys.argv[1].split(":")
print(json.dumps({
    "paths": [getattr(r, "path", "") for r in create_app().routes],
    "vendor": VENDOR,
    "entry_point_callable": callable(getattr(importlib.import_module(module), func, None)),
}))
"""


def _entry_point(service: str) -> str:
    """The `module:function` of the service's `attune-<service>` script."""
    pyproject = tomllib.loads((ops.ROOT / "services" / service / "pyproject.toml").read_text())
    target: str = pyproject["project"]["scripts"][f"attune-{service}"]
    return target


@functools.cache
def _console_facts() -> dict[str, Any]:
    """The console app's route paths, the npm files it serves at /vendor/<name>, and whether its
    entry point is callable."""
    done = subprocess.run(
        [sys.executable, "-c", _CONSOLE_FACTS, _entry_point(ops.CONSOLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    facts: dict[str, Any] = json.loads(done.stdout)
    return facts


@functools.cache
def _paths(service: str) -> frozenset[str]:
    """The paths the service's app serves (create_app builds no client and opens no connection)."""
    if service == ops.CONSOLE:
        return frozenset(_console_facts()["paths"])
    app = importlib.import_module(f"attune_{service}.app").create_app()
    return frozenset(getattr(r, "path", "") for r in app.routes)


def _console_api_urls() -> dict[str, str]:
    """ATTUNE_CONSOLE_<API>_URL -> <api>, for every API URL the console's settings read."""
    fields = ops.settings_class(ops.CONSOLE).model_fields
    found = {f.upper(): m.group(1) for f in fields if (m := re.fullmatch(r"attune_console_([a-z]+)_url", f))}
    assert found and set(found.values()) <= set(ops.SERVICES), found
    return found


def _service_wiring(service: str) -> tuple[str, set[str]]:
    """(consumer group, topics) as the service's create_app wires them (no network)."""
    app = importlib.import_module(f"attune_{service}.app").create_app()
    svc = app.state.service
    return svc.group_id, set(svc.topics)


def _image_service(image: str) -> str | None:
    """attune-<service>[:tag] (any registry) -> service."""
    m = re.search(r"(?:^|/)attune-([a-z]+)(?::[^/]+)?$", image)
    return m.group(1) if m else None


def _probe_path(check: dict[str, Any]) -> tuple[int, str]:
    """Port and path of a compose healthcheck that opens http://127.0.0.1:PORT/PATH."""
    text = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", text)
    assert m, text
    return int(m.group(1)), m.group(2)


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return ops.load_yaml(ops.COMPOSE)


def test_compose_runs_the_infrastructure_production_like(compose: dict[str, Any]) -> None:
    services = compose["services"]
    brokers = [s for n, s in services.items() if n.startswith("kafka-")]
    assert len(brokers) == 3
    for broker in brokers:
        assert broker["image"].startswith("apache/kafka:")
        assert broker["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert broker["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert broker["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert sorted({b["environment"]["KAFKA_NODE_ID"] for b in brokers}) == ["1", "2", "3"]
    mongos = [s for n, s in services.items() if re.fullmatch(r"mongo-\d", n)]
    assert len(mongos) == 3 and all("--replSet" in m["command"] for m in mongos)
    assert "rs.initiate" in " ".join(services["mongo-init"]["entrypoint"])
    assert services["topics"]["entrypoint"][-2:] == ["--replication", "3"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert "prometheus.compose.yml" in " ".join(services["prometheus"]["command"])


@pytest.mark.parametrize("service", ops.DEPLOYABLES)
def test_compose_service_matches_its_settings(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    port = ops.default_port(service)
    assert _image_service(spec["image"]) == service
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["build"]["args"] == {"SERVICE": service, "PORT": str(port)}
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert spec["tmpfs"] == ["/tmp"] and "no-new-privileges:true" in spec["security_opt"]
    env = spec["environment"]
    unknown = set(env) - ops.env_names(ops.settings_class(service))
    assert not unknown, f"{service}: variables its settings do not read: {sorted(unknown)}"
    assert env["ATTUNE_HTTP_PORT"] == str(port)
    assert env["ATTUNE_HTTP_HOST"] == "0.0.0.0"
    assert env["ATTUNE_ENV"] == "production"
    assert spec["secrets"] == ["attune_tokens"]
    assert env["ATTUNE_TOKENS_FILE"] == "/run/secrets/attune_tokens"
    # reached inside the network only, like the others (the header: publish through your ingress)
    assert spec["expose"] == [str(port)] and "ports" not in spec
    probe_port, path = _probe_path(spec["healthcheck"])
    assert (probe_port, path) == (port, "/readyz")
    assert path in _paths(service)


@pytest.mark.parametrize("service", ops.SERVICES)
def test_compose_kafka_service_runs_twice_once_topics_and_replica_set_exist(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose["services"][service]
    assert spec["deploy"]["replicas"] == 2
    assert {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"} <= set(spec["environment"])
    deps = spec["depends_on"]
    assert deps["topics"]["condition"] == deps["mongo-init"]["condition"] == "service_completed_successfully"


def test_compose_console_runs_once_after_the_apis_without_kafka_or_mongodb(compose: dict[str, Any]) -> None:
    spec = compose["services"][ops.CONSOLE]
    # sessions in memory and no sticky sessions in compose: exactly one replica
    assert spec["deploy"]["replicas"] == 1
    infra = sorted(v for v in spec["environment"] if v.startswith(INFRA_PREFIXES))
    assert not infra, infra
    # its /readyz asks the /readyz of the APIs it calls: it starts once they are healthy, not after
    # the Kafka jobs
    apis = set(_console_api_urls().values())
    assert spec["depends_on"] == {s: {"condition": "service_healthy"} for s in apis}
    assert all("healthcheck" in compose["services"][s] for s in apis)


def test_compose_console_urls_name_the_api_services(compose: dict[str, Any]) -> None:
    env = compose["services"][ops.CONSOLE]["environment"]
    apis = _console_api_urls()
    assert {v for v in env if v.startswith("ATTUNE_CONSOLE_") and v.endswith("_URL")} == set(apis)
    for var, api in apis.items():
        url = urlsplit(env[var])
        assert (url.scheme, url.hostname, url.port, url.path) == ("http", api, ops.default_port(api), ""), var
        assert str(url.port) in compose["services"][api]["expose"], var


def test_compose_topics_job_uses_only_known_settings(compose: dict[str, Any]) -> None:
    job = compose["services"]["topics"]
    assert set(job["environment"]) <= ops.env_names(ops.settings_class("intake"))
    assert _image_service(job["image"]) == "intake"


def test_compose_mounts_match_the_prometheus_and_grafana_files(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus:/etc/prometheus:ro" in prom
    assert (ops.PROMETHEUS / "prometheus.compose.yml").exists()
    graf = compose["services"]["grafana"]["volumes"]
    provider = ops.load_yaml(ops.DEPLOY / "grafana" / "provisioning" / "dashboards" / "attune.yaml")
    dash_dir = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{dash_dir}:ro" in graf
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in graf


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    docs = {}
    for path in ops.K8S:
        for doc in ops.load_yaml_all(path):
            assert "kind" in doc and "apiVersion" in doc, path
            key = (doc["kind"], doc.get("metadata", {}).get("name", ""))
            assert key not in docs, f"{key} defined twice"
            docs[key] = doc
    return docs


def test_kustomization_lists_every_manifest(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    kust = k8s[("Kustomization", "")]
    listed = set(kust["resources"])
    on_disk = {p.name for p in ops.K8S} - {"kustomization.yaml"}
    assert listed == on_disk
    assert {i["name"] for i in kust["images"]} == {f"attune-{s}" for s in ops.DEPLOYABLES}


def test_configmap_holds_only_known_non_secret_settings(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    data = k8s[("ConfigMap", "attune-config")]["data"]
    base = ops.env_names(ops.settings_class("intake").__mro__[1])  # ServiceSettings
    assert set(data) <= base, sorted(set(data) - base)
    assert not set(data) & SECRET_VARS
    assert data["ATTUNE_ENV"] == "production"
    assert data["ATTUNE_HTTP_HOST"] == "0.0.0.0"


def _environment(k8s: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]) -> dict[str, Any]:
    """The container's environment as the pod gets it: envFrom ConfigMaps, then env entries (values,
    ConfigMap keys resolved; a Secret key stays ("secret", name, key))."""
    found: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        found.update(k8s[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for e in container["env"]:
        ref = e.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            cm = ref["configMapKeyRef"]
            data = k8s[("ConfigMap", cm["name"])]["data"]
            assert cm["key"] in data, (e["name"], cm)
            found[e["name"]] = data[cm["key"]]
        elif "secretKeyRef" in ref:
            found[e["name"]] = ("secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
        else:
            found[e["name"]] = e["value"]
    return found


@pytest.mark.parametrize("service", ops.DEPLOYABLES)
def test_deployment_matches_its_settings_and_endpoints(
    k8s: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    dep = k8s[("Deployment", service)]
    port = ops.default_port(service)
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert _image_service(container["image"]) == service
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # environment (with what envFrom brings): every name is a setting of this service; secrets come
    # from Secrets only
    names = ops.env_names(ops.settings_class(service))
    resolved = _environment(k8s, container)
    assert set(resolved) <= names, sorted(set(resolved) - names)
    assert resolved["ATTUNE_HTTP_PORT"] == str(port)
    assert resolved["ATTUNE_HTTP_HOST"] == "0.0.0.0"
    assert resolved["ATTUNE_ENV"] == "production"
    for var in SECRET_VARS & set(resolved):
        assert resolved[var][:2] == ("secret", "attune-secrets"), var
    env = {e["name"]: e for e in container["env"]}
    tokens_file = env["ATTUNE_TOKENS_FILE"]["value"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert tokens_file.startswith(mounts["tokens"]["mountPath"] + "/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "attune-tokens"
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    # probes: readiness on /readyz, liveness (and start-up) on /healthz, on the http port
    paths = _paths(service)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"/readyz", "/healthz", "/metrics"} <= paths
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") == "true":
        assert ann["prometheus.io/port"] == str(port) and ann["prometheus.io/path"] == "/metrics"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == service and labels["app.kubernetes.io/part-of"] == "attune"


@pytest.mark.parametrize("service", ops.SERVICES)
def test_kafka_service_deployment_gets_the_shared_config_and_its_secrets(
    k8s: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    template = k8s[("Deployment", service)]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (container,) = template["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "attune-config"}}]
    env = {e["name"]: e for e in container["env"]}
    for var in SECRET_VARS:
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "attune-secrets", var


def test_console_deployment_runs_once_without_kafka_or_mongodb(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    dep = k8s[("Deployment", ops.CONSOLE)]
    # sessions in memory: one replica (more need sticky sessions at the ingress), nothing that
    # would scale it (no consumer group: no ScaledObject) and no budget that blocks node drains
    assert dep["spec"]["replicas"] == 1
    assert ("ScaledObject", ops.CONSOLE) not in k8s
    assert ("PodDisruptionBudget", ops.CONSOLE) not in k8s
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    resolved = _environment(k8s, container)
    infra = sorted(v for v in resolved if v.startswith(INFRA_PREFIXES))
    assert not infra, infra
    # the shared values come from attune-config key by key (envFrom would bring the Kafka settings)
    assert "envFrom" not in container
    cm_keys = {
        e["valueFrom"]["configMapKeyRef"]["name"]
        for e in container["env"]
        if "configMapKeyRef" in e.get("valueFrom", {})
    }
    assert cm_keys == {"attune-config"}
    # the browser-facing process is never given the pseudonym key (it needs none)
    assert "ATTUNE_PSEUDONYM_KEY" not in resolved


def test_console_urls_name_the_api_services_in_kubernetes(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    (container,) = k8s[("Deployment", ops.CONSOLE)]["spec"]["template"]["spec"]["containers"]
    env = _environment(k8s, container)
    apis = _console_api_urls()
    assert {v for v in env if v.startswith("ATTUNE_CONSOLE_") and v.endswith("_URL")} == set(apis)
    for var, api in apis.items():
        url = urlsplit(env[var])
        assert (url.scheme, url.path) == ("http", ""), var
        # a Service in the same namespace, on the port it serves
        svc = k8s[("Service", str(url.hostname))]
        assert svc["metadata"]["namespace"] == k8s[("Deployment", ops.CONSOLE)]["metadata"]["namespace"]
        assert url.hostname == api, var
        assert url.port in {p["port"] for p in svc["spec"]["ports"]}, var
        assert url.port == ops.default_port(api), var


@pytest.mark.parametrize("service", ops.DEPLOYABLES)
def test_service_selects_the_pods(k8s: dict[tuple[str, str], dict[str, Any]], service: str) -> None:
    pod_labels = k8s[("Deployment", service)]["spec"]["template"]["metadata"]["labels"]
    svc = k8s[("Service", service)]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": ops.default_port(service), "targetPort": "http", "protocol": "TCP"}
    ]


@pytest.mark.parametrize("service", ops.SERVICES)
def test_disruption_budget_selects_the_pods(k8s: dict[tuple[str, str], dict[str, Any]], service: str) -> None:
    pod_labels = k8s[("Deployment", service)]["spec"]["template"]["metadata"]["labels"]
    pdb = k8s[("PodDisruptionBudget", service)]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1


@pytest.mark.parametrize("service", ops.SERVICES)
def test_scaled_object_scales_on_the_services_own_group_and_topics(
    k8s: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    so = k8s[("ScaledObject", service)]
    assert so["spec"]["scaleTargetRef"]["name"] == service
    assert so["spec"]["minReplicaCount"] >= 2
    from attune_shared.kafka_admin import TOPICS

    triggers = so["spec"]["triggers"]
    assert all(t["type"] == "kafka" for t in triggers)
    # the CRD types trigger metadata as a map of strings: "500", "false", never 500 or false
    assert all(isinstance(v, str) for t in triggers for v in t["metadata"].values())
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {f"attune-{service}"}
    topics = {t["metadata"]["topic"] for t in triggers}
    assert topics == KEDA_TOPICS[service]
    assert so["spec"]["maxReplicaCount"] <= min(TOPICS[t] for t in topics)
    # what the service really subscribes to, as its composition root wires it (no prefix here)
    group, consumed = _service_wiring(service)
    assert (group, consumed) == (f"attune-{service}", topics)
    boot = k8s[("ConfigMap", "attune-config")]["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    for t in triggers:
        assert t["metadata"]["bootstrapServers"] == boot
        assert t["authenticationRef"]["name"] in {n for k, n in k8s if k == "TriggerAuthentication"}


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_any_service_as_a_non_root_user() -> None:
    text = ops.DOCKERFILE.read_text()
    assert re.search(r"^FROM .+ AS build$", text, flags=re.M) and re.search(
        r"^FROM .+ AS runtime$", text, flags=re.M
    )
    assert "ARG SERVICE=intake" in text
    assert 'uv sync --frozen --no-dev --package "attune-${SERVICE}"' in text
    assert 'ln -s "/app/.venv/bin/attune-${SERVICE}" /app/.venv/bin/attune-service' in text
    assert 'ENTRYPOINT ["/app/.venv/bin/attune-service"]' in text
    (user,) = re.findall(r"^USER (\S+)$", text, flags=re.M)
    assert user.split(":")[0] not in ("root", "0") and user.split(":")[0].isdigit()
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.M)
    # every image environment variable is a setting: of every service, or of the console only
    names = set(re.findall(r"(ATTUNE_[A-Z_]+|KAFKA_[A-Z_]+|MONGODB_[A-Z_]+)=", _image_env_block(text)))
    base = ops.env_names(ops.settings_class("intake").__mro__[1])
    assert names and names - base <= ops.env_names(ops.settings_class(ops.CONSOLE)), sorted(names - base)
    # the PORT check in the build covers exactly the deployables' default ports
    pairs = set(re.findall(r"([a-z]+):(\d{4})", text.split("RUN case", 1)[1].split("esac", 1)[0]))
    assert pairs == {(s, str(ops.default_port(s))) for s in ops.DEPLOYABLES}


def _image_env_block(text: str) -> str:
    block = re.search(r"^ENV PATH=.*?(?=\n\n)", text, flags=re.M | re.S)
    assert block
    return block.group(0)


def test_dockerfile_reads_the_whole_workspace_before_the_dependency_layer() -> None:
    text = ops.DOCKERFILE.read_text()
    members = tomllib.loads((ops.ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    assert {f"services/{s}" for s in ops.DEPLOYABLES} <= set(members)
    before_sync = text.split("uv sync", 1)[0]
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in before_sync, member


def test_dockerfile_gives_the_console_its_runtime_npm_assets() -> None:
    text = ops.DOCKERFILE.read_text()
    assert re.search(r"^FROM \S+ AS assets$", text, flags=re.M)
    stage = text.split(" AS assets", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY services/console/package.json services/console/package-lock.json ./" in stage
    # npm ci for the console only (runtime packages, the lock file exactly); an empty folder otherwise
    install = re.search(r'if \[ "\$\{SERVICE\}" = "console" \]; then(.*?)else(.*?)fi', stage, flags=re.S)
    assert install, stage
    assert "npm ci --omit=dev" in install.group(1) and "mkdir node_modules" in install.group(2)
    # every file the console serves at /vendor/... is a runtime dependency, checked after the install
    package = json.loads((ops.ROOT / "services" / "console" / "package.json").read_text())
    lock = json.loads((ops.ROOT / "services" / "console" / "package-lock.json").read_text())
    for parts in _console_facts()["vendor"].values():
        assert parts[0] in package["dependencies"], parts
        assert not lock["packages"][f"node_modules/{parts[0]}"].get("dev"), parts
        assert f"test -f node_modules/{'/'.join(parts)}" in install.group(1), parts
    # the runtime copies them where ATTUNE_CONSOLE_ASSETS_DIR (a console setting) says
    (dest,) = re.findall(r"^COPY --from=assets /assets/node_modules (\S+)$", text, flags=re.M)
    (assets_dir,) = re.findall(r"ATTUNE_CONSOLE_ASSETS_DIR=(\S+)", _image_env_block(text))
    assert dest == assets_dir
    assert "attune_console_assets_dir" in ops.settings_class(ops.CONSOLE).model_fields


@pytest.mark.parametrize("service", ops.DEPLOYABLES)
def test_each_service_has_the_entry_point_the_image_runs(service: str) -> None:
    if service == ops.CONSOLE:
        assert _console_facts()["entry_point_callable"] is True
        return
    module, func = _entry_point(service).split(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    lines = {ln.strip() for ln in (ops.ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".cache", "var", "deploy", "tests"} <= lines
    # what the Dockerfile copies is not ignored
    for copied in re.findall(r"^COPY (?!--from)(\S+)", ops.DOCKERFILE.read_text(), flags=re.M):
        top = copied.rstrip("/").split("/")[0]
        assert top not in lines, copied
