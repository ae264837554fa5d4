"""Operator settings, from flags or KUBENOVA_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator is told at start-up."""

    database_url: str
    kubeconfig: str | None = None
    system_namespace: str = "kubenova-system"
    # A host whose Lease has not been renewed for this long is NotReady.
    lease_timeout: float = 40.0
    lease_check_interval: float = 5.0
    workers: int = 32
    audit_interval: float = 300.0
    scheduler_filters: tuple[str, ...] | None = None  # None: the scheduler's defaults
    scheduler_weighers: dict[str, float] | None = None  # name -> multiplier (<0 packs)
    field_manager: str = "kubenova-operator"
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 8080
    # Auth manager and admission webhook.
    auth_config: str | None = None  # YAML file (kubenova.operator.auth.config); None: database
    project_sync_interval: float = 60.0  # seconds between membership syncs of every Project
    webhook_host: str = "127.0.0.1"  # where the webhook listens and what the apiserver dials
    webhook_port: int | None = None  # None: no webhook; 0: any free port
    webhook_cert_dir: str | None = None  # where its CA and serving cert files go (a temp dir)
    # Publish a Service reference ("namespace/name", port) instead of this pod's URL.
    webhook_service: str | None = None
    webhook_service_port: int = 443
    webhook_tls_secret: str | None = None  # Secret (system namespace) shared by replicas
    # ClusterRole owning the webhook configurations: deleting it (helm uninstall) lets the
    # garbage collector delete them too, so no webhook outlives the operator.
    webhook_owner: str | None = None
    webhook_cert_validity: float = 90 * 24 * 3600.0  # seconds a serving certificate lives
    webhook_cert_renew_before: float | None = None  # seconds before its end; None: a third
