"""The Argo CD health checks the chart documents, run under Lua 5.1 (Argo CD's gopher-lua
speaks 5.1) on Instance and Volume bodies in each state, and kept identical in the README."""

from __future__ import annotations

import re
from typing import Any

import pytest
from lupa import lua51

from tests.integration.chart.conftest import CHART

SCRIPTS = {"Instance": CHART / "argocd" / "instance-health.lua"}
SCRIPTS["Volume"] = CHART / "argocd" / "volume-health.lua"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would compute them for `obj`."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _lua(runtime, obj)
    # Argo CD runs the script as a chunk: its `return hs` is the result.
    result = runtime.execute(SCRIPTS[kind].read_text())
    return str(result["status"]), str(result["message"] or "")


def _lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_lua(runtime, v) for v in value])
    return value


def condition(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def an_instance(
    status: dict[str, Any] | None = None,
    *,
    generation: int = 1,
    power: str = "Running",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "vm", "namespace": "default", "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    body: dict[str, Any] = {"metadata": meta, "spec": {"powerState": power}}
    if status is not None:
        body["status"] = status
    return body


RUNNING = condition("Ready", True, "Running", "domain kubenova-1 is running")
SCHEDULED = condition("Scheduled", True, "Scheduled", "placed on host h1")


@pytest.mark.parametrize(
    ("body", "expected", "says"),
    [
        (an_instance(), "Progressing", "Waiting for the operator"),
        (
            an_instance(
                {
                    "phase": "Pending",
                    "conditions": [
                        condition("Scheduled", False, "NoValidHost", "no host has 4096 MiB free")
                    ],
                }
            ),
            "Degraded",
            "NoValidHost: no host has 4096 MiB free",
        ),
        (
            an_instance({"phase": "Scheduled", "host": "h1", "conditions": [SCHEDULED]}),
            "Progressing",
            "not yet acted on generation 1",
        ),
        (
            an_instance(
                {
                    "phase": "Building",
                    "observedGeneration": 1,
                    "conditions": [
                        SCHEDULED,
                        condition("Ready", False, "Building", "downloading image"),
                    ],
                }
            ),
            "Progressing",
            "Building: downloading image",
        ),
        (
            an_instance(
                {"phase": "Running", "observedGeneration": 1, "conditions": [SCHEDULED, RUNNING]}
            ),
            "Healthy",
            "domain kubenova-1 is running",
        ),
        (
            an_instance(
                {"phase": "Running", "observedGeneration": 1, "conditions": [SCHEDULED, RUNNING]},
                generation=2,
            ),
            "Progressing",
            "generation 2",
        ),
        (
            an_instance(
                {
                    "phase": "Running",
                    "observedGeneration": 2,
                    "conditions": [
                        SCHEDULED,
                        condition("Ready", False, "Stopping", "domain is shutting down"),
                    ],
                },
                generation=2,
                power="Stopped",
            ),
            "Progressing",
            "Running: domain is shutting down",
        ),
        (
            an_instance(
                {
                    "phase": "Stopped",
                    "observedGeneration": 2,
                    "conditions": [
                        SCHEDULED,
                        condition("Ready", False, "Stopped", "stopped as asked"),
                    ],
                },
                generation=2,
                power="Stopped",
            ),
            "Healthy",
            "Stopped as spec.powerState asks",
        ),
        (
            an_instance(
                {
                    "phase": "Error",
                    "observedGeneration": 1,
                    "conditions": [
                        SCHEDULED,
                        condition("Ready", False, "DomainCrashed", "domain kubenova-1 crashed"),
                    ],
                }
            ),
            "Degraded",
            "DomainCrashed: domain kubenova-1 crashed",
        ),
        (
            an_instance({"phase": "Running", "conditions": [RUNNING]}, deleting=True),
            "Progressing",
            "Deleting",
        ),
    ],
)
def test_instance_health(body: dict[str, Any], expected: str, says: str) -> None:
    status, message = health("Instance", body)

    assert status == expected
    assert says in message


def a_volume(phase: str | None, *conditions: dict[str, Any], observed: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "data", "generation": 1}, "spec": {"sizeGiB": 1}}
    if phase is not None:
        body["status"] = {
            "phase": phase,
            "observedGeneration": observed,
            "conditions": list(conditions),
        }
    return body


@pytest.mark.parametrize(
    ("body", "expected", "says"),
    [
        (a_volume(None), "Progressing", "Waiting"),
        (a_volume("Creating"), "Progressing", "Creating"),
        (
            a_volume("Available", condition("Ready", True, "Exported", "iSCSI target up")),
            "Healthy",
            "Available: iSCSI target up",
        ),
        (a_volume("InUse"), "Healthy", "InUse"),
        (a_volume("Attaching"), "Progressing", "Attaching"),
        (a_volume("Available", observed=0), "Progressing", "generation 1"),
        (
            a_volume(
                "Error",
                condition("Placed", True, "Placed", "on h1"),
                condition("Exported", False, "OutOfSpace", "no space left on h1"),
            ),
            "Degraded",
            "Error: no space left on h1",
        ),
    ],
)
def test_volume_health(body: dict[str, Any], expected: str, says: str) -> None:
    status, message = health("Volume", body)

    assert status == expected
    assert says in message


def test_the_readme_shows_the_scripts_verbatim() -> None:
    readme = (CHART / "README.md").read_text()
    blocks = re.findall(r"```lua\n(.*?)```", readme, re.S)

    assert blocks == [SCRIPTS["Instance"].read_text(), SCRIPTS["Volume"].read_text()]
    assert "resource.customizations.health.kubenova.io_Instance" in readme
    assert "resource.customizations.health.kubenova.io_Volume" in readme
