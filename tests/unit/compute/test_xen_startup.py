"""`kubenova-agent --hypervisor xen` on a host without Xen stops at start-up saying why
(issue 18). This machine is no Xen dom0: the real check runs here; the dom0/domU cases use a
stand-in /proc/xen, and the libvirt call is real (this host has no libxl driver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.xen import check_xen_host
from kubenova.agents.main import agent


def test_the_agent_refuses_xen_on_this_host_at_start_up(tmp_path: Path) -> None:
    if Path("/proc/xen/capabilities").exists():
        pytest.fail("this test expects a host without Xen", pytrace=False)
    result = CliRunner().invoke(
        agent, ["--host-name", "h1", "--hypervisor", "xen", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 1, result.output
    assert "--hypervisor xen: this host does not run on Xen" in result.output
    assert "--hypervisor qemu" in result.output  # and what to do instead


def test_a_xen_guest_is_no_place_for_the_agent(tmp_path: Path) -> None:
    (tmp_path / "capabilities").write_text("")  # what a domU's /proc/xen shows
    with pytest.raises(ComputeFailure, match="domU"):
        check_xen_host(proc_xen=tmp_path)


def test_dom0_without_libvirts_xen_driver_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "capabilities").write_text("control_d\n")
    with pytest.raises(ComputeFailure, match="libvirt-daemon-driver-xen"):
        check_xen_host(proc_xen=tmp_path)
