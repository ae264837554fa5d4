"""The pure parts of evacuation: who may leave a failed host now, and the hand-over status."""

from __future__ import annotations

from typing import Any

from kubenova.operator.instances.evacuation import awaiting_go_ahead, evacuated_status


def an_instance(evacuation: str | None = None, go_ahead: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "img", "flavor": "f"}
    if evacuation is not None:
        spec["evacuation"] = evacuation
    annotations = {"kubenova.io/evacuate-from": go_ahead} if go_ahead else {}
    return {
        "metadata": {"name": "vm", "namespace": "demo", "uid": "u", "annotations": annotations},
        "spec": spec,
        "status": {
            "host": "a",
            "addresses": [{"network": "n", "ip": "10.0.0.5", "mac": "52:54:00:00:00:01"}],
            "conditions": [{"type": "Scheduled", "status": "True", "reason": "Scheduled"}],
        },
    }


def test_automatic_goes_at_once_and_manual_waits_for_a_go_ahead_naming_the_failed_host() -> None:
    assert awaiting_go_ahead(an_instance(), "a") is None
    assert awaiting_go_ahead(an_instance("Automatic"), "a") is None
    waiting = awaiting_go_ahead(an_instance("Manual"), "a")
    assert waiting == (
        "host a failed and is out of service; spec.evacuation is Manual, so a cloud "
        "administrator rebuilds it on another host with: kubectl annotate instance vm -n demo "
        "kubenova.io/evacuate-from=a"
    )
    assert awaiting_go_ahead(an_instance("Manual", go_ahead="a"), "a") is None
    # A go-ahead given for an earlier failure does not carry over to this one.
    assert awaiting_go_ahead(an_instance("Manual", go_ahead="b"), "a") is not None


def test_the_hand_over_names_the_new_host_and_tells_the_story() -> None:
    body = an_instance()
    addresses = {"addresses": body["status"]["addresses"]}
    status = evacuated_status(body, "a", "b", addresses, 3)
    assert (status["host"], status["phase"], status["observedGeneration"]) == ("b", "Scheduled", 3)
    assert status["addresses"] == body["status"]["addresses"]
    story = "evacuated from host a (failed, out of service) to host b"
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("Scheduled", "True", "Evacuated", story),
        ("Evacuated", "True", "Evacuated", story),
        ("Ready", "False", "Evacuated", story),
    ]
