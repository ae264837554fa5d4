"""Give memory back to the system after a burst, and keep TLS buffers small.

CPython frees objects, but glibc keeps the freed heap pages of a burst (10,000 watch events,
a full listing) mapped, so a controller's resident set stays at its peak for good.
`malloc_trim` returns them; it costs milliseconds, so it runs now and then, not per event.

asyncio gives every TLS connection a 256 KiB read buffer, zero-filled as the connection
opens and so resident for its life. The operator keeps up to 64 connections to the
apiserver, and in a create burst the apiserver opens one to the operator's webhook per
admission call in flight: 20-30 MB of buffers. A socket read seldom brings more than a few
TLS records (16 KiB each), so 32 KiB only means a few more reads of a large list.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_INTERVAL = 30.0
TLS_READ_BUFFER = 32 * 1024


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only (not musl)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda pad: int(trim(pad))


_TRIM = _libc_trim()


def give_back() -> bool:
    """Collect garbage and return free heap pages to the system; False without glibc."""
    gc.collect()
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


async def give_back_forever(interval: float = TRIM_INTERVAL) -> None:
    """Run `give_back` every `interval` seconds (a background task of a controller)."""
    while True:
        await asyncio.sleep(interval)
        try:
            give_back()
        except OSError:
            log.exception("returning memory to the system failed")


def size_tls_buffers(size: int = TLS_READ_BUFFER) -> None:
    """Give asyncio's TLS connections opened from now on `size`-byte read buffers."""
    asyncio.sslproto.SSLProtocol.max_size = size
