"""The agent's Instance status: derived purely from the domain's state, written only on change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.compute import status as st
from kubenova.agents.compute.driver import DomainState, InstanceInfo

UID = "6b1c1a52-0000-4000-8000-000000000001"


def an_info(state: DomainState = DomainState.RUNNING, console: Path | None = None) -> InstanceInfo:
    return InstanceInfo(
        uid=UID,
        domain_name=f"kubenova-{UID}",
        domain_uuid=UID,
        state=state,
        vcpus=1,
        memory_mib=96,
        console_log=console,
    )


def a_body(status: dict[str, Any] | None = None, generation: int = 3) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "vm", "namespace": "demo", "uid": UID, "generation": generation}
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("state", "wanted", "phase", "ready", "reason"),
    [
        (DomainState.RUNNING, "Running", "Running", True, "Running"),
        (DomainState.RUNNING, "Stopped", "Running", False, "Stopping"),
        (DomainState.SHUTOFF, "Stopped", "Stopped", False, "Stopped"),
        (DomainState.SHUTOFF, "Running", "Error", False, "DomainNotRunning"),
        (DomainState.SHUTTING_DOWN, "Stopped", "Running", False, "Stopping"),
        (DomainState.PAUSED, "Running", "Running", False, "Paused"),
        (DomainState.CRASHED, "Running", "Error", False, "DomainCrashed"),
        (DomainState.UNKNOWN, "Running", "Error", False, "DomainStateUnknown"),
    ],
)
def test_observe_maps_domain_state_and_power_state_to_phase_and_ready(
    state: DomainState, wanted: str, phase: str, ready: bool, reason: str
) -> None:
    observation = st.observe(an_info(state), wanted)

    assert (observation.phase, observation.ready, observation.reason) == (phase, ready, reason)
    assert f"kubenova-{UID}" in observation.message


def test_a_note_is_shown_in_the_running_message() -> None:
    observation = st.observe(an_info(), "Running", "restarted at 10:00")

    assert observation.message.endswith("(restarted at 10:00)")


def test_desired_status_carries_every_field_the_agent_owns(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    status = st.desired_status(
        a_body(),
        st.observe(an_info(console=log), "Running"),
        info=an_info(console=log),
        domain_type="qemu",
        console_tail="login:",
        restarted_at="2025-01-01T00:00:00Z",
    )

    assert status["phase"] == "Running"
    assert status["observedGeneration"] == 3
    assert status["domain"] == {
        "uuid": UID,
        "name": f"kubenova-{UID}",
        "type": "qemu",
        "vcpus": 1,
        "memoryMiB": 96,
    }
    assert status["console"] == {"logPath": str(log), "tail": "login:"}
    assert status["restartedAt"] == "2025-01-01T00:00:00Z"
    (ready,) = status["conditions"]
    assert (ready["type"], ready["status"], ready["observedGeneration"]) == ("Ready", "True", 3)


def test_an_error_before_any_domain_has_no_domain_fields() -> None:
    status = st.desired_status(a_body(), st.failed("ImageNotFound", "create it"))

    assert status["phase"] == "Error"
    assert "domain" not in status
    assert "console" not in status
    assert status["conditions"][0]["reason"] == "ImageNotFound"


def test_the_same_status_again_differs_in_nothing() -> None:
    first = st.desired_status(a_body(), st.observe(an_info(), "Running"), info=an_info())
    again = st.desired_status(a_body(first), st.observe(an_info(), "Running"), info=an_info())

    assert not st.differs(first, again, compare_tail=True)
    # The transition time is kept from the previous condition, not renewed.
    assert (
        again["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"phase": "Stopped"},
        {"observedGeneration": 4},
        {"domain": {"uuid": "other"}},
        {"restartedAt": "2025-01-02T00:00:00Z"},
        {"console": {"logPath": "/elsewhere"}},
    ],
)
def test_any_owned_field_change_differs(change: dict[str, Any], tmp_path: Path) -> None:
    info = an_info(console=tmp_path / "console.log")
    current = st.desired_status(a_body(), st.observe(info, "Running"), info=info)

    assert st.differs(current | change, current, compare_tail=False)


def test_a_changed_ready_message_differs_but_not_its_timestamp() -> None:
    current = st.desired_status(a_body(), st.observe(an_info(), "Running"), info=an_info())
    restamped = current | {
        "conditions": [current["conditions"][0] | {"lastTransitionTime": "1999-01-01T00:00:00Z"}]
    }
    noted = st.desired_status(
        a_body(current), st.observe(an_info(), "Running", "restarted"), info=an_info()
    )

    assert not st.differs(restamped, current, compare_tail=False)
    assert st.differs(current, noted, compare_tail=False)


def test_the_console_tail_is_compared_only_when_asked(tmp_path: Path) -> None:
    info = an_info(console=tmp_path / "console.log")
    old = st.desired_status(a_body(), st.observe(info, "Running"), info=info, console_tail="a")
    new = st.desired_status(a_body(), st.observe(info, "Running"), info=info, console_tail="b")

    assert not st.differs(old, new, compare_tail=False)
    assert st.differs(old, new, compare_tail=True)


def test_other_writers_fields_are_ignored() -> None:
    mine = st.desired_status(a_body(), st.observe(an_info(), "Running"), info=an_info())
    scheduled = {"type": "Scheduled", "status": "True", "reason": "Scheduled", "message": "x"}
    current = mine | {"host": "node-1", "conditions": [scheduled, *mine["conditions"]]}

    assert not st.differs(current, mine, compare_tail=True)


def test_console_tail_keeps_the_last_lines_without_control_characters(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    lines = [f"line {n}\r\n" for n in range(100)]
    log.write_bytes(("".join(lines) + "\x1b[0mKUBENOVA-BOOT-OK\r\n").encode())

    tail = st.console_tail(log)

    assert tail is not None
    assert tail.splitlines()[-1] == "[0mKUBENOVA-BOOT-OK"
    assert len(tail.splitlines()) == st.TAIL_LINES
    assert "\r" not in tail
    assert "\x1b" not in tail


def test_console_tail_of_a_missing_or_empty_log_is_none(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")

    assert st.console_tail(tmp_path / "missing.log") is None
    assert st.console_tail(tmp_path / "empty.log") is None
    assert st.console_tail(None) is None


def test_a_huge_console_is_cut_to_the_api_limit(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"x" * 100_000)

    tail = st.console_tail(log)

    assert tail is not None
    assert len(tail) == st.TAIL_CHARS <= 4096


def test_a_guest_held_for_a_cold_move_says_a_start_waits_for_its_end() -> None:
    why = "on host-a for its cold move to host-b"
    held = st.held(an_info(DomainState.SHUTOFF), why, "Running")
    assert (held.phase, held.ready, held.reason) == ("Stopped", False, "Moving")
    assert why in held.message
    assert "spec.powerState Running waits for the move's end" in held.message
    assert "waits" not in st.held(an_info(DomainState.SHUTOFF), why, "Stopped").message
