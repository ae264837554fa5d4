"""Pure renderings of the CRs as Nova shows them (no I/O: unit-tested on bodies alone)."""

from __future__ import annotations

from typing import Any

from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.openstack.microversion import Version

# phase -> (status, vm_state, power_state, task_state)
PHASES: dict[str, tuple[str, str, int, str | None]] = {
    "Pending": ("BUILD", "building", 0, "scheduling"),
    "Scheduled": ("BUILD", "building", 0, "spawning"),
    "Building": ("BUILD", "building", 0, "spawning"),
    "Running": ("ACTIVE", "active", 1, None),
    "Stopped": ("SHUTOFF", "stopped", 4, None),
    "Error": ("ERROR", "error", 0, None),
}
# Being deleted (the agent tears the guest down, or the host is not fenced yet), a server
# keeps the status of its state with task_state "deleting", as Nova's does until the
# compute host is done; then it is gone (404). "DELETED" earlier would end the SDK's
# `wait_for_delete` (and `server delete --wait`) while the guest and its quota still hold.
DELETING_PHASES = ("Terminating", "Deleting")
SHOW_HOST = Version(2, 3)
HOST_STATUS = Version(2, 16)
EMBEDDED_FLAVOR = Version(2, 47)
CREATED = "1970-01-01T00:00:00Z"
# A server's name in OpenStack may change (`server set --name`), an Instance's never: it is
# the object's identity. The OpenStack name is this annotation when set (written as the user,
# like any metadata), else metadata.name; kubectl keeps listing the Instance by its own name.
DISPLAY_NAME_ANNOTATION = "openstack.kubenova.io/display-name"


def meta(body: Body) -> dict[str, Any]:
    metadata: dict[str, Any] = body.get("metadata") or {}
    return metadata


def display_name(body: Body) -> str:
    """A server's name: the one `server set --name` gave it, else the Instance's name."""
    annotations = meta(body).get("annotations") or {}
    return str(annotations.get(DISPLAY_NAME_ANNOTATION) or name_of(body))


def created(body: Body) -> str:
    return str(meta(body).get("creationTimestamp") or CREATED)


def condition(body: Body, kind: str) -> dict[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _being_deleted(phase: str, spec: dict[str, Any]) -> tuple[str, str, int, str | None]:
    if phase in DELETING_PHASES:  # the state before is gone: the asked power state says it
        phase = "Stopped" if spec.get("powerState") == "Stopped" else "Running"
    status, vm_state, power_state, _ = PHASES.get(phase, PHASES["Pending"])
    return status, vm_state, power_state, "deleting"


def server_status(body: Body) -> tuple[str, str, int, str | None]:
    """Nova's status, vm_state, power_state and task_state of an Instance."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    phase = status.get("phase") or "Pending"
    if meta(body).get("deletionTimestamp") or phase in DELETING_PHASES:
        return _being_deleted(phase, spec)
    result = PHASES.get(phase, PHASES["Pending"])
    if phase == "Running":
        if spec.get("powerState") == "Stopped":
            return ("ACTIVE", "active", 1, "powering-off")
        asked = spec.get("restartRequestedAt")
        if asked and asked != status.get("restartedAt"):
            return ("REBOOT", "active", 1, "rebooting")
    if phase == "Stopped" and spec.get("powerState", "Running") == "Running":
        return ("SHUTOFF", "stopped", 4, "powering-on")
    return result


def host_status(body: Body) -> str:
    """Nova's host_status: UNKNOWN while the host's agent stopped heart-beating (the operator
    then says Ready Unknown, HostNotReady), "" before placement, else UP."""
    if not (body.get("status") or {}).get("host"):
        return ""
    ready = condition(body, "Ready") or {}
    if ready.get("status") == "Unknown" and ready.get("reason") == "HostNotReady":
        return "UNKNOWN"
    return "UP"


def fault(body: Body) -> dict[str, Any] | None:
    """The condition that put the server in ERROR (a NoValidHost among them), Nova-shaped."""
    status = body.get("status") or {}
    if status.get("phase") != "Error":
        return None
    for kind in ("Scheduled", "Ready"):
        cond = condition(body, kind)
        if cond and cond.get("status") == "False":
            reason = cond.get("reason") or "Error"
            message = cond.get("message") or reason
            if reason in ("NoValidHost", "Unschedulable", "QuotaExceeded"):
                message = f"No valid host was found. {message}"
            return {
                "code": 500,
                "message": message,
                "created": cond.get("lastTransitionTime") or created(body),
            }
    return {"code": 500, "message": "the instance failed", "created": created(body)}


def link(base: str, kind: str, uid: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/compute/v2.1/{kind}/{uid}"},
        {"rel": "bookmark", "href": f"{base}/compute/{kind}/{uid}"},
    ]


def flavor_view(body: Body, base: str) -> dict[str, Any]:
    spec = body.get("spec") or {}
    uid = uid_of(body)
    return {
        "id": uid,
        "name": name_of(body),
        "vcpus": spec.get("vcpus", 0),
        "ram": spec.get("memoryMiB", 0),
        "disk": spec.get("diskGiB", 0),
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "swap": 0,
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": True,
        "description": None,
        "extra_specs": dict(spec.get("extraSpecs") or {}),
        "links": link(base, "flavors", uid),
    }


def addresses(body: Body) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for nic in (body.get("status") or {}).get("addresses") or []:
        entries = found.setdefault(nic.get("network", ""), [])
        fixed = {"addr": nic.get("ip"), "version": 4, "OS-EXT-IPS:type": "fixed"}
        fixed["OS-EXT-IPS-MAC:mac_addr"] = nic.get("mac")
        entries.append(fixed)
        if nic.get("floatingIP"):
            entries.append(
                {
                    "addr": nic["floatingIP"],
                    "version": 4,
                    "OS-EXT-IPS:type": "floating",
                    "OS-EXT-IPS-MAC:mac_addr": nic.get("mac"),
                }
            )
    return found


def server_view(
    body: Body,
    base: str,
    *,
    project_id: str,
    version: Version,
    flavor: Body | None,
    image: Body | None,
    admin: bool,
) -> dict[str, Any]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    uid = uid_of(body)
    state, vm_state, power, task = server_status(body)
    flavor_spec = (flavor or {}).get("spec") or spec.get("resources") or {}
    if version >= EMBEDDED_FLAVOR:
        flavor_ref: dict[str, Any] = {
            "original_name": spec.get("flavor") or "custom",
            "vcpus": flavor_spec.get("vcpus", 0),
            "ram": flavor_spec.get("memoryMiB", 0),
            "disk": flavor_spec.get("diskGiB", 0),
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": dict(flavor_spec.get("extraSpecs") or {}),
        }
    else:
        fid = uid_of(flavor) if flavor else ""
        flavor_ref = {"id": fid, "links": link(base, "flavors", fid)}
    image_ref: Any = ""
    if image is not None:
        iid = uid_of(image)
        image_ref = {"id": iid, "links": [{"rel": "bookmark", "href": f"{base}/image/v2/{iid}"}]}
    annotations = meta(body).get("annotations") or {}
    view: dict[str, Any] = {
        "id": uid,
        "name": display_name(body),
        "status": state,
        "tenant_id": project_id,
        "user_id": annotations.get("openstack.kubenova.io/user", ""),
        "metadata": {},
        "hostId": "",
        "image": image_ref,
        "flavor": flavor_ref,
        "created": created(body),
        "updated": created(body),
        "addresses": addresses(body),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": link(base, "servers", uid),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 100 if state == "ACTIVE" else 0,
        "OS-EXT-AZ:availability_zone": spec.get("availabilityZone") or "nova",
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": created(body) if state in ("ACTIVE", "SHUTOFF") else None,
        "OS-SRV-USG:terminated_at": None,
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power,
        "os-extended-volumes:volumes_attached": [
            {"id": v.get("volume"), "delete_on_termination": False}
            for v in spec.get("volumes") or []
        ],
        "security_groups": [{"name": "default"}],
        "locked": False,
        "description": None,
        "tags": [],
        "trusted_image_certificates": None,
        "server_groups": [],
        "locked_reason": None,
    }
    if version >= Version(2, 71):
        group = (spec.get("placement") or {}).get("group")
        view["server_groups"] = [group] if group else []
    if admin and version >= SHOW_HOST:
        host = status.get("host")
        view["OS-EXT-SRV-ATTR:host"] = host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = host
        view["OS-EXT-SRV-ATTR:instance_name"] = (status.get("domain") or {}).get("name") or ""
    if admin and version >= HOST_STATUS:
        view["host_status"] = host_status(body)
    found = fault(body)
    if found is not None:
        view["fault"] = found
    return view
