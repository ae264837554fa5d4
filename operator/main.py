"""`kubenova-operator`: the central operator process."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from datetime import timedelta

import click

from kubenova.operator.prefetch import Prefetch
from kubenova.wellknown import SYSTEM_NAMESPACE

# The operator's own modules (kopf, SQLAlchemy, the API models: ~0.5 s) are imported in
# `main` once the prefetch threads read the first lists, so both happen at once.


def _check_auth_config(path: str | None) -> None:
    """Refuse to start on an auth config that cannot work, or would bind to LDAP in clear."""
    from kubenova.operator.auth import load_auth_config  # noqa: PLC0415 - see the top

    try:
        settings = load_auth_config(path)
        if settings.ldap is not None:
            from kubenova.operator.auth.ldap import LdapBackend  # noqa: PLC0415 - ldap3 if used

            LdapBackend(settings.ldap)  # loads the CA file; no connection yet
    except (OSError, ValueError) as exc:
        click.echo(f"kubenova-operator: --auth-config {path}: {exc}", err=True)
        sys.exit(2)


def _weighers(text: str) -> dict[str, float]:
    try:
        pairs = (item.split("=", 1) for item in text.split(","))
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: write name=multiplier,...") from exc


@click.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="kubeconfig file.")
@click.option(
    "--database-url",
    envvar="KUBENOVA_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL of the inventory (SQLite file under ~/.local/share/kubenova by default).",
)
@click.option(
    "--lease-timeout",
    type=float,
    default=40.0,
    show_default=True,
    help="Seconds without a heartbeat before a host is NotReady.",
)
@click.option("--lease-check-interval", type=float, default=5.0, show_default=True)
@click.option(
    "--workers",
    type=int,
    default=32,
    show_default=True,
    help="Concurrent Instance reconciles: a group commit holds the placements in flight, "
    "so more workers mean fewer commits (and writes in flight) per placement.",
)
@click.option(
    "--audit-interval",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds between audits of inventory against resources.",
)
@click.option(
    "--peering",
    default=None,
    hidden=True,
    help="Deprecated, ignored, and removed in the next release: replicas elect one leader "
    "through the Lease kubenova-operator-leader (kopf peering would pause the standbys' "
    "watches).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=8080,
    show_default=True,
    help="Port for /metrics, /healthz and /readyz; 0 disables them.",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--auth-config",
    envvar="KUBENOVA_AUTH_CONFIG",
    default=None,
    help="YAML file choosing the auth backend (database or ldap); default: the database.",
)
@click.option(
    "--project-sync-interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between re-syncs of every Project's RoleBindings with the auth backend.",
)
@click.option(
    "--webhook-port",
    envvar="KUBENOVA_WEBHOOK_PORT",
    type=int,
    default=None,
    help="Serve the validating admission webhook on this port (0: any free port); "
    "without it there is no webhook.",
)
@click.option(
    "--webhook-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the webhook listens on and the apiserver dials.",
)
@click.option(
    "--webhook-service",
    default=None,
    help="namespace/name of the Service in front of the operator replicas: the webhook "
    "configuration points at it (not at this pod) and the certificate names it.",
)
@click.option(
    "--webhook-service-port",
    type=int,
    default=443,
    show_default=True,
    help="Port of --webhook-service that reaches the webhook.",
)
@click.option(
    "--webhook-tls-secret",
    default=None,
    help="Secret in the operator's namespace holding the webhook CA and certificate, "
    "shared by the replicas behind --webhook-service (made and renewed by the operator).",
)
@click.option(
    "--webhook-owner",
    default=None,
    help="ClusterRole the webhook configurations are owned by (an ownerReference): deleting "
    "it deletes them, e.g. when the chart is uninstalled.",
)
@click.option(
    "--webhook-cert-validity",
    type=float,
    default=90 * 24 * 3600.0,
    show_default=True,
    help="Seconds a webhook serving certificate is valid.",
)
@click.option(
    "--webhook-cert-renew-before",
    type=float,
    default=None,
    help="Seconds before its end a serving certificate is replaced (default: a third of "
    "its validity).",
)
@click.option(
    "--scheduler-filters",
    default=None,
    help="Comma-separated filters in order (default: all of them, cheapest first).",
)
@click.option(
    "--scheduler-weighers",
    default=None,
    help="Comma-separated name=multiplier, e.g. ram=-1,cpu=0.5 (negative packs).",
)
@click.option(
    "--peering-priority",
    type=int,
    default=None,
    hidden=True,
    help="Deprecated and ignored, as --peering is: the leader Lease decides which replica acts.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.version_option(package_name="kubenova")
def main(  # noqa: PLR0917 - click passes options positionally
    kubeconfig: str | None,
    database_url: str | None,
    lease_timeout: float,
    lease_check_interval: float,
    workers: int,
    audit_interval: float,
    peering: str | None,
    metrics_port: int,
    metrics_host: str,
    auth_config: str | None,
    project_sync_interval: float,
    webhook_port: int | None,
    webhook_host: str,
    webhook_service: str | None,
    webhook_service_port: int,
    webhook_tls_secret: str | None,
    webhook_owner: str | None,
    webhook_cert_validity: float,
    webhook_cert_renew_before: float | None,
    scheduler_filters: str | None,
    scheduler_weighers: str | None,
    peering_priority: int | None,
    log_level: str,
) -> None:
    """Run the kubenova operator until interrupted."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kopf reports every handled watch event at INFO; our reconcilers log what matters.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The imports make hundreds of thousands of objects, all kept for good: the cyclic
    # collections they trigger find nothing and cost ~0.1 s of CPU. Frozen once imported,
    # those objects are not scanned by any later collection either.
    gc.disable()
    # numpy's OpenBLAS starts a thread per core as it loads, each spinning a while: ~45 ms
    # of CPU taken from the imports and the apiserver's first lists on a 2-core machine, for
    # matrix routines the scheduler never calls (its filters and weighers are element-wise).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    prefetch = Prefetch.start(kubeconfig, SYSTEM_NAMESPACE)
    import kopf  # noqa: PLC0415 - see the top

    from kubenova.memory import size_tls_buffers  # noqa: PLC0415
    from kubenova.operator import inventory as inv  # noqa: PLC0415
    from kubenova.operator.admission.memories import ReviewForgettingMemories  # noqa: PLC0415
    from kubenova.operator.config import OperatorConfig  # noqa: PLC0415
    from kubenova.operator.registry import build_registry  # noqa: PLC0415

    size_tls_buffers()  # before the first connection: the prefetch's threads use http.client
    _check_webhook_options(
        webhook_service, webhook_tls_secret, webhook_cert_validity, webhook_cert_renew_before
    )
    _check_auth_config(auth_config)
    url = database_url or inv.default_url()
    try:
        inv.check_schema(url)
    except inv.SchemaOutOfDate as exc:
        click.echo(f"kubenova-operator: {exc}", err=True)
        sys.exit(2)
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's own login reads it too
    config = OperatorConfig(
        database_url=url,
        kubeconfig=kubeconfig,
        lease_timeout=lease_timeout,
        lease_check_interval=lease_check_interval,
        workers=workers,
        audit_interval=audit_interval,
        auth_config=auth_config,
        project_sync_interval=project_sync_interval,
        webhook_port=webhook_port,
        webhook_host=webhook_host,
        webhook_service=webhook_service,
        webhook_service_port=webhook_service_port,
        webhook_tls_secret=webhook_tls_secret,
        webhook_owner=webhook_owner,
        webhook_cert_validity=webhook_cert_validity,
        webhook_cert_renew_before=webhook_cert_renew_before,
        metrics_host=metrics_host,
        metrics_port=metrics_port or None,
        scheduler_filters=tuple(scheduler_filters.split(",")) if scheduler_filters else None,
        scheduler_weighers=_weighers(scheduler_weighers) if scheduler_weighers else None,
    )
    if peering is not None or peering_priority is not None:
        # kopf peering pauses every watch of all but one replica: standbys' caches would go
        # cold and a takeover wait for kopf's own 60 s keep-alive. The Lease decides instead.
        # Still accepted for one release so manifests written for the old chart start.
        logging.getLogger(__name__).warning(
            "--peering and --peering-priority are deprecated and ignored (they go in the next "
            "release): replicas elect a leader through the Lease kubenova-operator-leader"
        )
    registry = build_registry(config, prefetch)
    gc.freeze()
    gc.enable()
    memories = ReviewForgettingMemories()
    asyncio.run(
        kopf.operator(registry=registry, memories=memories, clusterwide=True, standalone=True)
    )


def _check_webhook_options(
    service: str | None, tls_secret: str | None, validity: float, renew_before: float | None
) -> None:
    """Refuse webhook flags that contradict each other, naming the flag."""
    from kubenova.operator.admission.policy import CertificatePolicy  # noqa: PLC0415

    if service is not None and (service.count("/") != 1 or "" in service.split("/")):
        raise click.BadParameter(
            f"must be namespace/name, not {service!r}", param_hint="--webhook-service"
        )
    if tls_secret is not None and service is None:
        # Replicas sharing one certificate are reached through one Service name; a pod
        # address in the shared certificate would be only one replica's.
        raise click.BadParameter(
            "a shared certificate Secret needs --webhook-service", param_hint="--webhook-tls-secret"
        )
    try:
        CertificatePolicy(
            timedelta(seconds=validity),
            timedelta(seconds=renew_before) if renew_before is not None else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--webhook-cert-renew-before") from exc
