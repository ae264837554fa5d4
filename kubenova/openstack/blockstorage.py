"""Block Storage v3: volumes (create, list, show, delete) and their attachments (read).

A volume is a Volume in the token's namespace, its id the Volume's UID. Attaching is the
server's business (os-volume_attachments), as kubenova attaches from the Instance's spec.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Image, Instance, Volume
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.tokens import Token
from kubenova.openstack.views import created

routes = web.RouteTableDef()
PREFIX = "/volume/v3/{project}"
MAX_VERSION = "3.70"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
STATUSES = {
    "Pending": "creating",
    "Creating": "creating",
    "Available": "available",
    "Attaching": "attaching",
    "InUse": "in-use",
    "Detaching": "detaching",
    "Deleting": "deleting",
    "Error": "error",
}


def version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX_VERSION,
        "min_version": "3.0",
        "updated": "2023-07-17T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/volume/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


@routes.get("/volume")
@routes.get("/volume/")
@routes.get("/volume/v3")
@routes.get("/volume/v3/")
async def versions(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    return web.json_response({"versions": [version_doc(base)]})


def ctx(request: web.Request) -> tuple[Cloud, Token]:
    cloud, token = request.app[CLOUD_KEY], request[TOKEN_KEY]
    project = cloud.project(request.match_info["project"])
    if project is None or name_of(project) != token.project:
        raise Fault(404, f"project {request.match_info['project']} is not the token's")
    return cloud, token


def volume_view(cloud: Cloud, token: Token, body: Body, base: str) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    uid = uid_of(body)
    attachments = []
    for instance in cloud.cache[Instance].in_namespace(token.namespace):
        attached = {
            v["volume"]: v.get("device")
            for v in (instance.get("status") or {}).get("volumes") or []
        }
        if name_of(body) in attached:
            attachments.append(
                {
                    "id": uid,
                    "attachment_id": f"{uid_of(instance)}-{uid}",
                    "volume_id": uid,
                    "server_id": uid_of(instance),
                    "host_name": None,
                    "device": f"/dev/{attached[name_of(body)]}",
                    "attached_at": created(instance),
                }
            )
    image = cloud.cache[Image].named(spec.get("image") or "")
    project = cloud.project(token.project)
    view: dict[str, Any] = {
        "id": uid,
        "name": name_of(body),
        "status": "deleting"
        if (body.get("metadata") or {}).get("deletionTimestamp")
        else STATUSES.get(status.get("phase") or "Pending", "creating"),
        "size": spec.get("sizeGiB"),
        "availability_zone": spec.get("availabilityZone") or "nova",
        "created_at": created(body),
        "updated_at": created(body),
        "attachments": attachments,
        "bootable": "true" if image else "false",
        "multiattach": bool(spec.get("multiAttach")),
        "encrypted": False,
        "volume_type": spec.get("protocol", "iscsi"),
        "description": None,
        "metadata": {},
        "snapshot_id": None,
        "source_volid": None,
        "consistencygroup_id": None,
        "replication_status": None,
        "user_id": token.user,
        "os-vol-tenant-attr:tenant_id": uid_of(project) if project else token.project,
        "links": [{"rel": "self", "href": f"{base}/volume/v3/{token.project}/volumes/{uid}"}],
    }
    if image is not None:
        view["volume_image_metadata"] = {"image_id": uid_of(image), "image_name": name_of(image)}
    return view


def volume(request: web.Request) -> Body:
    cloud, token = ctx(request)
    body = cloud.cache[Volume].get(request.match_info["id"], token.namespace)
    if body is None:
        raise Fault(404, f"Volume {request.match_info['id']} could not be found.")
    return body


@routes.get(f"{PREFIX}/volumes")
@routes.get(f"{PREFIX}/volumes/detail")
async def index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    base = cloud.base_url(request)
    bodies = sorted(cloud.cache[Volume].in_namespace(token.namespace), key=name_of)
    if "name" in request.query:
        bodies = [b for b in bodies if name_of(b) == request.query["name"]]
    views = [volume_view(cloud, token, b, base) for b in bodies]
    if not request.path.endswith("/detail"):
        views = [{"id": v["id"], "name": v["name"], "links": v["links"]} for v in views]
    return web.json_response({"volumes": views})


@routes.get(f"{PREFIX}/volumes/{{id}}")
async def show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    view = volume_view(cloud, token, volume(request), cloud.base_url(request))
    return web.json_response({"volume": view})


@routes.post(f"{PREFIX}/volumes")
async def create(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    try:
        doc = (await request.json())["volume"]
        size = int(doc["size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with volume.size (GiB)") from exc
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise Fault(
            400,
            f"Invalid volume name {name!r}: a Kubernetes name is needed "
            "(lowercase letters, digits and '-')",
        )
    spec: dict[str, Any] = {"sizeGiB": size}
    if doc.get("imageRef"):
        image = cloud.cache[Image].get(str(doc["imageRef"])) or cloud.cache[Image].named(
            str(doc["imageRef"])
        )
        if image is None:
            raise Fault(400, f"Image {doc['imageRef']} could not be found.")
        spec["image"] = name_of(image)
    zone = doc.get("availability_zone")
    if zone and zone != "nova":
        spec["availabilityZone"] = zone
    if doc.get("multiattach"):
        spec["multiAttach"] = True
    if doc.get("volume_type") in ("iscsi", "aoe"):
        spec["protocol"] = doc["volume_type"]
    manifest = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Volume",
        "metadata": {"name": name},
        "spec": spec,
    }
    body = await cloud.as_user(token, "POST", Volume, body=manifest)
    view = volume_view(cloud, token, body, cloud.base_url(request))
    return web.json_response({"volume": view}, status=202)


@routes.delete(f"{PREFIX}/volumes/{{id}}")
async def delete(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = volume(request)
    await cloud.as_user(token, "DELETE", Volume, name_of(body))
    return web.Response(status=202)


@routes.get(f"{PREFIX}/attachments")
async def attachments(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    base = cloud.base_url(request)
    found = []
    for body in cloud.cache[Volume].in_namespace(token.namespace):
        for entry in volume_view(cloud, token, body, base)["attachments"]:
            found.append(
                {
                    "id": entry["attachment_id"],
                    "status": "attached",
                    "instance": entry["server_id"],
                    "volume_id": entry["volume_id"],
                    "attach_mode": "rw",
                    "attached_at": entry["attached_at"],
                }
            )
    return web.json_response({"attachments": found})


@routes.get(f"{PREFIX}/types")
async def types(request: web.Request) -> web.Response:
    ctx(request)
    values: list[dict[str, Any]] = [
        {"id": p, "name": p, "is_public": True, "description": None, "extra_specs": {}}
        for p in ("iscsi", "aoe")
    ]
    return web.json_response({"volume_types": values})
