"""Which auth backend the operator uses, and how LDAP is laid out (a YAML file).

backend: ldap                       # or: database (the default: the inventory DB)
ldap:
  url: ldaps://ldap.example.org:636   # or ldap://...:389 with startTLS: true
  caFile: /etc/kubenova/ldap-ca/ca.crt # the CA the server certificate must chain to
                                    # (empty: the system's trust store); the host name in
                                    # `url` must be in the certificate
  bindDN: cn=kubenova,ou=services,dc=example,dc=org
  bindPasswordFile: /etc/kubenova/ldap-password
  users:  {baseDN: "ou=people,dc=example,dc=org", filter: "(objectClass=inetOrgPerson)"}
  groups: {baseDN: "ou=groups,dc=example,dc=org", filter: "(objectClass=groupOfNames)"}
  groupRoles:                       # default: {project}-admins/-members/-readers
    - {group: "{project}-admins", role: admin}
    - {group: "ops", role: reader, project: alpha}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import Engine

from kubenova.operator.auth.backend import AuthBackend, Role

PROJECT_PLACEHOLDER = "{project}"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _filter(value: str) -> str:
    if not (value.startswith("(") and value.endswith(")")):
        raise ValueError(f"an LDAP filter is parenthesised, e.g. (objectClass=person): {value!r}")
    return value


class GroupRole(_Model):
    """Members of `group` hold `role`: in the project named in the group, or in `project`."""

    group: str = Field(min_length=1)
    role: Role
    project: str | None = None

    @model_validator(mode="after")
    def _names_a_project(self) -> GroupRole:
        templated = PROJECT_PLACEHOLDER in self.group
        if templated == (self.project is not None):
            raise ValueError(
                f"group {self.group!r}: either put {PROJECT_PLACEHOLDER} in the group name "
                "or name the project it grants a role in, not both"
            )
        return self

    def group_for(self, project: str) -> str | None:
        """The group whose members hold `role` in `project`, if this mapping covers it."""
        if self.project is None:
            return self.group.replace(PROJECT_PLACEHOLDER, project)
        return self.group if self.project == project else None


DEFAULT_GROUP_ROLES = (
    GroupRole(group="{project}-admins", role=Role.ADMIN),
    GroupRole(group="{project}-members", role=Role.MEMBER),
    GroupRole(group="{project}-readers", role=Role.READER),
)


class LdapUsers(_Model):
    base_dn: str = Field(alias="baseDN")
    filter: str = "(objectClass=inetOrgPerson)"
    name_attribute: str = "uid"
    mail_attribute: str = "mail"

    @model_validator(mode="after")
    def _check(self) -> LdapUsers:
        _filter(self.filter)
        return self


class LdapGroups(_Model):
    base_dn: str = Field(alias="baseDN")
    filter: str = "(objectClass=groupOfNames)"
    name_attribute: str = "cn"
    member_attribute: str = "member"
    # member / uniqueMember hold DNs; memberUid (posixGroup) holds user names.
    members_are_dns: bool = Field(default=True, alias="membersAreDNs")

    @model_validator(mode="after")
    def _check(self) -> LdapGroups:
        _filter(self.filter)
        return self


class LdapConfig(_Model):
    url: str = Field(pattern=r"^ldaps?://")
    start_tls: bool = Field(default=False, alias="startTLS")
    ca_file: Path | None = None
    # Only an explicit `insecure: true` lets binds (and their passwords) cross in clear.
    insecure: bool = False
    bind_dn: str | None = Field(default=None, alias="bindDN")
    bind_password: str | None = None
    bind_password_file: Path | None = None
    users: LdapUsers
    groups: LdapGroups
    group_roles: tuple[GroupRole, ...] = DEFAULT_GROUP_ROLES
    timeout: float = Field(default=5.0, gt=0, description="Seconds per connect and request.")

    @property
    def uses_tls(self) -> bool:
        return self.url.startswith("ldaps://") or self.start_tls

    @model_validator(mode="after")
    def _binds_over_tls(self) -> LdapConfig:
        if self.url.startswith("ldaps://") and self.start_tls:
            raise ValueError("ldap.startTLS: ldaps:// is TLS already; use one or the other")
        if not self.uses_tls and not self.insecure:
            raise ValueError(
                f"ldap.url: {self.url} without startTLS would send bind passwords in clear; "
                "use ldaps://, or set startTLS: true, or (tests only) insecure: true"
            )
        if self.ca_file is not None and not self.uses_tls:
            raise ValueError("ldap.caFile: set, but neither ldaps:// nor startTLS is in use")
        return self

    def password(self) -> str | None:
        """The bind password, from the file when one is named."""
        if self.bind_password_file is not None:
            return self.bind_password_file.read_text().strip()
        return self.bind_password


class AuthConfig(_Model):
    backend: Literal["database", "ldap"] = "database"
    ldap: LdapConfig | None = None

    @model_validator(mode="after")
    def _ldap_needs_settings(self) -> AuthConfig:
        if self.backend == "ldap" and self.ldap is None:
            raise ValueError("backend: ldap needs an `ldap:` section")
        return self


def load_auth_config(path: str | Path | None) -> AuthConfig:
    """Read the YAML file at `path`; no file means the database backend."""
    if path is None:
        return AuthConfig()
    return AuthConfig.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def build_backend(config: AuthConfig, engine: Engine) -> AuthBackend:
    """The configured backend; the database one reads the inventory through `engine`."""
    if config.backend == "ldap":
        from kubenova.operator.auth.ldap import LdapBackend  # noqa: PLC0415 - ldap3 only if used

        assert config.ldap is not None
        return LdapBackend(config.ldap)
    from kubenova.operator.auth.db import DatabaseBackend  # noqa: PLC0415

    return DatabaseBackend(engine)
