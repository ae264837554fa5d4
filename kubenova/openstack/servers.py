"""Compute v2.1 servers: create, list, show, rename, delete, actions, volume attachments.

A server is an Instance in the token's namespace; its id is the Instance's UID. Reads come
from the watch cache, writes go to the apiserver as the user (RBAC, webhook, quota decide).

Names: a server is created under its Instance's name (a Kubernetes name). `server set
--name` cannot rename the Instance (metadata.name is its identity: a new name would be a new
object), so the server's name lives in the annotation `openstack.kubenova.io/display-name`,
shown as `name` everywhere in this API and matched by `?name=`; kubectl still lists the
Instance under its own name, and the id (the UID) never changes.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Flavor, Image, Instance, Network, ServerGroup, Volume
from kubenova.kube.client import MERGE_PATCH
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.microversion import MICROVERSION_KEY
from kubenova.openstack.tokens import Token
from kubenova.openstack.views import (
    DISPLAY_NAME_ANNOTATION,
    display_name,
    server_status,
    server_view,
)

routes = web.RouteTableDef()
PREFIX = "/compute/v2.1"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
USER_ANNOTATION = "openstack.kubenova.io/user"
DISPLAY_NAME_MAX = 255  # Nova's


def ctx(request: web.Request) -> tuple[Cloud, Token]:
    return request.app[CLOUD_KEY], request[TOKEN_KEY]


def project_uid(cloud: Cloud, token: Token) -> str:
    project = cloud.project(token.project)
    return uid_of(project) if project else token.project


# Rendered views by everything they depend on: a list of 1,000 servers re-renders only what
# changed since the last one. Bounded: cleared whole when it grows past VIEWS_MAX.
VIEWS_KEY: web.AppKey[dict[tuple[Any, ...], dict[str, Any]]] = web.AppKey("osapi.views")
VIEWS_MAX = 50_000


def version_of(body: Body | None) -> str | None:
    return None if body is None else (body.get("metadata") or {}).get("resourceVersion")


def render(request: web.Request, body: Body) -> dict[str, Any]:
    cloud, token = ctx(request)
    spec = body.get("spec") or {}
    flavor = cloud.cache[Flavor].named(spec.get("flavor") or "")
    image = cloud.cache[Image].named(spec.get("image") or "")
    base = cloud.base_url(request)
    version = request[MICROVERSION_KEY]
    key = (uid_of(body), version_of(body), version_of(flavor), version_of(image), version,
           token.is_cloud_admin, base, token.project)  # fmt: skip
    views = request.app[VIEWS_KEY]
    view = views.get(key)
    if view is None:
        view = server_view(
            body,
            base,
            project_id=project_uid(cloud, token),
            version=version,
            flavor=flavor,
            image=image,
            admin=token.is_cloud_admin,
        )
        if len(views) >= VIEWS_MAX:
            views.clear()
        views[key] = view
    attached = view["os-extended-volumes:volumes_attached"]
    if not attached:
        return view
    # Volume names to their current UIDs, on a copy (a volume may be made again meanwhile).
    volumes = cloud.cache[Volume]
    found = [volumes.named(entry["id"], token.namespace) for entry in attached]
    ids = [uid_of(f) if f else entry["id"] for f, entry in zip(found, attached, strict=True)]
    return view | {
        "os-extended-volumes:volumes_attached": [
            entry | {"id": uid} for entry, uid in zip(attached, ids, strict=True)
        ]
    }


def server(request: web.Request, key: str = "id") -> Body:
    cloud, token = ctx(request)
    ref = request.match_info[key]
    body = cloud.cache[Instance].get(ref, token.namespace)
    if body is None:
        raise Fault(404, f"Instance {ref} could not be found.")
    return body


def ref_id(value: Any, what: str) -> str:
    """An id given bare or as a link (flavorRef may be a URL)."""
    if not isinstance(value, str) or not value:
        raise Fault(400, f"{what} must be a non-empty string")
    return value.rstrip("/").rsplit("/", 1)[-1]


def cluster_named(cloud: Cloud, model: type[Flavor] | type[Image], ref: str, what: str) -> str:
    body = cloud.cache[model].get(ref) or cloud.cache[model].named(ref)
    if body is None:
        raise Fault(400, f"{what} {ref} could not be found.")
    return name_of(body)


def in_project(cloud: Cloud, token: Token, model: type[Any], ref: str, what: str) -> str:
    body = cloud.cache[model].get(ref, token.namespace) or cloud.cache[model].named(
        ref, token.namespace
    )
    if body is None:
        raise Fault(400, f"{what} {ref} could not be found.")
    return name_of(body)


def instance_spec(cloud: Cloud, token: Token, doc: dict[str, Any], hints: dict[str, Any]) -> Body:
    """The Instance spec a Nova create request asks for, or a 400 naming what is wrong."""
    spec: dict[str, Any] = {
        "flavor": cluster_named(cloud, Flavor, ref_id(doc.get("flavorRef"), "flavorRef"), "Flavor"),
    }
    block_devices = doc.get("block_device_mapping_v2") or []
    if not doc.get("imageRef"):
        raise Fault(400, "imageRef is required: booting from a volume is not supported")
    spec["image"] = cluster_named(cloud, Image, ref_id(doc["imageRef"], "imageRef"), "Image")
    networks = doc.get("networks", "auto")
    if networks in ("auto", "none"):
        chosen = (
            []
            if networks == "none"
            else list(cloud.cache[Network].in_namespace(token.namespace))[:1]
        )
        spec["networks"] = [{"network": name_of(n)} for n in chosen]
    elif isinstance(networks, list):
        nics = []
        for nic in networks:
            if not isinstance(nic, dict) or not nic.get("uuid"):
                raise Fault(400, "each of networks needs a uuid (ports are not supported)")
            entry: dict[str, Any] = {
                "network": in_project(cloud, token, Network, nic["uuid"], "Network")
            }
            if nic.get("fixed_ip"):
                entry["ip"] = nic["fixed_ip"]
            nics.append(entry)
        spec["networks"] = nics
    else:
        raise Fault(400, "networks must be a list, 'auto' or 'none'")
    volumes = []
    for device in block_devices:
        if device.get("source_type") == "image" and device.get("destination_type") == "local":
            continue  # the root disk from imageRef, as clients spell it out
        if device.get("source_type") != "volume" or not device.get("uuid"):
            raise Fault(400, "block_device_mapping_v2 may only attach existing volumes")
        if device.get("boot_index") in (0, "0"):
            raise Fault(400, "booting from a volume is not supported")
        volumes.append({"volume": in_project(cloud, token, Volume, device["uuid"], "Volume")})
    if volumes:
        spec["volumes"] = volumes
    if doc.get("user_data"):
        try:
            spec["userData"] = base64.b64decode(doc["user_data"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
            raise Fault(400, "user_data must be base64-encoded text") from exc
    zone = doc.get("availability_zone")
    if zone and zone != "nova":
        spec["availabilityZone"] = zone.split(":", 1)[0]
    group = hints.get("group")
    if group:
        spec["placement"] = {
            "group": in_project(cloud, token, ServerGroup, ref_id(group, "group"), "Server group")
        }
    return spec


@routes.post(f"{PREFIX}/servers")
async def create(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    try:
        doc = await request.json()
        wanted = doc["server"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with a `server` object") from exc
    name = wanted.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise Fault(
            400,
            f"Invalid server name {name!r}: lowercase letters, digits and '-', "
            "at most 63, starting and ending with a letter or digit (a Kubernetes name)",
        )
    if int(wanted.get("max_count", 1) or 1) > 1:
        raise Fault(400, "creating several servers in one request is not supported")
    hints = doc.get("os:scheduler_hints") or doc.get("OS-SCH-HNT:scheduler_hints") or {}
    manifest = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "annotations": {USER_ANNOTATION: token.user}},
        "spec": instance_spec(cloud, token, wanted, hints),
    }
    body = await cloud.as_user(token, "POST", Instance, body=manifest)
    uid = uid_of(body)
    base = cloud.base_url(request)
    return web.json_response(
        {
            "server": {
                "id": uid,
                "links": [{"rel": "self", "href": f"{base}{PREFIX}/servers/{uid}"}],
                "OS-DCF:diskConfig": "MANUAL",
                "security_groups": [{"name": "default"}],
            }
        },
        status=202,
    )


def listing(request: web.Request) -> list[Body]:
    cloud, token = ctx(request)
    query = request.query
    bodies = list(cloud.cache[Instance].in_namespace(token.namespace))
    if "name" in query:
        # Nova matches a regular expression; a tenant's regex run on the server is a
        # denial of service waiting to happen, so a substring it is.
        bodies = [b for b in bodies if query["name"] in display_name(b)]
    if "status" in query:
        bodies = [b for b in bodies if server_status(b)[0] == query["status"].upper()]
    bodies.sort(
        key=lambda b: ((b.get("metadata") or {}).get("creationTimestamp", ""), uid_of(b)),
        reverse=True,
    )
    marker = query.get("marker")
    if marker:
        uids = [uid_of(b) for b in bodies]
        if marker not in uids:
            raise Fault(400, f"marker [{marker}] not found")
        bodies = bodies[uids.index(marker) + 1 :]
    if "limit" in query:
        try:
            bodies = bodies[: max(0, int(query["limit"]))]
        except ValueError as exc:
            raise Fault(400, "limit must be an integer") from exc
    return bodies


@routes.get(f"{PREFIX}/servers")
async def index(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    servers = [
        {
            "id": uid_of(b),
            "name": display_name(b),
            "links": [{"rel": "self", "href": f"{base}{PREFIX}/servers/{uid_of(b)}"}],
        }
        for b in listing(request)
    ]
    return web.json_response({"servers": servers})


@routes.get(f"{PREFIX}/servers/detail")
async def detail(request: web.Request) -> web.Response:
    return web.json_response({"servers": [render(request, b) for b in listing(request)]})


@routes.get(f"{PREFIX}/servers/{{id}}")
async def show(request: web.Request) -> web.Response:
    return web.json_response({"server": render(request, server(request))})


def new_name(value: Any) -> str:
    """A name Nova would take: 1 to 255 printable characters, no space at either end."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= DISPLAY_NAME_MAX
        or value != value.strip()
        or not value.isprintable()
    ):
        raise Fault(
            400,
            f"Invalid input for field/attribute name. Value: {value!r}: 1 to "
            f"{DISPLAY_NAME_MAX} printable characters, no leading or trailing whitespace",
        )
    return value


@routes.put(f"{PREFIX}/servers/{{id}}")
async def update(request: web.Request) -> web.Response:
    """Rename: the Instance keeps its name (its identity), the server's is an annotation
    (views.DISPLAY_NAME_ANNOTATION); renaming back to the Instance's name removes it."""
    cloud, token = ctx(request)
    body = server(request)
    try:
        doc = (await request.json())["server"]
        if not isinstance(doc, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with a `server` object") from exc
    unknown = sorted(set(doc) - {"name"})
    if unknown:
        raise Fault(400, f"only the name of a server can change here, not {', '.join(unknown)}")
    if "name" in doc:
        name = new_name(doc["name"])
        if name != display_name(body):
            shown = None if name == name_of(body) else name  # null: the annotation goes
            patch = {"metadata": {"annotations": {DISPLAY_NAME_ANNOTATION: shown}}}
            body = await cloud.as_user(
                token, "PATCH", Instance, name_of(body), patch, content_type=MERGE_PATCH
            )
    return web.json_response({"server": render(request, body)})


@routes.delete(f"{PREFIX}/servers/{{id}}")
async def delete(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = server(request)
    await cloud.as_user(token, "DELETE", Instance, name_of(body))
    return web.Response(status=204)


async def patch_spec(request: web.Request, body: Body, spec: dict[str, Any]) -> None:
    cloud, token = ctx(request)
    await cloud.as_user(
        token, "PATCH", Instance, name_of(body), {"spec": spec}, content_type=MERGE_PATCH
    )


@routes.post(f"{PREFIX}/servers/{{id}}/action")
async def action(request: web.Request) -> web.Response:
    body = server(request)
    try:
        doc = await request.json()
        (verb, args), *rest = doc.items()
    except (ValueError, TypeError, AttributeError) as exc:
        raise Fault(400, "the body must be a JSON object naming one action") from exc
    if rest:
        raise Fault(400, "one action per request")
    status, vm_state, _, task_state = server_status(body)
    name = name_of(body)
    if task_state == "deleting" and verb in ("os-stop", "os-start", "reboot"):
        raise Fault(
            409,
            f"Cannot '{verb.removeprefix('os-')}' instance {uid_of(body)} while it is in "
            "task_state deleting",
        )
    if verb == "os-stop":
        if status != "ACTIVE":
            raise Fault(
                409, f"Cannot 'stop' instance {uid_of(body)} while it is in vm_state {vm_state}"
            )
        await patch_spec(request, body, {"powerState": "Stopped"})
        return web.Response(status=202)
    if verb == "os-start":
        if status != "SHUTOFF":
            raise Fault(
                409, f"Cannot 'start' instance {uid_of(body)} while it is in vm_state {vm_state}"
            )
        await patch_spec(request, body, {"powerState": "Running"})
        return web.Response(status=202)
    if verb == "reboot":
        if status not in ("ACTIVE", "REBOOT"):
            raise Fault(
                409, f"Cannot 'reboot' instance {uid_of(body)} while it is in vm_state {vm_state}"
            )
        moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await patch_spec(request, body, {"restartRequestedAt": moment})
        return web.Response(status=202)
    if verb == "os-getConsoleOutput":
        console = ((body.get("status") or {}).get("console") or {}).get("tail") or ""
        length = (args or {}).get("length") if isinstance(args, dict) else None
        lines = console.splitlines()
        if length is not None:
            try:
                count = int(length)
            except (TypeError, ValueError) as exc:
                raise Fault(400, "os-getConsoleOutput: length must be an integer") from exc
            lines = lines[-count:] if count > 0 else []
        return web.json_response({"output": "\n".join(lines) + ("\n" if lines else "")})
    raise Fault(400, f"action {verb} is not supported on {name}")
