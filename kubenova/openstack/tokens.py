"""Project-scoped tokens: Fernet (AES-128-CBC + HMAC-SHA256), expiring, revocable, checked locally.

A token carries who (user), where (project, its namespace), in which roles, until when, and
a random id. Validating it is a decryption and a clock comparison: no apiserver or database
round trip. Revocation (logout, a user disabled) keeps the ids (or the user names, with the
moment) in memory until the tokens they name have expired anyway.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

DEFAULT_LIFETIME = 3600.0
CLOUD_ADMIN = "cloud-admin"


class TokenInvalid(Exception):
    """The token is garbage, forged, expired or revoked."""


@dataclass(frozen=True, slots=True)
class Token:
    """What a token says about its bearer."""

    id: str
    user: str
    project: str
    namespace: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: float

    @property
    def is_cloud_admin(self) -> bool:
        """The user may read Hosts (checked by a SubjectAccessReview when issued)."""
        return CLOUD_ADMIN in self.roles


class TokenIssuer:
    """Issues and validates tokens with one Fernet key (from a file in production)."""

    def __init__(self, key: bytes | None = None, *, lifetime: float = DEFAULT_LIFETIME) -> None:
        self._fernet = Fernet(key or Fernet.generate_key())
        self.lifetime = lifetime
        self._revoked: dict[str, float] = {}  # token id -> its expiry
        self._users_revoked: dict[str, float] = {}  # user -> tokens issued before are void

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def issue(self, user: str, project: str, namespace: str, roles: tuple[str, ...]) -> Token:
        now = time.time()
        return Token(
            id=secrets.token_hex(16),
            user=user,
            project=project,
            namespace=namespace,
            roles=tuple(sorted(roles)),
            issued_at=now,
            expires_at=now + self.lifetime,
        )

    def encode(self, token: Token) -> str:
        payload = {
            "i": token.id,
            "u": token.user,
            "p": token.project,
            "n": token.namespace,
            "r": list(token.roles),
            "t": token.issued_at,
            "e": token.expires_at,
        }
        sealed = self._fernet.encrypt_at_time(json.dumps(payload).encode(), int(token.issued_at))
        # Fernet's own base64 may end in '='; keystone's tokens never do, and some clients
        # strip it: url-safe without padding round-trips everywhere.
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def validate(self, text: str) -> Token:
        """The token `text` stands for, or TokenInvalid."""
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            raw = json.loads(self._fernet.decrypt(sealed))
            token = Token(
                id=str(raw["i"]),
                user=str(raw["u"]),
                project=str(raw["p"]),
                namespace=str(raw["n"]),
                roles=tuple(str(r) for r in raw["r"]),
                issued_at=float(raw["t"]),
                expires_at=float(raw["e"]),
            )
        except (InvalidToken, ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("the token is not valid") from exc
        now = time.time()
        if token.expires_at <= now:
            raise TokenInvalid("the token has expired")
        if token.id in self._revoked:
            raise TokenInvalid("the token was revoked")
        cutoff = self._users_revoked.get(token.user)
        if cutoff is not None and token.issued_at <= cutoff:
            raise TokenInvalid("the user's tokens were revoked")
        return token

    def revoke(self, token: Token) -> None:
        self._forget_expired()
        self._revoked[token.id] = token.expires_at

    def revoke_user(self, user: str) -> None:
        """Void every token `user` holds now (disabled, password changed)."""
        self._forget_expired()
        self._users_revoked[user] = time.time()

    def _forget_expired(self) -> None:
        now = time.time()
        self._revoked = {k: exp for k, exp in self._revoked.items() if exp > now}
        horizon = now - self.lifetime
        self._users_revoked = {u: t for u, t in self._users_revoked.items() if t > horizon}
