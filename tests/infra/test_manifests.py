"""The deployment manifests (infra/k8s, infra/compose, infra/Dockerfile) checked against the
code they deploy: the topic catalogue, the `carelog` command and the settings. Pure: no
broker, no Kubernetes, no Docker."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import build_parser
from infra.k8s_topics import resource_name, topic_manifests
from infra.store_probe import lag_of
from streams.settings import PROJECT_ROOT, Settings, env_variables
from streams.settings.lake import LakeSettings
from streams.settings.notifier import NotifierSettings
from streams.settings.store import StoreSettings
from streams.settings.worker import WorkerSettings
from streams.topics import catalogue

INFRA = PROJECT_ROOT / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "compose" / "compose.yaml"
ALL_YAML = sorted([*K8S.glob("*.yaml"), *(INFRA / "compose").glob("*.yaml")])

Doc = dict[str, Any]


def docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> list[Doc]:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [d for name in listed for d in docs(K8S / name)]


def of_kind(kind: str) -> list[Doc]:
    return [d for d in k8s_objects() if d["kind"] == kind]


def pod_specs() -> list[tuple[str, Doc]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in k8s_objects()
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def containers() -> list[tuple[str, Doc]]:
    return [(f"{name}/{c['name']}", c) for name, spec in pod_specs() for c in spec["containers"]]


def compose_services() -> dict[str, Doc]:
    services: dict[str, Doc] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def carelog_services() -> dict[str, Doc]:
    return {n: s for n, s in compose_services().items() if s.get("image", "").startswith("carelog")}


def kafka_version_of_pom() -> str:
    pom = (INFRA / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: p.name)
def test_every_manifest_parses_as_yaml(path: Path) -> None:
    assert docs(path), f"{path} holds no document"
    for doc in docs(path):
        assert isinstance(doc, dict)


def test_kustomization_lists_every_file_and_nothing_else() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present
    assert len(set(listed)) == len(listed)
    assert {p.suffix for p in K8S.iterdir()} == {".yaml"}, "a stray file kustomize would not see"


def test_committed_topic_manifests_equal_the_rendered_ones() -> None:
    committed = (K8S / "kafka-topics.yaml").read_text()
    assert committed == topic_manifests("production"), (
        "infra/k8s/kafka-topics.yaml is stale: run "
        "`carelog topics manifests > infra/k8s/kafka-topics.yaml`"
    )


def test_every_catalogue_topic_has_a_kafka_topic_with_its_settings() -> None:
    kafka_topics = {d["spec"]["topicName"]: d for d in of_kind("KafkaTopic")}
    production = catalogue("production")
    assert set(kafka_topics) == {t.name for t in production}
    clusters = {d["metadata"]["name"] for d in of_kind("Kafka")}
    for topic in production:
        resource = kafka_topics[topic.name]
        assert resource["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert resource["metadata"]["name"] == resource_name(topic.name)
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] in clusters
        spec = resource["spec"]
        assert spec["partitions"] == topic.partitions
        assert spec["replicas"] == topic.replication == 3
        assert {k: str(v) for k, v in spec["config"].items()} == topic.all_configs()
        assert spec["config"]["min.insync.replicas"] == "2"


def test_topic_names_become_valid_kubernetes_names() -> None:
    for topic in catalogue("production"):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", resource_name(topic.name))


def test_kafka_cluster_is_kraft_with_replication_3_and_min_insync_2() -> None:
    (kafka,) = of_kind("Kafka")
    name = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    assert kafka["spec"]["kafka"]["version"] == kafka_version_of_pom()
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    pools = of_kind("KafkaNodePool")
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == name for p in pools)
    roles = {r: sum(p["spec"]["replicas"] for p in pools if r in p["spec"]["roles"])
             for r in ("broker", "controller")}  # fmt: skip
    assert roles["broker"] >= 3 and roles["controller"] >= 3
    bootstrap = yaml.safe_load((K8S / "config.yaml").read_text())["data"]["CARELOG_KAFKA_BOOTSTRAP"]
    assert bootstrap == f"{name}-kafka-bootstrap:9092"


def test_compose_kafka_is_the_version_the_project_uses() -> None:
    kafka = compose_services()["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_version_of_pom()}"
    assert "broker,controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]


def _check_command(where: str, command: list[str]) -> None:
    assert command[0] == "carelog", f"{where}: runs {command[0]!r}, not the carelog command"
    try:
        build_parser().parse_args(command[1:])
    except SystemExit as exc:
        pytest.fail(f"{where}: `{' '.join(command)}` is not a valid carelog command ({exc})")


def test_every_kubernetes_container_runs_a_real_carelog_subcommand() -> None:
    seen = set()
    for where, container in containers():
        _check_command(where, container["command"])
        seen.add(container["command"][1])
    assert {"gateway", "mllp", "worker", "projection", "sink", "notifier", "run"} <= seen


def test_every_compose_service_runs_a_real_carelog_subcommand() -> None:
    seen = set()
    for name, service in carelog_services().items():
        _check_command(f"compose {name}", service["command"])
        seen.add(service["command"][1])
    assert {"gateway", "mllp", "worker", "projection", "sink", "run"} <= seen


def test_exec_probes_run_modules_that_exist() -> None:
    for where, container in containers():
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            if command:
                assert command[:2] == ["python", "-m"], where
                assert importlib.util.find_spec(command[2]) is not None, f"{where}: {command}"


def _env_names() -> dict[str, str]:
    """Every environment variable a carelog process is given, with where it is named."""
    names: dict[str, str] = {}
    for doc in k8s_objects():
        if doc["kind"] == "ConfigMap":
            names.update(dict.fromkeys(doc["data"], f"ConfigMap {doc['metadata']['name']}"))
        if doc["kind"] == "Secret":
            keys = {**doc.get("data", {}), **doc.get("stringData", {})}
            names.update(dict.fromkeys(keys, f"Secret {doc['metadata']['name']}"))
    for where, container in containers():
        names.update({e["name"]: where for e in container.get("env", [])})
    for name, service in carelog_services().items():
        names.update(dict.fromkeys(service.get("environment", {}), f"compose {name}"))
    return names


def test_every_env_var_named_is_a_real_setting() -> None:
    fields = env_variables()
    names = _env_names()
    assert names
    unknown = {n: where for n, where in names.items() if n not in fields}
    assert not unknown, f"not settings of streams/settings/: {unknown}"


def test_settings_in_configmap_and_secret_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for doc in k8s_objects():
        if doc["kind"] in ("ConfigMap", "Secret"):
            for name, value in (doc.get("data", {}) or doc.get("stringData", {})).items():
                monkeypatch.setenv(name, value)
    settings = Settings()  # as the processes read them: from the environment
    assert settings.environment == "production"
    assert settings.gateway.host == "0.0.0.0"
    assert isinstance(settings.lake.storage_options, dict)


def test_containers_take_settings_that_exist_and_have_resources() -> None:
    config_maps = {d["metadata"]["name"] for d in of_kind("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in of_kind("Secret")}
    for where, container in containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, where
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, where
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), where
        assert "memory" in resources["limits"], where


def test_api_nodes_probe_readyz_and_healthz_and_share_the_store() -> None:
    (api,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "carelog-api"]
    spec = api["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in spec["containers"]}
    gateway, projection = by_name["gateway"], by_name["projection"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Catch-up gates a new pod once (startup), never later (a burst would empty the Service).
    assert projection["startupProbe"]["exec"]["command"][:3] == [
        "python",
        "-m",
        "infra.store_probe",
    ]
    assert "readinessProbe" not in projection
    # The store file lives on a volume both containers mount at the same place.
    store_path = Path(
        yaml.safe_load((K8S / "config.yaml").read_text())["data"]["CARELOG_FHIR_STORE_PATH"]
    )
    mounts = [
        {m["name"]: Path(m["mountPath"]) for m in c["volumeMounts"]} for c in (gateway, projection)
    ]
    shared = [
        n
        for n in mounts[0]
        if mounts[1].get(n) == mounts[0][n] and store_path.is_relative_to(mounts[0][n])
    ]
    assert shared
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all("emptyDir" in volumes[n] for n in shared)


def test_selectors_of_services_and_budgets_match_pods() -> None:
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in of_kind("Deployment")]

    def matches(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for service in of_kind("Service"):
        assert matches(service["spec"]["selector"]), service["metadata"]["name"]
    for budget in of_kind("PodDisruptionBudget"):
        assert matches(budget["spec"]["selector"]["matchLabels"]), budget["metadata"]["name"]
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_sink_is_one_consumer_group_writing_to_object_storage() -> None:
    (sink,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "carelog-sink"]
    assert sink["spec"]["replicas"] == 1
    assert sink["spec"]["strategy"]["type"] == "Recreate"
    config = yaml.safe_load((K8S / "config.yaml").read_text())["data"]
    assert re.match(r"(s3|az|gs|abfss)://", config["CARELOG_LAKE_URI"])


def test_dockerfile_builds_from_python_311_slim_with_the_lock() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen" in text
    assert "COPY pyproject.toml uv.lock" in text


def test_store_lag_counts_what_is_not_applied() -> None:
    watermarks = {("t", 0): (0, 10), ("t", 1): (0, 0), ("t", 2): (5, 8), ("u", 0): (0, 4)}
    applied = {("t", 0): 9, ("t", 2): 2, ("u", 0): 1}
    # t/0 all applied; t/1 empty; t/2 never reached 5..7 (3); u/0 offsets 2 and 3 (2)
    assert lag_of(applied, watermarks) == 5
    assert lag_of({}, {("t", 0): (0, 10)}) == 10
    assert lag_of({("t", 0): 12}, {("t", 0): (0, 10)}) == 0


def test_carelog_topics_manifests_prints_the_committed_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from infra.cli import main

    assert main(["topics", "manifests"]) == 0
    assert capsys.readouterr().out == (K8S / "kafka-topics.yaml").read_text()
    assert main(["topics", "manifests", "--environment", "local", "--cluster", "dev"]) == 0
    local = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["spec"]["replicas"] for d in local} == {1}
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in local} == {"dev"}


def test_metrics_ports_declared_are_the_ones_the_processes_serve() -> None:
    serves = {
        "worker": WorkerSettings.model_fields["metrics_port"].default,
        "projection": StoreSettings.model_fields["metrics_port"].default,
        "sink": LakeSettings.model_fields["metrics_port"].default,
        "notifier": NotifierSettings.model_fields["metrics_port"].default,
    }
    config = yaml.safe_load((K8S / "config.yaml").read_text())["data"]
    assert config["CARELOG_METRICS_HOST"] == "0.0.0.0"  # reachable by the scraper
    for where, container in containers():
        command = container["command"]
        declared = {
            p["containerPort"] for p in container.get("ports", []) if p["name"] == "metrics"
        }
        if command[1] == "mllp":
            assert declared == {int(command[command.index("--metrics-port") + 1])}, where
        elif command[1] in serves:
            assert declared == {serves[command[1]]}, where
