"""Compute v2.1 os-volume_attachments: a server's volumes are its Instance's spec.volumes
(adding or removing one hot-plugs it); the device comes from the Instance's status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Volume
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.servers import PREFIX, ctx, patch_spec, server
from kubenova.openstack.tokens import Token

routes = web.RouteTableDef()


def attachment_view(server_body: Body, volume: Body, device: str | None) -> dict[str, Any]:
    return {
        "id": uid_of(volume),
        "volumeId": uid_of(volume),
        "serverId": uid_of(server_body),
        "device": f"/dev/{device}" if device else None,
        "tag": None,
        "delete_on_termination": False,
    }


def attachments(cloud: Cloud, token: Token, body: Body) -> list[dict[str, Any]]:
    devices = {
        v["volume"]: v.get("device") for v in (body.get("status") or {}).get("volumes") or []
    }
    found = []
    for entry in (body.get("spec") or {}).get("volumes") or []:
        volume = cloud.cache[Volume].named(entry["volume"], token.namespace)
        if volume is not None:
            found.append(attachment_view(body, volume, devices.get(entry["volume"])))
    return found


@routes.get(f"{PREFIX}/servers/{{id}}/os-volume_attachments")
async def list_attachments(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    return web.json_response({"volumeAttachments": attachments(cloud, token, server(request))})


@routes.post(f"{PREFIX}/servers/{{id}}/os-volume_attachments")
async def attach(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = server(request)
    try:
        ref = (await request.json())["volumeAttachment"]["volumeId"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "volumeAttachment.volumeId is required") from exc
    volume = cloud.cache[Volume].get(str(ref), token.namespace)
    if volume is None:
        raise Fault(404, f"Volume {ref} could not be found.")
    volumes = [dict(v) for v in (body.get("spec") or {}).get("volumes") or []]
    if any(v["volume"] == name_of(volume) for v in volumes):
        raise Fault(409, f"Volume {ref} is already attached to server {uid_of(body)}")
    volumes.append({"volume": name_of(volume)})
    await patch_spec(request, body, {"volumes": volumes})
    return web.json_response({"volumeAttachment": attachment_view(body, volume, None)})


@routes.delete(f"{PREFIX}/servers/{{id}}/os-volume_attachments/{{volume}}")
async def detach(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = server(request)
    volume = cloud.cache[Volume].get(request.match_info["volume"], token.namespace)
    volumes = [dict(v) for v in (body.get("spec") or {}).get("volumes") or []]
    kept = [v for v in volumes if volume is None or v["volume"] != name_of(volume)]
    if volume is None or len(kept) == len(volumes):
        raise Fault(404, f"Volume {request.match_info['volume']} is not attached to the server")
    await patch_spec(request, body, {"volumes": kept})
    return web.Response(status=202)
