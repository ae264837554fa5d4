"""The published webhook configurations, the finalizers added on CREATE, the TLS files."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from kubenova.operator.admission.configuration import (
    SPEC_CHANGED,
    Hook,
    mutating_configuration,
    owner_reference,
    webhook_configuration,
)
from kubenova.operator.admission.finalizers import finalizers_at_creation
from kubenova.operator.admission.registration import HOOKS, MUTATING_HOOKS
from kubenova.operator.admission.tls import make_serving_files


def test_every_hook_fails_closed_and_only_sees_spec_changes() -> None:
    config = webhook_configuration(HOOKS, {"url": "https://127.0.0.1:8443/", "caBundle": "Q0E="})
    assert config["metadata"]["name"] == "kubenova-admission"
    by_name = {w["name"]: w for w in config["webhooks"]}
    assert set(by_name) == {
        "instances.validate.kubenova.io",
        "volumes.validate.kubenova.io",
        "networks.validate.kubenova.io",
        "projects.validate.kubenova.io",
    }
    for webhook in config["webhooks"]:
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["sideEffects"] == "None"  # it only reads: a forged call changes nothing
        assert webhook["matchConditions"] == [{"name": "spec-changed", "expression": SPEC_CHANGED}]
        [rule] = webhook["rules"]
        assert all("/" not in resource for resource in rule["resources"])  # no status
        assert webhook["clientConfig"]["caBundle"] == "Q0E="
    instances = by_name["instances.validate.kubenova.io"]
    assert instances["rules"][0]["operations"] == ["CREATE", "UPDATE"]  # never DELETE
    assert instances["clientConfig"]["url"] == "https://127.0.0.1:8443/instances"
    projects = by_name["projects.validate.kubenova.io"]
    assert projects["rules"][0]["operations"] == ["CREATE", "UPDATE", "DELETE"]
    assert projects["rules"][0]["scope"] == "Cluster"


def test_both_configurations_name_their_owner_without_blocking_its_deletion() -> None:
    role = {"metadata": {"name": "kubenova-operator", "uid": "0f0e", "resourceVersion": "7"}}
    owner = owner_reference(role)
    client = {"url": "https://127.0.0.1:8443/"}

    for make, hooks in ((webhook_configuration, HOOKS), (mutating_configuration, MUTATING_HOOKS)):
        assert make(hooks, client, owner=owner)["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "name": "kubenova-operator",
                "uid": "0f0e",
            }
        ]
        assert "ownerReferences" not in make(hooks, client)["metadata"]


def test_the_mutating_hooks_fail_closed_and_see_only_creates() -> None:
    config = mutating_configuration(
        MUTATING_HOOKS,
        {"service": {"namespace": "kubenova-system", "name": "webhook", "port": 443}},
    )
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert config["metadata"]["name"] == "kubenova-admission"
    by_name = {w["name"]: w for w in config["webhooks"]}
    assert set(by_name) == {
        "instances.finalize.kubenova.io",
        "volumes.finalize.kubenova.io",
        "networks.finalize.kubenova.io",
        "projects.finalize.kubenova.io",
    }
    for webhook in config["webhooks"]:
        assert (webhook["failurePolicy"], webhook["sideEffects"]) == ("Fail", "None")
        [rule] = webhook["rules"]
        assert rule["operations"] == ["CREATE"]
        assert rule["apiGroups"] == ["kubenova.io"]
    instances = by_name["instances.finalize.kubenova.io"]["clientConfig"]["service"]
    assert instances["path"] == "/instances-finalizers"  # not the validating handler's
    assert by_name["projects.finalize.kubenova.io"]["rules"][0]["scope"] == "Cluster"


def test_new_objects_get_their_kinds_finalizers_and_keep_their_own() -> None:
    instance = {"metadata": {"name": "vm", "finalizers": ["example.com/backup"]}}
    assert finalizers_at_creation("instances", instance) == [
        "example.com/backup",
        "kubenova.io/operator",
        "kubenova.io/agent",
    ]
    assert finalizers_at_creation("networks", {"metadata": {}}) == ["kubenova.io/operator"]
    assert finalizers_at_creation("projects", {"metadata": {}}) == ["kubenova.io/project"]
    complete = {"metadata": {"finalizers": ["kubenova.io/agent", "kubenova.io/operator"]}}
    assert finalizers_at_creation("volumes", complete) is None  # nothing to patch
    assert finalizers_at_creation("flavors", {"metadata": {}}) is None


def test_the_hook_names_are_fully_qualified() -> None:
    assert Hook("x", "instances", ("CREATE",)).webhook_name.count(".") >= 2


def test_the_serving_certificate_is_signed_by_the_published_ca(tmp_path: Path) -> None:
    files = make_serving_files(tmp_path / "certs", ["127.0.0.1", "localhost"])
    assert files.key.stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    # A client trusting only the CA accepts the server's chain for 127.0.0.1.
    client = ssl.create_default_context(cafile=str(files.ca))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(files.cert), str(files.key))
    assert client.verify_mode == ssl.CERT_REQUIRED
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
