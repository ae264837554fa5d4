"""Calling the admission webhook directly, as anyone who can reach its port could."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import tempfile
import uuid
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from kubenova.devcluster import ClusterAccess

CONFIGURATION = "kubenova-admission"


def published_hook(cluster: ClusterAccess, plural: str) -> tuple[str, bytes]:
    """The URL and CA bundle the operator published for the `plural` hook."""
    result = cluster.kubectl("get", "validatingwebhookconfiguration", CONFIGURATION, "-o", "json")
    config = json.loads(result.stdout)
    [hook] = [w for w in config["webhooks"] if w["name"] == f"{plural}.validate.kubenova.io"]
    client = hook["clientConfig"]
    return client["url"], base64.b64decode(client["caBundle"])


def _context(ca: bytes) -> ssl.SSLContext:
    with tempfile.NamedTemporaryFile(suffix=".crt") as bundle:
        bundle.write(ca)
        bundle.flush()
        return ssl.create_default_context(cafile=bundle.name)


def served_certificate(url: str, ca: bytes) -> x509.Certificate:
    """The certificate the webhook serves at `url`, verified against `ca`."""
    parts = urlsplit(url)
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
        _context(ca).wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def forged_review(kind: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """A hand-made AdmissionReview for CREATE of `body` (given a fresh uid)."""
    body = json.loads(json.dumps(body))
    body["metadata"]["uid"] = str(uuid.uuid4())
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "kubenova.io", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "kubenova.io", "version": "v1alpha1", "resource": plural},
            "operation": "CREATE",
            "namespace": body["metadata"].get("namespace"),
            "name": body["metadata"]["name"],
            "object": body,
            "oldObject": None,
            "dryRun": False,
            "userInfo": {"username": "mallory", "groups": ["system:authenticated"]},
        },
    }


def post_review(url: str, ca: bytes, review: dict[str, Any]) -> dict[str, Any]:
    """POST the review straight to the webhook (no apiserver); its response."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(
        parts.hostname or "", parts.port, context=_context(ca), timeout=10
    )
    try:
        connection.request(
            "POST", parts.path, json.dumps(review), {"Content-Type": "application/json"}
        )
        reply = connection.getresponse()
        payload = reply.read()
        assert reply.status == 200, payload
    finally:
        connection.close()
    response: dict[str, Any] = json.loads(payload)["response"]
    return response
