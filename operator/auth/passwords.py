"""Password hashing with argon2id (argon2-cffi), the memory-hard KDF OWASP recommends.

Hashes are PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) carrying their own
parameters, so raising the cost later only needs `needs_rehash` on the next good login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults


def hash_password(password: str) -> str:
    """A salted argon2id hash of a non-empty password."""
    if not password:
        raise ValueError("a password cannot be empty")
    return _HASHER.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    """True if `password` matches `hashed`; False for no hash, an empty password or garbage."""
    if not hashed or not password:
        return False
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    """True when `hashed` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(hashed)
