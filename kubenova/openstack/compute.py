"""Compute v2.1 beside the servers: discovery, flavors, limits and quotas, availability
zones, server groups."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Flavor, Instance, ServerGroup, ServerGroupPolicy
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.microversion import MAX, MIN
from kubenova.openstack.tokens import Token
from kubenova.openstack.views import flavor_view

routes = web.RouteTableDef()
PREFIX = "/compute/v2.1"
UNLIMITED = -1


def version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": str(MAX),
        "min_version": str(MIN),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


@routes.get("/compute")
@routes.get("/compute/")
async def versions(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    return web.json_response({"versions": [version_doc(base)]})


@routes.get(PREFIX)
@routes.get(f"{PREFIX}/")
async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": version_doc(request.app[CLOUD_KEY].base_url(request))})


def ctx(request: web.Request) -> tuple[Cloud, Token]:
    return request.app[CLOUD_KEY], request[TOKEN_KEY]


# -- flavors ---------------------------------------------------------------------------------


def flavors(cloud: Cloud) -> list[Body]:
    return sorted(cloud.cache[Flavor].all(), key=lambda b: (b["spec"]["memoryMiB"], name_of(b)))


@routes.get(f"{PREFIX}/flavors")
async def flavor_index(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    base = cloud.base_url(request)
    values = [
        {"id": view["id"], "name": view["name"], "links": view["links"]}
        for view in (flavor_view(b, base) for b in flavors(cloud))
    ]
    return web.json_response({"flavors": values})


@routes.get(f"{PREFIX}/flavors/detail")
async def flavor_detail(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    base = cloud.base_url(request)
    return web.json_response({"flavors": [flavor_view(b, base) for b in flavors(cloud)]})


def flavor(cloud: Cloud, ref: str) -> Body:
    body = cloud.cache[Flavor].get(ref)
    if body is None:
        raise Fault(404, f"Flavor {ref} could not be found.")
    return body


@routes.get(f"{PREFIX}/flavors/{{id}}")
async def flavor_show(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    body = flavor(cloud, request.match_info["id"])
    return web.json_response({"flavor": flavor_view(body, cloud.base_url(request))})


@routes.get(f"{PREFIX}/flavors/{{id}}/os-extra_specs")
async def flavor_extra_specs(request: web.Request) -> web.Response:
    body = flavor(request.app[CLOUD_KEY], request.match_info["id"])
    return web.json_response({"extra_specs": dict(body["spec"].get("extraSpecs") or {})})


# -- limits and quotas -----------------------------------------------------------------------


def quota_and_usage(cloud: Cloud, token: Token) -> tuple[dict[str, Any], dict[str, Any]]:
    project = cloud.project(token.project) or {}
    quota = (project.get("spec") or {}).get("quota") or {}
    usage = (project.get("status") or {}).get("usage") or {}
    return quota, usage


def limit(quota: dict[str, Any], key: str) -> int:
    value = quota.get(key)
    return UNLIMITED if value is None else int(value)


@routes.get(f"{PREFIX}/limits")
async def limits(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    quota, usage = quota_and_usage(cloud, token)
    groups = len(list(cloud.cache[ServerGroup].in_namespace(token.namespace)))
    absolute = {
        "maxTotalInstances": limit(quota, "instances"),
        "maxTotalCores": limit(quota, "vcpus"),
        "maxTotalRAMSize": limit(quota, "memoryMiB"),
        "maxServerMeta": 128,
        "maxPersonality": 5,
        "maxPersonalitySize": 10240,
        "maxServerGroups": UNLIMITED,
        "maxServerGroupMembers": UNLIMITED,
        "maxTotalKeypairs": UNLIMITED,
        "maxImageMeta": 128,
        "totalInstancesUsed": usage.get("instances", 0),
        "totalCoresUsed": usage.get("vcpus", 0),
        "totalRAMUsed": usage.get("memoryMiB", 0),
        "totalServerGroupsUsed": groups,
        "totalFloatingIpsUsed": usage.get("floatingIPs", 0),
        "maxTotalFloatingIps": limit(quota, "floatingIPs"),
        "totalSecurityGroupsUsed": 0,
        "maxSecurityGroups": UNLIMITED,
    }
    return web.json_response({"limits": {"rate": [], "absolute": absolute}})


@routes.get(f"{PREFIX}/os-quota-sets/{{project}}")
@routes.get(f"{PREFIX}/os-quota-sets/{{project}}/detail")
async def quota_sets(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    project = cloud.project(request.match_info["project"])
    if project is None or name_of(project) != token.project:
        raise Fault(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
    quota, usage = quota_and_usage(cloud, token)
    pairs = {
        "instances": ("instances", "instances"),
        "cores": ("vcpus", "vcpus"),
        "ram": ("memoryMiB", "memoryMiB"),
        "floating_ips": ("floatingIPs", "floatingIPs"),
    }
    detailed = request.path.endswith("/detail")
    values: dict[str, Any] = {"id": uid_of(project)}
    for nova, (q, u) in pairs.items():
        if detailed:
            values[nova] = {"limit": limit(quota, q), "in_use": usage.get(u, 0), "reserved": 0}
        else:
            values[nova] = limit(quota, q)
    for nova in (
        "key_pairs",
        "metadata_items",
        "server_groups",
        "server_group_members",
        "injected_files",
        "injected_file_content_bytes",
        "injected_file_path_bytes",
    ):
        values[nova] = {"limit": UNLIMITED, "in_use": 0, "reserved": 0} if detailed else UNLIMITED
    return web.json_response({"quota_set": values})


# -- availability zones ----------------------------------------------------------------------


@routes.get(f"{PREFIX}/os-availability-zone")
@routes.get(f"{PREFIX}/os-availability-zone/detail")
async def zones(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    names = {"nova"}
    for body in cloud.cache[Instance].in_namespace(token.namespace):
        zone = (body.get("spec") or {}).get("availabilityZone")
        if zone:
            names.add(zone)
    values = [
        {"zoneName": n, "zoneState": {"available": True}, "hosts": None} for n in sorted(names)
    ]
    return web.json_response({"availabilityZoneInfo": values})


# -- server groups ---------------------------------------------------------------------------

POLICIES = tuple(str(p) for p in ServerGroupPolicy)  # Nova's names already


def group_view(cloud: Cloud, token: Token, body: Body) -> dict[str, Any]:
    members = []
    for name in (body.get("status") or {}).get("members") or []:
        found = cloud.cache[Instance].named(name, token.namespace)
        if found is not None:
            members.append(uid_of(found))
    policy = (body.get("spec") or {}).get("policy", "")
    return {
        "id": uid_of(body),
        "name": name_of(body),
        "policy": policy,
        "policies": [policy],
        "rules": {},
        "members": members,
        "metadata": {},
        "project_id": token.project,
        "user_id": token.user,
    }


@routes.get(f"{PREFIX}/os-server-groups")
async def group_index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    groups = cloud.cache[ServerGroup].in_namespace(token.namespace)
    return web.json_response({"server_groups": [group_view(cloud, token, g) for g in groups]})


@routes.get(f"{PREFIX}/os-server-groups/{{id}}")
async def group_show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = cloud.cache[ServerGroup].get(request.match_info["id"], token.namespace)
    if body is None:
        raise Fault(404, f"Server group {request.match_info['id']} could not be found.")
    return web.json_response({"server_group": group_view(cloud, token, body)})


@routes.post(f"{PREFIX}/os-server-groups")
async def group_create(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    try:
        doc = (await request.json())["server_group"]
        name = doc["name"]
        policy = doc.get("policy") or (doc.get("policies") or [None])[0]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise Fault(400, "server_group needs a name and a policy") from exc
    if policy not in POLICIES:
        raise Fault(400, f"policy must be one of {', '.join(POLICIES)}")
    manifest = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "ServerGroup",
        "metadata": {"name": name},
        "spec": {"policy": policy},
    }
    body = await cloud.as_user(token, "POST", ServerGroup, body=manifest)
    return web.json_response({"server_group": group_view(cloud, token, body)})


@routes.delete(f"{PREFIX}/os-server-groups/{{id}}")
async def group_delete(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    body = cloud.cache[ServerGroup].get(request.match_info["id"], token.namespace)
    if body is None:
        raise Fault(404, f"Server group {request.match_info['id']} could not be found.")
    await cloud.as_user(token, "DELETE", ServerGroup, name_of(body))
    return web.Response(status=204)
