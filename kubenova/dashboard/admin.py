"""Cloud administrator pages: Hosts, Projects, the catalog and placement failures.

Fetched as the user like every page: without the right to list Hosts the pages say so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Host
from kubenova.dashboard.context import Context, context
from kubenova.dashboard.identity import acting_as
from kubenova.dashboard.instances import FLAVORS, IMAGES, INSTANCES
from kubenova.dashboard.render import Html, bar, csrf_field, e, join, select, table, text_input
from kubenova.dashboard.resources import PROJECTS
from kubenova.errors import ApiError
from kubenova.kube import KubeClient, ResourceKind, kubenova_kind
from kubenova.kube.watch import list_pages

HOSTS = kubenova_kind(Host)


async def _list(request: web.Request, kind: ResourceKind) -> tuple[Context, dict[str, Any]]:
    ctx = await context(request, project=False)
    try:
        with acting_as(ctx.user):
            return ctx, await ctx.dash.client.list(kind)
    except ApiError as error:
        if error.status == 403:
            raise web.HTTPForbidden(text="Only cloud administrators may see this page.") from None
        raise


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (body.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


async def hosts(request: web.Request) -> web.StreamResponse:
    ctx, listing = await _list(request, HOSTS)
    per_host: dict[str, int] | None = None
    try:
        with acting_as(ctx.user):
            placed, _ = await placements(ctx.dash.client)
        per_host = Counter(placed.values())
    except ApiError:
        pass  # may read Hosts but not every project's Instances: no counts
    cards = (
        host_card(item, None if per_host is None else per_host.get(item["metadata"]["name"], 0))
        for item in listing.get("items", [])
    )
    body = Html(
        '<div id="hosts" data-live-src="/admin/live/hosts">'
        + join(cards)
        + "</div>"
        + (Html("") if listing.get("items") else Html("<p>No hosts registered.</p>"))
    )
    return ctx.render("Hosts", body)


# Instances are counted from pages of this many: a thousand Instances' full bodies at once
# would be megabytes per open Hosts page.
COUNT_PAGE = 100


async def placements(client: KubeClient) -> tuple[dict[tuple[str, str], str], str]:
    """(namespace, name) -> host of every placed Instance, and the resourceVersion of that
    snapshot (to watch from)."""
    placed: dict[tuple[str, str], str] = {}
    version = ""
    async for page in list_pages(client, INSTANCES, limit=COUNT_PAGE):
        for item in page["items"]:
            if host := (item.get("status") or {}).get("host"):
                placed[item["metadata"]["namespace"], item["metadata"]["name"]] = host
        version = str(page["metadata"].get("resourceVersion", ""))  # the pages' snapshot
    return placed, version


def host_card(item: dict[str, Any], instances: int | None) -> Html:
    """One Host: readiness, cordon, capacity bars (with overcommit), its Instance count."""
    name = item["metadata"]["name"]
    spec, status = item.get("spec") or {}, item.get("status") or {}
    cap, used = status.get("capacity") or {}, status.get("allocated") or {}
    over = spec.get("overcommit") or {}
    ready = _condition(item, "Ready").get("status") == "True"
    state = "Ready" if ready else "NotReady"
    if spec.get("schedulable") is False:
        state += ", cordoned"
    return Html(
        f'<section class="card host" data-key="{e(name)}"><h2>{e(name)} '
        f'<span class="phase {"running" if ready else "error"}">{e(state)}</span></h2>'
        f"<p>{e(spec.get('availabilityZone'))} · {e(', '.join(spec.get('services') or []))}"
        + (
            f' · <span class="instances">{instances} instances</span>'
            if instances is not None
            else ""
        )
        + "</p>"
        + bar("vCPU", used.get("vcpus", 0), cap.get("vcpus", 0) * over.get("cpu", 16.0))
        + bar(
            "RAM",
            used.get("memoryMiB", 0),
            cap.get("memoryMiB", 0) * over.get("memory", 1.5),
            " MiB",
        )
        + bar("Disk", used.get("diskGiB", 0), cap.get("diskGiB", 0) * over.get("disk", 1.0), " GiB")
        + Html("</section>")
    )


async def projects(request: web.Request) -> web.StreamResponse:
    ctx, _ = await _list(request, HOSTS)  # the admin check
    listing = await ctx.dash.own.list(PROJECTS)
    rows = []
    for item in listing.get("items", []):
        status, quota = item.get("status") or {}, (item.get("spec") or {}).get("quota") or {}
        limits = ", ".join(f"{k}={v}" for k, v in quota.items())
        rows.append(
            Html(
                f"<tr><td>{e(item['metadata']['name'])}</td><td>{e(status.get('namespace'))}</td>"
                f"<td>{e(status.get('members'))}</td><td>{e(limits)}</td></tr>"
            )
        )
    return ctx.render("Projects", table(("Project", "Namespace", "Members", "Quota"), rows))


async def catalog(request: web.Request) -> web.StreamResponse:
    ctx, flavors = await _list(request, FLAVORS)
    with acting_as(ctx.user):
        images = await ctx.dash.client.list(IMAGES)
    frows = (
        Html(
            f"<tr><td>{e(f['metadata']['name'])}</td><td>{e(f['spec'].get('vcpus'))}</td>"
            f"<td>{e(f['spec'].get('memoryMiB'))}</td><td>{e(f['spec'].get('diskGiB'))}</td></tr>"
        )
        for f in flavors.get("items", [])
    )
    irows = (image_row(i) for i in images.get("items", []))
    live = f"/admin/live/images?rv={images['metadata'].get('resourceVersion', '')}"
    body = Html(
        "<h2>Flavors</h2>"
        + table(("Flavor", "vCPUs", "MiB", "GiB"), frows)
        + "<h2>Images</h2>"
        + table(("Image", "Format", "Phase", "Bytes"), irows, body_id="images", live=live)
        + upload_form(ctx, ctx.dash.image_store is not None)
    )
    return ctx.render("Flavors & Images", body)


async def placement(request: web.Request) -> web.StreamResponse:
    ctx, _ = await _list(request, HOSTS)
    rows: list[Html] = []
    version = ""
    with acting_as(ctx.user):
        # A page at a time, only the failures' rows kept: every Instance of the cloud at
        # once would be held whole (10,000: ~100 MB) for a page that shows a few.
        async for page in list_pages(ctx.dash.client, INSTANCES):
            rows += [row for item in page["items"] if (row := placement_row(item))]
            version = page["metadata"].get("resourceVersion", "")  # the pages' snapshot
    body = Html(
        table(
            ("Instance", "Reason", "Why no host fits"),
            rows,
            body_id="placement",
            live=f"/admin/live/placement?rv={version}",
        )
        + "<p>Instances a host was found for are not listed.</p>"
    )
    return ctx.render("Placement failures", body)


def placement_row(item: dict[str, Any]) -> Html:
    """The Instance's row if the scheduler found no host for it, else nothing."""
    scheduled = _condition(item, "Scheduled")
    if scheduled.get("status") != "False":
        return Html("")
    key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
    return Html(
        f'<tr data-key="{e(key)}"><td>{e(key)}</td>'
        f"<td>{e(scheduled.get('reason'))}</td><td>{e(scheduled.get('message'))}</td></tr>"
    )


def image_row(item: dict[str, Any]) -> Html:
    status = item.get("status") or {}
    return Html(
        f'<tr data-key="{e(item["metadata"]["name"])}"><td>{e(item["metadata"]["name"])}</td>'
        f"<td>{e(item['spec'].get('format'))}</td><td>{e(status.get('phase'))}</td>"
        f"<td>{e(status.get('sizeBytes'))}</td></tr>"
    )


def upload_form(ctx: Context, enabled: bool) -> Html:
    """The upload form; dashboard.js sends the file by XHR (progress) to /admin/images/upload."""
    if not enabled:
        return Html(
            '<p class="card">Uploads are off: this dashboard has no object store '
            "(KUBENOVA_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY).</p>"
        )
    none: dict[str | None, list[str]] = {}
    return Html(
        '<form id="upload" class="card" method="post" action="/admin/images/upload">'
        f"<h2>Upload an image</h2>{csrf_field(ctx.csrf)}"
        '<label for="f-file">Disk image file (qcow2 or raw)</label>'
        '<input id="f-file" name="file" type="file" required>'
        + text_input("name", "Image name", errors=none)
        + select(
            "format", "Format", [("qcow2", "qcow2"), ("raw", "raw")], errors=none, blank="(detect)"
        )
        + text_input("sha256", "SHA-256 (optional; checked against the file)", errors=none)
        + text_input("minDisk", "Smallest disk (GiB)", value="1", errors=none, kind="number")
        + text_input("minMemory", "Smallest memory (MiB)", value="64", errors=none, kind="number")
        + Html(
            '<label for="upload-progress">Upload progress</label>'
            '<progress id="upload-progress" max="100" value="0"></progress> '
            '<span id="upload-percent">0 %</span>'
            '<p id="upload-result" role="status" aria-live="polite"></p>'
            "<button>Upload</button></form>"
        )
    )


def register(app: web.Application) -> None:
    app.router.add_get("/admin/hosts", hosts)
    app.router.add_get("/admin/projects", projects)
    app.router.add_get("/admin/catalog", catalog)
    app.router.add_get("/admin/placement", placement)
