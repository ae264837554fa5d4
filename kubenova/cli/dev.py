"""`kubenova dev`: a local control plane (etcd + kube-apiserver) that outlives the command."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kubenova.cli.api import start_dev_api, stop_dev_api
from kubenova.devcluster import (
    ClusterAccess,
    ControlPlane,
    ControlPlaneError,
    default_state_dir,
    find_checkout,
    install_crds,
    install_policies,
)
from kubenova.devcluster.policies import CATALOG_RULES, POLICY_DIR, install_catalog_rbac
from kubenova.devcluster.services import LocalServices


def _plane() -> ControlPlane:
    return ControlPlane(default_state_dir(), detached=True)


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def start_local_services(access: ClusterAccess, state_dir: Path) -> None:
    """Start MinIO, libvirtd, tgtd, the operator and one local agent against the dev plane."""
    from kubenova.operator import inventory  # noqa: PLC0415 - the db layer, on demand

    LocalServices(state_dir).up(access, _progress, migrate=inventory.upgrade)


def stop_local_services(state_dir: Path) -> list[str]:
    """Stop what start_local_services started, before the control plane goes down."""
    return LocalServices(state_dir).down()


def _install_crds(access: ClusterAccess) -> None:
    checkout = find_checkout()
    if checkout is None:
        click.echo(
            "CRDs: no kubenova source checkout beside this installation; skipped "
            "(apply the CRD manifests with `kubectl apply --server-side -f`)",
            err=True,
        )
        return
    started = time.monotonic()
    names = install_crds(access, checkout / "crds")
    if not names:
        click.echo(f"CRDs: {checkout / 'crds'} holds no manifests yet; skipped", err=True)
        return
    click.echo(
        f"CRDs: {len(names)} installed and Established in {time.monotonic() - started:.1f} s",
        err=True,
    )
    policies = install_policies(access, checkout / POLICY_DIR)
    click.echo(f"admission policies: {len(policies)} installed", err=True)
    install_catalog_rbac(access, checkout / CATALOG_RULES)
    click.echo("catalog: every authenticated user may read Flavors and Images", err=True)


@click.group()
def dev() -> None:
    """Run a local control plane in $KUBENOVA_DEV_DIR (default ~/.local/share/kubenova/dev)."""


@dev.command()
def up() -> None:
    """Start (or reuse) etcd and kube-apiserver, install the CRDs, print the kubeconfig path."""
    plane = _plane()
    started = time.monotonic()
    click.echo(f"control plane in {plane.root}", err=True)
    try:
        access = plane.up(progress=_progress)
        click.echo(
            f"kube-apiserver ready at {access.url} ({time.monotonic() - started:.1f} s)", err=True
        )
        _install_crds(access)
        start_local_services(access, plane.root)
        from kubenova.dashboard import devserver  # noqa: PLC0415 - aiohttp app, on demand

        dashboard_url = devserver.start(
            access, plane.root, LocalServices(plane.root).database_url, _progress
        )
        clouds = start_dev_api(
            access, plane.root, LocalServices(plane.root).database_url, _progress
        )
    except ControlPlaneError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"dashboard: {dashboard_url}", err=True)
    click.echo(f"openstack: OS_CLIENT_CONFIG_FILE={clouds} OS_CLOUD=kubenova-dev", err=True)
    click.echo(f"export KUBECONFIG={access.kubeconfig}", err=True)
    click.echo(str(access.kubeconfig))


@dev.command()
def down() -> None:
    """Stop the local control plane; its data, certificates and ports are kept for `up`."""
    from kubenova.dashboard import devserver  # noqa: PLC0415 - aiohttp app, on demand

    plane = _plane()
    stopped = (
        devserver.stop(plane.root) + stop_dev_api(plane.root) + stop_local_services(plane.root)
    )
    stopped += plane.down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev.command()
def status() -> None:
    """Show each component, its pid and health; exit status 1 unless all are healthy."""
    plane = _plane()
    try:
        components = plane.status()
    except ControlPlaneError as error:
        raise click.ClickException(str(error)) from error
    for component in components:
        state = (
            "healthy"
            if component.healthy
            else ("unhealthy" if component.pid is not None else "stopped")
        )
        pid = f"pid {component.pid}" if component.pid is not None else "-"
        click.echo(f"{component.name:<15} {state:<10} {pid:<12} {component.endpoint}")
    for service in LocalServices(plane.root).status():
        state = "running" if service.pid is not None else "stopped"
        pid = f"pid {service.pid}" if service.pid is not None else "-"
        click.echo(f"{service.name:<15} {state:<10} {pid:<12} {service.detail}")
    if plane.kubeconfig.exists():
        click.echo(f"kubeconfig      {plane.kubeconfig}")
    if not all(component.healthy for component in components):
        raise SystemExit(1)


@dev.command()
def env() -> None:
    """Print `export KUBECONFIG=...` for the dev plane: eval "$(kubenova dev env)"."""
    click.echo(f"export KUBECONFIG={_plane().kubeconfig}")
