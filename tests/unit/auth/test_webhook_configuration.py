"""The published ValidatingWebhookConfiguration and the webhook's TLS files."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from kubenova.operator.admission.configuration import SPEC_CHANGED, Hook, webhook_configuration
from kubenova.operator.admission.registration import HOOKS
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
