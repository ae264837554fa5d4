"""`kubenova audit`: one pass comparing the inventory with the resources, repairing leaks."""

from __future__ import annotations

import asyncio

import click

from kubenova.kube import KubeClient, load_config
from kubenova.operator import inventory as inv
from kubenova.operator.audit import AuditReport, audit, fill_catalog
from kubenova.operator.catalog import Catalog
from kubenova.operator.placement import Placer


async def _run(kubeconfig: str | None, database_url: str) -> AuditReport:
    engine = inv.make_engine(database_url)
    inv.check_schema(engine)
    async with KubeClient(load_config(kubeconfig), user_agent="kubenova-audit") as client:
        catalog = Catalog()
        await fill_catalog(client, catalog)
        try:
            return await audit(client, Placer(engine), catalog)
        finally:
            engine.dispose()


@click.command(name="audit")
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None)
@click.option("--database-url", envvar="KUBENOVA_DATABASE_URL", default=None)
def audit_command(kubeconfig: str | None, database_url: str | None) -> None:
    """Release leaked claims, re-claim missing ones, report what needs a human."""
    report = asyncio.run(_run(kubeconfig, database_url or inv.default_url()))
    for line in report.lines():
        click.echo(line)
    if report.flagged:
        raise SystemExit(1)
