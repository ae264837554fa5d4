"""The echo of our own hand-over write is recognised once, by its resourceVersion."""

from __future__ import annotations

from kubenova.kube.meta import Body
from kubenova.operator.instances.handover import Echoes


def instance(uid: str, version: str) -> Body:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


def test_only_the_exact_version_our_apply_got_is_its_echo_and_only_once() -> None:
    echoes = Echoes()
    echoes.expect(instance("u1", "20"))
    assert not echoes.came_back(instance("u1", "19"))  # an earlier write (the finalizers)
    assert not echoes.came_back(instance("u2", "20"))  # another Instance
    assert echoes.came_back(instance("u1", "20"))
    assert not echoes.came_back(instance("u1", "20"))  # seen once: nothing more to skip


def test_a_later_event_ends_the_wait_when_the_echo_came_first() -> None:
    """The echo may beat the apply's answer (it was reconciled as usual); the next event
    (the agent's Running) is reconciled and forgets the expectation."""
    echoes = Echoes()
    echoes.expect(instance("u1", "20"))
    assert not echoes.came_back(instance("u1", "25"))
    echoes.expect(instance("u1", "30"))
    echoes.forget("u1")  # deleted
    assert not echoes.came_back(instance("u1", "30"))
