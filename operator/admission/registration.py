"""The admission webhook, served by kopf inside the operator (`--webhook-port`).

Start-up loads or makes the CA and serving certificate (`admission.certificates`: shared
by the replicas through a Secret with `--webhook-tls-secret`, renewed before expiry),
starts kopf's webhook server on `--webhook-host` and publishes the Validating- and
MutatingWebhookConfiguration (this pod's URL, or `--webhook-service`, + CA bundle);
see `kubenova.operator.admission.configuration` for the failure policy. Disabled (no
handlers registered) when no port is configured.

The webhook has no side effects: anyone who reaches its port can POST an AdmissionReview,
so it only reads (references, quota usage) and answers. Quota is charged by the claim.
The mutating hooks only answer with the finalizers a new object gets (`finalizers`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kopf
from sqlalchemy import Engine

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.client import APPLY_PATCH
from kubenova.kube.meta import Body, namespace_of
from kubenova.operator.admission.configuration import (
    CLUSTER_ROLES,
    CONFIGURATION_NAME,
    MUTATING_WEBHOOKS,
    VALIDATING_WEBHOOKS,
    Hook,
    mutating_configuration,
    owner_reference,
    webhook_configuration,
)
from kubenova.operator.admission.errors import AdmissionRefused
from kubenova.operator.admission.finalizers import finalizers_at_creation
from kubenova.operator.admission.instances import check_instance
from kubenova.operator.admission.networks import check_network
from kubenova.operator.admission.policy import CertificatePolicy
from kubenova.operator.admission.privileges import (
    AdminOnlyField,
    Authorizer,
    SubjectAccessReviews,
    instance_admin_fields,
    network_admin_fields,
    require_privileges,
)
from kubenova.operator.admission.projects import check_project, check_project_deletion
from kubenova.operator.admission.references import References
from kubenova.operator.admission.server import PublishingWebhookServer
from kubenova.operator.admission.usage import check_room
from kubenova.operator.admission.volumes import check_volume
from kubenova.operator.config import OperatorConfig
from kubenova.operator.networks import from_environment as network_settings
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.wellknown import FINALIZERS_AT_CREATION, OPERATOR_MANAGER

log = logging.getLogger(__name__)

HOOKS = [
    Hook("instances", "instances", ("CREATE", "UPDATE")),
    Hook("volumes", "volumes", ("CREATE", "UPDATE")),
    Hook("networks", "networks", ("CREATE", "UPDATE")),
    Hook("projects", "projects", ("CREATE", "UPDATE", "DELETE"), namespaced=False),
]
MUTATING_HOOKS = [
    Hook(f"{plural}-finalizers", plural, ("CREATE",), plural != "projects", "finalize")
    for plural in FINALIZERS_AT_CREATION
]
FieldsOf = Callable[[Body, Body | None], list[AdminOnlyField]]


@dataclass(frozen=True)
class Request:
    """What the AdmissionReview says beside the objects: who asks, and for what."""

    operation: str
    user: dict[str, Any] | None


@dataclass
class Admission:
    """The webhook's decisions, with what they need to look things up (it writes nothing)."""

    references: References
    engine: Engine
    system_namespace: str
    authorizer: Authorizer
    floating_ips: bool  # the operator has a floating IP pool (KUBENOVA_FLOATING_IP_POOL)

    async def instance(self, body: Body, old: Body | None, request: Request) -> None:
        # Admin-only fields first: a refused request is refused before anything else is read.
        await self._privileges(instance_admin_fields, body, old, request)
        amounts = await check_instance(body, old, self.references, floating_ips=self.floating_ips)
        if amounts is not None:
            await check_room(self.references, self.engine, body, "Instance", amounts)

    async def volume(self, body: Body, old: Body | None) -> None:
        amounts = await check_volume(body, old, self.references)
        if amounts is not None:
            await check_room(self.references, self.engine, body, "Volume", amounts)

    async def network(self, body: Body, old: Body | None, request: Request) -> None:
        await self._privileges(network_admin_fields, body, old, request)
        await check_network(body, old, self.references)

    async def _privileges(
        self, fields_of: FieldsOf, body: Body, old: Body | None, request: Request
    ) -> None:
        old_spec = None if old is None else (old.get("spec") or {})
        await require_privileges(
            fields_of(body.get("spec") or {}, old_spec),
            self.authorizer,
            request.user,
            request.operation,
            namespace_of(body),
        )

    async def project(self, body: Body, operation: str) -> None:
        if operation == "DELETE":
            await check_project_deletion(body, self.references)
        else:
            await check_project(body, self.references, self.system_namespace)


ADMISSION: MemoSlot[Admission] = MemoSlot("admission")
CERTIFICATES_TASK: MemoSlot[asyncio.Task[None]] = MemoSlot("admission-certificates")


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the webhook's start-up and validating handlers, if a webhook port is configured."""
    if config.webhook_port is None:
        return

    @kopf.on.startup(registry=registry)
    async def admission_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        cert_dir = Path(config.webhook_cert_dir or tempfile.mkdtemp(prefix="kubenova-webhook-"))
        service = service_reference(config)
        secret_owner = None
        if config.webhook_owner and config.webhook_tls_secret:
            role = await runtime.replica_client.get(CLUSTER_ROLES, config.webhook_owner)
            secret_owner = owner_reference(role)
        # cryptography: imported by an operator that serves the webhook only.
        from kubenova.operator.admission.certificates import ServingCertificates  # noqa: PLC0415

        certificates = ServingCertificates(
            cert_dir,
            service_names(service) if service else [config.webhook_host, "localhost"],
            certificate_policy(config),
            client=runtime.replica_client,  # every replica serves the webhook
            secret=(
                (config.system_namespace, config.webhook_tls_secret)
                if config.webhook_tls_secret
                else None
            ),
            owner=secret_owner,
        )
        files = await certificates.ensure()
        CERTIFICATES_TASK.put(
            memo, asyncio.create_task(certificates.keep_fresh(), name="webhook-certificates")
        )

        async def publish(client_config: dict[str, Any]) -> None:
            if service is not None:  # the Service in front of every replica, not this pod
                client_config = {"service": service, "caBundle": client_config["caBundle"]}
            owner = None
            if config.webhook_owner:  # read each time: a recreated role has a new uid
                role = await runtime.replica_client.get(CLUSTER_ROLES, config.webhook_owner)
                owner = owner_reference(role)
            await runtime.replica_client.patch(
                VALIDATING_WEBHOOKS,
                CONFIGURATION_NAME,
                webhook_configuration(HOOKS, client_config, owner=owner),
                patch_type=APPLY_PATCH,
                field_manager=OPERATOR_MANAGER,
                force=True,
            )
            await runtime.replica_client.patch(
                MUTATING_WEBHOOKS,
                CONFIGURATION_NAME,
                mutating_configuration(MUTATING_HOOKS, client_config, owner=owner),
                patch_type=APPLY_PATCH,
                field_manager=OPERATOR_MANAGER,
                force=True,
            )
            log.info("admission webhook published at %s", client_config.get("url") or service)

        settings.admission.server = PublishingWebhookServer(
            publish,
            addr=config.webhook_host,
            port=config.webhook_port or None,  # 0: any free port (the URL is published)
            host=config.webhook_host,
            certfile=str(files.cert),
            pkeyfile=str(files.key),
            cafile=str(files.ca),
            # kopf re-reads the files this often and restarts (and re-publishes) on a change.
            file_check_interval=certificates.policy.check_interval,
        )
        settings.admission.managed = None  # ours: kopf's has no matchConditions
        admission = Admission(
            References(runtime.catalog, runtime.client),
            runtime.engine,
            config.system_namespace,
            SubjectAccessReviews(runtime.replica_client),
            floating_ips=network_settings().floating_pool is not None,
        )
        ADMISSION.put(memo, admission)

    @kopf.on.cleanup(registry=registry)
    async def admission_cleanup(memo: kopf.Memo, **_: Any) -> None:
        task = CERTIFICATES_TASK.find(memo)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @kopf.on.validate(
        GROUP,
        VERSION,
        "instances",
        id="instances",
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    async def validate_instance(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        request = _request(kwargs)
        await _decide(ADMISSION.get(memo).instance(dict(body), _plain(kwargs.get("old")), request))

    @kopf.on.validate(
        GROUP, VERSION, "volumes", id="volumes", operations=["CREATE", "UPDATE"], registry=registry
    )
    async def validate_volume(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        await _decide(ADMISSION.get(memo).volume(dict(body), _plain(kwargs.get("old"))))

    @kopf.on.validate(
        GROUP,
        VERSION,
        "networks",
        id="networks",
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    async def validate_network(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        request = _request(kwargs)
        await _decide(ADMISSION.get(memo).network(dict(body), _plain(kwargs.get("old")), request))

    @kopf.on.validate(
        GROUP,
        VERSION,
        "projects",
        id="projects",
        operations=["CREATE", "UPDATE", "DELETE"],
        registry=registry,
    )
    async def validate_project(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        await _decide(ADMISSION.get(memo).project(dict(body), kwargs["operation"]))

    for hook in MUTATING_HOOKS:
        _register_finalizers(registry, hook)


def _register_finalizers(registry: kopf.OperatorRegistry, hook: Hook) -> None:
    """The mutating handler of `hook`: the kind's finalizers on CREATE (reads nothing)."""

    @kopf.on.mutate(
        GROUP,
        VERSION,
        hook.plural,
        id=hook.handler_id,
        operations=list(hook.operations),  # type: ignore[arg-type]
        side_effects=False,
        registry=registry,
    )
    async def add_finalizers(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        finalizers = finalizers_at_creation(hook.plural, dict(body))
        if finalizers is not None:
            patch["metadata"] = {"finalizers": finalizers}


def service_reference(config: OperatorConfig) -> dict[str, Any] | None:
    """The webhook Service ({namespace, name, port}) from --webhook-service, or None."""
    if not config.webhook_service:
        return None
    namespace, name = config.webhook_service.split("/")
    return {"namespace": namespace, "name": name, "port": config.webhook_service_port}


def service_names(service: dict[str, Any]) -> list[str]:
    """The DNS names the apiserver may dial the Service by (the certificate's SANs)."""
    base = f"{service['name']}.{service['namespace']}.svc"
    return [base, f"{base}.cluster.local"]


def certificate_policy(config: OperatorConfig) -> CertificatePolicy:
    renew_before = config.webhook_cert_renew_before
    return CertificatePolicy(
        timedelta(seconds=config.webhook_cert_validity),
        timedelta(seconds=renew_before) if renew_before is not None else None,
    )


def _request(kwargs: dict[str, Any]) -> Request:
    user = kwargs.get("userinfo")
    return Request(str(kwargs.get("operation") or ""), dict(user) if user else None)


def _plain(old: Any) -> Body | None:
    return dict(old) if old is not None else None


async def _decide(decision: Any) -> None:
    """Await a check; a refusal becomes kopf's AdmissionError (message and HTTP code)."""
    try:
        await decision
    except AdmissionRefused as refused:
        raise kopf.AdmissionError(refused.message, code=refused.code) from refused
