"""LDAP binds cross only TLS with a verified server certificate; clear text is refused at start.

Against the session's real slapd, which serves ldaps:// with a certificate for "localhost"
signed by a test CA (and StartTLS on its plain port): the right CA and name log in; a wrong
CA or a name the certificate does not hold stops the connection before any bind, so no
password leaves; an ldap:// URL without StartTLS stops the operator at start-up unless
`insecure: true` is written down.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster.pki import CertificateAuthority
from kubenova.operator.auth import BackendUnavailable
from kubenova.operator.auth.config import AuthConfig
from kubenova.operator.auth.ldap import LdapBackend
from tests.fixtures.ldap import Slapd, password_of

pytestmark = pytest.mark.ldap


def backend_for(slapd: Slapd, **ldap: Any) -> LdapBackend:
    config = AuthConfig.model_validate(slapd.auth_config(**ldap))
    assert config.ldap is not None
    return LdapBackend(config.ldap)


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_ldaps_with_the_right_ca_and_name_logs_in(slapd: Slapd) -> None:
    backend = backend_for(slapd)
    assert backend.config.url.startswith("ldaps://localhost:")
    user = backend.authenticate("alice", password_of("alice"))
    assert user is not None
    assert user.name == "alice"


def test_starttls_on_the_plain_port_logs_in(slapd: Slapd) -> None:
    backend = backend_for(slapd, url=f"ldap://localhost:{port_of(slapd.url)}", startTLS=True)
    assert backend.authenticate("bob", password_of("bob")) is not None
    assert backend.members("beta")


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_a_server_certificate_from_another_ca_is_refused(
    slapd: Slapd, tmp_path: Path, start_tls: bool
) -> None:
    other_ca = CertificateAuthority(tmp_path, "other-ca").pair.cert
    url = f"ldap://localhost:{port_of(slapd.url)}" if start_tls else slapd.tls_url
    backend = backend_for(slapd, url=url, startTLS=start_tls, caFile=str(other_ca))
    with pytest.raises(BackendUnavailable, match="certificate verify failed"):
        backend.authenticate("alice", password_of("alice"))
    with pytest.raises(BackendUnavailable, match="certificate verify failed"):
        backend.members("alpha")


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_a_host_name_the_certificate_does_not_hold_is_refused(
    slapd: Slapd, start_tls: bool
) -> None:
    # 127.0.0.1 reaches the same slapd, but its certificate names only "localhost".
    port = port_of(slapd.url if start_tls else slapd.tls_url)
    scheme = "ldap" if start_tls else "ldaps"
    backend = backend_for(slapd, url=f"{scheme}://127.0.0.1:{port}", startTLS=start_tls)
    with pytest.raises(BackendUnavailable, match="doesn't match"):
        backend.authenticate("alice", password_of("alice"))
    with pytest.raises(BackendUnavailable, match="doesn't match"):
        backend.members("alpha")


def start_operator(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "kubenova.operator", "--auth-config", str(path),
         "--database-url", f"sqlite:///{tmp_path / 'never-created.db'}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_operator_refuses_to_start_on_clear_text_ldap(slapd: Slapd, tmp_path: Path) -> None:
    config = slapd.auth_config(url=slapd.url)
    del config["ldap"]["caFile"]
    started = start_operator(config, tmp_path)
    assert started.returncode == 2
    assert "ldap.url" in started.stderr
    assert "would send bind passwords in clear" in started.stderr
    assert not (tmp_path / "never-created.db").exists()  # it stopped before touching anything


def test_the_operator_refuses_to_start_on_a_missing_ca_file(slapd: Slapd, tmp_path: Path) -> None:
    started = start_operator(slapd.auth_config(caFile=str(tmp_path / "absent.crt")), tmp_path)
    assert started.returncode == 2
    assert "ldap.caFile: cannot load" in started.stderr
    assert not (tmp_path / "never-created.db").exists()


def test_clear_text_works_only_when_insecure_is_written_down(slapd: Slapd) -> None:
    config = slapd.auth_config(url=slapd.url, insecure=True)
    del config["ldap"]["caFile"]
    settings = AuthConfig.model_validate(config)
    assert settings.ldap is not None
    assert LdapBackend(settings.ldap).authenticate("dave", password_of("dave")) is not None
