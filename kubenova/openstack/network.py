"""Network v2: networks and their one subnet, ports (read), floating IPs.

A network is a Network in the token's namespace (id: its UID) with one subnet (its CIDR).
A port is an Instance's NIC, from the Instance's status. kubenova maps a floating IP 1:1
onto a NIC (`spec.networks[].floatingIP`) and allocates the address itself, so a floating IP
created here is a reservation held by this process until it is associated with a port;
associating it turns the NIC's floatingIP on (a patch of the Instance made as the user, so
the webhook's quota check decides) and its address is then the one the operator
allocated; dissociating or deleting it turns floatingIP off, which releases the address.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Instance, Network
from kubenova.kube.client import JSON_PATCH
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault
from kubenova.openstack.tokens import Token
from kubenova.openstack.views import created

routes = web.RouteTableDef()
PREFIX = "/network/v2.0"
IDS = uuid.UUID("6f1c0c3e-6a8e-4c52-9d0e-6b3c2b1f0a11")  # the namespace of derived ids
EXTERNAL = "public"  # the floating IP pool, shown as an external network
MAX_RESERVATIONS = 64  # per project: they are held in this process's memory


def derived(*parts: str) -> str:
    return str(uuid.uuid5(IDS, "/".join(parts)))


EXTERNAL_ID = derived("external", EXTERNAL)


@dataclass
class Reservation:
    id: str
    project: str
    namespace: str
    instance: str | None = None  # UID, once associated
    network: str | None = None


RESERVATIONS_KEY: web.AppKey[dict[str, Reservation]] = web.AppKey("osapi.fips")


@routes.get("/network")
@routes.get("/network/")
async def versions(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    doc = {
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/"}],
    }
    return web.json_response({"versions": [doc]})


@routes.get(PREFIX)
@routes.get(f"{PREFIX}/")
async def resources(request: web.Request) -> web.Response:
    names = ("networks", "subnets", "ports", "floatingips")
    return web.json_response(
        {"resources": [{"name": n[:-1], "collection": n, "links": []} for n in names]}
    )


@routes.get(f"{PREFIX}/extensions")
async def extensions(request: web.Request) -> web.Response:
    return web.json_response({"extensions": []})


def ctx(request: web.Request) -> tuple[Cloud, Token]:
    return request.app[CLOUD_KEY], request[TOKEN_KEY]


def project_uid(cloud: Cloud, token: Token) -> str:
    project = cloud.project(token.project)
    return uid_of(project) if project else token.project


def filtered(
    views: list[dict[str, Any]], query: Any, keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    for key in keys:
        if key in query:
            views = [v for v in views if str(v.get(key)) == query[key]]
    return views


# -- networks and subnets --------------------------------------------------------------------


def network_view(body: Body, tenant: str) -> dict[str, Any]:
    uid = uid_of(body)
    return {
        "id": uid,
        "name": name_of(body),
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": False,
        "router:external": False,
        "subnets": [derived(uid, "subnet")],
        "tenant_id": tenant,
        "project_id": tenant,
        "mtu": 1450,
        "availability_zones": ["nova"],
        "port_security_enabled": False,
        "created_at": created(body),
        "updated_at": created(body),
        "tags": [],
    }


def external_view(tenant: str) -> dict[str, Any]:
    view = network_view({"metadata": {"name": EXTERNAL, "uid": EXTERNAL_ID}}, tenant)
    view.update({"router:external": True, "shared": True, "subnets": []})
    return view


def subnet_view(body: Body, tenant: str) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    uid = uid_of(body)
    return {
        "id": derived(uid, "subnet"),
        "name": name_of(body),
        "network_id": uid,
        "cidr": spec.get("cidr"),
        "ip_version": 4,
        "gateway_ip": status.get("gateway") or spec.get("gateway"),
        "enable_dhcp": spec.get("dhcp", True),
        "dns_nameservers": list(spec.get("dns") or []),
        "allocation_pools": [],
        "host_routes": [],
        "tenant_id": tenant,
        "project_id": tenant,
        "created_at": created(body),
        "updated_at": created(body),
        "tags": [],
    }


@routes.get(f"{PREFIX}/networks")
async def network_index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    tenant = project_uid(cloud, token)
    views = [network_view(b, tenant) for b in cloud.cache[Network].in_namespace(token.namespace)]
    views.append(external_view(tenant))
    views = filtered(views, request.query, ("id", "name", "router:external"))
    return web.json_response({"networks": views})


@routes.get(f"{PREFIX}/networks/{{id}}")
async def network_show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    ref = request.match_info["id"]
    tenant = project_uid(cloud, token)
    if ref == EXTERNAL_ID:
        return web.json_response({"network": external_view(tenant)})
    body = cloud.cache[Network].get(ref, token.namespace)
    if body is None:
        raise Fault(404, f"Network {ref} could not be found.")
    return web.json_response({"network": network_view(body, tenant)})


@routes.get(f"{PREFIX}/subnets")
async def subnet_index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    tenant = project_uid(cloud, token)
    views = [subnet_view(b, tenant) for b in cloud.cache[Network].in_namespace(token.namespace)]
    views = filtered(views, request.query, ("id", "name", "network_id"))
    return web.json_response({"subnets": views})


@routes.get(f"{PREFIX}/subnets/{{id}}")
async def subnet_show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    tenant = project_uid(cloud, token)
    for body in cloud.cache[Network].in_namespace(token.namespace):
        if derived(uid_of(body), "subnet") == request.match_info["id"]:
            return web.json_response({"subnet": subnet_view(body, tenant)})
    raise Fault(404, f"Subnet {request.match_info['id']} could not be found.")


# -- ports -----------------------------------------------------------------------------------


def ports_of(cloud: Cloud, token: Token, instance: Body) -> list[dict[str, Any]]:
    tenant = project_uid(cloud, token)
    found = []
    for nic in (instance.get("status") or {}).get("addresses") or []:
        network = cloud.cache[Network].named(nic.get("network", ""), token.namespace)
        if network is None:
            continue
        net_uid = uid_of(network)
        found.append(
            {
                "id": derived(uid_of(instance), net_uid),
                "name": "",
                "network_id": net_uid,
                "mac_address": nic.get("mac"),
                "fixed_ips": [
                    {"subnet_id": derived(net_uid, "subnet"), "ip_address": nic.get("ip")}
                ],
                "device_id": uid_of(instance),
                "device_owner": "compute:nova",
                "status": "ACTIVE",
                "admin_state_up": True,
                "tenant_id": tenant,
                "project_id": tenant,
                "security_groups": [],
                "binding:host_id": "",
                "created_at": created(instance),
                "updated_at": created(instance),
                "tags": [],
            }
        )
    return found


def all_ports(cloud: Cloud, token: Token) -> list[dict[str, Any]]:
    return [
        port
        for instance in cloud.cache[Instance].in_namespace(token.namespace)
        for port in ports_of(cloud, token, instance)
    ]


@routes.get(f"{PREFIX}/ports")
async def port_index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    views = filtered(all_ports(cloud, token), request.query, ("id", "device_id", "network_id"))
    return web.json_response({"ports": views})


@routes.get(f"{PREFIX}/ports/{{id}}")
async def port_show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    for port in all_ports(cloud, token):
        if port["id"] == request.match_info["id"]:
            return web.json_response({"port": port})
    raise Fault(404, f"Port {request.match_info['id']} could not be found.")


# -- floating IPs ----------------------------------------------------------------------------


def fip_view(cloud: Cloud, token: Token, fip: Reservation) -> dict[str, Any]:
    tenant = project_uid(cloud, token)
    view: dict[str, Any] = {
        "id": fip.id,
        "floating_ip_address": None,
        "floating_network_id": EXTERNAL_ID,
        "fixed_ip_address": None,
        "port_id": None,
        "router_id": None,
        "status": "DOWN",
        "tenant_id": tenant,
        "project_id": tenant,
        "description": "",
        "tags": [],
    }
    instance = cloud.cache[Instance].get(fip.instance, token.namespace) if fip.instance else None
    if instance is None or fip.network is None:
        return view
    for nic in (instance.get("status") or {}).get("addresses") or []:
        network = cloud.cache[Network].named(nic.get("network", ""), token.namespace)
        if network is not None and uid_of(network) == fip.network:
            view.update(
                {
                    "floating_ip_address": nic.get("floatingIP"),
                    "fixed_ip_address": nic.get("ip"),
                    "port_id": derived(uid_of(instance), fip.network),
                    "status": "ACTIVE" if nic.get("floatingIP") else "DOWN",
                }
            )
    return view


def reservations(request: web.Request, token: Token) -> dict[str, Reservation]:
    every = request.app[RESERVATIONS_KEY]
    return {k: r for k, r in every.items() if r.namespace == token.namespace}


def reservation(request: web.Request, token: Token) -> Reservation:
    found = reservations(request, token).get(request.match_info["id"])
    if found is None:
        raise Fault(404, f"Floating IP {request.match_info['id']} could not be found.")
    return found


@routes.get(f"{PREFIX}/floatingips")
async def fip_index(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    views = [fip_view(cloud, token, r) for r in reservations(request, token).values()]
    views = filtered(views, request.query, ("id", "floating_ip_address", "port_id"))
    return web.json_response({"floatingips": views})


@routes.get(f"{PREFIX}/floatingips/{{id}}")
async def fip_show(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    return web.json_response({"floatingip": fip_view(cloud, token, reservation(request, token))})


@routes.post(f"{PREFIX}/floatingips")
async def fip_create(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    try:
        doc = (await request.json())["floatingip"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with a `floatingip` object") from exc
    if doc.get("floating_network_id") not in (None, EXTERNAL_ID):
        raise Fault(400, f"floating IPs come from the network {EXTERNAL} ({EXTERNAL_ID})")
    if len(reservations(request, token)) >= MAX_RESERVATIONS:
        raise Fault(409, f"a project holds at most {MAX_RESERVATIONS} floating IP reservations")
    fip = Reservation(str(uuid.uuid4()), token.project, token.namespace)
    request.app[RESERVATIONS_KEY][fip.id] = fip
    if doc.get("port_id"):
        try:
            await associate(request, cloud, token, fip, str(doc["port_id"]))
        except Fault:
            request.app[RESERVATIONS_KEY].pop(fip.id, None)  # not made: nothing held
            raise
    return web.json_response({"floatingip": fip_view(cloud, token, fip)}, status=201)


def nic_index(cloud: Cloud, token: Token, instance: Body, network: str) -> int:
    """The index in spec.networks of the Instance's NIC on the Network with uid `network`."""
    for index, nic in enumerate((instance.get("spec") or {}).get("networks") or []):
        found = cloud.cache[Network].named(nic["network"], token.namespace)
        if found is not None and uid_of(found) == network:
            return index
    raise Fault(404, f"server {name_of(instance)} has no port on network {network}")


async def set_floating(cloud: Cloud, token: Token, instance: Body, network: str, on: bool) -> None:
    """Turn the NIC's floatingIP on or off, as the user (the webhook checks the quota)."""
    index = nic_index(cloud, token, instance, network)
    nic = instance["spec"]["networks"][index]
    if bool(nic.get("floatingIP")) == on:
        return
    # Only that one field; the test fails the patch (409) if the NIC list moved meanwhile.
    patch = [
        {"op": "test", "path": f"/spec/networks/{index}/network", "value": nic["network"]},
        {"op": "add", "path": f"/spec/networks/{index}/floatingIP", "value": on},
    ]
    await cloud.as_user(token, "PATCH", Instance, name_of(instance), patch, content_type=JSON_PATCH)


async def associate(
    request: web.Request, cloud: Cloud, token: Token, fip: Reservation, port_id: str
) -> None:
    for instance in cloud.cache[Instance].in_namespace(token.namespace):
        for port in ports_of(cloud, token, instance):
            if port["id"] != port_id:
                continue
            network = port["network_id"]
            for other in reservations(request, token).values():
                if other is not fip and (other.instance, other.network) == (
                    uid_of(instance),
                    network,
                ):
                    raise Fault(409, f"port {port_id} has floating IP {other.id} already")
            await set_floating(cloud, token, instance, network, True)
            fip.instance, fip.network = uid_of(instance), network
            return
    raise Fault(404, f"Port {port_id} could not be found.")


async def dissociate(cloud: Cloud, token: Token, fip: Reservation) -> None:
    """Release the NIC's floating IP (the operator frees the address and the quota)."""
    instance = cloud.cache[Instance].get(fip.instance, token.namespace) if fip.instance else None
    if instance is not None and fip.network is not None:
        await set_floating(cloud, token, instance, fip.network, False)
    fip.instance = fip.network = None


@routes.put(f"{PREFIX}/floatingips/{{id}}")
async def fip_update(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    fip = reservation(request, token)
    try:
        doc = (await request.json())["floatingip"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with a `floatingip` object") from exc
    port = doc.get("port_id")
    if port and fip.instance:
        if fip_view(cloud, token, fip)["port_id"] == port:
            return web.json_response({"floatingip": fip_view(cloud, token, fip)})
        raise Fault(409, f"Floating IP {fip.id} is associated already")
    if port:
        await associate(request, cloud, token, fip, str(port))
    elif "port_id" in doc:
        await dissociate(cloud, token, fip)
    return web.json_response({"floatingip": fip_view(cloud, token, fip)})


@routes.delete(f"{PREFIX}/floatingips/{{id}}")
async def fip_delete(request: web.Request) -> web.Response:
    cloud, token = ctx(request)
    fip = reservation(request, token)
    await dissociate(cloud, token, fip)
    request.app[RESERVATIONS_KEY].pop(fip.id, None)
    return web.Response(status=204)
