"""Projects: kopf watches Projects into a work queue; a periodic pass re-syncs memberships.

Start-up applies the kubenova project ClusterRoles and builds the configured auth backend
(`--auth-config`; the inventory database when none). Every `--project-sync-interval`
seconds each Project is reconciled again (LDAP group edits are picked up that way).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube import KubeClient
from kubenova.kube.client import APPLY_PATCH
from kubenova.kube.meta import name_of
from kubenova.kube.paths import ResourceKind
from kubenova.operator.auth import AuthBackend, build_backend, load_auth_config
from kubenova.operator.auth.rbac import cluster_roles
from kubenova.operator.config import OperatorConfig
from kubenova.operator.projects.reconciler import ProjectReconciler
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.wellknown import OPERATOR_MANAGER
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

CLUSTER_ROLES = ResourceKind(
    "rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole"
)


@dataclass
class ProjectsController:
    """What the Projects controller holds while the operator runs."""

    reconciler: ProjectReconciler
    queue: WorkQueue[str]
    backend: AuthBackend
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


CONTROLLER: MemoSlot[ProjectsController] = MemoSlot("projects")


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the Projects handlers to `registry`."""

    @kopf.on.startup(registry=registry)
    async def projects_startup(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        backend = build_backend(load_auth_config(config.auth_config), runtime.engine)
        reconciler = ProjectReconciler(runtime.client, runtime.engine, backend, runtime.events)
        queue: WorkQueue[str] = WorkQueue(
            reconciler, workers=2, name="projects", component="operator"
        )
        controller = ProjectsController(reconciler, queue, backend)
        CONTROLLER.put(memo, controller)

        async def lead() -> None:
            await apply_cluster_roles(runtime.client)
            queue.start()
            controller.tasks.append(
                asyncio.create_task(
                    _sync_forever(controller, config.project_sync_interval),
                    name="project-sync",
                )
            )

        runtime.when_leading(lead)
        log.info(
            "projects: auth backend %s, sync every %ss", backend.name, config.project_sync_interval
        )

    @kopf.on.cleanup(registry=registry)
    async def projects_cleanup(memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.find(memo)
        if controller is None:
            return
        for task in controller.tasks:
            task.cancel()
        await asyncio.gather(*controller.tasks, return_exceptions=True)
        await controller.queue.stop()
        controller.backend.close()

    @kopf.on.event(GROUP, VERSION, "projects", registry=registry)
    async def project_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.get(memo)
        name = body.metadata.name or ""
        controller.queue.put(name, None if type == "DELETED" else dict(body))


async def apply_cluster_roles(client: KubeClient) -> None:
    """Server-side apply the admin/member/reader ClusterRoles (idempotent)."""
    for role in cluster_roles():
        await client.patch(
            CLUSTER_ROLES,
            name_of(role),
            role,
            patch_type=APPLY_PATCH,
            field_manager=OPERATOR_MANAGER,
            force=True,
        )


async def _sync_forever(controller: ProjectsController, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for name in controller.queue.keys():  # noqa: SIM118 - a WorkQueue, not a dict
            controller.queue.mark(name)
