"""Certificates and keys of a local control plane, made with `cryptography`.

Two CAs keep roles apart: the serving CA signs kube-apiserver's certificate (clients
trust it), the client CA signs user certificates (kube-apiserver trusts it). The X.509
building blocks are shared with the webhook's CA (`kubenova.tls`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubenova import tls

ADMIN_USER = "kubenova-admin"
ADMIN_GROUP = "system:masters"
# Names the in-cluster clients use for the apiserver, besides the loopback ones we dial.
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", "::1", "10.0.0.1")
_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class KeyPairFiles:
    """A certificate (or public key) and its private key, as PEM files."""

    cert: Path
    key: Path


def _private_directory(path: Path) -> None:
    """An owner-only directory (an existing wider one is narrowed before keys go in)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def _write_private(path: Path, data: bytes) -> None:
    """Owner-only from the first byte: created with mode 0600, which a umask can only narrow."""
    _private_directory(path.parent)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


class CertificateAuthority:
    """A CA stored as `<name>.crt`/`<name>.key` in a directory; created on first use."""

    def __init__(self, directory: Path, name: str) -> None:
        self.pair = KeyPairFiles(directory / f"{name}.crt", directory / f"{name}.key")
        if not (self.pair.cert.exists() and self.pair.key.exists()):
            self._create(name)
        self._cert = x509.load_pem_x509_certificate(self.pair.cert.read_bytes())
        self._key = tls.load_key(self.pair.key.read_bytes(), self.pair.key)

    def _create(self, name: str) -> None:
        key, cert = tls.self_signed_ca(
            tls.name(f"kubenova-dev-{name}"), _VALIDITY, digital_signature=True
        )
        _write_private(self.pair.key, tls.key_pem(key))
        self.pair.cert.write_bytes(tls.cert_pem(cert))

    def issue(
        self,
        pair: KeyPairFiles,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        server: bool = False,
        names: tuple[str, ...] = SERVING_DNS_NAMES + SERVING_IPS,
    ) -> KeyPairFiles:
        """Sign a new leaf key pair into `pair` (server or client usage) and return it.

        A server certificate is valid for `names` (DNS names and IP addresses) only."""
        key = tls.new_key()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        subject = tls.name(common_name, organizations)
        builder = (
            tls.builder(subject, self._cert.subject, key.public_key(), _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            alt_names = [tls.alt_name(name) for name in names]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        _write_private(pair.key, tls.key_pem(key))
        pair.cert.write_bytes(tls.cert_pem(cert))
        return pair


@dataclass(frozen=True)
class ControlPlanePKI:
    """Every file kube-apiserver and its clients need, under one directory."""

    directory: Path

    @property
    def serving_ca(self) -> Path:
        return self.directory / "serving-ca.crt"

    @property
    def client_ca(self) -> Path:
        return self.directory / "client-ca.crt"

    @property
    def serving(self) -> KeyPairFiles:
        return KeyPairFiles(self.directory / "apiserver.crt", self.directory / "apiserver.key")

    @property
    def service_account(self) -> KeyPairFiles:
        """`cert` holds the public key (--service-account-key-file), `key` the signing key."""
        return KeyPairFiles(self.directory / "sa.pub", self.directory / "sa.key")

    @property
    def token_file(self) -> Path:
        return self.directory / "tokens.csv"

    def ensure(self) -> ControlPlanePKI:
        """Create whatever is missing; existing files are kept so restarts keep trust."""
        _private_directory(self.directory)
        serving_ca = CertificateAuthority(self.directory, "serving-ca")
        CertificateAuthority(self.directory, "client-ca")
        if not (self.serving.cert.exists() and self.serving.key.exists()):
            serving_ca.issue(self.serving, "kube-apiserver", server=True)
        sa = self.service_account
        if not (sa.cert.exists() and sa.key.exists()):
            key = tls.new_key()
            _write_private(sa.key, tls.key_pem(key))
            sa.cert.write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        if not self.token_file.exists():
            token = secrets.token_urlsafe(32)
            # token,user,uid,"group1,group2" — the format of --token-auth-file.
            _write_private(
                self.token_file, f'{token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n'.encode()
            )
        return self

    def admin_token(self) -> str:
        """The static token of the system:masters admin."""
        return self.token_file.read_text().split(",", 1)[0]

    def issue_client(self, name: str, groups: tuple[str, ...] = ()) -> KeyPairFiles:
        """Mint a client certificate: CN is the user name, O entries are its groups."""
        client_ca = CertificateAuthority(self.directory, "client-ca")
        stem = user_file_stem(name, groups)
        pair = KeyPairFiles(
            self.directory / "users" / f"{stem}.crt", self.directory / "users" / f"{stem}.key"
        )
        return client_ca.issue(pair, name, organizations=groups)


def user_file_stem(name: str, groups: tuple[str, ...]) -> str:
    """A file name for a user's credentials; the same name with other groups gets its own."""
    safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in name)
    if not groups:
        return safe
    return f"{safe}-{hashlib.sha256(','.join(groups).encode()).hexdigest()[:8]}"
