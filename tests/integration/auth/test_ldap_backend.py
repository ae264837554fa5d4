"""The LDAP backend against a real slapd: members by group, users, binds, and no injection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubenova.operator.auth import BackendUnavailable, Member, Role
from kubenova.operator.auth.config import AuthConfig, GroupRole
from kubenova.operator.auth.ldap import LdapBackend
from tests.fixtures.ldap import Slapd, password_of

pytestmark = pytest.mark.ldap


@pytest.fixture
def backend(slapd: Slapd) -> Iterator[LdapBackend]:
    config = AuthConfig.model_validate(slapd.auth_config())
    assert config.ldap is not None
    backend = LdapBackend(config.ldap)
    yield backend
    backend.close()


def test_members_come_from_the_project_groups_with_their_roles(backend: LdapBackend) -> None:
    assert backend.members("alpha") == {
        Member("alice", Role.ADMIN),
        Member("bob", Role.MEMBER),
        Member("dave", Role.READER),
    }
    assert backend.members("beta") == {Member("carol", Role.ADMIN), Member("carol", Role.MEMBER)}
    assert backend.members("gamma") == frozenset()


def test_a_group_edit_is_seen_on_the_next_read(backend: LdapBackend, slapd: Slapd) -> None:
    slapd.add_to_group("alpha-readers", "carol")
    try:
        assert Member("carol", Role.READER) in backend.members("alpha")
    finally:
        slapd.remove_from_group("alpha-readers", "carol")
    assert Member("carol", Role.READER) not in backend.members("alpha")


def test_a_literal_group_grants_a_role_in_one_named_project(slapd: Slapd) -> None:
    config = AuthConfig.model_validate(
        slapd.auth_config(
            groupRoles=[{"group": "beta-members", "role": "reader", "project": "alpha"}]
        )
    )
    assert config.ldap is not None
    backend = LdapBackend(config.ldap)
    assert backend.members("alpha") == {Member("carol", Role.READER)}
    assert backend.members("beta") == frozenset()


def test_users_are_found_by_exact_name(backend: LdapBackend) -> None:
    alice = backend.user("alice")
    assert alice is not None
    assert (alice.name, alice.email, alice.display_name) == (
        "alice",
        "alice@kubenova.test",
        "Alice",
    )
    assert backend.user("nobody") is None


@pytest.mark.parametrize(
    "name",
    [
        "*",
        "al*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
        "alice\\2a",
        "\x00",
    ],
)
def test_filter_injection_in_a_user_name_finds_nothing(backend: LdapBackend, name: str) -> None:
    assert backend.user(name) is None
    assert backend.authenticate(name, "alice-secret") is None
    assert backend.members(name) == frozenset()


def test_a_project_name_cannot_widen_the_group_search(backend: LdapBackend) -> None:
    # "{project}-admins" with project "*" must not mean "every admins group".
    assert backend.members("*") == frozenset()
    assert backend.members("alpha-admins)(cn=*") == frozenset()


def test_authenticate_binds_as_the_user(backend: LdapBackend) -> None:
    user = backend.authenticate("bob", password_of("bob"))
    assert user is not None
    assert user.name == "bob"
    assert backend.authenticate("bob", password_of("alice")) is None
    assert backend.authenticate("bob", "") is None  # an unauthenticated bind is no login
    assert backend.authenticate("nobody", "x") is None


def test_wrong_service_credentials_make_the_backend_unavailable(slapd: Slapd) -> None:
    config = AuthConfig.model_validate(slapd.auth_config(bindPassword="wrong"))
    assert config.ldap is not None
    with pytest.raises(BackendUnavailable, match="invalidCredentials"):
        LdapBackend(config.ldap).members("alpha")


def test_an_unreachable_directory_is_unavailable(slapd: Slapd) -> None:
    config = AuthConfig.model_validate(slapd.auth_config(url="ldaps://localhost:9", timeout=1))
    assert config.ldap is not None
    with pytest.raises(BackendUnavailable):
        LdapBackend(config.ldap).members("alpha")


def test_group_role_mappings_must_say_which_project() -> None:
    with pytest.raises(ValueError, match="either put \\{project\\}"):
        GroupRole(group="ops", role=Role.READER)
    with pytest.raises(ValueError, match="not both"):
        GroupRole(group="{project}-ops", role=Role.READER, project="alpha")
