"""The webhook's X.509 material: a CA, a serving certificate it signs, and when to renew.

The CA lives long (CA_VALIDITY) and its certificate is the bundle published in the
ValidatingWebhookConfiguration; the serving certificate lives `validity` and is issued
again by the same CA once less than `renew_before` of it is left, so the bundle does not
change when the serving certificate is renewed (other replicas serving the old one stay
trusted). `kubenova.operator.admission.certificates` decides when and where they are kept.
The X.509 building blocks are shared with the dev control plane's PKI (`kubenova.tls`).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubenova import tls
from kubenova.operator.admission.policy import VALIDITY

CA_VALIDITY = datetime.timedelta(days=3650)
CA_NAME = tls.name("kubenova webhook CA")


@dataclass(frozen=True)
class ServingFiles:
    """PEM files: the CA certificate (the bundle clients trust), the server's cert and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM."""

    cert: bytes
    key: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)


@dataclass(frozen=True)
class Material:
    """What the webhook needs: its CA (with key, to issue again) and its serving pair."""

    ca: KeyPair
    serving: KeyPair


def make_ca(validity: datetime.timedelta = CA_VALIDITY) -> KeyPair:
    """A new self-signed CA, valid for `validity`; it signs certificates, never data."""
    key, cert = tls.self_signed_ca(CA_NAME, validity, digital_signature=False)
    return KeyPair(tls.cert_pem(cert), tls.key_pem(key))


def issue(ca: KeyPair, hosts: list[str], validity: datetime.timedelta = VALIDITY) -> KeyPair:
    """A serving certificate for `hosts` (IPs or DNS names), signed by `ca`."""
    ca_key = tls.load_key(ca.key, "the webhook CA's key")
    key = tls.new_key()
    cert = (
        tls.builder(
            tls.name(hosts[0]),
            ca.certificate.subject,
            key.public_key(),
            validity,
            # Backdated by the skew allowance, but never longer than it lives: a short-lived
            # certificate (tests) must still be valid now.
            backdate=min(tls.CLOCK_SKEW, validity / 10),
        )
        .add_extension(
            x509.SubjectAlternativeName([tls.alt_name(h) for h in hosts]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(tls.cert_pem(cert), tls.key_pem(key))


def renewal_due(
    pair: KeyPair, renew_before: datetime.timedelta, now: datetime.datetime | None = None
) -> bool:
    """Is less than `renew_before` of the certificate's life left (or is it expired)?"""
    moment = now or datetime.datetime.now(datetime.UTC)
    return pair.certificate.not_valid_after_utc - moment <= renew_before


def covers(pair: KeyPair, hosts: list[str]) -> bool:
    """Does the certificate name every one of `hosts`?"""
    sans = pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(tls.alt_name(h) in sans for h in hosts)


def signed_by(pair: KeyPair, ca: KeyPair) -> bool:
    """Was the certificate issued by this CA (name and signature)?"""
    try:
        pair.certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def write_files(directory: Path, material: Material) -> ServingFiles:
    """Write the CA certificate and the serving pair (key 0600), each replaced atomically.

    Only files whose content changed are rewritten, so kopf, which re-reads them and
    restarts its server on a change, restarts only for a real renewal.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = ServingFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    for path, content in (
        (files.key, material.serving.key),
        (files.cert, material.serving.cert),
        (files.ca, material.ca.cert),
    ):
        if path.exists() and path.read_bytes() == content:
            continue
        temporary = path.with_name(f".{path.name}.new")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        temporary.replace(path)
    return files


def make_serving_files(
    directory: Path, hosts: list[str], validity: datetime.timedelta = VALIDITY
) -> ServingFiles:
    """A new CA and a certificate for `hosts` signed by it, in `directory`."""
    ca = make_ca()
    return write_files(directory, Material(ca, issue(ca, hosts, validity)))
