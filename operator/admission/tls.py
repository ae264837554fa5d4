"""A self-signed CA and a serving certificate for the webhook endpoint (cryptography).

Made afresh at every start: the CA bundle goes into the ValidatingWebhookConfiguration
the operator publishes, so nothing has to be distributed or renewed by hand.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubenova import tls

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ServingFiles:
    """PEM files: the CA certificate (the bundle clients trust), the server's cert and key."""

    ca: Path
    cert: Path
    key: Path


def make_serving_files(directory: Path, hosts: list[str]) -> ServingFiles:
    """A new CA and a certificate for `hosts` (IPs or DNS names) signed by it, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_name = tls.name("kubenova webhook CA")
    ca_key, ca_cert = tls.self_signed_ca(ca_name, VALIDITY, digital_signature=False)
    key = tls.new_key()
    cert = (
        tls.builder(tls.name(hosts[0]), ca_name, key.public_key(), VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([tls.alt_name(h) for h in hosts]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = ServingFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    files.ca.write_bytes(tls.cert_pem(ca_cert))
    files.cert.write_bytes(tls.cert_pem(cert))
    tls.write_private(files.key, tls.key_pem(key))
    return files
