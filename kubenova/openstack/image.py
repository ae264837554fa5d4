"""Image v2: list and show the cluster's Images (ids are their UIDs), and the uploads
queued by kubenova.openstack.upload that are no Image yet."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Image
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY
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


MD5_ANNOTATION = "openstack.kubenova.io/md5"  # Glance's `checksum`, kept by an API upload


def glance_view(
    uid: str,
    name: str,
    status: str,
    *,
    disk_format: str | None,
    created_at: str,
    size: int | None = None,
    checksum: str | None = None,
    sha256: str | None = None,
    min_disk: int = 0,
    min_ram: int = 0,
) -> dict[str, Any]:
    """An image as Glance v2 shows it."""
    return {
        "id": uid,
        "name": name,
        "status": status,
        "visibility": "public",
        "protected": True,
        "os_hidden": False,
        "disk_format": disk_format,
        "container_format": "bare" if disk_format else None,
        "size": size,
        "virtual_size": None,
        "checksum": checksum,
        "os_hash_algo": "sha256" if sha256 else None,
        "os_hash_value": sha256,
        "min_disk": min_disk,
        "min_ram": min_ram,
        "owner": None,
        "tags": [],
        "created_at": created_at,
        "updated_at": created_at,
        "self": f"/v2/images/{uid}",
        "file": f"/v2/images/{uid}/file",
        "schema": "/v2/schemas/image",
    }


def image_view(body: Body) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return glance_view(
        uid_of(body),
        name_of(body),
        STATUSES.get(status.get("phase") or "Pending", "queued"),
        disk_format=spec.get("format", "qcow2"),
        created_at=created(body),
        size=status.get("sizeBytes"),
        checksum=annotations.get(MD5_ANNOTATION),
        sha256=spec.get("sha256"),
        min_disk=spec.get("minDiskGiB", 0),
        min_ram=spec.get("minMemoryMiB", 0),
    )


# -- uploads not yet an Image (made by kubenova.openstack.upload) ----------------------------


@dataclass
class Queued:
    """An image made by `POST /v2/images` whose bytes have not arrived: no Image exists yet
    (its spec needs their sha256). `image` is the UID of the Image the upload made."""

    id: str
    name: str
    user: str
    disk_format: str | None
    min_disk: int
    min_ram: int
    created_at: str
    made: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued -> saving -> active
    image: str | None = None


UPLOADS_KEY: web.AppKey[dict[str, Queued]] = web.AppKey("osapi.uploads")


def queued_view(record: Queued) -> dict[str, Any]:
    return glance_view(
        record.id,
        record.name,
        record.state,
        disk_format=record.disk_format,
        created_at=record.created_at,
        min_disk=record.min_disk,
        min_ram=record.min_ram,
    )


def own_uploads(request: web.Request) -> list[Queued]:
    """The token's user's uploads that are not an Image yet (nobody else sees them)."""
    user = request[TOKEN_KEY].user
    return [q for q in request.app[UPLOADS_KEY].values() if q.user == user and q.image is None]


@routes.get(f"{PREFIX}/images")
async def index(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    views = [image_view(b) for b in cloud.cache[Image].all()]
    views += [queued_view(q) for q in own_uploads(request)]
    views.sort(key=lambda v: str(v["name"]))
    name = request.query.get("name")
    if name is not None:
        views = [v for v in views if v["name"] == name]
    status = request.query.get("status")
    if status is not None:
        views = [v for v in views if v["status"] == status]
    return web.json_response(
        {"images": views, "schema": "/v2/schemas/images", "first": "/v2/images"}
    )


def find(request: web.Request) -> Body | Queued:
    """The Image of the path's id, or the user's upload of that id (once it is an Image, the
    Image: clients ask again by the id `POST` gave them)."""
    cloud, ident = request.app[CLOUD_KEY], request.match_info["id"]
    body = cloud.cache[Image].get(ident)
    if body is not None:
        return body
    record = request.app[UPLOADS_KEY].get(ident)
    if record is not None and record.user == request[TOKEN_KEY].user:
        if record.image is None:
            return record
        body = cloud.cache[Image].get(record.image)
        if body is not None:
            return body
    raise Fault(404, f"No image found with ID {ident}")


@routes.get(f"{PREFIX}/images/{{id}}")
async def show(request: web.Request) -> web.Response:
    found = find(request)
    view = queued_view(found) if isinstance(found, Queued) else image_view(found)
    return web.json_response(view)
