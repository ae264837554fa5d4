"""The webhook's serving certificate is renewed before it expires, by the same CA."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from kubenova.operator.admission import tls
from kubenova.operator.admission.certificates import CertificatePolicy, ServingCertificates
from kubenova.operator.admission.configuration import webhook_configuration
from kubenova.operator.admission.registration import HOOKS
from kubenova.operator.main import main

SECONDS = datetime.timedelta(seconds=1)


def served(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_certificate_is_due_once_less_than_the_margin_is_left() -> None:
    ca = tls.make_ca()
    pair = tls.issue(ca, ["localhost"], 90 * SECONDS)
    now = datetime.datetime.now(datetime.UTC)
    assert not tls.renewal_due(pair, 30 * SECONDS, now)
    assert tls.renewal_due(pair, 30 * SECONDS, now + 61 * SECONDS)
    assert tls.renewal_due(pair, 30 * SECONDS, now + 91 * SECONDS)  # expired: due too
    assert tls.signed_by(pair, ca)
    assert not tls.signed_by(pair, tls.make_ca())


def test_the_serving_certificate_is_renewed_before_expiry_by_the_same_ca(tmp_path: Path) -> None:
    policy = CertificatePolicy(validity=6 * SECONDS, renew_before=4 * SECONDS)
    keeper = ServingCertificates(tmp_path / "certs", ["127.0.0.1", "localhost"], policy)
    files = asyncio.run(keeper.ensure())
    first, ca_pem = served(files.cert), files.ca.read_bytes()
    assert files.key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "certs").stat().st_mode & 0o077 == 0
    # Not due yet: nothing is rewritten (kopf would restart its server for nothing).
    assert asyncio.run(keeper.ensure()) == files
    assert served(files.cert).serial_number == first.serial_number
    time.sleep(2.2)  # now less than 4 s of its 6 s are left
    asyncio.run(keeper.ensure())
    second = served(files.cert)
    assert second.serial_number != first.serial_number
    assert second.not_valid_after_utc > first.not_valid_after_utc
    assert datetime.datetime.now(datetime.UTC) < first.not_valid_after_utc  # before expiry
    assert files.ca.read_bytes() == ca_pem  # the published bundle stays valid
    second.verify_directly_issued_by(served(files.ca))


def test_the_policy_refuses_a_margin_longer_than_the_validity() -> None:
    with pytest.raises(ValueError, match=r"renew-before .* shorter than its validity"):
        CertificatePolicy(validity=10 * SECONDS, renew_before=10 * SECONDS)
    assert CertificatePolicy(validity=90 * SECONDS).margin == 30 * SECONDS
    assert CertificatePolicy(validity=8 * SECONDS).check_interval < 8 / 3


def test_a_service_reference_is_published_with_the_ca_bundle() -> None:
    service = {"namespace": "kubenova-system", "name": "kubenova-webhook", "port": 443}
    config = webhook_configuration(HOOKS, {"service": service, "caBundle": "Q0E="})
    for webhook in config["webhooks"]:
        client = webhook["clientConfig"]
        assert "url" not in client
        assert client["caBundle"] == "Q0E="
        assert client["service"] == {**service, "path": client["service"]["path"]}
    paths = {w["clientConfig"]["service"]["path"] for w in config["webhooks"]}
    assert paths == {"/instances", "/volumes", "/networks", "/projects"}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--webhook-service", "no-slash"], "--webhook-service"),
        (["--webhook-tls-secret", "tls"], "needs --webhook-service"),
        (["--webhook-cert-validity", "60", "--webhook-cert-renew-before", "90"], "shorter"),
    ],
)
def test_contradicting_webhook_flags_are_refused_at_start_up(
    args: list[str], complaint: str
) -> None:
    result = CliRunner().invoke(main, ["--database-url", "sqlite://", "--webhook-port", "0", *args])
    assert result.exit_code == 2, result.output
    assert complaint in result.output
