"""The Project reconciler: namespace, RoleBindings from the auth backend, quota, status, deletion.

Level-triggered like the Instance reconciler: each pass reads the Project, the backend and
the cluster and writes only what differs, so the periodic membership sync costs reads
only. A Project owns its namespace (label kubenova.io/project, ownerReference) and the
RoleBindings in it. This control plane runs no garbage collector, so deletion is explicit:
the finalizer kubenova.io/project holds the Project until its namespace holds no
Instances or Volumes, then the bindings, the namespace and the quota go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import API_VERSION, Project
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind
from kubenova.kube.client import APPLY_PATCH
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    generation_of,
    labels_of,
    name_of,
    uid_of,
)
from kubenova.kube.objects import apply_status, ensure_metadata, remove_finalizer
from kubenova.kube.paths import NAMESPACES, ResourceKind
from kubenova.operator.auth import AuthBackend, AuthError
from kubenova.operator.auth.rbac import MANAGED_BY, MANAGER, role_bindings, same_binding
from kubenova.operator.inventory import quotas
from kubenova.operator.tenancy import holdings, project_namespace
from kubenova.wellknown import OPERATOR_MANAGER, PROJECT_FINALIZER, PROJECT_LABEL

log = logging.getLogger(__name__)

PROJECTS = kubenova_kind(Project)
ROLE_BINDINGS = ResourceKind("rbac.authorization.k8s.io", "v1", "rolebindings", True, "RoleBinding")
READY = "Ready"


class NamespaceConflict(Exception):
    """The namespace exists and is not this Project's to take."""


@dataclass
class ProjectReconciler:
    """Reconciles one Project (by name) at a time; the work queue serialises per key."""

    client: KubeClient
    engine: Engine
    backend: AuthBackend
    events: EventRecorder
    blocked_retry: float = 10.0
    backend_retry: float = 30.0
    namespaces: dict[str, str] = field(default_factory=dict)  # project -> namespace

    async def __call__(self, name: str, body: Body | None) -> float | None:
        if body is None:
            self.namespaces.pop(name, None)
            return None
        namespace = project_namespace(body)
        self.namespaces[name] = namespace
        if deleting(body):
            return await self._finalize(body, namespace)
        body = (
            await ensure_metadata(self.client, PROJECTS, body, finalizers=(PROJECT_FINALIZER,))
            or body
        )
        limits = quotas.QuotaLimits.from_wire((body.get("spec") or {}).get("quota") or {})
        await asyncio.to_thread(quotas.set_limits, self.engine, namespace, name, limits)
        try:
            await self._ensure_namespace(body, namespace)
        except NamespaceConflict as conflict:
            await self._set_status(body, namespace, None, False, "NamespaceTaken", str(conflict))
            return None
        try:
            members = await asyncio.to_thread(self.backend.members, name)
        except AuthError as exc:
            # Keep the bindings as they are: a directory outage must not lock everyone out.
            log.warning("project %s: auth backend %s: %s", name, self.backend.name, exc)
            await self._set_status(body, namespace, None, False, exc.reason, exc.message)
            return self.backend_retry
        await self._sync_bindings(name, namespace, members)
        users = len({m.user for m in members})
        await self._set_status(
            body, namespace, users, True, "Ready", f"namespace {namespace}, {users} members"
        )
        return None

    # -- namespace and bindings --------------------------------------------------------------

    async def _ensure_namespace(self, body: Body, namespace: str) -> None:
        name = name_of(body)
        owner = {
            "apiVersion": API_VERSION,
            "kind": "Project",
            "name": name,
            "uid": uid_of(body),
            "controller": True,
            "blockOwnerDeletion": False,
        }
        try:
            existing = await self.client.get(NAMESPACES, namespace)
        except NotFound:
            manifest = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {PROJECT_LABEL: name, MANAGED_BY: MANAGER},
                    "ownerReferences": [owner],
                },
            }
            await self.client.create(NAMESPACES, manifest)
            log.info("project %s: created namespace %s", name, namespace)
            return
        meta = existing["metadata"]
        labelled = labels_of(existing).get(PROJECT_LABEL)
        if labelled and labelled != name:
            raise NamespaceConflict(f"namespace {namespace} belongs to project {labelled}")
        if deleting(existing):
            raise NamespaceConflict(
                f"namespace {namespace} is still terminating from an earlier project"
            )
        if labelled != name:
            # Adopt a namespace that existed before the Project (label it, own it).
            patch: Body = {"metadata": {"labels": {PROJECT_LABEL: name}}}
            if not meta.get("ownerReferences"):
                patch["metadata"]["ownerReferences"] = [owner]
            await self.client.patch(NAMESPACES, namespace, patch)
            log.info("project %s: adopted namespace %s", name, namespace)

    async def _sync_bindings(self, name: str, namespace: str, members: frozenset[Any]) -> None:
        desired = {name_of(b): b for b in role_bindings(name, namespace, members).values()}
        listing = await self.client.list(
            ROLE_BINDINGS,
            namespace,
            label_selector=f"{MANAGED_BY}={MANAGER},{PROJECT_LABEL}={name}",
        )
        existing = {name_of(b): b for b in listing.get("items", [])}
        for binding_name, binding in desired.items():
            if binding_name in existing and same_binding(existing[binding_name], binding):
                continue
            await self.client.patch(
                ROLE_BINDINGS,
                binding_name,
                binding,
                namespace,
                patch_type=APPLY_PATCH,
                field_manager=OPERATOR_MANAGER,
                force=True,
            )
            log.info("project %s: bound %s in %s", name, binding_name, namespace)
        for binding_name in existing.keys() - desired.keys():
            with contextlib.suppress(NotFound):
                await self.client.delete(ROLE_BINDINGS, binding_name, namespace)
            log.info("project %s: unbound %s in %s", name, binding_name, namespace)

    # -- deletion ----------------------------------------------------------------------------

    async def _finalize(self, body: Body, namespace: str) -> float | None:
        name = name_of(body)
        if PROJECT_FINALIZER not in finalizers_of(body):
            return None
        held = {kind: n for kind, n in (await holdings(self.client, namespace)).items() if n}
        if held:
            what = ", ".join(f"{n} {kind}" for kind, n in held.items())
            message = (
                f"deletion waits: namespace {namespace} still holds {what}; delete them "
                "and the Project goes"
            )
            await self._set_status(body, namespace, None, False, "DeletionBlocked", message)
            self.events.record(body, "Warning", "DeletionBlocked", message)
            return self.blocked_retry
        listing = await self.client.list(
            ROLE_BINDINGS,
            namespace,
            label_selector=f"{MANAGED_BY}={MANAGER},{PROJECT_LABEL}={name}",
        )
        for binding in listing.get("items", []):
            with contextlib.suppress(NotFound):
                await self.client.delete(ROLE_BINDINGS, name_of(binding), namespace)
        await self._delete_namespace(name, namespace)
        await asyncio.to_thread(quotas.drop_limits, self.engine, namespace)
        await remove_finalizer(self.client, PROJECTS, body, PROJECT_FINALIZER)
        log.info("project %s: deleted with its namespace %s", name, namespace)
        return None

    async def _delete_namespace(self, name: str, namespace: str) -> None:
        try:
            existing = await self.client.get(NAMESPACES, namespace)
        except NotFound:
            return
        if labels_of(existing).get(PROJECT_LABEL) != name:
            return  # not ours (any more): leave it
        # Without a controller-manager the namespace stays Terminating; nothing waits on it.
        try:
            await self.client.delete(NAMESPACES, namespace)
        except (NotFound, ApiError) as exc:
            if not isinstance(exc, NotFound) and exc.status != 409:
                raise

    # -- status ------------------------------------------------------------------------------

    async def _set_status(  # noqa: PLR0917 - one call shape, all arguments always given
        self,
        body: Body,
        namespace: str,
        members: int | None,
        ready: bool,
        reason: str,
        message: str,
    ) -> None:
        status = body.get("status") or {}
        generation = generation_of(body)
        usage = (await asyncio.to_thread(quotas.usage, self.engine, namespace)).as_wire()
        entry = cond.condition(
            READY, ready, reason, message, generation=generation, previous=status.get("conditions")
        )
        desired: Body = {
            "namespace": namespace,
            "usage": usage,
            "observedGeneration": generation,
            "conditions": [entry],
        }
        if members is not None:
            desired["members"] = members
        unchanged = (
            cond.same(cond.find(status.get("conditions"), READY), entry)
            and status.get("namespace") == namespace
            and status.get("usage") == usage
            and status.get("observedGeneration") == generation
            and (members is None or status.get("members") == members)
        )
        if unchanged:
            return
        with contextlib.suppress(NotFound):
            await apply_status(self.client, PROJECTS, body, desired, manager=OPERATOR_MANAGER)
