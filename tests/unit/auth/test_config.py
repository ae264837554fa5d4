"""The auth config file and password hashing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubenova.operator.auth import Role, load_auth_config
from kubenova.operator.auth.config import AuthConfig, GroupRole
from kubenova.operator.auth.passwords import hash_password, needs_rehash, verify_password


def test_no_file_means_the_database_backend() -> None:
    assert load_auth_config(None).backend == "database"


def test_an_ldap_file_is_read_with_defaults(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    path = tmp_path / "auth.yaml"
    path.write_text(
        "backend: ldap\n"
        "ldap:\n"
        "  url: ldap://127.0.0.1:389\n"
        "  startTLS: true\n"
        f"  caFile: {tmp_path / 'ca.crt'}\n"
        "  bindDN: cn=svc,dc=x\n"
        f"  bindPasswordFile: {secret}\n"
        "  users: {baseDN: 'ou=people,dc=x'}\n"
        "  groups: {baseDN: 'ou=groups,dc=x', filter: '(objectClass=posixGroup)',"
        " memberAttribute: memberUid, membersAreDNs: false}\n"
    )
    config = load_auth_config(path)
    assert config.ldap is not None
    assert config.ldap.password() == "s3cret"
    assert config.ldap.uses_tls
    assert config.ldap.ca_file == tmp_path / "ca.crt"
    assert config.ldap.users.filter == "(objectClass=inetOrgPerson)"
    assert not config.ldap.groups.members_are_dns
    assert [m.group_for("alpha") for m in config.ldap.group_roles] == [
        "alpha-admins",
        "alpha-members",
        "alpha-readers",
    ]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"backend": "ldap"}, "needs an `ldap:` section"),
        ({"backend": "kerberos"}, "Input should be 'database' or 'ldap'"),
        (
            {"backend": "ldap", "ldap": {"url": "http://x", "users": {"baseDN": "a"},
                                         "groups": {"baseDN": "b"}}},
            "String should match pattern",
        ),
        (
            {"backend": "ldap", "ldap": {"url": "ldap://x", "groups": {"baseDN": "b"},
                                         "users": {"baseDN": "a", "filter": "uid=x"}}},
            "an LDAP filter is parenthesised",
        ),
        (
            {"backend": "ldap", "ldap": {"url": "ldap://x", "users": {"baseDN": "a"},
                                         "groups": {"baseDN": "b"}}},
            r"ldap.url: ldap://x without startTLS would send bind passwords in clear",
        ),
        (
            {"backend": "ldap", "ldap": {"url": "ldaps://x", "startTLS": True,
                                         "users": {"baseDN": "a"}, "groups": {"baseDN": "b"}}},
            "ldap.startTLS: ldaps:// is TLS already",
        ),
        (
            {"backend": "ldap", "ldap": {"url": "ldap://x", "insecure": True, "caFile": "/ca",
                                         "users": {"baseDN": "a"}, "groups": {"baseDN": "b"}}},
            "ldap.caFile: set, but neither ldaps:// nor startTLS",
        ),
    ],
)  # fmt: skip
def test_bad_configs_say_what_is_wrong(document: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        AuthConfig.model_validate(document)


def test_clear_text_binds_need_an_explicit_insecure() -> None:
    config = AuthConfig.model_validate(
        {"backend": "ldap", "ldap": {"url": "ldap://x", "insecure": True,
                                     "users": {"baseDN": "a"}, "groups": {"baseDN": "b"}}}
    )  # fmt: skip
    assert config.ldap is not None
    assert not config.ldap.uses_tls


def test_a_literal_group_applies_to_its_project_only() -> None:
    mapping = GroupRole(group="ops", role=Role.READER, project="alpha")
    assert mapping.group_for("alpha") == "ops"
    assert mapping.group_for("beta") is None


def test_passwords_hash_with_argon2id_and_verify() -> None:
    hashed = hash_password("hunter2")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("hunter2")  # salted
    assert verify_password(hashed, "hunter2")
    assert not verify_password(hashed, "hunter3")
    assert not verify_password(hashed, "")
    assert not verify_password(None, "hunter2")
    assert not verify_password("not a hash", "hunter2")
    assert not needs_rehash(hashed)
    with pytest.raises(ValueError, match="cannot be empty"):
        hash_password("")
