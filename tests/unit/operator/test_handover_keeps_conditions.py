"""Every status apply of the operator keeps what its earlier ones wrote.

An apply removes the fields its manager owns and leaves out, and conditions are a map by
type: a floating IP's write that carried only Scheduled erased a Resized that said why a
resize waits, or an Evacuated that told where the guest went.
"""

from __future__ import annotations

from typing import Any

from kubenova.operator.instances.handover import still_handed_over


def entry(kind: str, status: str, reason: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": reason}


def an_instance() -> dict[str, Any]:
    return {
        "metadata": {"name": "vm", "namespace": "demo", "uid": "u"},
        "status": {
            "host": "a",
            "phase": "Running",
            "addresses": [{"network": "n", "ip": "10.0.0.5"}],
            "resources": {"vcpus": 1, "memoryMiB": 256, "diskGiB": 1},
            "conditions": [
                entry("Scheduled", "True", "Scheduled"),
                entry("Ready", "True", "Running"),  # the agent's
                entry("Resized", "False", "WaitingForStop"),
                entry("VolumesAllowed", "True", "Allowed"),  # another manager's
                entry("Evacuated", "True", "Evacuated"),
            ],
        },
    }


def types(status: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["type"], c["reason"]) for c in status["conditions"]]


def test_a_write_of_other_fields_keeps_the_operators_conditions_and_only_those() -> None:
    addresses = [{"network": "n", "ip": "10.0.0.5", "floatingIP": "198.51.100.7"}]
    status = still_handed_over(an_instance(), "a", {"addresses": addresses})
    assert types(status) == [
        ("Scheduled", "Scheduled"),
        ("Resized", "WaitingForStop"),
        ("Evacuated", "Evacuated"),
    ]
    assert status["addresses"] == addresses
    assert status["host"] == "a"
    assert status["resources"] == {"vcpus": 1, "memoryMiB": 256, "diskGiB": 1}
    assert "phase" not in status  # the agent's since it took over


def test_a_condition_written_anew_replaces_the_one_shown() -> None:
    resized = entry("Resized", "True", "Resized")
    status = still_handed_over(an_instance(), "a", {"conditions": [resized]})
    assert types(status) == [
        ("Scheduled", "Scheduled"),
        ("Evacuated", "Evacuated"),
        ("Resized", "Resized"),
    ]
