"""Admission reviews leave no per-object memory behind, through kopf's own review entry point.

kopf remembers each object a review of an UPDATE is about, and only its watches forget
one again: for Instances, which kopf does not watch, that was one memory per Instance
ever changed, kept for the life of the operator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from kopf._cogs.structs import ids, references
from kopf._core.engines.admission import serve_admission_request
from kopf._core.reactor.inventory import ResourceMemories

from kubenova.operator.admission.memories import ReviewForgettingMemories

INSTANCES = references.Resource(
    group="kubenova.io", version="v1alpha1", plural="instances", kind="Instance", namespaced=True
)


def instance(uid: str, flavor: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": f"vm-{uid}", "namespace": "tenant", "uid": uid},
        "spec": {"flavor": flavor, "image": "cirros"},
    }


def review(operation: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"review-{uid}",
            "resource": {"group": "kubenova.io", "version": "v1alpha1", "resource": "instances"},
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": instance(uid, "m1.large"),
            "oldObject": instance(uid, "m1.small") if operation == "UPDATE" else None,
            "dryRun": False,
        },
    }


class Reviews:
    """kopf's admission entry point with one validating handler, as the operator wires it."""

    def __init__(self, memories: ResourceMemories) -> None:
        self.memories = memories
        self.memobase = kopf.Memo()
        self.memos_seen: list[Any] = []
        self.registry = kopf.OperatorRegistry()
        self.insights = references.Insights()
        self.insights.webhook_resources.add(INSTANCES)

        @kopf.on.validate(
            "kubenova.io", "v1alpha1", "instances", id="instances", registry=self.registry
        )
        async def validate(memo: kopf.Memo, **_: Any) -> None:
            self.memos_seen.append(memo)

    def send(self, operation: str, uid: str) -> dict[str, Any]:
        response = asyncio.run(
            serve_admission_request(
                review(operation, uid),  # type: ignore[arg-type]
                webhook=ids.HandlerId("instances"),
                settings=kopf.OperatorSettings(),
                memories=self.memories,
                memobase=self.memobase,
                registry=self.registry,
                insights=self.insights,
                indices={},  # type: ignore[arg-type]
            )
        )
        return dict(response)


def remembered(memories: ResourceMemories) -> int:
    return len(memories._items)  # kopf's container has no public size


def test_kopf_alone_keeps_a_memory_per_object_reviewed_for_an_update() -> None:
    # What the operator ran with before: the leak this module is about.
    reviews = Reviews(ResourceMemories())
    for n in range(5):
        reviews.send("UPDATE", f"uid-{n}")
    assert remembered(reviews.memories) == 5


def test_reviews_of_creates_and_updates_leave_no_memory() -> None:
    reviews = Reviews(ReviewForgettingMemories())
    for n in range(5):
        assert reviews.send("CREATE", f"uid-{n}")["response"]["allowed"] is True
        assert reviews.send("UPDATE", f"uid-{n}")["response"]["allowed"] is True
    assert remembered(reviews.memories) == 0
    assert len(reviews.memos_seen) == 10  # the handler ran each time


def test_an_object_kopf_watches_is_reviewed_with_the_memory_its_watch_keeps() -> None:
    memories = ReviewForgettingMemories()
    reviews = Reviews(memories)
    watched = asyncio.run(memories.recall(instance("uid-w", "m1.small")))  # as kopf's watch does
    reviews.send("UPDATE", "uid-w")
    assert reviews.memos_seen == [watched.memo]
    assert remembered(memories) == 1
