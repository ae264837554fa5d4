"""Where the network service acts: the agent's own network namespace, or a named one.

On a real host the agent runs in the host's namespace (`name` None). Tests simulate several
hosts on one machine, each a named namespace (`ip netns add`); every netlink call and every
command (nft, dnsmasq, sysctl) then runs inside it.

Netlink goes through one thread per Namespace: pyroute2 (0.9) drives an IPRoute with an
event loop of the thread that opened it, and a named namespace is entered by that thread
alone (setns(2) moves only the calling thread), so the agent's other threads, and a test's
own, stay where they are. `ipr()` hands out a proxy that runs each call on that thread.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyroute2 import IPRoute

from kubenova.errors import TemporaryError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
T = TypeVar("T")


def _enter(name: str) -> None:
    """Move the calling thread into the named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class _IPRouteProxy:
    """Runs every IPRoute method on the namespace's own thread."""

    def __init__(self, ns: Namespace) -> None:
        self._ns = ns

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._ns.on_thread(lambda: getattr(self._ns.real_ipr(), method)(*args, **kwargs))

        return call


@dataclass
class Namespace:
    name: str | None = None
    _ipr: Any = field(default=None, init=False, repr=False)
    _real: Any = field(default=None, init=False, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _thread_id: int | None = field(default=None, init=False, repr=False)

    def ipr(self) -> Any:
        """An IPRoute in this namespace (a proxy to the namespace's thread); hold `lock`."""
        if self._ipr is None:
            self._ipr = _IPRouteProxy(self)
        return self._ipr

    def on_thread(self, work: Callable[[], T]) -> T:
        """Run `work` on this namespace's netlink thread and return its result."""
        if threading.get_ident() == self._thread_id:
            return work()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"netns-{self.name}")
            self._executor.submit(self._start_thread).result()
        return self._executor.submit(work).result()

    def _start_thread(self) -> None:
        self._thread_id = threading.get_ident()
        if self.name:
            _enter(self.name)

    def real_ipr(self) -> Any:
        """The IPRoute itself; only on the namespace's thread (opening one costs ~0.3 s)."""
        if self._real is None:
            self._real = IPRoute()
        return self._real

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv] if self.name else list(argv)

    def run(self, argv: Sequence[str], *, input: str | None = None) -> str:
        """Run a command here; TemporaryError carrying its stderr if it fails."""
        result = subprocess.run(
            self.command(argv), input=input, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise TemporaryError(
                f"{' '.join(argv[:3])} failed in netns {self.name or '(host)'}: "
                f"{result.stderr.strip() or result.stdout.strip()}",
                reason="NetworkCommandFailed",
            )
        return result.stdout

    def sysctl(self, key: str, value: str) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def close(self) -> None:
        with self.lock:
            if self._executor is not None:
                if self._real is not None:
                    self._executor.submit(self._real.close).result()
                    self._real = None
                self._executor.shutdown(wait=True)
                self._executor = None
            self._ipr = None
