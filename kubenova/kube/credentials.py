"""The bearer token to send: a fixed one, or whatever a (rotated) token file holds now.

Bound ServiceAccount tokens expire (an hour, typically) and the kubelet rewrites the
projected file before they do: a client that read the file once at start-up is locked out
an hour later. The file is stat'ed per request (cheap) and read again when it changed.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class BearerToken:
    """`current()` before each request; `reload()` after a 401, to retry with a newer token."""

    def __init__(self, token: str | None = None, path: str | None = None) -> None:
        self._token = token
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        if path is not None:
            self.current()

    @property
    def path(self) -> str | None:
        return self._path

    def current(self) -> str | None:
        """The token as of now: the file's content if it changed since last read."""
        if self._path is None:
            return self._token
        try:
            stat = os.stat(self._path)
        except OSError as exc:
            # Mid-rotation or unmounted: keep the last token, the apiserver will judge it.
            log.warning("token file %s unreadable (%s); keeping the last token", self._path, exc)
            return self._token
        # A projected volume swaps a symlink: the inode changes even within one mtime tick.
        stamp = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if stamp != self._stamp:
            self._read(stamp)
        return self._token

    def reload(self) -> str | None:
        """Read the file again whatever its stat says; the token (None without a file)."""
        if self._path is None:
            return None
        self._stamp = None
        return self.current()

    def _read(self, stamp: tuple[int, int, int]) -> None:
        assert self._path is not None
        try:
            with open(self._path, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            log.warning("token file %s unreadable (%s); keeping the last token", self._path, exc)
            return
        if not token:
            return  # a writer that truncates before writing: read again next time
        if self._token is not None and token != self._token:
            log.info("token file %s changed; using the new token", self._path)
        self._token = token
        self._stamp = stamp
