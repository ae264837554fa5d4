"""The validating admission webhook, served by kopf inside the operator (`--webhook-port`).

Start-up makes a throwaway CA and serving certificate, starts kopf's webhook server on
`--webhook-host` and publishes the ValidatingWebhookConfiguration (URL + CA bundle);
see `kubenova.operator.admission.configuration` for the failure policy. Disabled (no
handlers registered) when no port is configured.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from sqlalchemy import Engine

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.client import APPLY_PATCH
from kubenova.operator.admission.configuration import (
    CONFIGURATION_NAME,
    VALIDATING_WEBHOOKS,
    Hook,
    webhook_configuration,
)
from kubenova.operator.admission.errors import FORBIDDEN, AdmissionRefused
from kubenova.operator.admission.instances import check_instance
from kubenova.operator.admission.networks import check_network
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
from kubenova.operator.admission.tls import make_serving_files
from kubenova.operator.admission.volumes import check_volume
from kubenova.operator.config import OperatorConfig
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.records import Consumer
from kubenova.operator.networks.settings import from_environment as network_settings
from kubenova.operator.runtime import Runtime
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

HOOKS = [
    Hook("instances", "instances", ("CREATE", "UPDATE")),
    Hook("volumes", "volumes", ("CREATE", "UPDATE")),
    Hook("networks", "networks", ("CREATE", "UPDATE")),
    Hook("projects", "projects", ("CREATE", "UPDATE", "DELETE"), namespaced=False),
]
MEMO_KEY = "admission"
Body = dict[str, Any]
FieldsOf = Callable[[Body, Body | None], list[AdminOnlyField]]


@dataclass(frozen=True)
class Request:
    """What the AdmissionReview says beside the objects: who asks, for what, dry or not."""

    operation: str
    user: dict[str, Any] | None
    dry_run: bool


@dataclass
class Admission:
    """The webhook's decisions, with what they need to look things up and reserve quota."""

    references: References
    engine: Engine
    system_namespace: str
    authorizer: Authorizer
    floating_ips: bool  # the operator has a floating IP pool (KUBENOVA_FLOATING_IP_POOL)

    async def instance(self, body: Body, old: Body | None, request: Request) -> None:
        # Admin-only fields first: a refused request must not reach the quota reservation.
        await self._privileges(instance_admin_fields, body, old, request)
        amounts = await check_instance(body, old, self.references, floating_ips=self.floating_ips)
        if amounts is not None:
            await self._reserve(body, "Instance", amounts, request.dry_run)

    async def volume(self, body: Body, old: Body | None, dry_run: bool) -> None:
        amounts = await check_volume(body, old, self.references)
        if amounts is not None:
            await self._reserve(body, "Volume", amounts, dry_run)

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
            body["metadata"]["namespace"],
        )

    async def project(self, body: Body, operation: str) -> None:
        if operation == "DELETE":
            await check_project_deletion(body, self.references)
        else:
            await check_project(body, self.references, self.system_namespace)

    async def _reserve(
        self, body: Body, kind: str, amounts: quotas.QuotaAmounts, dry_run: bool
    ) -> None:
        meta = body["metadata"]
        consumer = Consumer(meta.get("uid") or "", meta["name"], meta["namespace"], kind)
        try:
            await asyncio.to_thread(
                quotas.reserve, self.engine, consumer, amounts, dry_run=dry_run or not consumer.uid
            )
        except quotas.QuotaExceeded as exceeded:
            raise AdmissionRefused("", exceeded.message, code=FORBIDDEN) from exceeded


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the webhook's start-up and validating handlers, if a webhook port is configured."""
    if config.webhook_port is None:
        return

    @kopf.on.startup(registry=registry)
    async def admission_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        cert_dir = Path(config.webhook_cert_dir or tempfile.mkdtemp(prefix="kubenova-webhook-"))
        files = make_serving_files(cert_dir, [config.webhook_host, "localhost"])

        async def publish(client_config: dict[str, Any]) -> None:
            manifest = webhook_configuration(HOOKS, client_config)
            await runtime.client.patch(
                VALIDATING_WEBHOOKS,
                CONFIGURATION_NAME,
                manifest,
                patch_type=APPLY_PATCH,
                field_manager=OPERATOR_MANAGER,
                force=True,
            )
            log.info("admission webhook published at %s", client_config["url"])

        settings.admission.server = PublishingWebhookServer(
            publish,
            addr=config.webhook_host,
            port=config.webhook_port or None,  # 0: any free port (the URL is published)
            host=config.webhook_host,
            certfile=str(files.cert),
            pkeyfile=str(files.key),
            cafile=str(files.ca),
        )
        settings.admission.managed = None  # ours: kopf's has no matchConditions
        memo[MEMO_KEY] = Admission(
            References(runtime.catalog, runtime.client),
            runtime.engine,
            config.system_namespace,
            SubjectAccessReviews(runtime.client),
            floating_ips=network_settings().floating_pool is not None,
        )

    @kopf.on.validate(
        GROUP,
        VERSION,
        "instances",
        id="instances",
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    async def validate_instance(body: kopf.Body, dryrun: bool, memo: Any, **kwargs: Any) -> None:
        request = _request(dryrun, kwargs)
        await _decide(memo[MEMO_KEY].instance(dict(body), _plain(kwargs.get("old")), request))

    @kopf.on.validate(
        GROUP, VERSION, "volumes", id="volumes", operations=["CREATE", "UPDATE"], registry=registry
    )
    async def validate_volume(body: kopf.Body, dryrun: bool, memo: Any, **kwargs: Any) -> None:
        await _decide(memo[MEMO_KEY].volume(dict(body), _plain(kwargs.get("old")), dryrun))

    @kopf.on.validate(
        GROUP,
        VERSION,
        "networks",
        id="networks",
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    async def validate_network(body: kopf.Body, dryrun: bool, memo: Any, **kwargs: Any) -> None:
        request = _request(dryrun, kwargs)
        await _decide(memo[MEMO_KEY].network(dict(body), _plain(kwargs.get("old")), request))

    @kopf.on.validate(
        GROUP,
        VERSION,
        "projects",
        id="projects",
        operations=["CREATE", "UPDATE", "DELETE"],
        registry=registry,
    )
    async def validate_project(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
        await _decide(memo[MEMO_KEY].project(dict(body), kwargs["operation"]))


def _request(dry_run: bool, kwargs: dict[str, Any]) -> Request:
    user = kwargs.get("userinfo")
    return Request(str(kwargs.get("operation") or ""), dict(user) if user else None, dry_run)


def _plain(old: Any) -> Body | None:
    return dict(old) if old is not None else None


async def _decide(decision: Any) -> None:
    """Await a check; a refusal becomes kopf's AdmissionError (message and HTTP code)."""
    try:
        await decision
    except AdmissionRefused as refused:
        raise kopf.AdmissionError(refused.message, code=refused.code) from refused
