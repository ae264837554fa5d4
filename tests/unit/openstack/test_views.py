"""Instances as Nova shows them: status mapping, faults, the host for cloud admins only."""

from __future__ import annotations

from typing import Any

import pytest

from kubenova.openstack.faults import Fault
from kubenova.openstack.microversion import MAX, MIN, Version
from kubenova.openstack.servers import new_name
from kubenova.openstack.views import DISPLAY_NAME_ANNOTATION, server_status, server_view


def an_instance(phase: str | None, **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "host": "h1",
        "addresses": [{"network": "private", "ip": "10.0.0.5", "mac": "52:54:00:00:00:01"}],
    }
    if phase:
        status["phase"] = phase
    return {
        "metadata": {"name": "vm1", "namespace": "alpha", "uid": "u-1",
                     "creationTimestamp": "2026-12-05T00:00:00Z"},
        "spec": {"flavor": "m1.tiny", "image": "img"} | spec,
        "status": status,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "status"),
    [
        (None, "BUILD"),
        ("Pending", "BUILD"),
        ("Scheduled", "BUILD"),
        ("Building", "BUILD"),
        ("Running", "ACTIVE"),
        ("Stopped", "SHUTOFF"),
        ("Error", "ERROR"),
        ("Terminating", "ACTIVE"),
        ("Deleting", "ACTIVE"),
    ],
)
def test_phases_map_to_nova_statuses(phase: str | None, status: str) -> None:
    assert server_status(an_instance(phase))[0] == status


@pytest.mark.parametrize(
    ("phase", "power", "expected"),
    [
        ("Running", "Running", ("ACTIVE", "active", 1, "deleting")),
        ("Stopped", "Stopped", ("SHUTOFF", "stopped", 4, "deleting")),
        ("Error", "Running", ("ERROR", "error", 0, "deleting")),
        ("Terminating", "Running", ("ACTIVE", "active", 1, "deleting")),
        ("Terminating", "Stopped", ("SHUTOFF", "stopped", 4, "deleting")),
    ],
)
def test_a_server_being_deleted_keeps_its_status_with_task_state_deleting(
    phase: str, power: str, expected: tuple[str, str, int, str]
) -> None:
    """Never DELETED while the Instance exists: openstacksdk's wait_for_delete (and so
    `server delete --wait`) stops at DELETED, before the guest and its quota are released."""
    body = an_instance(phase, powerState=power)
    body["metadata"]["deletionTimestamp"] = "2026-12-05T01:00:00Z"
    assert server_status(body) == expected


def test_a_reboot_asked_and_not_done_yet_is_reboot() -> None:
    body = an_instance("Running", restartRequestedAt="2026-12-05T01:00:00Z")
    assert server_status(body)[0] == "REBOOT"
    body["status"]["restartedAt"] = "2026-12-05T01:00:00Z"
    assert server_status(body)[0] == "ACTIVE"


def test_no_valid_host_is_the_servers_fault() -> None:
    body = an_instance("Error")
    body["status"]["conditions"] = [{"type": "Scheduled", "status": "False",
        "reason": "NoValidHost", "message": "3 hosts: 3 lack memory",
        "lastTransitionTime": "2026-12-05T00:00:01Z"}]  # fmt: skip
    view = server_view(body, "http://x", project_id="p", version=MAX, flavor=None, image=None,
                       admin=False)  # fmt: skip
    assert view["status"] == "ERROR"
    assert view["fault"]["code"] == 500
    assert view["fault"]["message"] == "No valid host was found. 3 hosts: 3 lack memory"


def test_the_host_is_shown_to_cloud_admins_only() -> None:
    body = an_instance("Running")
    common: dict[str, Any] = {"project_id": "p", "flavor": None, "image": None}
    tenant = server_view(body, "http://x", version=MAX, admin=False, **common)
    admin = server_view(body, "http://x", version=MAX, admin=True, **common)
    assert "OS-EXT-SRV-ATTR:host" not in tenant
    assert admin["OS-EXT-SRV-ATTR:host"] == "h1"
    assert "OS-EXT-SRV-ATTR:host" not in server_view(body, "http://x", version=MIN, admin=True,
                                                     **common)  # fmt: skip
    assert tenant["addresses"] == {"private": [{"addr": "10.0.0.5", "version": 4,
        "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "52:54:00:00:00:01"}]}  # fmt: skip


def test_a_server_on_a_host_that_stopped_heart_beating_shows_host_status_unknown() -> None:
    body = an_instance("Running")
    common: dict[str, Any] = {"project_id": "p", "flavor": None, "image": None}
    assert server_view(body, "", version=MAX, admin=True, **common)["host_status"] == "UP"
    body["status"]["conditions"] = [{"type": "Ready", "status": "Unknown",
        "reason": "HostNotReady", "message": "host h1 is not ready"}]  # fmt: skip
    admin = server_view(body, "", version=MAX, admin=True, **common)
    assert (admin["status"], admin["host_status"]) == ("ACTIVE", "UNKNOWN")  # as Nova's
    assert "host_status" not in server_view(body, "", version=MAX, admin=False, **common)
    assert "host_status" not in server_view(body, "", version=Version(2, 15), admin=True, **common)
    del body["status"]["host"]
    assert server_view(body, "", version=MAX, admin=True, **common)["host_status"] == ""


def test_a_renamed_server_shows_its_display_name_and_keeps_its_id() -> None:
    body = an_instance("Running")
    assert (
        server_view(body, "", project_id="p", version=MIN, flavor=None, image=None, admin=False)[
            "name"
        ]
        == "vm1"
    )
    body["metadata"]["annotations"] = {DISPLAY_NAME_ANNOTATION: "Web server 1"}
    view = server_view(body, "", project_id="p", version=MIN, flavor=None, image=None, admin=False)
    assert (view["id"], view["name"]) == ("u-1", "Web server 1")


@pytest.mark.parametrize("name", ["", " lead", "trail ", "tab\there", "x" * 256, 7])
def test_a_name_nova_would_refuse_is_refused(name: Any) -> None:
    with pytest.raises(Fault) as refused:
        new_name(name)
    assert refused.value.status == 400


def test_a_name_nova_takes_is_taken() -> None:
    assert new_name("Web server 1 (ü)") == "Web server 1 (ü)"
