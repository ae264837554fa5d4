"""Instances of a project: the live list, the launch form, actions and the Instance page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Flavor, Image, Instance, Network, ServerGroup, Volume
from kubenova.dashboard.context import Context, context, object_name
from kubenova.dashboard.identity import acting_as
from kubenova.dashboard.refusals import refusals
from kubenova.dashboard.render import (
    Html,
    age,
    button_form,
    csrf_field,
    e,
    field_error,
    join,
    select,
    table,
    text_input,
)
from kubenova.errors import ApiError, NotFound
from kubenova.kube import kubenova_kind
from kubenova.kube.paths import CORE_EVENTS

INSTANCES = kubenova_kind(Instance)
FLAVORS, IMAGES = kubenova_kind(Flavor), kubenova_kind(Image)
NETWORKS, GROUPS, VOLUMES = (
    kubenova_kind(Network),
    kubenova_kind(ServerGroup),
    kubenova_kind(Volume),
)
PAGE_SIZE = 50
COLUMNS = ("Name", "Phase", "Host", "IP", "Flavor", "Age", "")
Errors = dict[str | None, list[str]]


def summary(body: dict[str, Any]) -> dict[str, str]:
    """The list columns of one Instance (also what the live stream sends)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    addresses = status.get("addresses") or []
    resources = spec.get("resources") or {}
    flavor = spec.get("flavor") or (
        f"{resources.get('vcpus')} vCPU / {resources.get('memoryMiB')} MiB" if resources else ""
    )
    phase = status.get("phase") or "Pending"
    if body["metadata"].get("deletionTimestamp") and phase not in ("Terminating", "Deleting"):
        phase = "Terminating"
    return {
        "name": body["metadata"]["name"],
        "phase": phase,
        "host": status.get("host") or "",
        "ip": addresses[0].get("ip", "") if addresses else "",
        "flavor": flavor,
        "age": age(body["metadata"].get("creationTimestamp")),
    }


def row(project: str, body: dict[str, Any]) -> Html:
    cells = summary(body)
    name = cells["name"]
    link = Html(f'<a href="/p/{e(project)}/instances/{e(name)}">{e(name)}</a>')
    return Html(
        f'<tr data-name="{e(name)}"><td>{link}</td>'
        f'<td data-col="phase"><span class="phase {e(cells["phase"].lower())}">'
        f"{e(cells['phase'])}</span></td>"
        f'<td data-col="host">{e(cells["host"])}</td><td data-col="ip">{e(cells["ip"])}</td>'
        f'<td data-col="flavor">{e(cells["flavor"])}</td><td data-col="age">{e(cells["age"])}</td>'
        f"<td></td></tr>"
    )


async def list_page(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    params = {"limit": str(PAGE_SIZE)}
    if token := request.query.get("continue"):
        params["continue"] = token
    with acting_as(ctx.user):
        listing = await ctx.dash.client.request("GET", INSTANCES.path(ctx.namespace), params=params)
    items = listing.get("items", [])
    meta = listing.get("metadata") or {}
    total = len(items) + int(meta.get("remainingItemCount") or 0)
    more = meta.get("continue")
    pager = (
        Html(f'<a class="next" href="?continue={e(more)}">Next {PAGE_SIZE} →</a>') if more else ""
    )
    base = f"/p/{ctx.project}"
    body = Html(
        f'<p class="toolbar"><a class="button" href="{e(base)}/launch">Launch instance</a> '
        f'<span class="count">{total} instances</span> '
        f'<span class="live" id="live-state" aria-live="polite">connecting…</span></p>'
        + table(COLUMNS, (row(ctx.project or "", i) for i in items), body_id="instances")
        + pager
        + Html(
            f'<div hidden id="live" data-src="{e(base)}/live/instances?rv='
            f'{e(meta.get("resourceVersion", ""))}" data-project="{e(ctx.project)}"'
            f' data-append="{"0" if more else "1"}"></div>'
        )
    )
    return ctx.render(f"Instances of {ctx.project}", body)


async def _choices(ctx: Context) -> dict[str, list[tuple[str, str]]]:
    async def names(kind: Any, namespace: str | None = None) -> list[str]:
        try:
            listing = await ctx.dash.client.list(kind, namespace)
        except ApiError:
            return []  # not readable for this user: the picker stays empty
        return sorted(i["metadata"]["name"] for i in listing.get("items", []))

    with acting_as(ctx.user):
        results = await asyncio.gather(
            ctx.dash.client.list(FLAVORS),
            names(IMAGES),
            names(NETWORKS, ctx.namespace),
            names(GROUPS, ctx.namespace),
            names(VOLUMES, ctx.namespace),
            return_exceptions=True,
        )
    flavors_raw, images, networks, groups, volumes = results
    flavors: list[tuple[str, str]] = []
    if isinstance(flavors_raw, dict):
        for item in sorted(flavors_raw.get("items", []), key=lambda i: i["metadata"]["name"]):
            spec = item.get("spec") or {}
            label = (
                f"{item['metadata']['name']} ({spec.get('vcpus')} vCPU, "
                f"{spec.get('memoryMiB')} MiB, {spec.get('diskGiB')} GiB)"
            )
            flavors.append((item["metadata"]["name"], label))

    def pairs(values: object) -> list[tuple[str, str]]:
        return [(v, v) for v in values] if isinstance(values, list) else []

    return {
        "flavor": flavors,
        "image": pairs(images),
        "network": pairs(networks),
        "group": pairs(groups),
        "volumes": pairs(volumes),
    }


async def launch_form(
    request: web.Request, values: dict[str, Any] | None = None, errors: Errors | None = None
) -> web.StreamResponse:
    ctx = await context(request)
    values, errors = values or {}, errors or {}
    choices = await _choices(ctx)
    general = join(
        Html(f'<p class="refusal" role="alert">{e(m)}</p>') for m in errors.get(None, [])
    )
    form = Html(
        f'<form method="post" action="/p/{e(ctx.project)}/instances" class="card">'
        f"{csrf_field(ctx.csrf)}{general}"
        + text_input("name", "Name", value=values.get("name", ""), errors=errors)
        + select(
            "flavor", "Flavor", choices["flavor"], chosen=values.get("flavor", ""), errors=errors
        )
        + select("image", "Image", choices["image"], chosen=values.get("image", ""), errors=errors)
        + select(
            "network",
            "Network",
            choices["network"],
            chosen=values.get("network", ""),
            errors=errors,
            blank="(none)",
        )
        + select(
            "group",
            "Server group",
            choices["group"],
            chosen=values.get("group", ""),
            errors=errors,
            blank="(none)",
        )
        + text_input(
            "availabilityZone",
            "Availability zone (optional)",
            value=values.get("availabilityZone", ""),
            errors=errors,
        )
        + select("volumes", "Volumes", choices["volumes"], errors=errors, multiple=True)
        + Html(
            '<label for="f-userData">User data (cloud-init)</label>'
            f'<textarea id="f-userData" name="userData" rows="5">{e(values.get("userData", ""))}'
            f"</textarea>{field_error(errors, 'userData')}<button>Launch</button></form>"
        )
    )
    status = 422 if errors else 200
    return ctx.render(f"Launch an instance in {ctx.project}", form, status=status)


async def launch(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    form = await request.post()
    fields = ("name", "flavor", "image", "network", "group", "availabilityZone")
    values = {k: str(form.get(k, "")).strip() for k in fields}
    values["userData"] = str(form.get("userData", ""))
    spec: dict[str, Any] = {"image": values["image"], "flavor": values["flavor"]}
    if values["network"]:
        spec["networks"] = [{"network": values["network"]}]
    if values["group"]:
        spec["placement"] = {"group": values["group"]}
    if values["availabilityZone"]:  # the CRD checks its form; the scheduler, that it exists
        spec["availabilityZone"] = values["availabilityZone"]
    volumes = [str(v) for v in form.getall("volumes", []) if v]
    if volumes:
        spec["volumes"] = [{"volume": v} for v in volumes]
    if values["userData"].strip():
        spec["userData"] = values["userData"]
    body = {
        "apiVersion": INSTANCES.api_version,
        "kind": "Instance",
        "metadata": {"name": values["name"], "namespace": ctx.namespace},
        "spec": spec,
    }
    try:
        with acting_as(ctx.user):
            await ctx.dash.client.create(INSTANCES, body, ctx.namespace)
    except ApiError as error:
        if error.temporary:
            raise
        errors: Errors = {}
        for refusal in refusals(error, what="instances"):
            errors.setdefault(refusal.field, []).append(refusal.message)
        return await launch_form(request, values, errors)
    raise web.HTTPSeeOther(f"/p/{ctx.project}/instances/{values['name']}")


ACTIONS = {
    "start": {"spec": {"powerState": "Running"}},
    "stop": {"spec": {"powerState": "Stopped"}},
}


async def act(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    name, action = object_name(request), request.match_info["action"]
    try:
        with acting_as(ctx.user):
            if action == "delete":
                await ctx.dash.client.delete(INSTANCES, name, ctx.namespace)
                raise web.HTTPSeeOther(f"/p/{ctx.project}/instances")
            if action == "reboot":
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                patch: dict[str, Any] = {"spec": {"restartRequestedAt": stamp}}
            elif action in ACTIONS:
                patch = ACTIONS[action]
            elif action in ("attach", "detach"):
                volume = request.query.get("volume") or str(
                    (await request.post()).get("volume", "")
                )
                patch = await _volume_patch(ctx, name, action, volume)
            else:
                raise web.HTTPNotFound(text=f"no action {action!r}")
            await ctx.dash.client.patch(INSTANCES, name, patch, ctx.namespace)
    except ApiError as error:
        if error.temporary:
            raise
        # shown on the Instance page: beside the volume picker for attach/detach, above the
        # buttons for the rest
        field = "volume" if action in ("attach", "detach") else None
        messages = [r.message for r in refusals(error, what="this instance")]
        return await detail(
            request,
            errors={field: messages},
            status=error.status if 400 <= error.status < 500 else 502,
        )
    raise web.HTTPSeeOther(f"/p/{ctx.project}/instances/{name}")


async def _volume_patch(ctx: Context, name: str, action: str, volume: str) -> dict[str, Any]:
    body = await ctx.dash.client.get(INSTANCES, name, ctx.namespace)
    current = [v["volume"] for v in (body.get("spec") or {}).get("volumes") or []]
    wanted = [*current, volume] if action == "attach" and volume not in current else current
    if action == "detach":
        wanted = [v for v in current if v != volume]
    # a JSON merge patch replaces the list whole; the resourceVersion makes it conditional
    return {
        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
        "spec": {"volumes": [{"volume": v} for v in wanted]},
    }


def conditions_table(status: dict[str, Any]) -> Html:
    rows = (
        Html(
            f"<tr><td>{e(c.get('type'))}</td><td>{e(c.get('status'))}</td>"
            f"<td>{e(c.get('reason'))}</td><td>{e(c.get('message'))}</td>"
            f"<td>{e(age(c.get('lastTransitionTime')))}</td></tr>"
        )
        for c in status.get("conditions") or []
    )
    return table(("Condition", "Status", "Reason", "Message", "Since"), rows, body_id="conditions")


async def detail(
    request: web.Request, *, errors: Errors | None = None, status: int = 200
) -> web.StreamResponse:
    errors = errors or {}
    ctx = await context(request)
    name = object_name(request)
    selector = f"involvedObject.name={name},involvedObject.kind=Instance"
    with acting_as(ctx.user):
        try:
            body, events, volumes = await asyncio.gather(
                ctx.dash.client.get(INSTANCES, name, ctx.namespace),
                ctx.dash.client.list(CORE_EVENTS, ctx.namespace, field_selector=selector),
                ctx.dash.client.list(VOLUMES, ctx.namespace),
            )
        except NotFound:
            raise web.HTTPNotFound(text=f"no instance {name!r} in {ctx.project}") from None
    spec, observed = body.get("spec") or {}, body.get("status") or {}
    cells = summary(body)
    base = f"/p/{ctx.project}/instances/{name}"
    buttons = join(
        button_form(f"{base}/{a}", a.capitalize(), ctx.csrf, danger=a == "delete")
        for a in ("start", "stop", "reboot", "delete")
    )
    addresses = table(
        ("Network", "IP", "MAC", "Floating IP"),
        (
            Html(
                f"<tr><td>{e(a.get('network'))}</td><td>{e(a.get('ip'))}</td>"
                f"<td>{e(a.get('mac'))}</td><td>{e(a.get('floatingIP'))}</td></tr>"
            )
            for a in observed.get("addresses") or []
        ),
    )
    attached = [v["volume"] for v in spec.get("volumes") or []]
    vol_rows = [attached_rows(base, ctx.csrf, body)]
    free = [
        (i["metadata"]["name"], i["metadata"]["name"])
        for i in volumes.get("items", [])
        if i["metadata"]["name"] not in attached
    ]
    attach = (
        Html(
            f'<form method="post" action="{e(base)}/attach" class="inline">{csrf_field(ctx.csrf)}'
            + select("volume", "Attach volume", free, errors=errors)
            + Html("<button>Attach</button></form>")
        )
        if free
        else field_error(errors, "volume")
    )
    event_rows = (
        event_row(ev)
        for ev in sorted(events.get("items", []), key=lambda ev: ev.get("lastTimestamp") or "")
    )
    general = join(
        Html(f'<p class="refusal" role="alert">{e(m)}</p>') for m in errors.get(None, [])
    )
    console = (observed.get("console") or {}).get("tail") or ""
    live = (
        f"/p/{ctx.project}/live/instances/{name}?rv={body['metadata']['resourceVersion']}"
        f"&erv={events['metadata'].get('resourceVersion', '')}"
    )
    page_body = Html(
        f'<section class="card" id="summary" data-src="{e(live)}"><dl>'
        f'<dt>Phase</dt><dd data-live="phase"><span class="phase {e(cells["phase"].lower())}">'
        f"{e(cells['phase'])}</span></dd>"
        f'<dt>Host</dt><dd data-live="host">{e(cells["host"])}</dd>'
        f"<dt>Flavor</dt><dd>{e(cells['flavor'])}</dd><dt>Image</dt><dd>{e(spec.get('image'))}</dd>"
        f'<dt>Power</dt><dd data-live="power">{e(spec.get("powerState", "Running"))}</dd>'
        f"</dl>{general}{buttons}</section>"
        f"<h2>Conditions</h2>{conditions_table(observed)}"
        f"<h2>Addresses</h2>{addresses}"
        f"<h2>Volumes</h2>{table(('Volume', 'Device', ''), vol_rows, body_id='attached')}{attach}"
        f'<h2>Serial console</h2><pre id="console" aria-live="off" tabindex="0">{e(console)}</pre>'
        f"<h2>Events</h2>"
        f"{table(('Age', 'Type', 'Reason', 'Message', 'Count'), event_rows, body_id='events')}"
    )
    return ctx.render(f"Instance {name}", page_body, status=status)


def attached_rows(base: str, csrf: str, body: dict[str, Any]) -> Html:
    """The Instance's volumes and their guest devices: one group of rows (key "attached"),
    redrawn whole as the Instance changes (an attachment may appear or go)."""
    observed = body.get("status") or {}
    devices = {v["volume"]: v.get("device", "") for v in observed.get("volumes") or []}
    return join(
        Html(
            f'<tr data-key="attached"><td>{e(v)}</td><td>{e(devices.get(v, "attaching…"))}</td>'
            f"<td>{button_form(f'{base}/detach?volume={v}', 'Detach', csrf)}</td></tr>"
        )
        for v in (a["volume"] for a in (body.get("spec") or {}).get("volumes") or [])
    )


def event_row(event: dict[str, Any]) -> Html:
    """One Event of the timeline (a repeated Event updates its row: same name, new count)."""
    return Html(
        f'<tr data-key="{e(event["metadata"]["name"])}">'
        f"<td>{e(age(event.get('lastTimestamp') or event.get('eventTime')))}</td>"
        f"<td>{e(event.get('type'))}</td><td>{e(event.get('reason'))}</td>"
        f"<td>{e(event.get('message'))}</td><td>{e(event.get('count'))}</td></tr>"
    )


def register(app: web.Application) -> None:
    app.router.add_get("/p/{project}/instances", list_page)
    app.router.add_post("/p/{project}/instances", launch)
    app.router.add_get("/p/{project}/launch", launch_form)
    app.router.add_get("/p/{project}/instances/{name}", detail)
    app.router.add_post("/p/{project}/instances/{name}/{action}", act)
