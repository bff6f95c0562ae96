"""The Kubernetes manifests: every overlay renders, validates offline, and agrees with the code.

A renamed topic, a changed partition count, consumer group, port or setting fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from billing_ingest.settings import IngestSettings
from billing_invoicing.settings import InvoicingSettings
from billing_notify.settings import NotifySettings
from billing_rating.settings import RatingSettings
from billing_runtime.settings import ServiceSettings
from billing_schemas.channels import BY_TOPIC, CHANNELS
from billing_schemas.topics import Topic, all_topic_names
from billing_webhooks.settings import WebhooksSettings

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ["dev", "production"]
KUBERNETES_VERSION = "1.32"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "rating": RatingSettings,
    "invoicing": InvoicingSettings,
    "notify": NotifySettings,
    "webhooks": WebhooksSettings,
}
CONSUMED = {
    "ingest": Topic.USAGE_SUBMITTED,
    "rating": Topic.USAGE_RECORDED,
    "invoicing": Topic.CHARGE_RATED,
    "notify": Topic.INVOICE_FINALIZED,
}
CUSTOM_KINDS = {"KafkaTopic", "ScaledObject", "ServiceMonitor"}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/kubernetes"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_every_core_resource_validates_against_the_kubernetes_schema(
    manifests: list[dict[str, Any]],
) -> None:
    checked = 0
    for doc in manifests:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:  # pragma: no cover - would mean a kind we did not expect
            pytest.fail(f"no schema for {doc['kind']}: add it to CUSTOM_KINDS with its own checks")
        checked += 1
    assert checked >= 4 * 5  # Deployment, Service, ServiceAccount, PDB, NetworkPolicy per service


def test_kafka_topics_are_exactly_the_topics_of_the_code(manifests: list[dict[str, Any]]) -> None:
    topics = of_kind(manifests, "KafkaTopic")
    assert all(t["apiVersion"] == "kafka.strimzi.io/v1" for t in topics.values())
    names = {t["spec"]["topicName"] for t in topics.values()}
    assert names == set(all_topic_names(""))
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "billing"
        assert topic["spec"]["partitions"] >= 1
        assert int(topic["spec"]["config"]["retention.ms"]) >= 7 * 24 * 3600 * 1000


def test_each_topic_is_made_as_its_channel_declares(manifests: list[dict[str, Any]]) -> None:
    topics = {t["spec"]["topicName"]: t for t in of_kind(manifests, "KafkaTopic").values()}
    for channel in CHANNELS:
        assert topics[channel.name()]["spec"]["partitions"] == channel.partitions
        # dead letters are few: one partition, kept at least as long as the topic
        dead = topics[channel.dead_letter_name()]
        assert dead["spec"]["partitions"] == 1
        assert int(dead["spec"]["config"]["retention.ms"]) >= int(
            topics[channel.name()]["spec"]["config"]["retention.ms"]
        )
    for scaler in of_kind(manifests, "ScaledObject").values():
        [trigger] = scaler["spec"]["triggers"]
        channel = BY_TOPIC[Topic(trigger["metadata"]["topic"])]
        declared = {g.default_name for g in channel.groups}
        assert trigger["metadata"]["consumerGroup"] in declared


def test_each_consumer_scales_on_its_own_group_lag_within_its_partitions(
    manifests: list[dict[str, Any]],
) -> None:
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"]
        for t in of_kind(manifests, "KafkaTopic").values()
    }
    scaled = of_kind(manifests, "ScaledObject")
    assert "billing-webhooks" not in scaled  # the receivers set its pace, not the lag
    for service, settings_class in SETTINGS.items():
        if service not in CONSUMED:
            continue
        scaler = scaled[f"billing-{service}"]
        assert scaler["apiVersion"] == "keda.sh/v1alpha1"
        assert scaler["spec"]["scaleTargetRef"]["name"] == f"billing-{service}"
        [trigger] = scaler["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        settings = settings_class()
        # the config map's TOPIC_NAMESPACE is empty: group and topic names are the defaults
        assert trigger["metadata"]["consumerGroup"] == settings.consumer_group  # type: ignore[attr-defined]
        assert trigger["metadata"]["topic"] == CONSUMED[service].value
        maximum = scaler["spec"]["maxReplicaCount"]
        assert scaler["spec"]["minReplicaCount"] <= maximum <= partitions[CONSUMED[service].value]


def test_deployments_match_the_services_settings(manifests: list[dict[str, Any]]) -> None:
    deployments = of_kind(manifests, "Deployment")
    config = next(iter(of_kind(manifests, "ConfigMap").values()))
    assert config["data"]["TOPIC_NAMESPACE"] == ""
    for service, settings_class in SETTINGS.items():
        pod = deployments[f"billing-{service}"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        prefix = f"BILLING_{service.upper()}_"
        fields = set(settings_class.model_fields)
        for variable in container["env"]:
            if variable["name"].startswith("OTEL_"):  # OpenTelemetry's own settings
                continue
            assert variable["name"].startswith(prefix), variable["name"]
            assert variable["name"].removeprefix(prefix).lower() in fields, variable["name"]
            assert "value" not in variable or "PASSWORD" not in variable["name"]
            ref = variable.get("valueFrom", {})
            if "MONGODB_URL" in variable["name"] or "PASSWORD" in variable["name"]:
                assert "secretKeyRef" in ref, f"{variable['name']} must come from a Secret"
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in config["data"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert int(env[f"{prefix}HTTP_PORT"]) == port == settings_class().http_port
        graceful = float(env[f"{prefix}GRACEFUL_TIMEOUT_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] > graceful + 5
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == f"billing-{service}"


def test_network_policies_allow_smtp_only_to_notify_and_webhooks(
    manifests: list[dict[str, Any]],
) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    for service in SETTINGS:
        egress_ports = {
            port["port"]
            for rule in policies[f"billing-{service}"]["spec"]["egress"]
            for port in rule["ports"]
        }
        assert {53, 9092, 27017, 4318} <= egress_ports
        assert bool(egress_ports & {25, 465, 587}) == (service in {"notify", "webhooks"})
        assert (443 in egress_ports) == (service == "webhooks")


def test_webhooks_reach_https_receivers_outside_the_cluster_only(
    manifests: list[dict[str, Any]],
) -> None:
    policy = of_kind(manifests, "NetworkPolicy")["billing-webhooks"]
    [https] = [r for r in policy["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443}]
    [peer] = https["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        peer["ipBlock"]["except"]
    )
    assert of_kind(manifests, "PodDisruptionBudget")["billing-webhooks"]
    assert of_kind(manifests, "Service")["billing-webhooks"]["spec"]["ports"][0]["port"] == 8105


def test_production_takes_credentials_from_an_existing_secret() -> None:
    docs = render("production")
    assert not of_kind(docs, "Secret"), "production must not carry credentials"
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"mongodb://[^\s\"']*@", text), "no credentials inline"


def test_compose_runs_every_service_from_its_dockerfile_with_settings_it_knows() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "mongodb", "mailpit"} <= set(services)
    for service, settings_class in SETTINGS.items():
        entry = services[service]
        dockerfile = ROOT / entry["build"]["dockerfile"]
        assert dockerfile.is_file()
        assert f'"billing_{service}"' in dockerfile.read_text()
        prefix = f"BILLING_{service.upper()}_"
        for name in entry["environment"]:
            assert name.startswith(prefix)
            assert name.removeprefix(prefix).lower() in settings_class.model_fields, name


def test_overdue_invoices_are_flagged_daily_by_a_command_the_image_has(
    manifests: list[dict[str, Any]],
) -> None:
    import tomllib

    [job] = of_kind(manifests, "CronJob").values()
    assert job["spec"]["schedule"] == "15 6 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"].endswith("/billing-invoicing:0.1.0")
    script, *args = container["command"]
    assert args == ["overdue"]
    project = tomllib.loads((ROOT / "services" / "invoicing" / "pyproject.toml").read_text())
    assert project["project"]["scripts"][script] == (
        "billing_invoicing.entrypoints.cli:invoices_app"
    )
    known = {f"BILLING_INVOICING_{name.upper()}" for name in InvoicingSettings.model_fields}
    assert {e["name"] for e in container["env"]} <= known
    # its own network policy selects the job's pods (and no Service or policy of the API does)
    labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    policy = of_kind(manifests, "NetworkPolicy")["billing-invoicing-overdue"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    service = of_kind(manifests, "Service")["billing-invoicing"]
    assert not service["spec"]["selector"].items() <= labels.items()


def test_ingest_admits_only_the_configured_callers(manifests: list[dict[str, Any]]) -> None:
    policy = of_kind(manifests, "NetworkPolicy")["billing-ingest"]
    rules = policy["spec"]["ingress"]
    assert rules
    for rule in rules:
        assert rule.get("from"), "an ingress rule without 'from' admits every pod"
        for peer in rule["from"]:
            selectors = [peer.get("podSelector"), peer.get("namespaceSelector")]
            present = [s for s in selectors if s is not None]
            assert present
            # an empty selector matches everything: every peer names labels it wants
            assert all(s.get("matchLabels") or s.get("matchExpressions") for s in present), peer
    callers = [peer for rule in rules for peer in rule["from"]]
    assert {"podSelector": {"matchLabels": {"billing.example.com/usage-source": "true"}}} in callers


def test_ingest_takes_its_api_tokens_from_a_secret_and_never_runs_anonymous(
    manifests: list[dict[str, Any]],
) -> None:
    pod = of_kind(manifests, "Deployment")["billing-ingest"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert "BILLING_INGEST_ALLOW_ANONYMOUS" not in env
    path = Path(env["BILLING_INGEST_API_TOKENS_FILE"])
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]["secretName"]
    assert secret.startswith("billing-ingest-api-tokens")
    generated = of_kind(manifests, "Secret")
    if secret in generated:  # the dev overlay: its well-known tokens must parse
        import base64

        tokens = json.loads(base64.b64decode(generated[secret]["data"][path.name]))
        assert IngestSettings(api_tokens=tokens).usage_api_scopes()


def test_compose_gives_ingest_a_token_rather_than_anonymous_access() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "compose.yaml").read_text())
    environment = compose["services"]["ingest"]["environment"]
    assert "BILLING_INGEST_ALLOW_ANONYMOUS" not in environment
    settings = IngestSettings.model_validate(
        {"api_tokens": json.loads(environment["BILLING_INGEST_API_TOKENS"])}
    )
    assert settings.usage_api_scopes()
