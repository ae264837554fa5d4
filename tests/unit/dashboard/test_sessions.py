"""Sessions expire when idle, logging in changes the id, failed logins slow down."""

from __future__ import annotations

import pytest

from kubenova.dashboard.identity import NotImpersonable, check_impersonable
from kubenova.dashboard.sessions import LoginThrottle, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_session_is_gone_and_a_used_one_stays() -> None:
    clock = Clock()
    store = SessionStore(idle_timeout=60, clock=clock)
    session = store.new()
    clock.now += 50
    assert store.get(session.sid) is session  # use renews it
    clock.now += 50
    assert store.get(session.sid) is session
    clock.now += 61
    assert store.get(session.sid) is None
    assert store.get(None) is None
    assert store.get("forged") is None


def test_logging_in_issues_a_new_id_and_csrf_token() -> None:
    store = SessionStore()
    anonymous = store.new()
    logged_in = store.log_in(anonymous, "alice")
    assert logged_in.sid != anonymous.sid
    assert logged_in.csrf != anonymous.csrf
    assert store.get(anonymous.sid) is None  # the pre-login id is worthless
    assert logged_in.csrf_ok(logged_in.csrf)
    assert not logged_in.csrf_ok(anonymous.csrf)
    assert not logged_in.csrf_ok(None)


def test_the_oldest_session_gives_way_when_the_store_is_full() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=2, clock=clock)
    first = store.new()
    clock.now += 1
    second = store.new()
    clock.now += 1
    store.new()
    assert store.get(first.sid) is None
    assert store.get(second.sid) is second


def test_failed_logins_double_the_wait_per_user_and_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=3, free_per_address=3, base_delay=1.0, max_delay=8.0, clock=clock)
    keys = ("user:alice", "addr:10.0.0.1")
    for _ in range(2):
        throttle.failed(*keys)
        assert throttle.wait_for(*keys) == 0
    waits = []
    for _ in range(5):
        throttle.failed(*keys)
        waits.append(throttle.wait_for(*keys))
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.wait_for("user:alice", "addr:10.9.9.9") == 8.0  # the name alone is held
    clock.now += 8
    assert throttle.wait_for(*keys) == 0
    throttle.succeeded(*keys)
    throttle.failed(*keys)
    assert throttle.wait_for(*keys) == 0


@pytest.mark.parametrize(
    "name", ["", "system:admin", "system:serviceaccount:x:y", "kubenova:agent:h1", "a\nb", "a,b"]
)
def test_component_identities_are_never_impersonated(name: str) -> None:
    with pytest.raises(NotImpersonable):
        check_impersonable(name)


def test_a_plain_user_name_is_impersonable() -> None:
    assert check_impersonable("alice@example.org") == "alice@example.org"


def test_a_flood_of_login_forms_does_not_push_out_logged_in_users() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=3, clock=clock)
    alice = store.log_in(store.new(), "alice")
    for _ in range(10):
        clock.now += 1
        store.new()
    assert store.get(alice.sid) is alice
    assert len(store) == 3


def test_an_address_shared_by_many_users_gets_more_room_than_a_name() -> None:
    throttle = LoginThrottle(free=3, free_per_address=20, clock=Clock())
    for _ in range(5):
        throttle.failed("user:alice", "addr:10.0.0.1")
    assert throttle.wait_for("user:bob", "addr:10.0.0.1") == 0
    assert throttle.wait_for("user:alice", "addr:10.0.0.2") > 0
