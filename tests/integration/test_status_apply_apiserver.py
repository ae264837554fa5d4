"""Status writes against the real apiserver: what it warns about is logged once, and our
applies skip its strict field check (a second parse of every apply) without letting an
unknown field through."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

from kubenova.api.v1alpha1 import Instance
from kubenova.devcluster import ClusterAccess
from kubenova.errors import ApiError, Conflict
from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.kube.objects import apply_status
from kubenova.kube.paths import NAMESPACES
from kubenova.operator.instances import still_handed_over
from kubenova.wellknown import OPERATOR_MANAGER

pytestmark = pytest.mark.apiserver

INSTANCES = kubenova_kind(Instance)
MANAGER = "status-apply-test"


def status_with_a_typo(host: str) -> dict[str, Any]:
    return {"phase": "Scheduled", "host": host, "hots": host}


async def an_instance_in_a_new_namespace(
    client: KubeClient, prefix: str, *names: str
) -> dict[str, Any]:
    """A fresh namespace holding one Instance per name; the created bodies by name."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    made = {}
    for name in names:
        made[name] = await client.create(
            INSTANCES,
            {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "Instance",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"flavor": "m1.tiny", "image": "cirros"},
            },
            namespace,
        )
    return made


async def scenario(access: ClusterAccess) -> dict[str, Any]:
    async with KubeClient(load_config(access.kubeconfig), user_agent="status-test") as client:
        made = await an_instance_in_a_new_namespace(client, "status-apply", "plain", "ours")
        namespace = made["plain"]["metadata"]["namespace"]
        # A merge patch with an unknown field, twice (the apiserver's default field
        # validation): it warns each time and drops the field; the client logs it once.
        for _ in range(2):
            await client.patch(
                INSTANCES,
                "plain",
                {"status": status_with_a_typo("h-1")},
                namespace,
                subresource="status",
            )
        plain = await client.get(INSTANCES, "plain", namespace)
        # Our applies skip the strict check, which for an apply only looks for duplicate
        # keys: an unknown field is still refused, by name, when the typed patch is built.
        try:
            await apply_status(
                client, INSTANCES, made["ours"], status_with_a_typo("h-2"), manager=MANAGER
            )
            refused = ""
        except ApiError as exc:
            refused = str(exc)
        ours = await apply_status(
            client, INSTANCES, made["ours"], {"phase": "Scheduled", "host": "h-2"}, manager=MANAGER
        )
        await client.delete(NAMESPACES, namespace)
        return {"plain": plain["status"], "refused": refused, "ours": ours["status"]}


def test_apiserver_warnings_are_logged_once_and_status_applies_still_refuse_unknown_fields(
    apiserver: ClusterAccess, crds_installed: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kubenova.kube.client"):
        found = asyncio.run(scenario(apiserver))
    warned = [r.getMessage() for r in caplog.records if "the apiserver warns" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "/instances/plain/status" in warned[0]
    assert "status.hots" in warned[0]
    assert found["plain"] == {"phase": "Scheduled", "host": "h-1"}
    assert "status.hots" in found["refused"]
    assert "not declared in schema" in found["refused"]
    assert found["ours"] == {"phase": "Scheduled", "host": "h-2"}


async def guarded_scenario(access: ClusterAccess) -> dict[str, Any]:
    async with KubeClient(load_config(access.kubeconfig), user_agent="status-test") as client:
        made = (await an_instance_in_a_new_namespace(client, "status-guard", "vm"))["vm"]
        namespace = made["metadata"]["namespace"]
        moved = await apply_status(
            client, INSTANCES, made, {"host": "h-2", "phase": "Stopped"}, manager=MANAGER
        )
        try:  # decided from `made`, which the write above replaced
            await apply_status(
                client, INSTANCES, made, {"host": "h-1"}, manager=MANAGER, if_unchanged=True
            )
            stale = "written"
        except Conflict as exc:
            stale = str(exc)
        kept = await client.get(INSTANCES, "vm", namespace)
        fresh = await apply_status(
            client, INSTANCES, moved, {"host": "h-3"}, manager=MANAGER, if_unchanged=True
        )
        await client.delete(NAMESPACES, namespace)
        return {"stale": stale, "kept": kept["status"], "fresh": fresh["status"]}


def test_a_guarded_status_apply_lands_only_on_the_body_it_was_decided_from(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    found = asyncio.run(guarded_scenario(apiserver))
    assert "409" in found["stale"], found
    assert found["kept"] == {"host": "h-2", "phase": "Stopped"}  # nothing dropped
    assert found["fresh"] == {"host": "h-3"}  # the apply replaced what it left out


async def conditions_scenario(access: ClusterAccess) -> list[tuple[str, str]]:
    """The operator shows a waiting resize, the agent its Ready; then a floating IP's write
    of the operator's (only addresses changed) goes through `still_handed_over`."""
    async with KubeClient(load_config(access.kubeconfig), user_agent="status-test") as client:
        body = (await an_instance_in_a_new_namespace(client, "status-keep", "vm"))["vm"]
        namespace = body["metadata"]["namespace"]
        ours = {
            "host": "h-1",
            "addresses": [{"network": "n", "ip": "10.0.0.5", "mac": "52:54:00:00:00:05"}],
            "conditions": [
                condition("Scheduled", "True", "Scheduled"),
                condition("Resized", "False", "WaitingForStop"),
            ],
        }
        await apply_status(client, INSTANCES, body, ours, manager=OPERATOR_MANAGER)
        body = await apply_status(
            client,
            INSTANCES,
            body,
            {"phase": "Running", "conditions": [condition("Ready", "True", "Running")]},
            manager="kubenova-agent-test",
        )
        floating = [dict(ours["addresses"][0], floatingIP="198.51.100.7")]
        body = await apply_status(
            client,
            INSTANCES,
            body,
            still_handed_over(body, "h-1", {"addresses": floating}),
            manager=OPERATOR_MANAGER,
        )
        await client.delete(NAMESPACES, namespace)
        return sorted((c["type"], c["reason"]) for c in body["status"]["conditions"])


def condition(kind: str, status: str, reason: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": reason,
        "lastTransitionTime": "2026-12-06T07:00:00Z",
    }


def test_an_operator_write_of_other_fields_keeps_its_conditions_and_the_agents(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    assert asyncio.run(conditions_scenario(apiserver)) == [
        ("Ready", "Running"),
        ("Resized", "WaitingForStop"),
        ("Scheduled", "Scheduled"),
    ]
