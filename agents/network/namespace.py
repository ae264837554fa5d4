"""Where the network service acts: the agent's own network namespace, or a named one.

On a real host the agent runs in the host's namespace (`name` None). Tests simulate several
hosts on one machine, each a named namespace (`ip netns add`); every netlink call and every
command (nft, dnsmasq, sysctl) then runs inside it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute

from kubenova.errors import TemporaryError


@dataclass
class Namespace:
    name: str | None = None
    _ipr: Any = field(default=None, init=False, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def ipr(self) -> Any:
        """A long-lived IPRoute in this namespace (opening one costs ~0.3 s); hold `lock`."""
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.name) if self.name else IPRoute()
        return self._ipr

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
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
