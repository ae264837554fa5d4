"""The LDAP auth backend (ldap3): users and groups read from a directory, groups mapped to roles.

Every value that comes from outside (a user name, a project name, a group name made from
it) enters a search filter only through ldap3's `escape_filter_chars`, and DNs read from
group entries are looked up with a base-scoped search, never spliced into a filter: no
LDAP injection. An empty password is refused before any bind (LDAP treats a simple bind
with a DN and no password as an anonymous, "successful" one).

Binds carry passwords, so they cross only TLS (ldaps:// or StartTLS before any bind), the
server certificate verified against the configured CA (or the system's) and its names
checked against the host in the URL; config.py refuses clear text unless `insecure: true`.
"""

from __future__ import annotations

import logging
import math
import ssl
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import safe_dn

from kubenova.operator.auth.backend import BackendUnavailable, Member, UserInfo
from kubenova.operator.auth.config import LdapConfig

log = logging.getLogger(__name__)


class LdapBackend:
    """Reads members and users from an LDAP directory; one short connection per call."""

    name = "ldap"

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        # ldap3 packs socket timeouts as whole seconds.
        self._timeout = max(1, math.ceil(config.timeout))
        self._tls = _tls(config) if config.uses_tls else None

    def _server(self) -> ldap3.Server:
        # A fresh Server per connection: ldap3 marks a Server's address unusable for seconds
        # after a failure, which would hide the real cause (say, a bad certificate) behind
        # "invalid server address" on the next call.
        return ldap3.Server(
            self.config.url, connect_timeout=self._timeout, get_info=ldap3.NONE, tls=self._tls
        )

    # -- the AuthBackend contract ------------------------------------------------------------

    def members(self, project: str) -> frozenset[Member]:
        found: set[Member] = set()
        with self._connection() as connection:
            for mapping in self.config.group_roles:
                group = mapping.group_for(project)
                if group is None:
                    continue
                for user in self._group_members(connection, group):
                    found.add(Member(user, mapping.role))
        return frozenset(found)

    def user(self, name: str) -> UserInfo | None:
        with self._connection() as connection:
            entry = self._find_user(connection, name)
        return _user_info(self.config, entry) if entry else None

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        if not name or not password:
            return None
        with self._connection() as connection:
            entry = self._find_user(connection, name)
        if entry is None:
            return None
        attempt = ldap3.Connection(
            self._server(),
            user=entry["dn"],
            password=password,
            read_only=True,
            receive_timeout=self._timeout,
        )
        try:
            attempt.open()
            # A failed certificate check raises; ldap3 may also just say False: never go on
            # to bind in clear then.
            if self.config.start_tls and not attempt.start_tls():
                raise BackendUnavailable(f"LDAP {self.config.url}: StartTLS was not negotiated")
            if not attempt.bind():
                return None
        except LDAPException as exc:
            raise BackendUnavailable(f"LDAP {self.config.url}: {exc}") from exc
        finally:
            attempt.unbind()
        return _user_info(self.config, entry)

    def close(self) -> None:
        """Connections are per call; nothing is held."""

    # -- searches ----------------------------------------------------------------------------

    def _connection(self) -> ldap3.Connection:
        try:
            return ldap3.Connection(
                self._server(),
                user=self.config.bind_dn,
                password=self.config.password(),
                # StartTLS, when configured, is negotiated before the bind, never after.
                auto_bind=(
                    ldap3.AUTO_BIND_TLS_BEFORE_BIND
                    if self.config.start_tls
                    else ldap3.AUTO_BIND_NO_TLS
                ),
                read_only=True,
                receive_timeout=self._timeout,
            )
        except LDAPException as exc:
            raise BackendUnavailable(f"LDAP {self.config.url}: {exc}") from exc

    def _search(
        self,
        connection: ldap3.Connection,
        base: str,
        search_filter: str,
        attributes: list[str],
        scope: str = ldap3.SUBTREE,
    ) -> list[dict[str, Any]]:
        try:
            connection.search(base, search_filter, scope, attributes=attributes)
        except LDAPException as exc:
            raise BackendUnavailable(f"LDAP search under {base}: {exc}") from exc
        if connection.result.get("description") not in ("success", "noSuchObject"):
            raise BackendUnavailable(f"LDAP search under {base}: {connection.result}")
        return [e for e in connection.response or [] if e.get("type") == "searchResEntry"]

    def _find_user(self, connection: ldap3.Connection, name: str) -> dict[str, Any] | None:
        users = self.config.users
        search_filter = f"(&{users.filter}({users.name_attribute}={escape_filter_chars(name)}))"
        entries = self._search(
            connection,
            users.base_dn,
            search_filter,
            [users.name_attribute, users.mail_attribute, "cn"],
        )
        if len(entries) != 1:
            if entries:
                log.warning("LDAP: %d entries match user %r; refusing to guess", len(entries), name)
            return None
        return entries[0]

    def _group_members(self, connection: ldap3.Connection, group: str) -> set[str]:
        groups = self.config.groups
        search_filter = f"(&{groups.filter}({groups.name_attribute}={escape_filter_chars(group)}))"
        entries = self._search(connection, groups.base_dn, search_filter, [groups.member_attribute])
        users: set[str] = set()
        for entry in entries:
            for value in _values(entry, groups.member_attribute):
                name = (
                    self._user_of_dn(connection, value)
                    if groups.members_are_dns
                    else self._known_user(connection, value)
                )
                if name:
                    users.add(name)
        return users

    def _user_of_dn(self, connection: ldap3.Connection, dn: str) -> str | None:
        """The user name of the entry at `dn`, if it is a user under the users base."""
        users = self.config.users
        if not _is_under(dn, users.base_dn):
            return None
        entries = self._search(connection, dn, users.filter, [users.name_attribute], ldap3.BASE)
        names = _values(entries[0], users.name_attribute) if entries else []
        return names[0] if names else None

    def _known_user(self, connection: ldap3.Connection, name: str) -> str | None:
        entry = self._find_user(connection, name)
        return name if entry else None


def _tls(config: LdapConfig) -> ldap3.Tls:
    """Certificate required and checked against `caFile` (else the system store), names too."""
    ca_file = str(config.ca_file) if config.ca_file is not None else None
    try:
        # Loads the CA now, so a missing or unreadable file stops the operator at start-up.
        ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ldap.caFile: cannot load {ca_file}: {exc}") from exc
    # ldap3 matches the certificate against the URL's host itself once the handshake is done
    # (core/tls.py check_hostname), because it turns the context's own check off.
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)


def _values(entry: dict[str, Any], attribute: str) -> list[str]:
    attributes = entry.get("attributes") or {}
    for key, value in attributes.items():
        if key.lower() == attribute.lower():
            return [str(v) for v in (value if isinstance(value, list) else [value])]
    return []


def _is_under(dn: str, base: str) -> bool:
    try:
        entry, parent = str(safe_dn(dn)).lower(), str(safe_dn(base)).lower()
    except LDAPException:
        return False
    return entry.endswith("," + parent)


def _user_info(config: LdapConfig, entry: dict[str, Any]) -> UserInfo:
    users = config.users
    name = _values(entry, users.name_attribute)
    mail = _values(entry, users.mail_attribute)
    common = _values(entry, "cn")
    return UserInfo(name[0] if name else "", mail[0] if mail else "", common[0] if common else "")
