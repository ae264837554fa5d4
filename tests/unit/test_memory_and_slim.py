"""Memory housekeeping: cached bodies lose what nobody reads; freed heap goes back; TLS
connections read into small buffers."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import ssl
from pathlib import Path

import pytest

from kubenova.kube.meta import LAST_APPLIED, slim
from kubenova.memory import TLS_READ_BUFFER, give_back, size_tls_buffers


def a_body() -> dict[str, object]:
    return {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {
            "name": "vm",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "7",
            "labels": {"example.com/owner": "h-1"},
            "finalizers": ["kubenova.io/operator"],
            "annotations": {LAST_APPLIED: json.dumps({"spec": {"image": "x"}}), "note": "kept"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"image": "x"},
        "status": {"phase": "Running"},
    }


def test_slim_drops_managed_fields_and_last_applied_and_keeps_the_rest() -> None:
    body = a_body()
    original = json.dumps(body, sort_keys=True)

    trimmed = slim(body)

    meta = trimmed["metadata"]
    assert "managedFields" not in meta
    assert meta["annotations"] == {"note": "kept"}
    for kept in ("name", "namespace", "uid", "resourceVersion", "labels", "finalizers"):
        assert meta[kept] == body["metadata"][kept]  # type: ignore[index]
    assert trimmed["spec"] == body["spec"]
    assert trimmed["status"] == body["status"]
    assert json.dumps(body, sort_keys=True) == original, "the input is not changed"


def test_slim_removes_an_annotations_map_left_empty_and_passes_lean_bodies_through() -> None:
    body = a_body()
    body["metadata"]["annotations"] = {LAST_APPLIED: "{}"}  # type: ignore[index]
    assert "annotations" not in slim(body)["metadata"]
    lean = {"metadata": {"name": "vm"}}
    assert slim(lean) is lean


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_give_back_returns_a_fragmented_heap_to_the_system() -> None:
    # Every 16th block survives, so the freed ones are holes glibc would keep mapped.
    blocks = [bytearray(b"x" * 4096) for _ in range(32_000)]  # ~130 MB on the malloc heap
    survivors = blocks[::16]
    del blocks
    before = resident_mb()

    assert give_back(), "malloc_trim found nothing to return"

    after = resident_mb()
    assert before - after > 50, (before, after)
    assert len(survivors) == 2000


def test_tls_connections_opened_after_sizing_read_into_small_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", 256 * 1024)
    size_tls_buffers()

    async def a_connection_buffer() -> int:
        loop = asyncio.get_running_loop()
        protocol = asyncio.sslproto.SSLProtocol(
            loop, asyncio.Protocol(), ssl.create_default_context(), loop.create_future()
        )
        return len(protocol.get_buffer(-1))  # what the transport reads the socket into

    assert asyncio.run(a_connection_buffer()) == TLS_READ_BUFFER < 256 * 1024
