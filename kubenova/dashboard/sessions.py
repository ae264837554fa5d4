"""Server-side sessions, CSRF tokens and a brake on password guessing.

The browser holds one random session id in an HttpOnly, SameSite=Strict cookie; everything
else (user, CSRF token, last use) stays in this process. No Kubernetes credential is ever
part of a session: the server acts as the user by impersonation (`identity`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

COOKIE = "kubenova_session"


@dataclass
class Session:
    sid: str
    csrf: str
    last_seen: float
    user: str | None = None
    display_name: str = ""

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf, token)


@dataclass
class SessionStore:
    """Sessions by id; a session unused for `idle_timeout` seconds is gone."""

    idle_timeout: float = 900.0
    max_sessions: int = 10_000
    clock: object = field(default=time.monotonic)
    _sessions: dict[str, Session] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator, no-any-return]

    def new(self) -> Session:
        """An anonymous session (login form's CSRF token); oldest dropped when full."""
        self._expire()
        if len(self._sessions) >= self.max_sessions:
            # Anyone can open login forms: they give way first, so a flood of them cannot
            # push logged-in users out.
            anonymous = [s for s in self._sessions.values() if s.user is None]
            oldest = min(anonymous or self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.sid]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._now())
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid or "")
        if session is None:
            return None
        now = self._now()
        if now - session.last_seen > self.idle_timeout:
            del self._sessions[session.sid]
            return None
        session.last_seen = now
        return session

    def log_in(self, old: Session, user: str, display_name: str = "") -> Session:
        """A fresh id and CSRF token for the logged-in user (no session fixation)."""
        self._sessions.pop(old.sid, None)
        session = self.new()
        session.user, session.display_name = user, display_name
        return session

    def drop(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self._now()
        for sid in [s for s, v in self._sessions.items() if now - v.last_seen > self.idle_timeout]:
            del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class LoginThrottle:
    """After `free` failures for a user name (`free_per_address` for a client address),
    each further attempt must wait twice as long as the last (up to `max_delay`), right or
    wrong password. An address is given more room: behind an ingress, many users share it."""

    free: int = 3
    free_per_address: int = 20
    base_delay: float = 1.0
    max_delay: float = 300.0
    clock: object = field(default=time.monotonic)
    _failures: dict[str, int] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator, no-any-return]

    def wait_for(self, *keys: str) -> float:
        """Seconds until an attempt for these keys is heard (0: now)."""
        now = self._now()
        return max([self._not_before.get(k, 0.0) - now for k in keys] + [0.0])

    def failed(self, *keys: str) -> None:
        for key in keys:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
            free = self.free_per_address if key.startswith("addr:") else self.free
            if count >= free:
                delay = min(self.max_delay, self.base_delay * 2 ** (count - free))
                self._not_before[key] = self._now() + delay

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
