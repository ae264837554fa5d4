"""Give memory back to the system after a burst.

CPython frees objects, but glibc keeps the freed heap pages of a burst (10,000 watch events,
a full listing) mapped, so a controller's resident set stays at its peak for good.
`malloc_trim` returns them; it costs milliseconds, so it runs now and then, not per event.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_INTERVAL = 30.0


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
