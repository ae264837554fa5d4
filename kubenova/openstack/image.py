"""Image v2: list and show the cluster's Images (ids are their UIDs)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Image
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY
from kubenova.openstack.faults import Fault
from kubenova.openstack.views import created

routes = web.RouteTableDef()
PREFIX = "/image/v2"
STATUSES = {"Available": "active", "Pending": "queued", "Error": "killed"}


def version_doc(base: str, minor: int) -> dict[str, Any]:
    return {
        "id": f"v2.{minor}",
        "status": "CURRENT" if minor == 9 else "SUPPORTED",
        "links": [{"rel": "self", "href": f"{base}/image/v2/"}],
    }


@routes.get("/image")
@routes.get("/image/")
async def versions(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    return web.json_response({"versions": [version_doc(base, m) for m in range(9, -1, -1)]})


def image_view(body: Body, base: str) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    uid = uid_of(body)
    return {
        "id": uid,
        "name": name_of(body),
        "status": STATUSES.get(status.get("phase") or "Pending", "queued"),
        "visibility": "public",
        "protected": True,
        "os_hidden": False,
        "disk_format": spec.get("format", "qcow2"),
        "container_format": "bare",
        "size": status.get("sizeBytes"),
        "virtual_size": None,
        "checksum": None,
        "os_hash_algo": "sha256",
        "os_hash_value": spec.get("sha256"),
        "min_disk": spec.get("minDiskGiB", 0),
        "min_ram": spec.get("minMemoryMiB", 0),
        "owner": None,
        "tags": [],
        "created_at": created(body),
        "updated_at": created(body),
        "self": f"/v2/images/{uid}",
        "file": f"/v2/images/{uid}/file",
        "schema": "/v2/schemas/image",
    }


@routes.get(f"{PREFIX}/images")
async def index(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    base = cloud.base_url(request)
    bodies = sorted(cloud.cache[Image].all(), key=name_of)
    name = request.query.get("name")
    if name is not None:
        bodies = [b for b in bodies if name_of(b) == name]
    status = request.query.get("status")
    views = [image_view(b, base) for b in bodies]
    if status is not None:
        views = [v for v in views if v["status"] == status]
    return web.json_response(
        {"images": views, "schema": "/v2/schemas/images", "first": "/v2/images"}
    )


@routes.get(f"{PREFIX}/images/{{id}}")
async def show(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    body = cloud.cache[Image].get(request.match_info["id"])
    if body is None:
        raise Fault(404, f"No image found with ID {request.match_info['id']}")
    return web.json_response(image_view(body, cloud.base_url(request)))
