"""The keyed fragments the live streams send: what each row or card says, escaped."""

from __future__ import annotations

import json

from kubenova.dashboard.admin import host_card, placement_row
from kubenova.dashboard.instances import attached_rows, event_row
from kubenova.dashboard.live import fragment
from kubenova.dashboard.resources import floating_rows, network_row


def _network(ports: list[dict[str, str]]) -> dict[str, object]:
    return {
        "metadata": {"name": "blue"},
        "spec": {"mode": "vxlan", "cidr": "10.0.0.0/29"},
        "status": {"ports": ports, "ipsFree": 4, "ipsUsed": 1},
    }


def test_floating_ips_are_one_row_each_keyed_by_their_network() -> None:
    rows = floating_rows(
        _network(
            [
                {"instance": "a", "ip": "10.0.0.2", "floatingIP": "198.51.100.17", "host": "h1"},
                {"instance": "b", "ip": "10.0.0.3"},
            ]
        )
    )
    assert rows.count('<tr data-key="blue">') == 1
    assert "198.51.100.17" in rows
    assert "10.0.0.3" not in rows
    assert floating_rows(_network([])) == ""  # the network's rows go away


def test_api_text_is_escaped_in_every_fragment() -> None:
    evil = '<img src=x onerror="alert(1)">'
    event = {"metadata": {"name": "e1"}, "reason": evil, "message": evil, "type": "Warning"}
    instance = {
        "metadata": {"name": "vm", "namespace": "ns"},
        "status": {"conditions": [{"type": "Scheduled", "status": "False", "message": evil}]},
    }
    host = {"metadata": {"name": "h1"}, "spec": {"availabilityZone": evil}, "status": {}}
    network = _network([{"instance": evil, "ip": "10.0.0.2", "floatingIP": "1.2.3.4"}])
    for markup in (
        event_row(event),
        placement_row(instance),
        host_card(host, 3),
        floating_rows(network),
        network_row(network),
    ):
        assert "<img" not in markup
        assert "&lt;img" in markup


def test_a_placed_instance_has_no_placement_row() -> None:
    placed = {
        "metadata": {"name": "vm", "namespace": "ns"},
        "status": {"conditions": [{"type": "Scheduled", "status": "True"}]},
    }
    assert placement_row(placed) == ""


def test_a_fragment_is_one_server_sent_event() -> None:
    raw = fragment("ns/vm", "<tr>\n</tr>").decode()
    assert raw.startswith("event: fragment\ndata: ")
    assert raw.endswith("\n\n")
    assert raw.count("\n") == 3  # the HTML's newline is inside the JSON string
    assert json.loads(raw.split("data: ", 1)[1]) == {"key": "ns/vm", "html": "<tr>\n</tr>"}


def test_attached_volumes_are_one_group_with_their_devices() -> None:
    body = {
        "spec": {"volumes": [{"volume": "data-1"}, {"volume": "data-2"}]},
        "status": {"volumes": [{"volume": "data-1", "device": "vdb"}]},
    }
    rows = attached_rows("/p/a/instances/vm", "token", body)
    assert rows.count('<tr data-key="attached">') == 2
    assert "<td>vdb</td>" in rows
    assert "attaching…" in rows  # data-2: asked for, not in the guest yet
    raw = fragment("attached", rows, target="attached").decode()
    assert json.loads(raw.split("data: ", 1)[1])["target"] == "attached"
