"""X.509 building blocks shared by the dev control plane's PKI and the webhook's CA.

EC P-256 keys everywhere: generating one takes microseconds, which keeps start-up fast.
What differs between the two stays with the callers: validities, how far a short-lived
certificate is backdated, whether a CA may also sign data, subject names, SANs, and how and
where the files are written.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Certificates start a little in the past: a peer whose clock runs behind still accepts them.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes, origin: object) -> ec.EllipticCurvePrivateKey:
    """An EC private key from PEM; TypeError naming `origin` if it is another kind of key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{origin} is not an EC private key")
    return key


def name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    """A subject: the organizations (Kubernetes reads them as groups), then the common name."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def alt_name(host: str) -> x509.GeneralName:
    """A subjectAltName entry: an IP address if `host` is one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: datetime.timedelta,
    *,
    backdate: datetime.timedelta = CLOCK_SKEW,
) -> x509.CertificateBuilder:
    """A certificate valid from `backdate` before now until `validity` after, random serial."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + validity)
    )


def self_signed_ca(
    subject: x509.Name, validity: datetime.timedelta, *, digital_signature: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new CA key and its certificate; it signs leaf certificates only (no intermediates)."""
    key = new_key()
    cert = (
        builder(subject, subject, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert
