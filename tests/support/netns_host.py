"""A simulated host in a network namespace of its own, for real guests on one machine.

The namespace is joined to the root namespace by a veth pair addressed from a /30 of
100.64.0.0/10 derived from the test process's pid (22 bits: one /30 per pid), so hosts of
tests running at the same time never share an address or a device name. Processes started
inside (`ip netns exec`) see only the namespace's own loopback: `forward_loopback()` makes a
root-namespace loopback port (the apiserver's, the object store's) answer on the same port
inside, so an agent started there uses the very kubeconfig and S3 URL the others use.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
UNDERLAY_POOL = ipaddress.IPv4Network("100.64.0.0/10")


def sh(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class NetnsHost:
    """`netns` with `uplink0` at `ip`, its veth peer `outer` in the root namespace at `peer_ip`
    (without `uplink`: the namespace alone, joined to others by the test as it needs)."""

    tag: str
    uplink: bool = True
    netns: str = ""
    outer: str = ""
    ip: str = ""
    peer_ip: str = ""
    _servers: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        pid = os.getpid()
        base = UNDERLAY_POOL.network_address + 4 * (pid % (UNDERLAY_POOL.num_addresses // 4))
        self.peer_ip, self.ip = str(base + 1), str(base + 2)
        self.netns = f"kn-{self.tag}-{pid}"
        sh("ip", "netns", "add", self.netns)
        try:
            sh("ip", "-n", self.netns, "link", "set", "lo", "up")
            if not self.uplink:
                self.peer_ip = self.ip = ""
                return
            self.outer = f"kv{pid:x}{self.tag}"[:15]
            sh("ip", "link", "add", self.outer, "type", "veth",
               "peer", "name", "uplink0", "netns", self.netns)  # fmt: skip
            sh("ip", "addr", "add", f"{self.peer_ip}/30", "dev", self.outer)
            sh("ip", "link", "set", self.outer, "up")
            sh("ip", "-n", self.netns, "addr", "add", f"{self.ip}/30", "dev", "uplink0")
            sh("ip", "-n", self.netns, "link", "set", "uplink0", "up")
        except AssertionError:
            self.remove()
            raise

    def forward_loopback(self, port: int) -> None:
        """127.0.0.1:`port` inside the namespace reaches 127.0.0.1:`port` of the root one."""
        made: list[socket.socket | BaseException] = []
        # setns() moves only the calling thread: a thread of its own binds the listener in
        # the namespace; the socket stays there once the thread is gone.
        opener = threading.Thread(target=lambda: made.append(_listen_in(self.netns, port)))
        opener.start()
        opener.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        server = made[0]
        self._servers.append(server)
        threading.Thread(target=_accept, args=(server, port), daemon=True).start()

    def links(self) -> list[str]:
        out = sh("ip", "-n", self.netns, "-o", "link", "show")
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def remove(self) -> None:
        """Close the forwards, kill what still runs inside, delete the namespace and veth."""
        for server in self._servers:
            with contextlib.suppress(OSError):
                server.close()
        pids = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        if self.outer:
            subprocess.run(["ip", "link", "del", self.outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)


def _listen_in(netns: str, port: int) -> socket.socket | BaseException:
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            return OSError(ctypes.get_errno(), f"setns into {netns}")
        try:
            return socket.create_server(("127.0.0.1", port))
        except OSError as error:
            return error
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                # This thread is stranded in the namespace: it ends here, so no harm done.
                pass
    finally:
        os.close(own)
        os.close(target)


def _accept(server: socket.socket, port: int) -> None:
    while True:
        try:
            inside, _ = server.accept()
        except OSError:
            return  # closed by remove()
        try:
            outside = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            inside.close()
            continue
        outside.settimeout(None)
        for source, sink in ((inside, outside), (outside, inside)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
