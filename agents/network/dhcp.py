"""DHCP per network: one dnsmasq on the gateway host's bridge, static leases only.

Every NIC's MAC -> fixed IP comes from the inventory (the Network's status.ports), so a
guest's lease always equals its inventory address; unknown MACs get nothing. Host entries
change through `--dhcp-hostsfile` + SIGHUP (no restart, no lost leases); anything else
that changes (gateway, DNS, MTU) restarts the server. `--no-ping` answers in ~0.1 s
instead of probing for 3 s: the inventory already guarantees the address is free.

State per network lives in `<state_dir>/<bridge>/` (hosts file, leases, pid, arguments),
so a restarted agent adopts a running dnsmasq instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import GatewaySpec
from kubenova.errors import TemporaryError

log = logging.getLogger(__name__)

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


def dnsmasq_arguments(bridge: str, gw: GatewaySpec, directory: Path) -> list[str]:
    """The dnsmasq command line for one network (pure; the tests read it)."""
    args = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",  # never /etc/dnsmasq.conf
        "--no-resolv",
        "--no-hosts",
        "--port=0",  # DHCP only: guests get their DNS servers as an option
        "--bind-interfaces",
        f"--interface={bridge}",
        "--except-interface=lo",
        f"--dhcp-range={gw.cidr.network_address},static,{gw.cidr.netmask},12h",
        f"--dhcp-hostsfile={directory / 'hosts'}",
        f"--dhcp-leasefile={directory / 'leases'}",
        f"--pid-file={directory / 'pid'}",
        "--dhcp-authoritative",
        "--no-ping",
        "--log-facility=-",
        # It re-reads the hosts file on SIGHUP, from the agent's state directory (0700):
        # stay the agent's user rather than dropping to nobody.
        "--user=root",
    ]
    router = str(gw.gateway) if gw.forwards else ""
    args.append(f"--dhcp-option=option:router{',' + router if router else ''}")
    if gw.dns:
        args.append(f"--dhcp-option=option:dns-server,{','.join(gw.dns)}")
    if gw.mtu:
        args.append(f"--dhcp-option=option:mtu,{gw.mtu}")
    return args


def hosts_file(gw: GatewaySpec) -> str:
    return "".join(f"{h.mac},{h.ip},{_hostname(h.name)}\n" for h in gw.hosts)


def _hostname(name: str) -> str:
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in name.split(".", maxsplit=1)[0])
    return label.strip("-")[:63] or "instance"


class DhcpServers:
    """The dnsmasq processes of this host's networks."""

    def __init__(self, ns: Namespace, state_dir: Path) -> None:
        self.ns = ns
        self.state_dir = state_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def ensure(self, bridge: str, gw: GatewaySpec) -> None:
        """Serve `gw`'s static leases on `bridge` (start, reload or restart as needed)."""
        directory = self.state_dir / bridge
        directory.mkdir(parents=True, exist_ok=True)
        args = dnsmasq_arguments(bridge, gw, directory)
        hosts_changed = _write_if_changed(directory / "hosts", hosts_file(gw))
        args_changed = _write_if_changed(directory / "args", "\n".join(args))
        pid = self.pid(bridge)
        if pid is not None and args_changed:
            self._stop_pid(bridge, pid)
            pid = None
        if pid is None:
            self._start(bridge, args, directory)
        elif hosts_changed:
            os.kill(pid, signal.SIGHUP)

    def stop(self, bridge: str) -> None:
        """Stop the network's dnsmasq and remove its state; nothing if there is none."""
        pid = self.pid(bridge)
        if pid is not None:
            self._stop_pid(bridge, pid)
        shutil.rmtree(self.state_dir / bridge, ignore_errors=True)

    def served(self) -> set[str]:
        """Bridges with DHCP state on this host (running or not)."""
        if not self.state_dir.is_dir():
            return set()
        return {d.name for d in self.state_dir.iterdir() if d.is_dir()}

    def pid(self, bridge: str) -> int | None:
        """The live dnsmasq serving `bridge`, or None."""
        try:
            pid = int((self.state_dir / bridge / "pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        child = self._children.get(bridge)
        if child is not None and child.poll() is not None:
            return None  # exited (reaped just now): the pid may be reused
        if b"dnsmasq" in cmdline[0] and f"--interface={bridge}".encode() in cmdline:
            return pid
        return None

    def _start(self, bridge: str, args: list[str], directory: Path) -> None:
        (directory / "pid").unlink(missing_ok=True)
        log_file = (directory / "dnsmasq.log").open("ab")
        child = subprocess.Popen(
            self.ns.command(args),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives an agent restart; adopted by its pid file
        )
        log_file.close()
        self._children[bridge] = child
        deadline = time.monotonic() + START_TIMEOUT
        while self.pid(bridge) is None:
            if child.poll() is not None or time.monotonic() > deadline:
                output = (directory / "dnsmasq.log").read_text(errors="replace")[-500:]
                raise TemporaryError(
                    f"dnsmasq for {bridge} did not start: {output.strip()}",
                    reason="DhcpFailed",
                )
            time.sleep(0.02)
        log.info("dnsmasq serves %s (pid %s)", bridge, self.pid(bridge))

    def _stop_pid(self, bridge: str, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        child = self._children.pop(bridge, None)
        if child is not None:
            try:
                child.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


def _write_if_changed(path: Path, content: str) -> bool:
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    temporary = path.with_suffix(".tmp")
    temporary.write_text(content)
    temporary.replace(path)
    return True
