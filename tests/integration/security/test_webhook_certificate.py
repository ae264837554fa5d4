"""The webhook's serving certificate is renewed before it expires, and served at once.

The operator runs with a 12 s certificate renewed 8 s before its end: the test watches
the certificate the webhook actually serves change (kopf re-reads the renewed files and
restarts its server), the new one issued while the old one was still valid and by the
same published CA, and the apiserver still reaching the webhook afterwards. A second
part shows two replicas sharing one CA through the Secret (`--webhook-tls-secret`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, load_config
from kubenova.operator.admission.certificates import CertificatePolicy, ServingCertificates
from kubenova.operator.admission.configuration import CLUSTER_ROLES, owner_reference
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.webhook import serving_webhook, webhook_answers
from tests.integration.security.webhook import (
    published_hook,
    served_certificate,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


@pytest.fixture
def short_lived_webhook(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    clean_slate(apiserver)
    process = OperatorProcess(
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
        log_path=tmp_path / "operator.log",
        extra_args=(
            "--webhook-port", "0",
            "--webhook-cert-validity", "12",
            "--webhook-cert-renew-before", "8",
        ),
    )  # fmt: skip
    with serving_webhook(apiserver, process):
        yield process


def test_the_served_certificate_is_renewed_before_it_expires(
    apiserver: ClusterAccess, short_lived_webhook: OperatorProcess
) -> None:
    url, ca = published_hook(apiserver, "instances")
    first = served_certificate(url, ca)
    assert first.not_valid_after_utc - first.not_valid_before_utc <= datetime.timedelta(seconds=14)

    def renewed(after: x509.Certificate) -> x509.Certificate | None:
        url, bundle = published_hook(apiserver, "instances")
        assert bundle == ca, "the published CA changed: other replicas would be distrusted"
        try:
            current = served_certificate(url, bundle)
        except OSError:
            return None  # kopf restarting its server on the renewed files
        return current if current.serial_number != after.serial_number else None

    second = eventually(lambda: renewed(first), timeout=30, what="a renewed certificate served")
    assert second.not_valid_before_utc < first.not_valid_after_utc  # issued before expiry
    assert second.not_valid_after_utc > first.not_valid_after_utc
    second.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    eventually(lambda: webhook_answers(apiserver), timeout=15, what="the apiserver reaching it")
    # And again: renewal keeps going, not just once.
    third = eventually(lambda: renewed(second), timeout=30, what="a second renewal")
    assert third.not_valid_after_utc > second.not_valid_after_utc


def test_replicas_share_one_ca_through_the_secret_and_renew_it_once(
    apiserver: ClusterAccess, tmp_path: Path
) -> None:
    namespace = f"whtls-{uuid.uuid4().hex[:6]}"
    apiserver.kubectl("create", "namespace", namespace)
    policy = CertificatePolicy(
        validity=datetime.timedelta(seconds=6), renew_before=datetime.timedelta(seconds=4)
    )
    hosts = ["kubenova-webhook.kubenova-system.svc"]

    async def scenario() -> None:
        async with KubeClient(load_config(str(apiserver.kubeconfig))) as client:
            a, b = (
                ServingCertificates(
                    tmp_path / name, hosts, policy, client=client, secret=(namespace, "tls")
                )
                for name in ("a", "b")
            )
            files_a, files_b = await asyncio.gather(a.ensure(), b.ensure())
            # Racing first starts: one made the Secret, the other took it.
            assert files_a.ca.read_bytes() == files_b.ca.read_bytes()
            assert files_a.cert.read_bytes() == files_b.cert.read_bytes()
            await asyncio.sleep(2.2)
            await asyncio.gather(a.ensure(), b.ensure())
            assert files_a.cert.read_bytes() == files_b.cert.read_bytes()  # one renewal
            renewed = x509.load_pem_x509_certificate(files_a.cert.read_bytes())
            assert renewed.not_valid_after_utc - datetime.datetime.now(
                datetime.UTC
            ) > datetime.timedelta(seconds=4)

    try:
        asyncio.run(scenario())
        secret = apiserver.kubectl(
            "get", "secret", "tls", "-n", namespace, "-o", "jsonpath={.type}"
        )
        assert secret.stdout == "kubenova.io/webhook-tls"
    finally:
        apiserver.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_an_unreadable_certificate_secret_is_replaced(
    apiserver: ClusterAccess, tmp_path: Path
) -> None:
    namespace = f"whtls-{uuid.uuid4().hex[:6]}"
    apiserver.kubectl("create", "namespace", namespace)
    apiserver.kubectl(
        "create", "secret", "generic", "tls", "-n", namespace, "--type=kubenova.io/webhook-tls",
        "--from-literal=ca.crt=junk", "--from-literal=ca.key=junk",
        "--from-literal=tls.crt=junk", "--from-literal=tls.key=junk",
    )  # fmt: skip

    async def scenario() -> bytes:
        async with KubeClient(load_config(str(apiserver.kubeconfig))) as client:
            keeper = ServingCertificates(
                tmp_path,
                ["localhost"],
                CertificatePolicy(),
                client=client,
                secret=(namespace, "tls"),
            )
            files = await keeper.ensure()
            return files.cert.read_bytes()

    try:
        served = x509.load_pem_x509_certificate(asyncio.run(scenario()))
        stored = apiserver.kubectl(
            "get", "secret", "tls", "-n", namespace, "-o", "jsonpath={.data.tls\\.crt}"
        )
        assert base64.b64decode(stored.stdout) == served.public_bytes(Encoding.PEM)
    finally:
        apiserver.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_secret_is_owned_by_the_operators_cluster_role(
    apiserver: ClusterAccess, tmp_path: Path
) -> None:
    """With --webhook-owner the Secret carries the role's ownerReference, as the webhook
    configurations do: the garbage collector deletes it after `helm uninstall` (shown on a
    real cluster by tests/e2e/test_helm_cluster.py)."""
    namespace = f"whtls-{uuid.uuid4().hex[:6]}"
    role = f"whtls-owner-{uuid.uuid4().hex[:6]}"
    apiserver.kubectl("create", "namespace", namespace)
    apiserver.kubectl("create", "clusterrole", role, "--verb=get", "--resource=pods")

    async def scenario() -> None:
        async with KubeClient(load_config(str(apiserver.kubeconfig))) as client:
            owner = owner_reference(await client.get(CLUSTER_ROLES, role))
            keeper = ServingCertificates(
                tmp_path,
                ["localhost"],
                CertificatePolicy(),
                client=client,
                secret=(namespace, "tls"),
                owner=owner,
            )
            await keeper.ensure()

    try:
        asyncio.run(scenario())
        owners = apiserver.kubectl(
            "get", "secret", "tls", "-n", namespace, "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        )  # fmt: skip
        assert owners.stdout == f"ClusterRole/{role}"
    finally:
        apiserver.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        apiserver.kubectl("delete", "clusterrole", role, check=False)
