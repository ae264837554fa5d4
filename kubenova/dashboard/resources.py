"""Volumes, Networks and the quota overview of a project."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Project
from kubenova.dashboard.context import Context, context, object_name
from kubenova.dashboard.identity import acting_as
from kubenova.dashboard.instances import NETWORKS, VOLUMES
from kubenova.dashboard.refusals import refusals
from kubenova.dashboard.render import Html, bar, button_form, csrf_field, e, join, table, text_input
from kubenova.errors import ApiError
from kubenova.kube import kubenova_kind

PROJECTS = kubenova_kind(Project)
Errors = dict[str | None, list[str]]


def volume_row(project: str, csrf: str, body: dict[str, Any]) -> Html:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    attachments = status.get("attachments") or []
    phase = status.get("phase") or "Pending"
    if meta.get("deletionTimestamp"):
        phase = "Deleting (held while attached)" if attachments else "Deleting"
    used_by = ", ".join(f"{a.get('instance')} ({a.get('state') or '…'})" for a in attachments)
    name = meta["name"]
    return Html(
        f'<tr data-key="{e(name)}" data-name="{e(name)}"><td>{e(name)}</td>'
        f"<td>{e(spec.get('sizeGiB'))} GiB</td>"
        f"<td>{e(phase)}</td><td>{e(status.get('host'))}</td><td>{e(used_by)}</td>"
        f"<td>{button_form(f'/p/{project}/volumes/{name}/delete', 'Delete', csrf, danger=True)}"
        "</td></tr>"
    )


async def volumes_page(
    request: web.Request, values: dict[str, str] | None = None, errors: Errors | None = None
) -> web.StreamResponse:
    ctx = await context(request)
    values, errors = values or {}, errors or {}
    with acting_as(ctx.user):
        listing = await ctx.dash.client.list(VOLUMES, ctx.namespace)
    general = join(
        Html(f'<p class="refusal" role="alert">{e(m)}</p>') for m in errors.get(None, [])
    )
    form = Html(
        f'<form method="post" action="/p/{e(ctx.project)}/volumes" class="card">'
        f"<h2>Create a volume</h2>{csrf_field(ctx.csrf)}{general}"
        + text_input("name", "Name", value=values.get("name", ""), errors=errors)
        + text_input(
            "sizeGiB", "Size (GiB)", value=values.get("sizeGiB", "1"), errors=errors, kind="number"
        )
        + Html("<button>Create</button></form>")
    )
    rows = (volume_row(ctx.project or "", ctx.csrf, i) for i in listing.get("items", []))
    live = f"/p/{ctx.project}/live/volumes?rv={listing['metadata'].get('resourceVersion', '')}"
    body = table(
        ("Name", "Size", "Phase", "Host", "Attached to", ""), rows, body_id="volumes", live=live
    )
    return ctx.render(f"Volumes of {ctx.project}", Html(body + form), status=422 if errors else 200)


async def create_volume(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in ("name", "sizeGiB")}
    if not values["sizeGiB"].isdigit():
        return await volumes_page(
            request, values, {"sizeGiB": ["Give the size as whole GiB, e.g. 1."]}
        )
    body = {
        "apiVersion": VOLUMES.api_version,
        "kind": "Volume",
        "metadata": {"name": values["name"], "namespace": ctx.namespace},
        "spec": {"sizeGiB": int(values["sizeGiB"])},
    }
    try:
        with acting_as(ctx.user):
            await ctx.dash.client.create(VOLUMES, body, ctx.namespace)
    except ApiError as error:
        if error.temporary:
            raise
        errors: Errors = {}
        for refusal in refusals(error, what="volumes"):
            errors.setdefault(refusal.field, []).append(refusal.message)
        return await volumes_page(request, values, errors)
    raise web.HTTPSeeOther(f"/p/{ctx.project}/volumes")


async def delete_volume(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    try:
        with acting_as(ctx.user):
            await ctx.dash.client.delete(VOLUMES, object_name(request), ctx.namespace)
    except ApiError as error:
        if error.temporary:
            raise
        return await volumes_page(
            request, None, {None: [r.message for r in refusals(error, what="volumes")]}
        )
    raise web.HTTPSeeOther(f"/p/{ctx.project}/volumes")


def network_row(item: dict[str, Any]) -> Html:
    """A Network: CIDR, free addresses and the Instances on it."""
    spec, status = item.get("spec") or {}, item.get("status") or {}
    ports = ", ".join(
        f"{p.get('instance')} {p.get('ip')}"
        + (f" (floating {p['floatingIP']})" if p.get("floatingIP") else "")
        for p in status.get("ports") or []
    )
    name = item["metadata"]["name"]
    return Html(
        f'<tr data-key="{e(name)}"><td>{e(name)}</td><td>{e(spec.get("mode"))}</td>'
        f"<td>{e(spec.get('cidr'))}</td><td>{e(status.get('ipsFree'))}</td>"
        f"<td>{e(status.get('ipsUsed'))}</td><td>{e(ports)}</td></tr>"
    )


def floating_rows(item: dict[str, Any]) -> Html:
    """The floating IPs mapped on one Network's ports: one row each, keyed by the Network
    (a change of the Network redraws all of its rows)."""
    name = item["metadata"]["name"]
    return join(
        Html(
            f'<tr data-key="{e(name)}"><td>{e(p["floatingIP"])}</td><td>{e(p.get("ip"))}</td>'
            f"<td>{e(p.get('instance'))}</td><td>{e(name)}</td><td>{e(p.get('host'))}</td></tr>"
        )
        for p in (item.get("status") or {}).get("ports") or []
        if p.get("floatingIP")
    )


async def _networks(request: web.Request) -> tuple[Context, dict[str, Any], str]:
    ctx = await context(request)
    with acting_as(ctx.user):
        listing = await ctx.dash.client.list(NETWORKS, ctx.namespace)
    live = f"/p/{ctx.project}/live/networks?rv={listing['metadata'].get('resourceVersion', '')}"
    return ctx, listing, live


async def networks_page(request: web.Request) -> web.StreamResponse:
    ctx, listing, live = await _networks(request)
    rows = (network_row(item) for item in listing.get("items", []))
    body = table(
        ("Name", "Mode", "CIDR", "Free addresses", "Used", "Instances"),
        rows,
        body_id="networks",
        live=live,
    )
    return ctx.render(f"Networks of {ctx.project}", body)


async def floating_ips_page(request: web.Request) -> web.StreamResponse:
    ctx, listing, live = await _networks(request)
    rows = (floating_rows(item) for item in listing.get("items", []))
    project = await ctx.dash.own.get(PROJECTS, ctx.project or "")
    limit = ((project.get("spec") or {}).get("quota") or {}).get("floatingIPs")
    used = ((project.get("status") or {}).get("usage") or {}).get("floatingIPs", 0)
    body = Html(
        f'<section class="card">{bar("Floating IPs", used, limit)}</section>'
        + table(
            ("Floating IP", "Fixed IP", "Instance", "Network", "Host"),
            rows,
            body_id="floating-ips",
            live=f"{live}&view=floating",
        )
        + "<p>An Instance gets a floating IP when it asks for one on a network "
        "(spec.networks[].floatingIP); it is released with the Instance.</p>"
    )
    return ctx.render(f"Floating IPs of {ctx.project}", body)


async def overview(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    # Read with the dashboard's own identity (project roles do not include Projects); the
    # user was just checked to be a member of it.
    project = await ctx.dash.own.get(PROJECTS, ctx.project or "")
    quota = (project.get("spec") or {}).get("quota") or {}
    usage = (project.get("status") or {}).get("usage") or {}
    bars = join(
        bar(label, usage.get(key, 0), quota.get(key), unit)
        for key, label, unit in (
            ("instances", "Instances", ""),
            ("vcpus", "vCPUs", ""),
            ("memoryMiB", "Memory", " MiB"),
            ("volumes", "Volumes", ""),
            ("volumeGiB", "Volume storage", " GiB"),
            ("floatingIPs", "Floating IPs", ""),
        )
    )
    return ctx.render(f"Quota of {ctx.project}", Html(f'<section class="card">{bars}</section>'))


def register(app: web.Application) -> None:
    app.router.add_get("/p/{project}/volumes", volumes_page)
    app.router.add_post("/p/{project}/volumes", create_volume)
    app.router.add_post("/p/{project}/volumes/{name}/delete", delete_volume)
    app.router.add_get("/p/{project}/networks", networks_page)
    app.router.add_get("/p/{project}/floating-ips", floating_ips_page)
    app.router.add_get("/p/{project}/overview", overview)
