"""The compute driver through a restart of libvirtd: guests outlive the daemon, and so must
the driver's connection — it opens a new one and keeps delivering lifecycle events."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import libvirt
import pytest

from kubenova.agents.compute.driver import LifecycleEvent
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.spec import domain_name_for
from kubenova.errors import KubenovaError
from tests.support.waiting import eventually

pytestmark = pytest.mark.libvirt


def a_bare_domain(uid: str) -> str:
    return (
        f"<domain type='qemu'><name>{domain_name_for(uid)}</name><uuid>{uid}</uuid>"
        "<memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>"
    )


def test_the_driver_reaches_a_restarted_libvirtd_and_still_hears_its_events(
    libvirtd: Any, tmp_path: Path
) -> None:
    driver = LibvirtDriver(
        LibvirtSettings(uri=libvirtd.uri, instances_dir=tmp_path, domain_type="qemu")
    )
    heard: list[LifecycleEvent] = []
    driver.subscribe(heard.append)
    try:
        driver.list_instances()
        libvirtd.restart_daemon()

        def answers() -> bool:
            try:
                driver.list_instances()
            except KubenovaError:
                return False
            return True

        eventually(answers, timeout=30, what="the driver answering after the restart")
        uid = str(uuid.uuid4())
        other = libvirt.open(libvirtd.uri)
        try:
            other.defineXML(a_bare_domain(uid)).undefine()
        finally:
            other.close()
        eventually(
            lambda: [e.detail for e in heard if e.uid == uid] == ["defined", "undefined"],
            timeout=30,
            what="lifecycle events from the new daemon",
        )
    finally:
        driver.close()
